"""toy_example@1.0.0 — FATE 1.x ``SecureAddExample`` / 2.x ``toy_example``: a real two-party secure sum.

Each party draws ``data_num`` integers in [0, 1000) from ``numpy.random.default_rng(seed)`` and sums
them locally. It then splits its sum into additive shares modulo 2**64 (fresh random masks from
:mod:`secrets`), keeps one share and sends one to every other party; each party adds the shares it
holds into a masked partial sum and sends that to everyone. The partial sums add up to the true
total, which every party puts in its metrics — no party ever sends its own sum or its numbers.

Testing knobs (used by the scheduler's integration tests):

* ``sleep_seconds`` (float, default 0): spend that long before exchanging, in 0.1 s steps, raising
  ``ComponentError("aborted")`` as soon as the abort event is set;
* ``fail`` (bool or a role name, default false): raise
  ``ComponentError("injected failure at <role> <party_id>")`` at that party before exchanging.
"""

from __future__ import annotations

import secrets
import time
from typing import Any, ClassVar

import numpy as np

from fate_airflow.components.context import FateComponent, TaskContext
from fate_airflow.core.errors import ComponentError

MODULUS = 1 << 64
#: Default seeds when a conf gives none (1.x ``SecureAddExample`` defaults differ per role too).
DEFAULT_SEEDS = {"guest": 123, "host": 321}


def toy_values(seed: int, data_num: int) -> np.ndarray:
    """The numbers a party contributes: ``default_rng(seed).integers(0, 1000, data_num)``."""
    return np.random.default_rng(seed).integers(0, 1000, size=data_num, dtype=np.int64)


def _should_fail(value: Any, role: str) -> bool:
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("", "false", "0", "no"):
            return False
        if text in ("true", "1", "yes", "all"):
            return True
        return role in {part.strip() for part in text.split(",")}
    if isinstance(value, (list, tuple)):
        return role in value
    return bool(value)


class ToyExample(FateComponent):
    """Secure sum between the guest and the host(s)."""

    roles: ClassVar[tuple[str, ...]] = ("guest", "host")

    def execute(self, ctx: TaskContext) -> None:
        """Draw numbers, exchange masked shares, publish the total."""
        p = ctx.params
        seed = p.integer("seed", "x", default=DEFAULT_SEEDS.get(ctx.role, 0))
        data_num = p.integer("data_num", default=1000)
        if data_num < 0:
            raise ComponentError(f"{ctx.where}: data_num must be >= 0, got {data_num}")
        sleep_seconds = p.number("sleep_seconds", default=0.0)
        fail = p.get("fail", default=False)
        p.get("partition", "partitions")

        values = toy_values(seed, data_num)
        local_sum = int(values.sum())
        ctx.info("drew %d numbers (seed %d)", data_num, seed)

        if _should_fail(fail, ctx.role):
            raise ComponentError(f"injected failure at {ctx.role} {ctx.party_id}")
        if sleep_seconds > 0:
            deadline = time.monotonic() + sleep_seconds
            while True:
                ctx.check_abort()
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                time.sleep(min(0.1, remaining))

        members = [*ctx.parties_of("guest"), *ctx.parties_of("host")]
        others = [m for m in members if m != ctx.local]
        if not others:
            raise ComponentError(f"{ctx.where}: toy_example needs a guest and at least one host")
        shares = [secrets.randbelow(MODULUS) for _ in others]
        kept = (local_sum - sum(shares)) % MODULUS
        for peer, share in zip(others, shares, strict=True):
            ctx.remote({"share": share}, "toy_share", "0", [peer])
        received = ctx.get("toy_share", "0", others)
        partial = (kept + sum(int(r["share"]) for r in received)) % MODULUS
        ctx.remote({"partial": partial, "count": data_num}, "toy_partial", "0", others)
        partials = ctx.get("toy_partial", "0", others)
        total = (partial + sum(int(r["partial"]) for r in partials)) % MODULUS
        count = data_num + sum(int(r["count"]) for r in partials)
        ctx.metrics.update({"sum": total, "data_num": count})
        ctx.summary.update(
            {"parties": len(members), "local_data_num": data_num, "protocol": "additive shares mod 2^64"}
        )
        ctx.info("secure sum over %d parties: %d (%d numbers)", len(members), total, count)


__all__ = ["ToyExample", "toy_values"]
