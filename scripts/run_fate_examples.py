"""Run FATE's own example DAGs at two local parties and print a results table (by hand, not a test).

The 54 DAG YAML files in ``../shared/fate-examples/v2-pipeline-dags`` (FATE 2.2's pipeline scripts in
``../shared/fate-examples/v2-pipeline``, compiled unchanged) are dropped into the guest's jobs folder of a
local two-party federation — party 9999 (guest; host_1 of the multi-host examples) and party 10000
(host; arbiter) — each with its own Airflow and gateway, as ``party up`` deploys them, and FATE 2.2
registered as a component provider. Every table the examples read is uploaded from the families'
``*testsuite.yaml`` ``data:`` entries (role → party as in ``v2-pipeline/config.yaml``). The jobs are
triggered at the guest one at a time; the table (stdout) gives, per DAG: status, wall time from trigger
to end, the key metric (the guest's evaluation: AUC for binary, accuracy for multi-class, RMSE for
regression; otherwise what the job's last tasks produced) and FATE 2.2 standalone's own result for the
same script (``../shared/reference/fate22-results.md``). Progress goes to stderr.

Needs the FATE 2.2 provider environment first::

    make provider-env        # builds it and registers it in .fate/test-providers

Then, e.g.::

    .venv/bin/python scripts/run_fate_examples.py --only 'psi__*' --only 'statistics__*' --markdown
    .venv/bin/python scripts/run_fate_examples.py --base /tmp/fate-ex --keep-up   # all 54, parties left up

Exit 0 when the runs happened (whatever their outcome: this is a report), 2 on a setup error.
A DAG that fails to plan is shown ``invalid`` with the first line of its error. The party homes (logs
under ``<base>/<party>/run`` and ``<base>/<party>/airflow/logs``) are kept after the run.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml

from fate_airflow.core.providers import ProviderInfo, ProviderRegistry
from fate_airflow.deploy.gateway_client import control_client
from fate_airflow.deploy.localfed import LocalFederation, create_local_federation
from fate_airflow.federation.api import JobView, StopJob
from fate_airflow.storage.artifacts import ArtifactStore
from fate_airflow.storage.tables import TableStore
from fate_airflow.storage.upload import spec_from_config, upload
from fate_airflow.tracking import ModelKey, ModelStore

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
DAGS_DIR = SHARED / "fate-examples" / "v2-pipeline-dags"
PIPELINE_DIR = SHARED / "fate-examples" / "v2-pipeline"
#: Folders holding ``data/<file>.csv`` (FATE's ``examples/data/...`` paths resolve against them).
DATA_ROOTS = (SHARED / "fate-examples", REPO / "tests" / "fixtures" / "fate-examples")
GUEST, HOST = "9999", "10000"
#: FATE's example config (v2-pipeline/config.yaml): guest [9999], host [10000, 9999], arbiter [10000].
DEFAULT_ROLE_PARTIES: dict[str, list[str]] = {"guest": [GUEST], "host": [HOST, GUEST], "arbiter": [HOST]}
#: Seconds to wait for every DAG to be parsed after the parties came up.
DAG_PARSE_TIMEOUT = 300.0
NONE = "—"

#: FATE 2.2 standalone's results for the same scripts (../shared/reference/fate22-results.md, table
#: "FATE's example pipeline scripts"); seconds = the whole script (fit and, where present, predict).
FATE22: dict[str, str] = {
    "coordinated_lr__test_lr": "AUC 0.992363, KS 0.927620 (257.3 s)",
    "coordinated_lr__test_lr_multi_host": "AUC 0.820583, KS 0.485823; random init (211.1 s)",
    "hetero_secureboost__test_hetero_sbt_binary": "AUC 0.975166; GOSS draw (87.9 s)",
    "hetero_secureboost__test_hetero_sbt_multi": "accuracy 0.732861, 846 rows (193.4 s)",
    "homo_lr__test_homo_lr_binary": "guest AUC 0.957056, host AUC 0.944654; torch init (123.4 s)",
    "psi__test_psi": "569 of 569 matched (20.5 s)",
    "sshe_lr__test_lr": "AUC 0.924211, KS 0.723891; random init (140.0 s)",
    "statistics__test_statistics": "guest x0 min −1.726901, median −0.27111, max 4.094189 (31.6 s)",
    "hetero_feature_binning__test_feature_binning_quantile": "IV guest x0 2.580880, host x1 0.886951 (85.7 s)",
    "hetero_feature_selection__test_feature_selection_manual": "guest keeps x0–x9; host x2–x19 (61.4 s)",
    "feature_scale__test_scale_standard": "x0 mean ≈ 0, std 1.000880 (98.3 s)",
    "data_split__test_data_split": "split_0: train 341 / validate 57 / test 171; "
    "split_1: train 200 / test 50 / validate 319 (208.4 s)",
    "sample__test_sample": "frac {0: 0.5} → 463 rows; n=100 → 100 rows (97.8 s)",
    "coordinated_linr__test_linr": "RMSE 0.297210, MAE 0.221404, R² 0.913222 (225.5 s)",
    "feature_correlation__test_feature_correlation": "host_x0–guest_x0 0.969539; guest VIF x0 137.24 (42.0 s)",
}


def progress(message: str) -> None:
    """A progress line on stderr."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------- the DAG files
