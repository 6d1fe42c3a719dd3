"""ECDH-PSI throughput against the raw curve-operation rate measured in the same run.

Run by hand: ``.venv/bin/python bench/psi.py [--size 100000] [--overlap 0.5]``.

Per party and per id, the protocol costs one hash-to-curve + scalar multiplication (its own id) and
one scalar multiplication (a peer's point). The raw rate is what one core does of exactly that work
in a tight loop: ``1 / (t(hash+mult) + t(mult))`` ids/s. The component run below is the real one
(guest and host in threads over the in-memory hub, each using the machine's process pool, reading
and writing parquet tables), so both parties' work shares this machine's cores: the cores used per
party are half the machine's, and the ratio reported is ids/s ÷ (raw rate × cores per party).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
import pandas as pd

from fate_airflow.components import _ecdh
from fate_airflow.components.simulate import TaskSpec, simulate
from fate_airflow.core.types import InputRef, Party
from fate_airflow.storage import Table, TableStore, default_computing

GUEST, HOST = Party("guest", "9999"), Party("host", "10000")


def raw_rates(samples: int = 20000) -> tuple[float, float]:
    """(hash-to-curve + mult)/s and mult/s on one core."""
    key = os.urandom(32)
    ids = [f"r{i}" for i in range(samples)]
    start = time.perf_counter()
    points = _ecdh.blind_ids(ids, key)
    t_blind = (time.perf_counter() - start) / samples
    start = time.perf_counter()
    _ecdh.reblind(points, key)
    t_mult = (time.perf_counter() - start) / samples
    return 1 / t_blind, 1 / t_mult


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=100_000)
    ap.add_argument("--overlap", type=float, default=0.5)
    args = ap.parse_args()
    pool = default_computing()
    pool._executor()  # start the workers outside the timed run
    blind_rate, mult_rate = raw_rates()
    per_id = 1 / (1 / blind_rate + 1 / mult_rate)
    n = args.size
    shared = int(n * args.overlap)
    guest_ids = [f"id{i:09d}" for i in range(n)]
    host_ids = guest_ids[:shared] + [f"id{i:09d}" for i in range(n, 2 * n - shared)]
    with tempfile.TemporaryDirectory() as tmp:
        dirs = {"9999": os.path.join(tmp, "g"), "10000": os.path.join(tmp, "h")}
        for pid, ids in (("9999", guest_ids), ("10000", host_ids)):
            frame = pd.DataFrame({"id": ids, "x": np.zeros(len(ids))})
            TableStore.local(dirs[pid]).write("bench", "ids", Table.from_frame(frame, id_column="id"))
        spec = TaskSpec(
            "intersection_0",
            "intersection@1.0.0",
            (GUEST, HOST),
            inputs=(InputRef("data", "data", "data_warehouse", namespace="bench", name="ids"),),
            outputs={"data": ("data",)},
        )
        start = time.perf_counter()
        out = simulate(spec, job_id="bench", data_dirs=dirs)
        elapsed = time.perf_counter() - start
    result = out[GUEST].unwrap()
    assert result.metrics["intersect_count"] == shared, result.metrics
    cores = pool.cores
    ids_per_s = n / elapsed
    print(
        f"raw, 1 core: hash-to-curve+mult {blind_rate:,.0f}/s, mult {mult_rate:,.0f}/s -> {per_id:,.0f} ids/s per core"
    )
    print(
        f"PSI {n:,} x {n:,} ({shared:,} common), both parties on this machine, {cores} cores: {elapsed:.2f} s"
    )
    print(f"end-to-end: {ids_per_s:,.0f} ids/s per party")
    # Both parties run on this machine, so each uses half of its cores.
    per_party_cores = cores / 2
    print(
        f"ids/s / (raw x cores used per party = {per_party_cores:g}) = "
        f"{ids_per_s / (per_id * per_party_cores):.2f}   (goal >= 0.6)"
    )


if __name__ == "__main__":
    main()
