"""The no-federation baseline of the scheduling benchmarks: a chain of plain Airflow tasks."""

from __future__ import annotations


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