@dataclass(frozen=True)
class TaskSpec:
    """What the runner needs to know about one task of a DAG file."""

    name: str
    component: str
    upstream: tuple[str, ...]
    parameters: Mapping[str, Any]


@dataclass(frozen=True)
class DagFile:
    """One example DAG file."""

    dag_id: str
    path: Path
    tasks: tuple[TaskSpec, ...]
    tables: frozenset[tuple[str, str, str]]  # (party id, namespace, name) its readers read

    @property
    def evaluations(self) -> list[TaskSpec]:
        """Its evaluation tasks."""
        return [t for t in self.tasks if t.component == "evaluation"]

    @property
    def leaves(self) -> list[TaskSpec]:
        """Tasks nothing else depends on (readers and PSIs only when there is nothing else)."""
        used = {u for t in self.tasks for u in t.upstream}
        leaves = [t for t in self.tasks if t.name not in used]
        return [t for t in leaves if t.component not in ("reader", "psi", "intersection")] or leaves


def read_dag_file(path: Path) -> DagFile:
    """Tasks and reader tables of a FATE 2.x DAG YAML (best effort: a broken file yields no tasks)."""
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        dag = doc.get("dag") or {}
    except (OSError, yaml.YAMLError, AttributeError):
        return DagFile(path.stem, path, (), frozenset())
    tasks = []
    for name, body in sorted((dag.get("tasks") or {}).items()):
        body = body or {}
        tasks.append(
            TaskSpec(
                str(name),
                str(body.get("component_ref", "")),
                tuple(str(u) for u in body.get("dependent_tasks") or ()),
                dict(body.get("parameters") or {}),
            )
        )
    tables: set[tuple[str, str, str]] = set()
    for group in (dag.get("party_tasks") or {}).values():
        party_ids = [
            str(p) for party in (group or {}).get("parties") or [] for p in party.get("party_id") or []
        ]
        for body in ((group or {}).get("tasks") or {}).values():
            params = (body or {}).get("parameters") or {}
            if "name" in params and "namespace" in params:
                tables.update((pid, str(params["namespace"]), str(params["name"])) for pid in party_ids)
    return DagFile(path.stem, path, tuple(tasks), frozenset(tables))


def select_dags(dags_dir: Path, patterns: Sequence[str]) -> list[DagFile]:
    """The DAG files whose id matches one of ``patterns`` (all when none), sorted by id."""
    found = sorted(dags_dir.glob("*.yaml"))
    if patterns:
        found = [p for p in found if any(fnmatch.fnmatchcase(p.stem, pat) for pat in patterns)]
    return [read_dag_file(p) for p in found]


