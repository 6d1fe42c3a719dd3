"""The FATE board in the Airflow UI, driven by a real browser after a real federated job.

Debian's Chromium (``make browser``) under Playwright, against the guest's real api-server of the
shared example parties (``fate_parties``): log in as a user does, reach the job page by clicking —
Browse → FATE jobs → the job, and the DAG run's "FATE job" tab — check the charts against the job's
own tracking records, the status matrix against ``fate-airflow job query``, a host-side log line
shown at the guest, and stop a running job from the page. Screenshots of every page go to
``test-results/board/`` (``FATE_AIRFLOW_TEST_RESULTS`` overrides it).
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from fate_airflow.deploy.localfed import LocalFederation
from fate_airflow.deploy.party import admin_credentials
from tests.conftest import FATE_EXAMPLES
from tests.integration.conftest import CLI, GUEST, HOST, wait_until

playwright_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
DAG = "board_lr"
RESULTS = Path(
    os.environ.get("FATE_AIRFLOW_TEST_RESULTS", Path(__file__).resolve().parents[3] / "test-results")
)
SHOTS = RESULTS / "board"


@pytest.fixture(scope="module")
def fed(fate_parties: LocalFederation) -> LocalFederation:
    """The example parties with FATE's coordinated-LR example dropped at the guest as ``board_lr``."""
    src = FATE_EXAMPLES / "v2-pipeline-dags" / "coordinated_lr__test_lr.yaml"
    shutil.copy(src, fate_parties.parties[GUEST].drop_folder / f"{DAG}.yaml")
    fate_parties.rest(GUEST).wait_dag(DAG, timeout=300)
    return fate_parties


