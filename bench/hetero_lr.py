"""Hetero-LR epoch time: 1024-bit Paillier vs plaintext numpy LR vs the operation-count model.

Run by hand: ``.venv/bin/python bench/hetero_lr.py [--rows 10000] [--epochs 1] [--key-length 1024]``.

Synthetic data: ``rows`` × (10 guest + 20 host) standard-normal features, labels from a logistic
model. Everything is measured in this run, on this machine:

* per-op Paillier rates on one core (encrypt, re-randomise, scalar-mul by a ~26-bit integer, add,
  decrypt), then
* one epoch of the real component (guest + host + arbiter in threads over the in-memory hub,
  sharing this machine's computing pool), full batch;
* one epoch of the same Taylor-gradient LR in plain numpy;
* the operation-count model of peers.md §C1: the epoch's counted operations × the per-op costs
  measured above ÷ cores. ``scalar_muls`` are counted as the naive n·F exponentiations of ``Xᵀ·[[d]]``;
  the component computes those with one multi-exponentiation per feature, hence "model (naive)".
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import tempfile
import time

import gmpy2
import numpy as np
import pandas as pd

from fate_airflow.components.paillier import Keypair, _encrypt_chunk, _obfuscate_chunk
from fate_airflow.components.simulate import TaskSpec, simulate
from fate_airflow.core.types import InputRef, Party
from fate_airflow.storage import Table, TableStore, default_computing

GUEST, HOST, ARBITER = Party("guest", "9999"), Party("host", "10000"), Party("arbiter", "10000")


def rate(fn, count: int) -> float:
    start = time.perf_counter()
    fn(count)
    return count / (time.perf_counter() - start)


def op_rates(key_length: int) -> dict[str, float]:
    kp = Keypair.generate("paillier", key_length)
    n = kp.public.n
    nsq = gmpy2.mpz(n) * n
    cts = _encrypt_chunk(list(range(300)), n)
    mpz_cts = [gmpy2.mpz(c) for c in cts]
    exps = [secrets.randbits(26) for _ in range(300)]
    return {
        "encrypt": rate(lambda k: _encrypt_chunk(list(range(k)), n), 300),
        "rerandomize": rate(lambda k: _obfuscate_chunk([(cts[i % 300], i) for i in range(k)], n), 300),
        "scalar_mul_26bit": rate(
            lambda k: [gmpy2.powmod(mpz_cts[i % 300], exps[i % 300], nsq) for i in range(k)], 3000
        ),
        "add": rate(lambda k: [mpz_cts[i % 300] * mpz_cts[(i + 1) % 300] % nsq for i in range(k)], 100000),
        "decrypt": rate(lambda k: kp.decrypt(cts[: min(k, 300)]) and None, 300),
    }


def make_data(rows: int, seed: int = 7) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, 30))
    w = rng.standard_normal(30) / 3
    y = (rng.random(rows) < 1 / (1 + np.exp(-(x @ w)))).astype(int)
    ids = [f"u{i:07d}" for i in range(rows)]
    guest = pd.DataFrame({"id": ids, "y": y, **{f"g{i}": x[:, i] for i in range(10)}})
    host = pd.DataFrame({"id": ids, **{f"h{i}": x[:, 10 + i] for i in range(20)}})
    return guest, host


def plaintext_epoch(guest: pd.DataFrame, host: pd.DataFrame) -> float:
    """One full-batch epoch of the same Taylor-gradient LR, in numpy."""
    x = np.hstack([guest.filter(like="g").to_numpy(), host.filter(like="h").to_numpy()])
    y = 2.0 * guest["y"].to_numpy() - 1
    w = np.zeros(x.shape[1])
    b = 0.0
    start = time.perf_counter()
    u = x @ w + b
    d = 0.25 * u - 0.5 * y
    grad = x.T @ d / len(y)
    loss = float(np.mean(np.log(2) - 0.5 * y * u + 0.125 * u * u))
    w = w - 0.15 * (grad + 0.01 * w)
    b = b - 0.15 * float(d.mean())
    del loss
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10000)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--key-length", type=int, default=1024)
    args = ap.parse_args()
    cores = default_computing().cores
    default_computing()._executor()  # start the pool outside the timed epoch
    rates = op_rates(args.key_length)
    print("per-op rates, 1 core (ops/s):", json.dumps({k: round(v) for k, v in rates.items()}))
    guest, host = make_data(args.rows)
    plain = min(plaintext_epoch(guest, host) for _ in range(5))
    with tempfile.TemporaryDirectory() as tmp:
        dirs = {"9999": os.path.join(tmp, "g"), "10000": os.path.join(tmp, "h")}
        TableStore.local(dirs["9999"]).write(
            "bench", "g", Table.from_frame(guest, id_column="id", label_column="y")
        )
        TableStore.local(dirs["10000"]).write("bench", "h", Table.from_frame(host, id_column="id"))
        spec = TaskSpec(
            "hetero_lr_0",
            "hetero_lr@1.0.0",
            (GUEST, HOST, ARBITER),
            common={
                "max_iter": args.epochs,
                "batch_size": -1,
                "optimizer": "sgd",
                "learning_rate": 0.15,
                "alpha": 0.01,
                "init_param": {"init_method": "zeros"},
                "encrypt_param": {"key_length": args.key_length},
            },
            inputs=(
                InputRef(
                    "data", "train_data", "data_warehouse", namespace="bench", name="g", parties=(GUEST,)
                ),
                InputRef(
                    "data", "train_data", "data_warehouse", namespace="bench", name="h", parties=(HOST,)
                ),
            ),
            outputs={"data": ("data",), "model": ("model",)},
        )
        start = time.perf_counter()
        out = simulate(spec, job_id="bench", data_dirs=dirs, model_id="m", model_version="v")
        total = time.perf_counter() - start
    rates_after = op_rates(args.key_length)
    # the machine is shared: use the mean of the rates measured just before and just after the run
    mean_rates = {k: (rates[k] + rates_after[k]) / 2 for k in rates}
    print("per-op rates after the run (ops/s):", json.dumps({k: round(v) for k, v in rates_after.items()}))
    results = {p: o.unwrap() for p, o in out.items()}
    g_ops, h_ops = results[GUEST].summary["he_ops"], results[HOST].summary["he_ops"]
    decryptions = results[ARBITER].summary["decryptions"]
    counts = {
        "encrypt": g_ops["encryptions"] + h_ops["encryptions"],
        "rerandomize": g_ops["obfuscations"] + h_ops["obfuscations"],
        "scalar_mul_26bit": g_ops["scalar_muls"] + h_ops["scalar_muls"],
        "add": g_ops["additions"] + h_ops["additions"],
        "decrypt": decryptions,
    }
    model = sum(counts[k] / mean_rates[k] for k in counts) / cores
    floor = sum(counts[k] / mean_rates[k] for k in counts if k != "scalar_mul_26bit") / cores
    epochs = args.epochs
    print(
        f"rows {args.rows}, features 10 guest + 20 host, key {args.key_length} bits, cores {cores}, epochs {epochs}"
    )
    print("operations, whole run:", json.dumps(counts))
    print(f"plaintext numpy epoch: {plain * 1e3:.2f} ms")
    print(
        f"Paillier run: {total:.2f} s = {total / epochs:.2f} s per epoch (incl. key generation, final predictions)"
    )
    print(
        f"op-count model (naive n·F scalar-muls): {model / epochs:.2f} s per epoch -> measured/model = {total / model:.2f}"
    )
    print(
        f"op-count floor (encryptions + re-randomisations + adds + decryptions only): {floor / epochs:.2f} s per "
        f"epoch -> measured/floor = {total / floor:.2f}"
    )
    print(f"Paillier epoch / plaintext numpy epoch: {total / epochs / plain:,.0f}x")


if __name__ == "__main__":
    main()