# ---------------------------------------------------------------------- data
def role_parties(pipeline_dir: Path) -> dict[str, list[str]]:
    """Role → party ids of FATE's example config (``v2-pipeline/config.yaml``)."""
    try:
        doc = yaml.safe_load((pipeline_dir / "config.yaml").read_text(encoding="utf-8")) or {}
        parties = doc.get("parties") or {}
        return {str(role): [str(p) for p in ids] for role, ids in parties.items()} or DEFAULT_ROLE_PARTIES
    except (OSError, yaml.YAMLError, AttributeError):
        return DEFAULT_ROLE_PARTIES


def data_root() -> Path:
    """The first folder that has FATE's example data."""
    for root in DATA_ROOTS:
        if (root / "data").is_dir():
            return root
    raise SetupError(f"FATE's example data not found in any of {[str(r) for r in DATA_ROOTS]}")


def testsuite_uploads(pipeline_dir: Path) -> dict[tuple[str, str, str], dict[str, Any]]:
    """(party id, namespace, name) → upload config, from every family's testsuite ``data:`` entries."""
    parties = role_parties(pipeline_dir)
    uploads: dict[tuple[str, str, str], dict[str, Any]] = {}
    for suite in sorted(pipeline_dir.glob("*/*testsuite.yaml")):
        doc = yaml.safe_load(suite.read_text(encoding="utf-8")) or {}
        for entry in doc.get("data") or []:
            role, _, index = str(entry.get("role", "")).rpartition("_")
            ids = parties.get(role) or []
            if not index.isdigit() or int(index) >= len(ids):
                progress(f"warning: {suite.name}: role {entry.get('role')!r} has no party; skipped")
                continue
            conf = {k: v for k, v in entry.items() if k != "role"}
            key = (
                ids[int(index)],
                str(conf.get("namespace")),
                str(conf.get("table_name") or conf.get("name")),
            )
            earlier = uploads.get(key)
            if earlier is not None and earlier.get("file") != conf.get("file"):
                progress(f"warning: {suite.name}: {key} is also {earlier.get('file')}; keeping the first")
                continue
            uploads.setdefault(key, conf)
    return uploads


def upload_tables(fed: LocalFederation, dags: Sequence[DagFile], pipeline_dir: Path) -> None:
    """Upload (once each) every testsuite table at its party; warn about tables no testsuite provides."""
    uploads = testsuite_uploads(pipeline_dir)
    root = data_root()
    for (party, namespace, name), conf in sorted(uploads.items()):
        if party not in fed.parties:
            continue
        spec = spec_from_config(conf, origin=f"testsuite {namespace}.{name}", base_dir=root)
        meta = upload(TableStore.local(fed.parties[party].data_dir), spec, overwrite=True)
        progress(f"uploaded {spec.file.name} as {namespace}.{name} at {party}: {meta.row_count} rows")
    for dag in dags:
        missing = sorted(t for t in dag.tables if t not in uploads)
        if missing:
            progress(f"warning: {dag.dag_id} reads tables no testsuite uploads: {missing}")


# ---------------------------------------------------------------------- results
@dataclass
class Result:
    """One row of the table."""

    dag_id: str
    status: str = "not run"
    seconds: float | None = None
    metric: str = NONE
    job_id: str = ""


def fate_record(
    fed: LocalFederation, party: str, dag_id: str, run_id: str, task: str
) -> dict[str, Any] | None:
    """The ``fate`` XCom of a task instance (the task's per-role record), or None."""
    resp = fed.rest(party).request(
        "GET",
        f"/api/v2/dags/{quote(dag_id, safe='')}/dagRuns/{quote(run_id, safe='')}/taskInstances/"
        f"{quote(task, safe='')}/xcomEntries/fate",
    )
    if resp.status_code != 200:
        return None
    value = resp.json().get("value")
    try:
        return json.loads(value) if isinstance(value, str) else dict(value or {})
    except (TypeError, ValueError):
        return None


def _num(value: Any) -> str:
    return f"{value:.6f}" if isinstance(value, float) else str(value)


#: Metrics shown per evaluation type (the first is the key metric).
_EVAL_KEYS = {"binary": ("auc", "ks"), "multi": ("accuracy",), "regression": ("rmse", "r2")}


