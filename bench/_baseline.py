"""The scheduling benchmarks' two parties and their no-federation baseline (a chain of plain tasks)."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Mapping
from pathlib import Path

from fate_airflow.deploy.localfed import LocalFederation, create_local_federation
from fate_airflow.deploy.party import write_party_config

REPO = Path(__file__).resolve().parents[1]


def bench_parties(
    base: Path, baseline: tuple[str, int, str], job_files: Mapping[str, str]
) -> LocalFederation:
    """Guest 9999 and host 10000 under ``base`` (not started), sharing a DAGs folder.

    :param baseline: (DAG id, length, benchmark name) of the baseline chain put beside the job loader.
    :param job_files: file name → text of the job files dropped into the guest's jobs folder.
    """
    dags = base / "dags"
    dags.mkdir()
    shutil.copy(REPO / "dags" / "fate_jobs.py", dags / "fate_jobs.py")
    dag_id, length, bench = baseline
    (dags / f"{dag_id}.py").write_text(baseline_chain_dag(dag_id, length, bench))
    jobs = base / "guest-jobs"
    jobs.mkdir()
    for name, text in job_files.items():
        (jobs / name).write_text(text)
    fed = create_local_federation(base, ["9999", "10000"], jobs_folders={"9999": jobs})
    for pid, cfg in list(fed.parties.items()):
        fed.parties[pid] = dataclasses.replace(cfg, dags_folder=dags)
        write_party_config(fed.parties[pid], fed.config_paths[pid])
    return fed


def baseline_chain_dag(dag_id: str, length: int, bench: str) -> str:
    """Source of a DAG of ``length`` chained local tasks, each computing the sum a toy component does."""
    return f'''
"""Baseline for {bench}: {length} chained local tasks, no federation."""
import numpy as np
from airflow.sdk import DAG, task

with DAG("{dag_id}", schedule=None, catchup=False, is_paused_upon_creation=False) as dag:
    prev = None
    for i in range({length}):
        @task(task_id=f"local_{{i}}")
        def local_sum(i=i):
            return int(np.random.default_rng(i).integers(0, 1000, 100).sum())
        cur = local_sum()
        if prev is not None:
            prev >> cur
        prev = cur
'''
