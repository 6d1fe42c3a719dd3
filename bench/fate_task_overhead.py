"""Per-task wall time of a FATE-provider task: cold start vs forked by the warm FATE worker.

Run by hand after ``make provider-env``:
``.venv/bin/python bench/fate_task_overhead.py [--runs 5] [--provider-dir .fate/test-providers]``.

The task is FATE 2.2's ``statistics`` on ``breast_hetero_guest`` at the guest alone (569 rows × 10
features; FATE's osx federation at a real gateway's PTP endpoint), run through the real component (``run_party_task``: spec written, FATE process, outputs
taken into the store). Cold and warm runs alternate so that load on the machine hits both alike;
each reports the FATE process's wall time (start → exit, what the worker changes) and the whole
share's. The zygote's own start (FATE's imports, once per idle period) is measured separately and
left out of the warm medians. The baseline is the cold start measured in the same run; FATE-Flow
2.2's ≈ 14 s fixed cost per task on this machine kind (../shared/reference/fate-provider.md) is
printed for context only.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import psutil

from fate_airflow.components.api import PartyTaskRequest
from fate_airflow.components.runtime import run_party_task
from fate_airflow.components.simulate import TaskSpec
from fate_airflow.core.providers import ProviderRegistry
from fate_airflow.core.types import InputRef, Party
from fate_airflow.federation.api import FederationSession
from fate_airflow.federation.inmemory import InMemoryHub
from fate_airflow.storage import Table, TableStore

ROOT = Path(__file__).resolve().parents[1]
GUEST = Party("guest", "9999")
FATE_FLOW_PER_TASK = 14.0
STATS = TaskSpec(
    "statistics_0",
    "statistics@1.0.0",
    (GUEST,),
    component="statistics",
    common={"metrics": ["mean", "std", "0%", "25%", "median", "75%", "100%", "missing_ratio"], "bias": True},
    inputs=(
        InputRef(
            "data",
            "input_data",
            "data_warehouse",
            namespace="experiment",
            name="breast_hetero_guest",
            parties=(GUEST,),
        ),
    ),
    outputs={"model": ("output_model",)},
    stage="default",
)


def _data_file() -> Path:
    for folder in (ROOT / "tests/fixtures/fate-examples/data", ROOT.parent / "shared/fate-examples/data"):
        if (folder / "breast_hetero_guest.csv").exists():
            return folder / "breast_hetero_guest.csv"
    raise SystemExit("breast_hetero_guest.csv not found (tests/fixtures/fate-examples/data)")


def run_once(data_dir: str, provider_dir: Path, job: str, warm: bool, ptp: str) -> tuple[float, float]:
    """(FATE process seconds, whole share seconds) of one statistics task."""
    os.environ["FATE_AIRFLOW_FATE_WORKER"] = "on" if warm else "off"
    request: PartyTaskRequest = dataclasses.replace(
        STATS.request(GUEST, job_id=job, data_dir=data_dir, model_id="m", model_version=job),
        provider="fate:2.2.0",
        provider_dir=str(provider_dir),
        ptp_address=ptp,
    )
    hub = InMemoryHub()
    fed = hub.federation(
        FederationSession(request.job_id, request.task_name, request.task_version, GUEST, request.parties)
    )
    started = time.perf_counter()
    result = run_party_task(request, fed)
    total = time.perf_counter() - started
    return float(result.summary["fate_process_seconds"]), total


def _stop_zygotes(provider_dir: Path) -> None:
    for pid_file in provider_dir.glob("run/*/zygote.pid"):
        try:
            proc = psutil.Process(int(pid_file.read_text()))
            if any("fate_zygote.py" in part for part in proc.cmdline()):
                proc.terminate()
                proc.wait(10)
        except (psutil.Error, ValueError, OSError):
            pass


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument(
        "--provider-dir",
        type=Path,
        default=Path(os.environ.get("FATE_AIRFLOW_TEST_PROVIDERS") or ROOT / ".fate/test-providers"),
    )
    args = ap.parse_args()
    found = ProviderRegistry(args.provider_dir).find("fate", "2.2.0")
    if found is None:
        raise SystemExit(f"fate 2.2.0 is not registered in {args.provider_dir}; run `make provider-env`")
    frame = pd.read_csv(_data_file(), dtype={"id": str})
    with tempfile.TemporaryDirectory() as tmp:
        # A provider folder of its own: this run's zygote is started (and stopped) here.
        providers = Path(tmp) / "providers"
        providers.mkdir()
        shutil.copy(args.provider_dir / "registry.json", providers / "registry.json")
        data_dir = str(Path(tmp) / "9999")
        TableStore.local(data_dir).write(
            "experiment", "breast_hetero_guest", Table.from_frame(frame, id_column="id", label_column="y")
        )
        sys.path.insert(0, str(ROOT))  # a real gateway with its PTP endpoint, as the component tests use
        from tests.integration.components.test_components_grpc import Gateways

        gateways = Gateways(Path(tmp) / "gateways", ptp=True)
        ptp = gateways.ptp("9999")
        try:
            first_proc, first_total = run_once(data_dir, providers, "warmup-warm", warm=True, ptp=ptp)
            cold_proc: list[float] = []
            cold_total: list[float] = []
            warm_proc: list[float] = []
            warm_total: list[float] = []
            for i in range(args.runs):
                p, t = run_once(data_dir, providers, f"cold-{i}", warm=False, ptp=ptp)
                cold_proc.append(p)
                cold_total.append(t)
                p, t = run_once(data_dir, providers, f"warm-{i}", warm=True, ptp=ptp)
                warm_proc.append(p)
                warm_total.append(t)
        finally:
            _stop_zygotes(providers)
            gateways.close()

    def row(name: str, proc: list[float], total: list[float]) -> str:
        return (
            f"| {name} | {statistics.median(proc):.2f} ({min(proc):.2f}–{max(proc):.2f}) "
            f"| {statistics.median(total):.2f} ({min(total):.2f}–{max(total):.2f}) |"
        )

    cold_med, warm_med = statistics.median(cold_proc), statistics.median(warm_proc)
    print(f"FATE statistics on breast_hetero_guest (guest only), {args.runs} runs each, alternating\n")
    print("| start | FATE process s, median (min–max) | whole share s, median (min–max) |")
    print("|---|---|---|")
    print(row("cold (new interpreter, FATE imports)", cold_proc, cold_total))
    print(row("warm (forked by the zygote)", warm_proc, warm_total))
    print(f"| first warm task (starts the zygote) | {first_proc:.2f} | {first_total:.2f} |")
    print()
    print(
        f"warm / cold (FATE process, medians): {warm_med / cold_med:.2f}  (saved {cold_med - warm_med:.2f} s per task)"
    )
    print(
        f"for context: FATE-Flow 2.2's fixed cost per task ≈ {FATE_FLOW_PER_TASK:.0f} s (reference, not measured here)"
    )


if __name__ == "__main__":
    main()