def _eval_type(task: TaskSpec) -> str:
    raw = str(task.parameters.get("default_eval_setting") or task.parameters.get("eval_type") or "binary")
    return "multi" if raw.startswith("multi") else raw if raw in _EVAL_KEYS else "binary"


def _pick(metrics: Mapping[str, Any], keys: Sequence[str]) -> str:
    shown = [f"{k} {_num(metrics[k])}" for k in keys if metrics.get(k) is not None]
    return ", ".join(shown)


def evaluation_summary(task: TaskSpec, metrics: Mapping[str, Any]) -> str:
    """``auc 0.98, ks 0.91`` (flat metrics) or one such part per evaluated input."""
    keys = _EVAL_KEYS[_eval_type(task)]
    flat = _pick(metrics, keys)
    if flat:
        return flat
    parts = []
    for name, sub in metrics.items():
        if isinstance(sub, Mapping) and (shown := _pick(sub, keys)):
            parts.append(f"{name.split('.')[0]}: {shown}")
    scalars = _pick(metrics, [k for k, v in metrics.items() if isinstance(v, int | float)][:3])
    return "; ".join(parts) or scalars or "no metrics"


def _short_key(key: str) -> str:
    short = key.removesuffix("output_data").removesuffix("_")
    return short or "rows"


def data_rows(fed: LocalFederation, party: str, outputs: Mapping[str, Any]) -> str:
    """``train 341 / test 171`` — rows of each data output the party stored."""
    store = ArtifactStore.local(str(fed.parties[party].data_dir))
    parts = []
    for key, uri in outputs.items():
        if not isinstance(uri, str) or not uri.startswith("fate-artifact://"):
            continue
        try:
            rows = len(store.read_data(uri).frame)
        except Exception:
            continue
        parts.append(f"{_short_key(key)} {rows}" if _short_key(key) != "rows" else f"{rows} rows")
    return " / ".join(parts)


def statistics_summary(fed: LocalFederation, party: str, share: Mapping[str, Any]) -> str:
    """Min, median and max of the first column in FATE's statistics model."""
    uri = (share.get("outputs") or {}).get("output_model")
    if not isinstance(uri, str):
        return ""
    try:
        stored = ModelStore(fed.parties[party].data_dir).load(ModelKey.parse(uri))
        summary = stored.params["fate_models"]["output_model"]["data"]["metrics_summary"]
    except Exception:
        return ""
    column = "x0" if "x0" in summary else next(iter(summary), "")
    values = summary.get(column) or {}
    picked: dict[str, Any] = {}
    for label, k in (("min", "0%"), ("median", "median"), ("median", "50%"), ("max", "100%")):
        if k in values:
            picked.setdefault(label, values[k])
    shown = [f"{label} {_num(value)}" for label, value in picked.items()]
    return f"{column}: " + ", ".join(shown) if shown else ""


def fate_model(fed: LocalFederation, party: str, share: Mapping[str, Any]) -> Mapping[str, Any]:
    """The ``data`` of the one FATE model a task share stored, or {}."""
    uris = [u for u in (share.get("outputs") or {}).values() if str(u).startswith("fate-model://")]
    if len(uris) != 1:
        return {}
    try:
        models = ModelStore(fed.parties[party].data_dir).load(ModelKey.parse(uris[0])).params["fate_models"]
        return dict(next(iter(models.values()))["data"]) if len(models) == 1 else {}
    except Exception:
        return {}


def _first(mapping: Mapping[str, Any]) -> tuple[str, Any]:
    return next(iter(sorted(mapping.items())), ("", None))


