"""intersection@1.0.0 — FATE 1.x ``Intersection`` / 2.x ``psi``: ECDH private set intersection.

Protocol (guest + one or more hosts; fresh secret scalars per task, one per guest–host pair):

1. each host blinds its ids, ``b·H(y)``, shuffles them and sends the points to the guest;
2. the guest blinds its ids, ``a·H(x)``, shuffles them and sends the points to the host;
3. the host re-blinds the guest's points, ``b·a·H(x)``, and sends them back in the same order;
4. the guest re-blinds the host's points, ``a·b·H(y)``, and matches: equal points are common ids.
   With several hosts the result is the intersection over all of them;
5. if ``sync_intersect_ids`` (default true) the guest tells each host the positions — in the host's
   own shuffled list — of the common ids, so the host learns the intersection and nothing more.

Only 32-byte curve points (and, in step 5, positions) cross parties; neither output contains an id
outside the intersection. The hash to curve is SHA-512 + Elligator 2 (see :mod:`._ecdh`).

Parameters: ``intersect_method`` — always ECDH on Curve25519 here; ``rsa``, ``dh`` or ``raw`` in a
conf are logged and recorded in the summary as overridden (RSA/DH are slower and ``raw`` would send
ids in clear); ``sync_intersect_ids`` (default true; false → hosts output an empty table);
``only_output_key`` (default false; true → output only the id column); ``ecdh_params.salt`` (mixed
into the hash; must match across parties); 2.x ``psi`` takes no parameters.
"""

from __future__ import annotations

import functools
import os
import secrets
from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from fate_airflow.components import _ecdh
from fate_airflow.components.context import TRAIN_KEYS, FateComponent, TaskContext
from fate_airflow.core.errors import ComponentError
from fate_airflow.core.types import Party
from fate_airflow.storage.computing import Computing, choose_computing
from fate_airflow.storage.table import Table

#: Below this many ids per call the pool's start-up and shipping costs more than it saves.
MIN_PARALLEL_IDS = 2000
_OUTPUT_KEYS = ("output_data",)


def _to_array(points: Sequence[bytes]) -> np.ndarray:
    """Points as an ``(n, 32)`` uint8 array (what crosses the federation)."""
    if not points:
        return np.zeros((0, _ecdh.POINT_BYTES), dtype=np.uint8)
    return np.frombuffer(b"".join(points), dtype=np.uint8).reshape(len(points), _ecdh.POINT_BYTES).copy()


def _from_array(value: object, where: str, what: str) -> list[bytes]:
    """A peer's ``(n, 32)`` uint8 array as a list of 32-byte points (checked, never trusted)."""
    if not isinstance(value, np.ndarray) or value.dtype != np.uint8 or value.ndim != 2:
        raise ComponentError(f"{where}: {what} from the peer is not an (n, 32) uint8 array")
    if value.shape[1] != _ecdh.POINT_BYTES:
        raise ComponentError(f"{where}: {what} from the peer has {value.shape[1]}-byte points, expected 32")
    raw = np.ascontiguousarray(value).tobytes()
    return [raw[i : i + _ecdh.POINT_BYTES] for i in range(0, len(raw), _ecdh.POINT_BYTES)]


def _permutation(n: int) -> np.ndarray:
    """A uniformly random permutation from the OS's CSPRNG (the order of sent points must reveal nothing)."""
    rng = np.random.Generator(np.random.PCG64(secrets.randbits(128)))
    return rng.permutation(n)


