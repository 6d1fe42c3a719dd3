"""Board page rendering: a 30-component ended job, rendered as the job page, vs dumping its records.

Run by hand::

    .venv/bin/python bench/board_page.py [--components 30] [--runs 20]

The job page's own work once its data is gathered: the component graph, the status matrix and, per
component, charts (loss per iteration; ROC, K-S, lift, gain, PR from ~100 thresholds) and tables.
**Baseline**, measured in the same run: ``json.dumps`` of the same tracking records, indented — what
the page showed before (each record as raw JSON). Gathering the data is a fixed number of queries
(the initiator's view and this party's plan through the gateway, three metadata-DB queries, one
output index per component); the browser test records the whole page load in
``test-results/board/timings.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np

from fate_airflow.core.types import Party
from fate_airflow.dsl.plan import JobPlan, PartyTask, TaskPlan
from fate_airflow.federation.api import JobView, PartyTaskView, TaskView
from fate_airflow.provider.board_page import JobPageData, LocalTask, job_page
from fate_airflow.tracking.board import binary_curves

GUEST, HOST = "9999", "10000"


def synthetic_job(n: int) -> JobPageData:
    """``n`` components in chains of three (reader → LR → evaluation), ended, with full records."""
    g, h = Party("guest", GUEST), Party("host", HOST)
    rng = np.random.default_rng(0)
    label = rng.integers(0, 2, 569)
    score = 1 / (1 + np.exp(-(2.0 * label - 1 + rng.normal(0, 1, 569))))
    curves = binary_curves(label, score)
    tasks, records, views = [], {}, []
    for i in range(n):
        kind = ("reader", "lr", "eval")[i % 3]
        name = f"{kind}_{i}"
        upstream = (f"{('reader', 'lr', 'eval')[(i - 1) % 3]}_{i - 1}",) if i % 3 else ()
        tasks.append(
            TaskPlan(name, kind, f"{kind}@1.0.0", upstream, (PartyTask(g, {"epochs": 30}), PartyTask(h)))
        )
        share: dict[str, object] = {"metrics": {}, "summary": {"rows": 569}}
        if kind == "lr":
            share = {
                "metrics": {"loss_history": list(np.linspace(0.69, 0.2, 30))},
                "summary": {"iterations": 30},
            }
        elif kind == "eval":
            share = {"metrics": {"auc": 0.99, "ks": 0.9}, "summary": {"curves": {f"{name}.data": curves}}}
        records[name] = {"status": "success", "task_version": 0, "roles": {"guest": share}}
        cells = (PartyTaskView(GUEST, ("guest",), "success"), PartyTaskView(HOST, ("host",), "success"))
        views.append(TaskView(name, 0, "success", cells))
    plan = JobPlan(
        format="fate-2.x-dag",
        stage="train",
        initiator=g,
        parties=(g, h),
        job_parameters={},
        tasks=tuple(tasks),
    )
    view = JobView("job", True, "dag", "success", "", GUEST, tuple(views), {"created": 1.0, "ended": 100.0})
    local = {name: LocalTask("success", record=rec) for name, rec in records.items()}
    return JobPageData("dag", "job", GUEST, view, plan, local, "success")


def timed(fn: object, runs: int) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--components", type=int, default=30)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    data = synthetic_job(args.components)
    html = job_page(data, "/fate")
    raw = "".join(json.dumps(t.record, indent=1, default=str) for t in data.local.values())
    page_s = timed(lambda: job_page(data, "/fate"), args.runs)
    base_s = timed(
        lambda: "".join(json.dumps(t.record, indent=1, default=str) for t in data.local.values()), args.runs
    )
    charts = html.count("<svg class='chart'")
    print(
        f"{args.components} components, {charts} charts, page {len(html) / 1024:.0f} KiB (raw JSON {len(raw) / 1024:.0f} KiB)"
    )
    print(f"{'render (median of ' + str(args.runs) + ')':32s} {'ms':>8s}")
    print(f"{'baseline: records as raw JSON':32s} {base_s * 1000:8.1f}")
    print(
        f"{'job page (graph, charts, tables)':32s} {page_s * 1000:8.1f}   (page / baseline = {page_s / base_s:.1f})"
    )


if __name__ == "__main__":
    main()