def model_summary(component: str, model: Mapping[str, Any]) -> str:
    """The headline of a FATE model (binning IV, correlation and VIF, selected columns)."""
    if component == "hetero_feature_binning":
        parts = []
        guest_iv = (model.get("metrics_summary") or {}).get("iv") or {}
        if guest_iv:
            name, value = _first(guest_iv)
            parts.append(f"IV {name} {_num(value)}")
        for host in (model.get("host_metrics_summary") or {}).values():
            ivs = (host or {}).get("iv") or {}
            # FATE's reference table quotes the host's x1 (its binning_0 bins only that column).
            x1 = [k for k in ivs if k.endswith("_x1")]
            name, value = (x1[0], ivs[x1[0]]) if x1 else _first(ivs)
            if name:
                parts.append(f"IV {name} {_num(value)}")
        return ", ".join(parts)
    if component == "feature_correlation":
        parts = []
        for remote, row in sorted((model.get("remote_corr") or {}).items())[:1]:
            name, value = _first(row or {})
            parts.append(f"{remote}–{name} {_num(value)}")
        vif = (model.get("vif") or {}).get("vif") or {}
        if vif:
            name, value = _first(vif)
            parts.append(f"VIF {name} {value:.2f}")
        return ", ".join(parts)
    return ""


def selected_columns(fed: LocalFederation, party: str, share: Mapping[str, Any]) -> str:
    """``x0–x9`` — the feature columns a selection kept at ``party``."""
    uri = (share.get("outputs") or {}).get("train_output_data")
    if not isinstance(uri, str):
        return ""
    try:
        frame = ArtifactStore.local(str(fed.parties[party].data_dir)).read_data(uri).frame
    except Exception:
        return ""
    kept = [c for c in frame.columns if c.startswith("x")]
    return f"{kept[0]}–{kept[-1]} ({len(kept)})" if kept else "no columns"


def task_summary(
    fed: LocalFederation,
    party: str,
    task: TaskSpec,
    record: Mapping[str, Any],
    host_record: Mapping[str, Any] | None = None,
) -> str:
    """What a (non-evaluation) task produced at ``party``'s guest share (and the host's, where shown)."""
    roles: Mapping[str, Any] = record.get("roles") or {}
    share: Mapping[str, Any] = roles.get("guest") or next(iter(roles.values()), {})
    if share.get("status") == "pass":
        return "pass"
    metrics = share.get("metrics") or {}
    if task.component == "statistics" and (text := statistics_summary(fed, party, share)):
        return text
    if task.component in ("psi", "intersection") and "intersect_count" in metrics:
        rate = metrics.get("intersect_rate")
        return f"intersect {metrics['intersect_count']}" + (
            f" (rate {rate:.4g})" if isinstance(rate, float) else ""
        )
    if task.component == "hetero_feature_selection":
        kept = [f"guest keeps {selected_columns(fed, party, share)}"]
        host_roles: Mapping[str, Any] = (host_record or {}).get("roles") or {}
        if host_share := host_roles.get("host"):
            kept.append(f"host keeps {selected_columns(fed, HOST, host_share)}")
        return "; ".join(kept)
    if text := model_summary(task.component, fate_model(fed, party, share)):
        return text
    rows = data_rows(fed, party, share.get("outputs") or {})
    if rows:
        return rows
    scalars = [k for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)]
    return _pick(metrics, scalars[:3]) or "outputs ok"


def key_metric(fed: LocalFederation, dag: DagFile, job_id: str) -> str:
    """The guest's evaluation metrics, else a summary of the job's last tasks."""
    parts = []
    evaluations = dag.evaluations
    for task in evaluations or dag.leaves:
        record = fate_record(fed, GUEST, dag.dag_id, job_id, task.name)
        if record is None:
            parts.append(f"{task.name}: no record")
            continue
        if evaluations:
            share = (record.get("roles") or {}).get("guest") or {}
            text = evaluation_summary(task, share.get("metrics") or {})
        else:
            host = fate_record(fed, HOST, dag.dag_id, job_id, task.name)
            text = task_summary(fed, GUEST, task, record, host)
        parts.append(text if len(evaluations or dag.leaves) == 1 else f"{task.name}: {text}")
    return "; ".join(parts) or "outputs ok"


def first_line(text: str, limit: int = 160) -> str:
    """The first non-empty line of ``text``, shortened to ``limit`` characters."""
    line = next((ln.strip() for ln in str(text).splitlines() if ln.strip()), "")
    return line if len(line) <= limit else line[: limit - 1] + "…"