class Intersection(FateComponent):
    """ECDH PSI between the guest and every host."""

    roles: ClassVar[tuple[str, ...]] = ("guest", "host")

    def execute(self, ctx: TaskContext) -> None:
        """Run this party's side of the protocol and output its rows in the intersection."""
        p = ctx.params
        requested = str(p.get("intersect_method", default="ecdh")).lower()
        if requested != "ecdh":
            ctx.warning(
                "intersect_method %r requested; running ECDH on Curve25519 instead (the only PSI "
                "implemented: faster than RSA/DH, and 'raw' would send ids in clear)",
                requested,
            )
        sync = p.boolean("sync_intersect_ids", default=True)
        only_key = p.boolean("only_output_key", default=False)
        salt = str(p.get("ecdh_params.salt", default="")).encode()
        p.get("ecdh_params", "rsa_params", "dh_params", "raw_params", "intersect_cache_param")
        table = ctx.input_table(TRAIN_KEYS)
        if table is None:
            raise ComponentError(f"{ctx.where}: no input data to intersect")
        ids = table.ids
        if len(set(ids)) != len(ids):
            raise ComponentError(f"{ctx.where}: the input has duplicate ids; PSI needs unique ids")
        hosts = ctx.parties_of("host")
        guests = ctx.parties_of("guest")
        if not hosts or len(guests) != 1:
            raise ComponentError(f"{ctx.where}: PSI needs one guest and at least one host")
        computing = choose_computing(len(ids), MIN_PARALLEL_IDS)
        ctx.info(
            "ECDH PSI on Curve25519 (hash to curve: SHA-512 + Elligator 2; X25519 blinding) over %d ids, "
            "%d host(s), %d worker(s)",
            len(ids),
            len(hosts),
            computing.cores,
        )
        if ctx.role == "guest":
            common = self._guest(ctx, ids, hosts, salt, sync, computing)
        else:
            common = self._host(ctx, ids, guests[0], salt, computing)
        keep = np.fromiter((i in common for i in ids), dtype=bool, count=len(ids))
        if ctx.role == "host" and not sync:
            keep[:] = False
        frame = table.frame.loc[keep].reset_index(drop=True)
        meta = table.meta
        if only_key:
            frame = frame[[meta.id_column]]
            out = Table.from_frame(frame, id_column=meta.id_column, feature_columns=[])
        else:
            out = Table(frame, meta)
        ctx.save_data(out, _OUTPUT_KEYS)
        count = int(keep.sum())
        rate = count / len(ids) if ids else 0.0
        ctx.metrics.update({"intersect_count": count, "intersect_rate": rate})
        ctx.summary.update(
            {
                "intersect_method": "ecdh",
                "requested_method": requested,
                "curve": "curve25519",
                "hash_to_curve": "sha512+elligator2",
                "input_count": len(ids),
                "intersect_count": count,
                "hosts": len(hosts),
                "sync_intersect_ids": sync,
                "workers": computing.cores,
            }
        )
        ctx.info("intersection: %d of %d ids (rate %.4f)", count, len(ids), rate)

    # ------------------------------------------------------------------ guest

    def _guest(
        self,
        ctx: TaskContext,
        ids: list[str],
        hosts: tuple[Party, ...],
        salt: bytes,
        sync: bool,
        computing: Computing,
    ) -> set[str]:
        keys = [os.urandom(32) for _ in hosts]
        perm = _permutation(len(ids))
        shuffled = [ids[i] for i in perm]
        if len(hosts) == 1:
            blinded_sets = [
                computing.map(
                    functools.partial(_ecdh.blind_ids, scalar=keys[0], salt=salt), shuffled, ctx.abort
                )
            ]
        else:
            hashed = computing.map(functools.partial(_ecdh.hash_ids, salt=salt), shuffled, ctx.abort)
            blinded_sets = [
                computing.map(functools.partial(_ecdh.reblind, scalar=k), hashed, ctx.abort) for k in keys
            ]
        for host, blinded in zip(hosts, blinded_sets, strict=True):
            ctx.remote(_to_array(blinded), "psi_guest_blinded", "0", [host])
        matches: list[dict[int, int]] = []  # per host: guest position (shuffled) -> host position
        for host, key in zip(hosts, keys, strict=True):
            host_points = _from_array(ctx.get_one("psi_host_blinded", "0", host), ctx.where, "host points")
            double_guest = _from_array(
                ctx.get_one("psi_guest_double", "0", host), ctx.where, "re-blinded points"
            )
            if len(double_guest) != len(ids):
                raise ComponentError(
                    f"{ctx.where}: {host} returned {len(double_guest)} points for {len(ids)} sent"
                )
            try:
                double_host = computing.map(
                    functools.partial(_ecdh.reblind, scalar=key), host_points, ctx.abort
                )
            except _ecdh.BadPointError as exc:
                raise ComponentError(f"{ctx.where}: {host} sent an invalid point: {exc}") from None
            position = {pt: j for j, pt in enumerate(double_host)}
            matches.append({i: position[pt] for i, pt in enumerate(double_guest) if pt in position})
            ctx.info("%s: %d host ids, %d common with the guest", host, len(host_points), len(matches[-1]))
        common_positions = set(matches[0])
        for m in matches[1:]:
            common_positions &= set(m)
        for host, m in zip(hosts, matches, strict=True):
            index = (
                np.asarray(sorted(m[i] for i in common_positions), dtype=np.int64)
                if sync
                else np.zeros(0, np.int64)
            )
            ctx.remote({"sync": sync, "index": index}, "psi_intersect_index", "0", [host])
        return {shuffled[i] for i in common_positions}

    # ------------------------------------------------------------------ host

    def _host(
        self, ctx: TaskContext, ids: list[str], guest: Party, salt: bytes, computing: Computing
    ) -> set[str]:
        key = os.urandom(32)
        perm = _permutation(len(ids))
        shuffled = [ids[i] for i in perm]
        blinded = computing.map(
            functools.partial(_ecdh.blind_ids, scalar=key, salt=salt), shuffled, ctx.abort
        )
        ctx.remote(_to_array(blinded), "psi_host_blinded", "0", [guest])
        guest_points = _from_array(ctx.get_one("psi_guest_blinded", "0", guest), ctx.where, "guest points")
        try:
            double = computing.map(functools.partial(_ecdh.reblind, scalar=key), guest_points, ctx.abort)
        except _ecdh.BadPointError as exc:
            raise ComponentError(f"{ctx.where}: the guest sent an invalid point: {exc}") from None
        ctx.remote(_to_array(double), "psi_guest_double", "0", [guest])
        reply = ctx.get_one("psi_intersect_index", "0", guest)
        if not isinstance(reply, dict) or not isinstance(reply.get("index"), np.ndarray):
            raise ComponentError(f"{ctx.where}: malformed intersection index from the guest")
        index = reply["index"]
        if index.dtype.kind not in "iu" or (len(index) and (index.min() < 0 or index.max() >= len(ids))):
            raise ComponentError(f"{ctx.where}: intersection index from the guest is out of range")
        if not reply.get("sync", True):
            ctx.info("sync_intersect_ids is false: the guest keeps the intersection to itself")
            return set()
        return {shuffled[int(j)] for j in index}


__all__ = ["Intersection"]
