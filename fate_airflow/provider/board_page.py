"""HTML of the FATE board pages (job list, job page, logs, data preview), from plain data.

The routes in :mod:`fate_airflow.provider.plugin` gather the data (Airflow's metadata, the party's
stores, the initiator's view through the gateway) and hand it to these functions; nothing here
queries anything, so a page renders in the time its queries take. Charts and tables come from
:mod:`fate_airflow.tracking.board`; the only asset is :data:`BOARD_CSS`, served by the plugin.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

from fate_airflow.dsl.plan import JobPlan, TaskPlan
from fate_airflow.federation.api import JobDetail, JobView, TaskLog
from fate_airflow.tracking.board import Panel, mapping_table, render_panels, table, task_panels

BOARD_CSS = """
body{font-family:system-ui,-apple-system,sans-serif;margin:1.2em 1.5em;color:#1d2433;font-size:14px}
a{color:#0b5cad}h2{margin:.2em 0 .4em}h3{margin:1.2em 0 .4em;border-bottom:1px solid #dde3ea;padding-bottom:.2em}
h4{margin:.6em 0 .3em;font-size:13px;color:#3b4a5e}h5{margin:.4em 0 .2em;font-size:12px;color:#555}
table{border-collapse:collapse;margin:.2em 0 .6em}td,th{border:1px solid #d5dbe3;padding:3px 7px;font-size:12.5px;vertical-align:top;text-align:left}
th{background:#f2f5f8}.kv td:first-child{font-weight:500}
.badge{display:inline-block;padding:1px 8px;border-radius:9px;font-size:12px;border:1px solid #bbb}
.success{background:#d7f5dd}.failed,.timeout,.upstream_failed{background:#fad4d4}.canceled,.skipped{background:#ececec}
.running,.deferred,.queued{background:#d8e9fb}.waiting,.ready,.scheduled{background:#fff5cf}.pass{color:#888}
.bar{display:flex;gap:.6em;align-items:center;flex-wrap:wrap;margin:.4em 0}
.bar form{display:inline}button{font-size:13px;padding:3px 10px;cursor:pointer}
button.danger{background:#c62828;color:#fff;border:1px solid #8e1c1c}
.charts{display:flex;flex-wrap:wrap;gap:10px}.panel{margin:.2em 0 .4em}figure{margin:0}
.chart{background:#fff;border:1px solid #e2e6eb}.chart .title{font-size:12.5px;font-weight:600}
.chart .tick,.chart .legend{font-size:10.5px;fill:#444}.chart .label{font-size:11px;fill:#333}
.chart .frame{fill:none;stroke:#bbb}.chart .grid{stroke:#eee}.chart .axis{stroke:#999}
.chart .diagonal{stroke:#bbb;stroke-dasharray:4 3}
.graph .node rect{stroke:#666;rx:5}.graph .node text{font-size:11.5px}.graph .edge{stroke:#8a96a6;fill:none;marker-end:url(#arrow)}
.graph .dot{stroke:#555;stroke-width:.6}
.component{border:1px solid #dde3ea;border-radius:6px;padding:.3em .9em .6em;margin:.8em 0}
.log{background:#0f1720;color:#dfe6ee;padding:.6em;font:12px/1.35 ui-monospace,monospace;white-space:pre-wrap;max-height:40em;overflow:auto}
.log .err{color:#ff8a80;font-weight:600}.log .warn{color:#ffd180}
.errors{border-left:4px solid #c62828;background:#fff1f1;padding:.3em .7em}
.muted{color:#777}details>summary{cursor:pointer;color:#0b5cad}
form.filters{display:flex;gap:.6em;flex-wrap:wrap;align-items:end;margin:.5em 0}form.filters label{display:flex;flex-direction:column;font-size:12px}
"""

#: Box colours (light) and party-dot colours (strong) per status, so a dot reads on its box.
_STATUS_FILL = {
    "success": "#d7f5dd", "failed": "#fad4d4", "timeout": "#fad4d4", "canceled": "#ececec",
    "running": "#d8e9fb", "ready": "#fff5cf", "waiting": "#fff5cf", "pass": "#f7f7f7",
}  # fmt: skip
_STATUS_COLOR = {
    "success": "#2e9e4f", "failed": "#d32f2f", "timeout": "#d32f2f", "canceled": "#8d8d8d",
    "running": "#1e6fd9", "ready": "#e0a800", "waiting": "#f2d16b", "pass": "#ffffff",
}  # fmt: skip


def esc(value: Any) -> str:
    """HTML-escaped text of ``value`` (None → empty)."""
    return html.escape("" if value is None else str(value))


def page(title: str, body: str, root: str) -> str:
    """A whole page, with the plugin's bundled stylesheet."""
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(title)}</title>"
        f"<link rel='stylesheet' href='{root}/static/board.css'></head><body>{body}</body></html>"
    )


def when(value: Any) -> str:
    """An epoch float or ISO string as ``YYYY-MM-DD HH:MM:SS UTC``."""
    if value in (None, "", 0):
        return ""
    if isinstance(value, int | float):
        moment = datetime.fromtimestamp(float(value), UTC)
    else:
        try:
            moment = datetime.fromisoformat(str(value))
        except ValueError:
            return str(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def duration(start: Any, end: Any) -> str:
    """``1h 02m 03s`` between two epoch floats or datetimes; empty when either is missing."""

    def seconds(v: Any) -> float | None:
        if v in (None, "", 0):
            return None
        if isinstance(v, int | float):
            return float(v)
        if isinstance(v, datetime):
            return v.timestamp()
        try:
            return datetime.fromisoformat(str(v)).timestamp()
        except ValueError:
            return None

    a, b = seconds(start), seconds(end)
    if a is None or b is None:
        return ""
    total = max(0, round(b - a))
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h {m:02d}m {s:02d}s" if h else (f"{m}m {s:02d}s" if m else f"{s}s")


# ----------------------------------------------------------------------------- job list
@dataclass(frozen=True)
class RunRow:
    """One DAG run of a FATE DAG, as the job list shows it."""

    dag_id: str
    run_id: str
    state: str
    start: Any
    end: Any
    parties: tuple[str, ...] = ()


def job_list(rows: Sequence[RunRow], filters: Mapping[str, str], dag_ids: Sequence[str], root: str) -> str:
    """The job list with its filter form."""
    states = ("", "queued", "running", "success", "failed")
    options = "".join(
        f"<option value='{s}'{' selected' if filters.get('status') == s else ''}>{s or 'any'}</option>"
        for s in states
    )
    dags = "".join(f"<option value='{esc(d)}'>" for d in dag_ids)
    form = (
        f"<form class='filters' method='get' action='{root}/jobs'>"
        f"<label>status<select name='status'>{options}</select></label>"
        f"<label>DAG<input name='dag' list='dags' value='{esc(filters.get('dag'))}'><datalist id='dags'>{dags}</datalist></label>"
        f"<label>party<input name='party' size='8' value='{esc(filters.get('party'))}'></label>"
        f"<label>from<input type='date' name='since' value='{esc(filters.get('since'))}'></label>"
        f"<label>to<input type='date' name='until' value='{esc(filters.get('until'))}'></label>"
        "<button type='submit'>filter</button></form>"
    )
    body = [
        "<h2>FATE jobs at this party</h2>",
        f"<p><a href='{root}/invalid'>invalid job files</a></p>",
        form,
        "<table class='jobs'><thead><tr><th>job id (run id)</th><th>DAG</th><th>state here</th>"
        "<th>parties</th><th>started</th><th>duration</th></tr></thead><tbody>",
    ]
    for r in rows:
        href = f"{root}/jobs/{quote(r.dag_id, safe='')}/{quote(r.run_id, safe='')}"
        body.append(
            f"<tr class='{esc(r.state)}'><td><a class='job-link' href='{href}'>{esc(r.run_id)}</a></td>"
            f"<td>{esc(r.dag_id)}</td><td>{esc(r.state)}</td><td>{esc(', '.join(r.parties))}</td>"
            f"<td>{esc(when(r.start))}</td><td>{esc(duration(r.start, r.end))}</td></tr>"
        )
    body.append("</tbody></table>")
    if not rows:
        body.append("<p class='muted'>no job matches</p>")
    return "".join(body)


# ----------------------------------------------------------------------------- job page
@dataclass
class LocalTask:
    """What this party's Airflow knows of one task of the run."""

    state: str = ""
    start: Any = None
    end: Any = None
    try_number: int = 0
    record: Mapping[str, Any] | None = None


@dataclass
class JobPageData:
    """Everything the job page shows, gathered by the route."""

    dag_id: str
    run_id: str
    party_id: str
    view: JobView
    plan: JobPlan | None
    local: dict[str, LocalTask] = field(default_factory=dict)
    run_state: str = ""
    fed_error: str = ""
    models: dict[str, list[Panel]] = field(default_factory=dict)
    data_outputs: dict[str, list[tuple[str, str, int]]] = field(default_factory=dict)
    message: str = ""


def _layers(plan: JobPlan) -> dict[str, int]:
    depth: dict[str, int] = {}
    by_name = {t.name: t for t in plan.tasks}

    def level(name: str, seen: frozenset[str] = frozenset()) -> int:
        if name in depth:
            return depth[name]
        ups = [u for u in by_name[name].upstream if u in by_name and u not in seen]
        depth[name] = 1 + max((level(u, seen | {name}) for u in ups), default=-1)
        return depth[name]

    for t in plan.tasks:
        level(t.name)
    return depth


def component_graph(plan: JobPlan, view: JobView) -> str:
    """The job's components as an SVG graph.

    One box per component, coloured by its federated status, with one dot per party (that party's
    status); edges run from producers to consumers.
    """
    layers = _layers(plan)
    columns: dict[int, list[str]] = {}
    for t in plan.tasks:
        columns.setdefault(layers[t.name], []).append(t.name)
    statuses = {t.task_name: t for t in view.tasks}
    bw, bh, gx, gy = 150, 44, 60, 22
    pos: dict[str, tuple[float, float]] = {}
    for col, names in sorted(columns.items()):
        for row, name in enumerate(names):
            pos[name] = (12 + col * (bw + gx), 12 + row * (bh + gy))
    width = max(x for x, _ in pos.values()) + bw + 14
    height = max(y for _, y in pos.values()) + bh + 14
    out = [
        f"<svg class='graph' width='{width:.0f}' height='{height:.0f}' viewBox='0 0 {width:.0f} {height:.0f}' "
        "xmlns='http://www.w3.org/2000/svg'><defs><marker id='arrow' viewBox='0 0 10 10' refX='10' refY='5' "
        "markerWidth='7' markerHeight='7' orient='auto-start-reverse'><path d='M0,0 L10,5 L0,10 z' fill='#8a96a6'/>"
        "</marker></defs>"
    ]
    for t in plan.tasks:
        x2, y2 = pos[t.name]
        for up in t.upstream:
            if up not in pos:
                continue
            x1, y1 = pos[up]
            sx, sy, ex, ey = x1 + bw, y1 + bh / 2, x2, y2 + bh / 2
            mid = (sx + ex) / 2
            out.append(
                f"<path class='edge' d='M{sx:.0f},{sy:.0f} C{mid:.0f},{sy:.0f} {mid:.0f},{ey:.0f} {ex:.0f},{ey:.0f}'/>"
            )
    for t in plan.tasks:
        x, y = pos[t.name]
        tv = statuses.get(t.name)
        status = tv.status if tv else "waiting"
        fill = _STATUS_FILL.get(status, "#fff5cf")
        out.append(
            f"<a href='#task-{esc(t.name)}'><g class='node' data-task='{esc(t.name)}' data-status='{esc(status)}'>"
            f"<rect x='{x:.0f}' y='{y:.0f}' width='{bw}' height='{bh}' fill='{fill}'/>"
            f"<text x='{x + 8:.0f}' y='{y + 17:.0f}'>{esc(t.name[:20])}</text>"
            f"<title>{esc(t.name)} ({esc(t.implementation)}): {esc(status)}</title>"
        )
        for i, cell in enumerate(tv.parties if tv else ()):
            dot = _STATUS_COLOR.get(cell.status, "#f6e7a6")
            out.append(
                f"<circle class='dot' cx='{x + 12 + i * 14:.0f}' cy='{y + 32:.0f}' r='5' fill='{dot}'>"
                f"<title>party {esc(cell.party_id)}: {esc(cell.status)}</title></circle>"
            )
        if tv and tv.task_version > 0:
            out.append(
                f"<text x='{x + bw - 26:.0f}' y='{y + 36:.0f}' class='muted'>v{tv.task_version}</text>"
            )
        out.append("</g></a>")
    out.append("</svg>")
    return "".join(out)


def status_matrix(view: JobView) -> str:
    """Components × parties, as the initiator sees them (the same cells as ``job query``)."""
    if not view.tasks:
        return ""
    party_ids = [c.party_id for c in view.tasks[0].parties]
    head = "".join(f"<th>party {esc(p)}</th>" for p in party_ids)
    rows = [
        f"<table class='matrix' id='status-matrix'><thead><tr><th>component</th><th>version</th><th>status</th>{head}</tr></thead><tbody>"
    ]
    for t in view.tasks:
        cells = "".join(
            f"<td class='{esc(c.status)}' data-party='{esc(c.party_id)}'>{esc(c.status)} <small>{esc('/'.join(c.roles))}</small>"
            + (f"<br><small>{esc(c.error)}</small>" if c.error else "")
            + "</td>"
            for c in t.parties
        )
        rows.append(
            f"<tr data-task='{esc(t.task_name)}'><td><a href='#task-{esc(t.task_name)}'>{esc(t.task_name)}</a></td>"
            f"<td>{t.task_version}</td><td class='{esc(t.status)}'>{esc(t.status)}</td>{cells}</tr>"
        )
    rows.append("</tbody></table>")
    return "".join(rows)


def _parameters(task: TaskPlan, party_id: str) -> str:
    shares = [pt for pt in task.parties if pt.party.party_id == party_id] or list(task.parties[:1])
    parts = []
    for pt in shares:
        params = {str(k): v for k, v in pt.parameters.items()}
        label = f"{pt.party.role} {pt.party.party_id}"
        parts.append(
            f"<h5>{esc(label)}</h5>" + (mapping_table(params) if params else "<p class='muted'>defaults</p>")
        )
    return "".join(parts)


def _errors_first(view: JobView, task_name: str) -> str:
    errors = [
        f"party {esc(c.party_id)}: {esc(c.error)}"
        for t in view.tasks
        if t.task_name == task_name
        for c in t.parties
        if c.error
    ]
    return f"<div class='errors'>{'<br>'.join(errors)}</div>" if errors else ""


def job_page(data: JobPageData, root: str) -> str:
    """One job: header, controls, graph, status matrix, one section per component."""
    view, plan = data.view, data.plan
    base = f"{root}/jobs/{quote(data.dag_id, safe='')}/{quote(data.run_id, safe='')}"
    detail = view.detail if view.found else JobDetail()
    status = view.status if view.found else data.run_state
    out = [
        f"<p><a href='{root}/jobs'>← all FATE jobs</a></p>",
        f"<h2>Job <code id='job-id'>{esc(data.run_id)}</code> "
        f"<span class='badge {esc(status)}' id='job-status'>{esc(status)}</span></h2>",
        f"<p>DAG <b>{esc(data.dag_id)}</b> · this party {esc(data.party_id)} (Airflow run: {esc(data.run_state)})",
    ]
    if view.found:
        out.append(f" · initiator {esc(view.initiator_party_id)}")
    out.append("</p>")
    if data.message:
        out.append(f"<p class='badge running' id='flash'>{esc(data.message)}</p>")
    if view.reason:
        tone = "errors" if status in ("failed", "canceled", "timeout") else "muted"
        out.append(f"<p class='{tone}' id='job-reason'>{esc(view.reason)}</p>")
    if data.fed_error:
        out.append(f"<p class='errors'>cannot reach this party's gateway: {esc(data.fed_error)}</p>")
    created, started, ended = detail.created, detail.started, detail.ended
    out.append(
        table(
            ["created", "started", "ended", "duration"],
            [[when(created), when(started), when(ended), duration(started or created, ended)]],
            css="timing",
        )
    )
    ended_job = status in ("success", "failed", "canceled", "timeout")
    controls = ["<div class='bar'>"]
    if not ended_job:
        controls.append(
            f"<form method='post' action='{base}/stop'><button id='stop-job' class='danger' type='submit'>"
            "Stop job at every party</button></form>"
        )
    if plan is not None and ended_job:
        names = "".join(f"<option>{esc(t.name)}</option>" for t in plan.tasks)
        controls.append(
            f"<form method='post' action='{base}/rerun'>rerun from <select name='component'>{names}</select> "
            "<button id='rerun-job' type='submit'>Rerun</button></form>"
            f"<a href='{base}/delete'>delete this job's outputs here…</a>"
        )
    controls.append("</div>")
    out.extend(controls)
    if plan is not None:
        out.append("<h3>Components</h3>" + component_graph(plan, view))
    out.append("<h3>Status at every party</h3>" + status_matrix(view))
    events = detail.events
    if events:
        rows = [
            [when(e.at), e.kind, e.party_id, e.task_name, e.version if e.version >= 0 else "", e.message]
            for e in events
        ]
        out.append(
            f"<details id='timeline'><summary>timeline ({len(events)} events)</summary>"
            + table(["when", "what", "party", "task", "version", "detail"], rows)
            + "</details>"
        )
    tasks = plan.tasks if plan is not None else ()
    for task in tasks:
        out.append(_component_section(data, task, base))
    if plan is None:
        for name, local in sorted(data.local.items()):
            out.append(f"<section class='component'><h3>{esc(name)}</h3><p>{esc(local.state)}</p></section>")
    return "".join(out)


def _component_section(data: JobPageData, task: TaskPlan, base: str) -> str:
    local = data.local.get(task.name, LocalTask())
    tv = next((t for t in data.view.tasks if t.task_name == task.name), None)
    parts = [
        f"<section class='component' id='task-{esc(task.name)}' data-task='{esc(task.name)}'>",
        f"<h3>{esc(task.name)} <small class='muted'>{esc(task.component)} · {esc(task.implementation)} · "
        f"provider {esc(task.provider)}</small> "
        f"<span class='badge {esc(tv.status if tv else local.state)}'>{esc(tv.status if tv else local.state)}</span>"
        + (f" <small>v{tv.task_version}</small>" if tv and tv.task_version >= 0 else "")
        + "</h3>",
        _errors_first(data.view, task.name),
        f"<p class='muted'>here: {esc(local.state or 'not run')} · {esc(when(local.start))}"
        f"{' → ' + esc(when(local.end)) if local.end else ''} {esc(duration(local.start, local.end))}"
        f" · <a class='logs-link' href='{base}/logs/{quote(task.name, safe='')}'>logs of every party</a></p>",
    ]
    record = local.record or {}
    for role, share in sorted((record.get("roles") or {}).items()):
        if not isinstance(share, Mapping):
            continue
        panels = task_panels(share)
        if panels:
            parts.append(f"<h4>{esc(role)} {esc(data.party_id)}</h4>" + render_panels(panels))
    for title_panels in data.models.get(task.name, []):
        parts.append(render_panels([title_panels]))
    outputs = data.data_outputs.get(task.name, [])
    if outputs:
        links = ", ".join(
            f"<a class='data-link' href='{base}/data/{quote(task.name, safe='')}/{quote(role, safe='')}/{quote(key, safe='')}'>"
            f"{esc(key)} ({esc(role)}{f', {rows} rows' if rows >= 0 else ''})</a>"
            for role, key, rows in outputs
        )
        parts.append(f"<p>output data: {links}</p>")
    parts.append("<details><summary>parameters</summary>" + _parameters(task, data.party_id) + "</details>")
    if record:
        raw = json.dumps(record, indent=1, default=str)
        parts.append(
            f"<details class='raw'><summary>raw tracking record</summary><pre>{esc(raw[:20000])}</pre></details>"
        )
    parts.append("</section>")
    return "".join(parts)


# ----------------------------------------------------------------------------- logs, data, confirm
def _classify(line: str) -> str:
    upper = line[:40].upper()
    if "ERROR" in upper or "CRITICAL" in upper or "TRACEBACK" in upper:
        return "err"
    if "WARN" in upper:
        return "warn"
    return ""


def logs_page(dag_id: str, run_id: str, task_name: str, logs: Sequence[TaskLog], base: str) -> str:
    """Every party's log of a task, errors first."""
    out = [
        f"<p><a href='{base}#task-{esc(task_name)}'>← job {esc(run_id)}</a></p>",
        f"<h2>Logs of {esc(task_name)}</h2>",
    ]
    for log in logs:
        out.append(f"<h3 id='party-{esc(log.party_id)}'>party {esc(log.party_id)}</h3>")
        if not log.found:
            out.append(f"<p class='muted'>{esc(log.message)}</p>")
            continue
        errors = [line for line in log.lines if _classify(line) == "err"]
        if errors:
            out.append(
                "<h4>errors</h4><div class='log errors-only'>"
                + "\n".join(f"<span class='err'>{esc(x)}</span>" for x in errors)
                + "</div>"
            )
        if log.truncated:
            out.append("<p class='muted'>the last lines only</p>")
        body = "\n".join(
            f"<span class='{_classify(line)}'>{esc(line)}</span>" if _classify(line) else esc(line)
            for line in log.lines
        )
        out.append(f"<div class='log' data-party='{esc(log.party_id)}'>{body}</div>")
    return "".join(out)


def data_page(
    run_id: str, task_name: str, key: str, columns: Sequence[str], rows: Sequence[Sequence[Any]],
    total: int, page_no: int, page_size: int, base: str, here: str,
) -> str:  # fmt: skip
    """A page of an output table (at most the first 100 rows, ``page_size`` at a time)."""
    last = max(0, (min(total, 100) - 1) // page_size)
    nav = []
    if page_no > 0:
        nav.append(f"<a href='{here}?{urlencode({'page': page_no - 1})}'>← previous</a>")
    if page_no < last:
        nav.append(f"<a id='next-page' href='{here}?{urlencode({'page': page_no + 1})}'>next →</a>")
    return (
        f"<p><a href='{base}#task-{esc(task_name)}'>← job {esc(run_id)}</a></p>"
        f"<h2>{esc(task_name)} · {esc(key)}</h2><p>{total} rows; preview of the first {min(total, 100)}, "
        f"page {page_no + 1} of {last + 1}</p>"
        + table(list(columns), rows, css="data")
        + f"<div class='bar'>{' '.join(nav)}</div>"
    )


def confirm_delete_page(dag_id: str, run_id: str, base: str, summary: str) -> str:
    """The confirmation before deleting a job's outputs at this party."""
    return (
        f"<p><a href='{base}'>← job {esc(run_id)}</a></p><h2>Delete the outputs of job {esc(run_id)}?</h2>"
        f"<p>{esc(summary)}</p><p>Data, models and metrics of this job <b>at this party</b> are deleted; the DAG run "
        "and other parties' outputs stay. This cannot be undone.</p>"
        f"<form method='post' action='{base}/delete'><button id='confirm-delete' class='danger' type='submit'>"
        "Delete</button> <a href='" + base + "'>cancel</a></form>"
    )


__all__ = [
    "BOARD_CSS",
    "JobPageData",
    "LocalTask",
    "RunRow",
    "component_graph",
    "confirm_delete_page",
    "data_page",
    "duration",
    "job_list",
    "job_page",
    "logs_page",
    "page",
    "status_matrix",
    "when",
]