def failure_summary(view: JobView) -> str:
    """Where and why a job failed: the first failed task's party errors, else the job's reason."""
    for task in view.tasks:
        errors = [f"{p.party_id}: {first_line(p.error, 120)}" for p in task.parties if p.error]
        if task.status in ("failed", "timeout", "canceled") or errors:
            return f"{task.task_name} ({task.status}) " + ("; ".join(errors) or first_line(view.reason))
    return first_line(view.reason) or view.status


# ---------------------------------------------------------------------- driving
class SetupError(Exception):
    """The federation could not be set up (exit 2)."""


def find_provider(provider_dir: Path) -> ProviderInfo:
    """FATE's provider as ``make provider-env`` registered it."""
    info = ProviderRegistry(provider_dir).find("fate")
    if info is None:
        raise SetupError(f"no 'fate' provider registered in {provider_dir} (run `make provider-env` first)")
    if not Path(info.python).exists():
        raise SetupError(
            f"the fate provider's interpreter {info.python} is missing (rerun `make provider-env`)"
        )
    return info


def dag_state(fed: LocalFederation, dag_id: str, deadline: float) -> tuple[str, str]:
    """("ok", "") once the guest parsed the DAG; ("invalid", first error line); ("missing", why)."""
    try:
        info = fed.rest(GUEST).wait_dag(dag_id, timeout=max(5.0, deadline - time.monotonic()))
    except Exception as exc:
        return "missing", first_line(str(exc))
    tags = {str(t.get("name") if isinstance(t, Mapping) else t) for t in info.get("tags") or []}
    description = str(info.get("description") or "")
    if "invalid" in tags or description.startswith("INVALID JOB FILE"):
        return "invalid", first_line(description.removeprefix("INVALID JOB FILE:").strip())
    return "ok", ""


def stop_job(fed: LocalFederation, job_id: str, reason: str) -> None:
    """Ask the initiator to end the job everywhere and wait a little for it to end."""
    client = control_client(fed.initiator)
    try:
        client.call(fed.initiator.party_id, StopJob(job_id, "timeout", reason))
    except Exception as exc:
        progress(f"could not stop {job_id}: {exc}")
    finally:
        client.close()
    try:
        fed.wait_job(job_id, timeout=60)
    except Exception as exc:
        progress(f"{job_id} still not ended: {exc}")


def run_one(fed: LocalFederation, dag: DagFile, timeout: float) -> Result:
    """Trigger the DAG at the guest, follow it to its end, read its key metric."""
    result = Result(dag.dag_id)
    seen: dict[str, str] = {}

    def on_change(view: JobView) -> None:
        for task in view.tasks:
            if seen.get(task.task_name) != task.status:
                seen[task.task_name] = task.status
                progress(f"  {dag.dag_id}: {task.task_name} {task.status}")

    start = time.monotonic()
    try:
        job_id = fed.rest(GUEST).trigger(dag.dag_id, None)
    except Exception as exc:
        result.status, result.metric = "error", f"trigger failed: {first_line(str(exc))}"
        return result
    result.job_id = job_id
    progress(f"{dag.dag_id}: triggered job {job_id}")
    try:
        view = fed.wait_job(job_id, timeout=timeout, on_change=on_change)
    except Exception as exc:
        result.seconds = time.monotonic() - start
        result.status, result.metric = "timeout", first_line(str(exc))
        stop_job(fed, job_id, f"run_fate_examples.py: no end within {timeout:.0f} s")
        return result
    result.seconds = time.monotonic() - start
    result.status = view.status
    if view.status == "success":
        try:
            result.metric = key_metric(fed, dag, job_id)
        except Exception as exc:
            result.metric = f"metric unreadable: {first_line(str(exc))}"
    else:
        result.metric = failure_summary(view)
    progress(f"{dag.dag_id}: {result.status} in {result.seconds:.1f} s — {result.metric}")
    return result