@pytest.fixture(scope="module")
def finished_job(fed: LocalFederation) -> str:
    job = fed.rest(GUEST).trigger(DAG)
    view = fed.wait_job(job, timeout=900)
    assert view.status == "success", view.reason
    wait_until(lambda: fed.rest(GUEST).run_state(DAG, job) == "success", 60, "the guest's run closed")
    return job


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} missing: run `make browser` (Debian's chromium package)")
    with playwright_api.sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield instance
        instance.close()


@pytest.fixture
def page(browser: Any, fed: LocalFederation) -> Iterator[Any]:
    """A logged-in page at the guest's Airflow UI (through its login form)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    tab = context.new_page()
    tab.set_default_timeout(60_000)
    cfg = fed.parties[GUEST]
    user, password = admin_credentials(cfg)
    tab.goto(cfg.api_url + "/")
    tab.get_by_label("Username").fill(user)
    tab.get_by_label("Password").fill(password)
    tab.get_by_role("button", name="Sign in").click()
    tab.wait_for_url(lambda url: "/auth/login" not in url)
    yield tab
    context.close()


def record(fed: LocalFederation, job: str, task: str) -> dict[str, Any]:
    resp = fed.rest(GUEST).request(
        "GET", f"/api/v2/dags/{DAG}/dagRuns/{quote(job, safe='')}/taskInstances/{task}/xcomEntries/fate"
    )
    assert resp.status_code == 200, resp.text
    value = resp.json()["value"]
    return json.loads(value) if isinstance(value, str) else dict(value)


def test_the_job_page_is_reached_by_clicking_and_its_charts_match_the_records(
    page: Any, fed: LocalFederation, finished_job: str
) -> None:
    job = finished_job
    page.get_by_role("button", name="Browse").click()
    page.get_by_role("menuitem", name="FATE jobs").click()
    board = page.frame_locator("iframe")
    board.locator("h2", has_text="FATE jobs at this party").wait_for()
    page.screenshot(path=str(SHOTS / "job-list.png"))
    board.locator("a.job-link", has_text=job).click()
    board.locator("#job-status").wait_for()
    assert board.locator("#job-status").inner_text() == "success"
    page.screenshot(path=str(SHOTS / "job-page-in-airflow.png"))

    # Loss: one point per iteration of the guest's LR share, as it recorded them.
    lr_share = record(fed, job, "lr_0")["roles"]["guest"]
    losses = lr_share["metrics"].get("loss_history") or lr_share["summary"].get("loss_history")
    assert losses, lr_share
    lr = board.locator("#task-lr_0")
    assert int(lr.locator("polyline.series").first.get_attribute("data-points")) == len(losses)
    # ROC of the evaluation: from (0,0) to (1,1), monotone in both rates, area = the recorded AUC.
    evaluation = board.locator("#task-evaluation_0")
    assert evaluation.locator("svg.chart[data-chart$=' ROC']").count() == 1
    roc = json.loads(
        evaluation.locator("svg.chart[data-chart$=' ROC'] polyline.series").get_attribute("data-values")
    )
    assert roc[0] == [0.0, 0.0] and roc[-1] == [1.0, 1.0]
    assert all(b[0] >= a[0] and b[1] >= a[1] for a, b in itertools.pairwise(roc))
    area = sum((b[0] - a[0]) * (a[1] + b[1]) / 2 for a, b in itertools.pairwise(roc))
    auc = record(fed, job, "evaluation_0")["roles"]["guest"]["metrics"]["auc"]
    assert abs(area - auc) < 0.005
    for chart in ("K-S", "Lift", "Gain", "Precision-recall"):
        assert evaluation.locator(f"svg.chart[data-chart*='{chart}']").count() == 1, chart
    assert evaluation.get_by_text("Confusion matrix by threshold").count() == 1

    # The status matrix is what `fate-airflow job query` prints.
    out = subprocess.run(
        [CLI, "job", "query", job, "--json", "--config", str(fed.config_paths[GUEST])],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    expected = {
        t["task"]: {p: c["status"] for p, c in t["parties"].items()} for t in json.loads(out.stdout)["tasks"]
    }
    shown: dict[str, dict[str, str]] = {}
    for row in board.locator("#status-matrix tbody tr").all():
        cells = row.locator("td[data-party]").all()
        shown[row.get_attribute("data-task")] = {
            c.get_attribute("data-party"): c.inner_text().split()[0] for c in cells
        }
    assert shown == expected
    SHOTS.joinpath("job-page.png").write_bytes(board.locator("body").screenshot())
    SHOTS.joinpath("evaluation.png").write_bytes(evaluation.screenshot())

    # Every party's log of the LR, the host's fetched through the gateways.
    lr.locator("a.logs-link").click()
    host_log = board.locator(f"div.log[data-party='{HOST}']")
    host_log.wait_for()
    assert f"at host:{HOST}" in host_log.inner_text()
    page.screenshot(path=str(SHOTS / "logs.png"))

    # Whole page load of the ended job, for the README (recorded, not asserted: no timing thresholds).
    page.goto(f"{fed.parties[GUEST].api_url}/fate/jobs/{DAG}/{quote(job, safe='')}")
    timing = page.evaluate(
        "() => { const t = performance.getEntriesByType('navigation')[0];"
        " return {response_ms: t.responseEnd - t.requestStart, load_ms: t.loadEventEnd - t.startTime}; }"
    )
    SHOTS.joinpath("timings.json").write_text(json.dumps({"components": 4, **timing}))


def test_the_dag_runs_fate_job_tab_opens_the_same_page(
    page: Any, fed: LocalFederation, finished_job: str
) -> None:
    cfg = fed.parties[GUEST]
    page.goto(f"{cfg.api_url}/dags/{DAG}/runs/{quote(finished_job, safe='')}")
    page.get_by_role("tab", name="FATE job").or_(page.get_by_role("link", name="FATE job")).first.click()
    board = page.frame_locator("iframe")
    assert board.locator("#job-id").inner_text() == finished_job
    assert board.locator("svg.graph g.node").count() == 4
    page.screenshot(path=str(SHOTS / "dag-run-tab.png"))
    # The reader's output table, previewed 20 rows at a time (first 100 rows of its 569).
    board.locator("#task-reader_0 a.data-link").first.click()
    board.locator("table.data").wait_for()
    assert "569 rows; preview of the first 100, page 1 of 5" in board.locator("body").inner_text()
    assert board.locator("table.data tbody tr").count() == 20
    first_id = board.locator("table.data tbody tr td").first.inner_text()
    board.locator("#next-page").click()
    board.get_by_text("page 2 of 5").wait_for()
    assert board.locator("table.data tbody tr td").first.inner_text() != first_id
    page.screenshot(path=str(SHOTS / "data-preview.png"))


def test_stop_from_the_page_cancels_a_running_job_at_both_parties(page: Any, fed: LocalFederation) -> None:
    job = fed.rest(GUEST).trigger(DAG)
    cfg = fed.parties[GUEST]
    wait_until(
        lambda: all(
            fed.rest(p)
            .request(
                "GET", f"/api/v2/dags/{DAG}/dagRuns/{quote(job, safe='')}/taskInstances/lr_0", ok=(200, 404)
            )
            .json()
            .get("state")
            in ("running", "deferred")
            for p in (GUEST, HOST)
        ),
        300,
        "lr_0 running at both parties",
    )
    page.goto(f"{cfg.api_url}/fate/jobs/{DAG}/{quote(job, safe='')}")
    page.locator("#stop-job").click()
    page.locator("#flash").wait_for()
    assert "stop requested" in page.locator("#flash").inner_text()
    view = fed.wait_job(job, timeout=120)
    assert view.status == "canceled"
    assert "stopped from the FATE job page at party 9999" in view.reason
    for party in (GUEST, HOST):
        wait_until(lambda p=party: fed.rest(p).run_state(DAG, job) == "failed", 90, f"run stopped at {party}")
    page.reload()
    assert page.locator("#job-status").inner_text() == "canceled"
    assert page.locator("#stop-job").count() == 0 and page.locator("#rerun-job").count() == 1
    page.screenshot(path=str(SHOTS / "stopped.png"), full_page=True)


def test_the_job_list_filters_and_a_finished_jobs_outputs_are_deleted_after_confirmation(
    page: Any, fed: LocalFederation, finished_job: str
) -> None:
    cfg = fed.parties[GUEST]
    page.goto(f"{cfg.api_url}/fate/jobs")
    page.locator("select[name=status]").select_option("success")
    page.locator("input[name=party]").fill(HOST)
    page.get_by_role("button", name="filter").click()
    assert finished_job in page.locator("table.jobs").inner_text()
    page.goto(f"{cfg.api_url}/fate/jobs?party=77777")
    assert page.locator("a.job-link").count() == 0
    page.goto(f"{cfg.api_url}/fate/jobs?status=failed&dag={DAG}")
    assert finished_job not in page.locator("table.jobs").inner_text()

    # Deleting needs a second click on a confirmation page; only this party's outputs go.
    encoded = quote(finished_job, safe="")
    guest_outputs = Path(cfg.data_dir) / "artifacts" / encoded
    host_outputs = Path(fed.parties[HOST].data_dir) / "artifacts" / encoded
    assert guest_outputs.is_dir() and host_outputs.is_dir()
    page.goto(f"{cfg.api_url}/fate/jobs/{DAG}/{encoded}")
    page.get_by_text("delete this job's outputs here").click()
    page.locator("#confirm-delete").wait_for()
    assert guest_outputs.is_dir()  # nothing happens before the confirmation
    page.screenshot(path=str(SHOTS / "delete-confirmation.png"))
    page.locator("#confirm-delete").click()
    assert "deleted at this party: 4 task outputs" in page.locator("#flash").inner_text()
    assert not any(p.is_file() for p in guest_outputs.rglob("*"))
    assert host_outputs.is_dir()
