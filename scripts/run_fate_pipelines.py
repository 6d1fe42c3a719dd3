"""Run FATE's own pipeline scripts, unmodified, against two local parties (by hand, not a test).

Every ``test_*.py`` of ``../shared/fate-examples/v2-pipeline/<family>/`` is FATE 2.2's own example
script for FATE-Client's ``pipeline`` SDK. Party 9999 (guest; host_1 of the multi-host examples) and
party 10000 (host; arbiter) each run Airflow and a gateway as ``party up`` deploys them, with FATE 2.2
registered as a component provider and every testsuite table uploaded (as
``scripts/run_fate_examples.py`` does). FATE-Client 2.2.0 (``make client-env``) is pointed at the
guest's FATE-Flow client API with ``pipeline init``, then each script runs from its family folder with
``--config ../config.yaml``, as in FATE's repository. The table (stdout) gives, per script: pass/fail
(its exit status), wall time, the FATE job ids it printed, the key metric of its last job (read from
the parties' tracking, as the DAG runner does) and FATE 2.2 standalone's result for the same script
(``../shared/reference/fate22-results.md``). Progress goes to stderr.

    make client-env
    .venv/bin/python scripts/run_fate_pipelines.py --only 'psi/*' --only 'coordinated_lr/test_lr' --markdown

Exit 0 when the runs happened (whatever their outcome), 2 on a setup error.
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from run_fate_examples import (
    DAGS_DIR,
    FATE22,
    GUEST,
    HOST,
    NONE,
    PIPELINE_DIR,
    REPO,
    SetupError,
    find_provider,
    first_line,
    key_metric,
    markdown_rows,
    plain_rows,
    progress,
    read_dag_file,
    select_dags,
    upload_tables,
)

from fate_airflow.core.providers import ProviderRegistry
from fate_airflow.deploy.localfed import LocalFederation, create_local_federation

JOB_ID = re.compile(r"Job id is (\d+)")


@dataclass
class ScriptResult:
    """One row of the table."""

    script: str
    status: str = "not run"
    seconds: float | None = None
    job_ids: list[str] = field(default_factory=list)
    metric: str = NONE


def select_scripts(pipeline_dir: Path, patterns: Sequence[str]) -> list[Path]:
    """``<family>/test_*.py`` scripts matching ``patterns`` (``family/name`` globs; all when none)."""
    found = sorted(pipeline_dir.glob("*/test_*.py"))
    if patterns:
        found = [
            p for p in found if any(fnmatch.fnmatchcase(f"{p.parent.name}/{p.stem}", pat) for pat in patterns)
        ]
    return found


def client_tool(client_env: Path, name: str) -> str:
    tool = client_env / "bin" / name
    if not tool.exists():
        raise SetupError(f"{tool} is missing: build FATE's client environment with `make client-env`")
    return str(tool)


def run_script(fed: LocalFederation, client_env: Path, script: Path, timeout: float) -> ScriptResult:
    """Run one pipeline script; read the key metric of its last job."""
    name = f"{script.parent.name}/{script.stem}"
    result = ScriptResult(name)
    env = {**os.environ, "PYTHONNOUSERSITE": "1", "PYTHONPATH": ""}
    start = time.monotonic()
    try:
        out = subprocess.run(
            [client_tool(client_env, "python"), script.name, "--config", "../config.yaml"],
            cwd=script.parent,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
        )
    except subprocess.TimeoutExpired as exc:
        result.seconds = time.monotonic() - start
        result.status = "timeout"
        result.job_ids = JOB_ID.findall(str(exc.stdout or ""))
        return result
    result.seconds = time.monotonic() - start
    result.job_ids = list(dict.fromkeys(JOB_ID.findall(out.stdout)))
    result.status = "pass" if out.returncode == 0 else "fail"
    if out.returncode != 0:
        tail = [line for line in out.stderr.splitlines() if line.strip()]
        result.metric = first_line(tail[-1] if tail else out.stdout[-300:])
        return result
    if result.job_ids:
        job_id = result.job_ids[-1]
        view = fed.job_view(GUEST, job_id)
        job_file = fed.parties[GUEST].drop_folder / f"{view.dag_id}.json"
        result.metric = key_metric(fed, read_dag_file(job_file), job_id) if job_file.exists() else NONE
    return result


def run_all(args: argparse.Namespace, scripts: list[Path]) -> list[ScriptResult]:
    """Set up the two parties, run the scripts one by one, tear down (unless ``--keep-up``)."""
    provider = find_provider(Path(args.provider_dir))
    client_env = Path(args.client_env)
    base = (Path(args.base) if args.base else Path(tempfile.mkdtemp(prefix="fate-pipelines-"))).resolve()
    fed = create_local_federation(base, [GUEST, HOST])
    results: list[ScriptResult] = []
    try:
        try:
            progress("initialising parties 9999 and 10000")
            fed.init()
            for cfg in fed.parties.values():
                ProviderRegistry(cfg.provider_dir).register(provider)
            upload_tables(fed, select_dags(DAGS_DIR, []), PIPELINE_DIR)
            progress("starting both parties (Airflow + gateway each)")
            fed.up(wait=300)
            port = str(fed.parties[GUEST].ports.flow)
            for tool in ("pipeline", "flow"):
                subprocess.run(
                    [client_tool(client_env, tool), "init", "--ip", "127.0.0.1", "--port", port],
                    check=True,
                    capture_output=True,
                )
        except (Exception, subprocess.CalledProcessError) as exc:
            raise SetupError(f"set-up failed: {exc} (logs under {base}/<party>/run)") from exc
        progress(f"FATE-Flow API of the guest: {fed.parties[GUEST].flow_api_url}")
        for script in scripts:
            progress(f"{script.parent.name}/{script.name}: running")
            result = run_script(fed, client_env, script, args.timeout)
            progress(f"{result.script}: {result.status} in {result.seconds or 0:.1f} s — {result.metric}")
            results.append(result)
    finally:
        if args.keep_up:
            progress(f"parties left running under {base}")
        else:
            progress("stopping both parties")
            fed.down()
    return results


HEADERS = ("script", "status", "time (s)", "jobs", "key metric", "FATE 2.2")


def rows_of(results: Sequence[ScriptResult]) -> list[tuple[str, ...]]:
    """Table cells of each result."""
    return [
        (
            r.script,
            r.status,
            NONE if r.seconds is None else f"{r.seconds:.1f}",
            str(len(r.job_ids)),
            r.metric,
            FATE22.get(r.script.replace("/", "__"), NONE),
        )
        for r in results
    ]


def table(results: Sequence[ScriptResult], markdown: bool) -> str:
    """Markdown or aligned text."""
    return (markdown_rows if markdown else plain_rows)(HEADERS, rows_of(results))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the selected scripts; print the table."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--only", action="append", default=[], metavar="PATTERN", help="glob on family/script"
    )
    parser.add_argument("--timeout", type=float, default=1200.0, help="seconds per script (default 1200)")
    parser.add_argument("--base", default=None, help="folder for the party homes (default: a new temp dir)")
    parser.add_argument("--keep-up", action="store_true", help="leave both parties running at the end")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument("--provider-dir", default=str(REPO / ".fate" / "test-providers"))
    parser.add_argument("--client-env", default=str(REPO / ".fate" / "client-env"))
    args = parser.parse_args(argv)
    scripts = select_scripts(PIPELINE_DIR, args.only)
    if not scripts:
        print(f"setup error: no script in {PIPELINE_DIR} matches {args.only}", file=sys.stderr)
        return 2
    try:
        results = run_all(args, scripts)
    except SetupError as exc:
        print(f"setup error: {exc}", file=sys.stderr)
        return 2
    print(table(results, args.markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