def run_all(args: argparse.Namespace, dags: list[DagFile], provider: ProviderInfo) -> list[Result]:
    """Set up the two parties, run the DAGs one by one, tear down (unless ``--keep-up``)."""
    base = Path(args.base) if args.base else Path(tempfile.mkdtemp(prefix="fate-examples-"))
    base = base.resolve()
    drop = base / "guest-jobs"
    drop.mkdir(parents=True, exist_ok=True)
    for stale in drop.glob("*.yaml"):
        stale.unlink()
    for dag in dags:
        (drop / dag.path.name).write_bytes(dag.path.read_bytes())
    progress(f"party homes under {base}; {len(dags)} DAG file(s) in {drop}")
    fed = create_local_federation(base, [GUEST, HOST], jobs_folders={GUEST: drop})
    results: list[Result] = []
    try:
        try:
            progress("initialising parties 9999 and 10000")
            fed.init()
            for cfg in fed.parties.values():
                ProviderRegistry(cfg.provider_dir).register(provider)
            upload_tables(fed, dags, Path(args.pipeline_dir))
            progress("starting both parties (Airflow + gateway each)")
            fed.up(wait=300)
        except Exception as exc:
            raise SetupError(f"federation set-up failed: {exc} (logs under {base}/<party>/run)") from exc
        deadline = time.monotonic() + DAG_PARSE_TIMEOUT
        for dag in dags:
            state, why = dag_state(fed, dag.dag_id, deadline)
            if state != "ok":
                progress(f"{dag.dag_id}: {state} — {why}")
                results.append(Result(dag.dag_id, status=state, metric=why))
                continue
            results.append(run_one(fed, dag, args.timeout))
    finally:
        if args.keep_up:
            progress(
                f"parties left running; stop them with: .venv/bin/fate-airflow party down --config "
                f"{fed.config_paths[GUEST]} (and {fed.config_paths[HOST]})"
            )
        else:
            progress("stopping both parties")
            fed.down()
        progress(f"party homes (logs) kept under {base}")
    return results


# ---------------------------------------------------------------------- output
HEADERS = ("dag", "status", "time (s)", "key metric", "FATE 2.2")


def rows_of(results: Sequence[Result]) -> list[tuple[str, ...]]:
    """Table cells of each result."""
    return [
        (
            r.dag_id,
            r.status,
            NONE if r.seconds is None else f"{r.seconds:.1f}",
            r.metric,
            FATE22.get(r.dag_id, NONE),
        )
        for r in results
    ]


def markdown_rows(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table."""

    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def plain_rows(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """An aligned text table."""
    every = [headers, *rows]
    widths = [max(len(row[i]) for row in every) for i in range(len(headers))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in every
    )


def markdown_table(results: Sequence[Result]) -> str:
    """The results as a Markdown table."""
    return markdown_rows(HEADERS, rows_of(results))


def plain_table(results: Sequence[Result]) -> str:
    """The results as an aligned text table."""
    return plain_rows(HEADERS, rows_of(results))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--only", action="append", default=[], metavar="PATTERN", help="glob on dag ids (repeatable)"
    )
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per job (default 900)")
    parser.add_argument("--base", default=None, help="folder for the party homes (default: a new temp dir)")
    parser.add_argument("--keep-up", action="store_true", help="leave both parties running at the end")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument(
        "--provider-dir",
        default=str(REPO / ".fate" / "test-providers"),
        help="provider folder with FATE 2.2 registered (default .fate/test-providers: `make provider-env`)",
    )
    parser.add_argument("--dags-dir", default=str(DAGS_DIR), help=argparse.SUPPRESS)
    parser.add_argument("--pipeline-dir", default=str(PIPELINE_DIR), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the selected example DAGs; print the table."""
    args = parse_args(argv)
    try:
        dags_dir = Path(args.dags_dir)
        if not dags_dir.is_dir():
            raise SetupError(f"FATE's example DAGs are missing: {dags_dir}")
        dags = select_dags(dags_dir, args.only)
        if not dags:
            raise SetupError(f"no DAG in {dags_dir} matches {args.only}")
        provider = find_provider(Path(args.provider_dir))
        progress(
            f"provider {provider.ref} ({provider.python}); {len(dags)} DAG(s): {[d.dag_id for d in dags]}"
        )
        results = run_all(args, dags, provider)
    except SetupError as exc:
        print(f"setup error: {exc}", file=sys.stderr)
        return 2
    print(markdown_table(results) if args.markdown else plain_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
