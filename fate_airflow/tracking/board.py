"""What a FATE-Board-class job page shows of a task: charts, tables and curves, as server-rendered HTML.

Plain Python (no Airflow): the provider's job page gathers the records (this party's tracking record
from XCom, FATE's metric records, the initiator's job view) and renders them with these helpers. Every
chart is an inline ``<svg>`` — no chart library, no script, nothing fetched from elsewhere, so the
page works offline and its content can be checked by a test (each series is one ``<polyline>`` whose
``data-points`` attribute counts its points).

Inputs are the shapes the components record:

* native components: ``metrics`` (numbers; ``loss_history`` a list, or a mapping of lists for several
  series) and ``summary`` (facts; ``curves`` for a binary evaluation, see :func:`binary_curves`);
* FATE-provider components: ``metrics["fate_metrics"]``, FATE 2.x's records
  ``{name, type, groups, step_axis, data}``.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Points kept per curve: enough for a smooth line, small enough for a light page and record.
CURVE_POINTS = 101
#: Thresholds of the confusion-matrix table.
CONFUSION_THRESHOLDS = tuple(round(0.1 * i, 1) for i in range(1, 10))

_PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")


@dataclass(frozen=True)
class Series:
    """One line of a chart."""

    name: str
    points: Sequence[tuple[float, float]]


@dataclass
class Panel:
    """One titled block of a component's section (a chart, a table)."""

    title: str
    body: str
    kind: str = "table"


# ----------------------------------------------------------------------------- curves
def binary_curves(label: np.ndarray, score: np.ndarray, points: int = CURVE_POINTS) -> dict[str, Any]:
    """ROC, K-S, lift, gain and precision-recall of a binary prediction, and its confusion matrices.

    The curves are taken at up to ``points`` thresholds (quantiles of the scores, so that every part
    of the population is represented) and are JSON-ready lists of ``[x, y]``; ``confusion`` holds
    ``tp, fp, tn, fn`` and the derived rates at :data:`CONFUSION_THRESHOLDS`.

    :param label: 0/1 labels (1 = positive).
    :param score: predicted probability of the positive class.
    """
    y = np.asarray(label).astype(int)
    s = np.asarray(score, dtype=np.float64)
    n, pos = len(y), int(y.sum())
    neg = n - pos
    if n == 0 or pos == 0 or neg == 0:
        return {}
    grid = np.unique(np.quantile(s, np.linspace(0.0, 1.0, points)))[::-1]
    order = np.argsort(-s, kind="stable")
    sorted_s, sorted_y = s[order], y[order]
    cum_pos = np.concatenate([[0], np.cumsum(sorted_y)])
    # For a threshold t the positives are the scores >= t: the first k of the sorted list.
    k = np.searchsorted(-sorted_s, -grid, side="right")
    tp = cum_pos[k]
    fp = k - tp
    tpr, fpr = tp / pos, fp / neg
    depth = k / n
    precision = np.divide(tp, k, out=np.ones_like(tpr, dtype=np.float64), where=k > 0)
    base = pos / n

    def pairs(xs: np.ndarray, ys: np.ndarray) -> list[list[float]]:
        return [[round(float(x), 6), round(float(v), 6)] for x, v in zip(xs, ys, strict=True)]

    roc = pairs(np.concatenate([[0.0], fpr, [1.0]]), np.concatenate([[0.0], tpr, [1.0]]))
    ks_index = int(np.argmax(tpr - fpr))
    confusion = []
    for t in CONFUSION_THRESHOLDS:
        kk = int(np.searchsorted(-sorted_s, -t, side="right"))
        ctp = int(cum_pos[kk])
        cfp = kk - ctp
        cfn, ctn = pos - ctp, neg - cfp
        prec = ctp / kk if kk else 1.0
        rec = ctp / pos
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        confusion.append(
            {"threshold": t, "tp": ctp, "fp": cfp, "tn": ctn, "fn": cfn,
             "precision": round(prec, 6), "recall": round(rec, 6), "f1": round(f1, 6),
             "accuracy": round((ctp + ctn) / n, 6)}
        )  # fmt: skip
    return {
        "roc": roc,
        "ks": {
            "tpr": pairs(grid, tpr),
            "fpr": pairs(grid, fpr),
            "ks": round(float(tpr[ks_index] - fpr[ks_index]), 6),
            "threshold": round(float(grid[ks_index]), 6),
        },
        "lift": pairs(depth[k > 0], precision[k > 0] / base),
        "gain": pairs(np.concatenate([[0.0], depth]), np.concatenate([[0.0], tpr])),
        "pr": pairs(tpr[k > 0], precision[k > 0]),
        "confusion": confusion,
        "rows": n,
        "positives": pos,
    }


# ----------------------------------------------------------------------------- SVG charts
def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 1000 or magnitude < 0.001:
        return f"{value:.2e}"
    return f"{value:.4g}"


def _ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    if hi <= lo:
        return [lo]
    step = (hi - lo) / (count - 1)
    return [lo + i * step for i in range(count)]


def line_chart(
    title: str,
    series: Sequence[Series],
    *,
    x_label: str,
    y_label: str,
    x_range: tuple[float, float] | None = None,
    y_range: tuple[float, float] | None = None,
    diagonal: bool = False,
    width: int = 440,
    height: int = 280,
) -> str:
    """An inline SVG line chart; each series is a ``<polyline data-series=... data-points=N>``."""
    finite = [
        (float(x), float(y))
        for s in series
        for x, y in s.points
        if math.isfinite(float(x)) and math.isfinite(float(y))
    ]
    if not finite:
        return f"<p class='empty'>{html.escape(title)}: no data</p>"
    xs, ys = [p[0] for p in finite], [p[1] for p in finite]
    x0, x1 = x_range or (min(xs), max(xs))
    y0, y1 = y_range or (min(ys), max(ys))
    if x1 == x0:
        x0, x1 = x0 - 0.5, x1 + 0.5
    if y1 == y0:
        y0, y1 = y0 - abs(y0 or 1) * 0.05, y1 + abs(y1 or 1) * 0.05
    left, right, top, bottom = 58, 12, 28, 42
    pw, ph = width - left - right, height - top - bottom

    def px(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * pw

    def py(y: float) -> float:
        return top + (1 - (y - y0) / (y1 - y0)) * ph

    out = [
        f"<svg class='chart' role='img' aria-label='{html.escape(title)}' data-chart='{html.escape(title)}' "
        f"width='{width}' height='{height}' viewBox='0 0 {width} {height}' xmlns='http://www.w3.org/2000/svg'>",
        f"<text x='{width / 2:.0f}' y='16' text-anchor='middle' class='title'>{html.escape(title)}</text>",
        f"<rect x='{left}' y='{top}' width='{pw}' height='{ph}' class='frame'/>",
    ]
    for t in _ticks(x0, x1):
        out.append(
            f"<line x1='{px(t):.1f}' y1='{top + ph}' x2='{px(t):.1f}' y2='{top + ph + 4}' class='axis'/>"
            f"<text x='{px(t):.1f}' y='{top + ph + 16}' text-anchor='middle' class='tick'>{_fmt(t)}</text>"
        )
    for t in _ticks(y0, y1):
        out.append(
            f"<line x1='{left - 4}' y1='{py(t):.1f}' x2='{left + pw}' y2='{py(t):.1f}' class='grid'/>"
            f"<text x='{left - 6}' y='{py(t) + 4:.1f}' text-anchor='end' class='tick'>{_fmt(t)}</text>"
        )
    out.append(
        f"<text x='{left + pw / 2:.0f}' y='{height - 6}' text-anchor='middle' class='label'>{html.escape(x_label)}</text>"
        f"<text x='12' y='{top + ph / 2:.0f}' text-anchor='middle' class='label' "
        f"transform='rotate(-90 12 {top + ph / 2:.0f})'>{html.escape(y_label)}</text>"
    )
    if diagonal:
        out.append(
            f"<line x1='{px(x0):.1f}' y1='{py(y0):.1f}' x2='{px(x1):.1f}' y2='{py(y1):.1f}' class='diagonal'/>"
        )
    for i, s in enumerate(series):
        color = _PALETTE[i % len(_PALETTE)]
        pts = [
            (float(x), float(y)) for x, y in s.points if math.isfinite(float(x)) and math.isfinite(float(y))
        ]
        coords = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in pts)
        data = html.escape(json.dumps([[round(x, 6), round(y, 6)] for x, y in pts]))
        out.append(
            f"<polyline class='series' data-series='{html.escape(s.name)}' data-points='{len(pts)}' "
            f"data-values='{data}' fill='none' stroke='{color}' stroke-width='1.8' points='{coords}'>"
            f"<title>{html.escape(s.name)}</title></polyline>"
        )
        if len(pts) <= 60:
            out.extend(
                f"<circle cx='{px(x):.1f}' cy='{py(y):.1f}' r='2.2' fill='{color}'><title>{html.escape(s.name)}: "
                f"({_fmt(x)}, {_fmt(y)})</title></circle>"
                for x, y in pts
            )
        if len(series) > 1:
            ly = top + 12 + 14 * i
            out.append(
                f"<rect x='{left + pw - 110}' y='{ly - 8}' width='10' height='10' fill='{color}'/>"
                f"<text x='{left + pw - 96}' y='{ly + 1}' class='legend'>{html.escape(s.name[:18])}</text>"
            )
    out.append("</svg>")
    return "".join(out)


# ----------------------------------------------------------------------------- tables
def _cell(value: Any) -> str:
    if isinstance(value, float):
        return html.escape(
            _fmt(value) if abs(value) >= 1e4 or (value and abs(value) < 1e-3) else f"{value:.6g}"
        )
    if isinstance(value, Mapping | list | tuple):
        text = json.dumps(value, default=str)
        return f"<code>{html.escape(text[:300])}{'…' if len(text) > 300 else ''}</code>"
    return html.escape("" if value is None else str(value))


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, css: str = "") -> str:
    """An HTML table (values escaped; floats to 6 significant digits)."""
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table class='{css}'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def mapping_table(values: Mapping[str, Any]) -> str:
    """A mapping as a table: key/value rows, or a matrix when every value is a mapping of scalars.

    ``{"x0": {"min": .., "max": ..}, "x1": {...}}`` (statistics, binning IV per feature, metrics per
    input) becomes one row per key and one column per inner key.
    """
    if values and all(isinstance(v, Mapping) for v in values.values()):
        inner = [v for v in values.values() if isinstance(v, Mapping)]
        if all(not isinstance(x, Mapping | list) for v in inner for x in v.values()):
            columns: list[str] = []
            for v in inner:
                columns.extend(str(c) for c in v if str(c) not in columns)
            rows = [[k, *(v.get(c) for c in columns)] for k, v in values.items() if isinstance(v, Mapping)]
            return table(["", *columns], rows, css="matrix")
    return table(["name", "value"], [[k, v] for k, v in values.items()], css="kv")


# ----------------------------------------------------------------------------- panels
def _loss_panel(title: str, history: Any) -> Panel | None:
    series: list[Series] = []
    if isinstance(history, list) and all(isinstance(v, int | float) for v in history):
        series.append(Series("loss", [(i, float(v)) for i, v in enumerate(history)]))
    elif isinstance(history, Mapping):
        for name, values in history.items():
            if isinstance(values, list) and all(isinstance(v, int | float) for v in values):
                series.append(Series(str(name), [(i, float(v)) for i, v in enumerate(values)]))
    if not series:
        return None
    return Panel(title, line_chart(title, series, x_label="iteration", y_label="loss"), "chart")


def curve_panels(curves: Mapping[str, Any], prefix: str = "") -> list[Panel]:
    """ROC, K-S, lift, gain, precision-recall charts and the confusion table of :func:`binary_curves`."""
    if not curves.get("roc"):
        return []
    p = f"{prefix} " if prefix else ""
    ks = curves.get("ks") or {}
    unit = (0.0, 1.0)
    panels = [
        Panel(
            f"{p}ROC",
            line_chart(f"{p}ROC", [Series("ROC", curves["roc"])], x_label="false positive rate",
                       y_label="true positive rate", x_range=unit, y_range=unit, diagonal=True),
            "chart",
        ),
        Panel(
            f"{p}K-S",
            line_chart(f"{p}K-S (max {ks.get('ks', '')} at {ks.get('threshold', '')})",
                       [Series("tpr", ks.get("tpr") or []), Series("fpr", ks.get("fpr") or [])],
                       x_label="threshold", y_label="rate", y_range=unit),
            "chart",
        ),
        Panel(f"{p}Lift", line_chart(f"{p}Lift", [Series("lift", curves.get("lift") or [])],
                                     x_label="fraction of population", y_label="lift"), "chart"),
        Panel(f"{p}Gain", line_chart(f"{p}Gain", [Series("gain", curves.get("gain") or [])],
                                     x_label="fraction of population", y_label="recall",
                                     x_range=unit, y_range=unit, diagonal=True), "chart"),
        Panel(f"{p}Precision-recall", line_chart(f"{p}Precision-recall", [Series("PR", curves.get("pr") or [])],
                                                 x_label="recall", y_label="precision", x_range=unit), "chart"),
    ]  # fmt: skip
    confusion = curves.get("confusion") or []
    if confusion:
        cols = ["threshold", "tp", "fp", "tn", "fn", "precision", "recall", "f1", "accuracy"]
        panels.append(
            Panel(
                f"{p}Confusion matrix by threshold",
                table(cols, [[c.get(k) for k in cols] for c in confusion]),
            )
        )
    return panels


def _fate_record_panels(records: Sequence[Mapping[str, Any]]) -> list[Panel]:
    """FATE 2.x metric records: step records as charts (one series per record name), others as tables."""
    panels: list[Panel] = []
    steps: dict[str, list[Series]] = {}
    for rec in records:
        name = str(rec.get("name") or "metric")
        data = rec.get("data")
        groups = [g.get("name") for g in rec.get("groups") or () if isinstance(g, Mapping)]
        label = "/".join(str(g) for g in groups if g not in (None, "default")) or name
        if rec.get("step_axis") and isinstance(data, list):
            pts = [
                (float(d.get("step", i)), float(d["metric"]))
                for i, d in enumerate(data)
                if isinstance(d, Mapping) and isinstance(d.get("metric"), int | float)
            ]
            if pts:
                steps.setdefault(name, []).append(Series(label, pts))
                continue
        if isinstance(data, Mapping):
            panels.append(Panel(label if label != name else name, _nested_tables(data)))
        elif isinstance(data, list) and data and all(isinstance(d, Mapping) for d in data):
            cols: list[str] = []
            for d in data:
                cols.extend(str(c) for c in d if str(c) not in cols)
            panels.append(Panel(name, table(cols, [[d.get(c) for c in cols] for d in data])))
        else:
            panels.append(Panel(name, table(["name", "value"], [[name, data]])))
    charts = [
        Panel(name, line_chart(name, series, x_label=str(_axis(records, name)), y_label=name), "chart")
        for name, series in steps.items()
    ]
    return charts + panels


def _axis(records: Sequence[Mapping[str, Any]], name: str) -> str:
    for rec in records:
        if rec.get("name") == name and rec.get("step_axis"):
            return str(rec["step_axis"])
    return "step"


def _nested_tables(data: Mapping[str, Any]) -> str:
    """FATE's evaluation data ``{producer: {split: [{metric, val}, ...]}}`` and similar, as tables."""
    parts: list[str] = []
    for key, value in data.items():
        if isinstance(value, Mapping):
            for split, items in value.items():
                if isinstance(items, list) and all(isinstance(i, Mapping) and "metric" in i for i in items):
                    rows = [[i.get("metric"), i.get("val")] for i in items]
                    parts.append(f"<h5>{html.escape(str(key))} · {html.escape(str(split))}</h5>")
                    parts.append(table(["metric", "value"], rows))
                else:
                    parts.append(f"<h5>{html.escape(str(key))} · {html.escape(str(split))}</h5>")
                    parts.append(
                        mapping_table(items) if isinstance(items, Mapping) else table(["value"], [[items]])
                    )
        else:
            parts.append(table(["name", "value"], [[key, value]]))
    return "".join(parts)


def task_panels(share: Mapping[str, Any]) -> list[Panel]:
    """The panels of one role share of a task (``{status, outputs, metrics, summary}``)."""
    metrics = dict(share.get("metrics") or {})
    summary = dict(share.get("summary") or {})
    panels: list[Panel] = []
    fate_records = metrics.pop("fate_metrics", None)
    if isinstance(fate_records, list):
        panels.extend(_fate_record_panels([r for r in fate_records if isinstance(r, Mapping)]))
    for key in ("loss_history", "losses"):
        # Native LR keeps its history in the summary, other components in the metrics.
        for source in (metrics, summary):
            loss = _loss_panel("loss", source.pop(key, None))
            if loss:
                panels.append(loss)
    curves = summary.pop("curves", None)
    if isinstance(curves, Mapping):
        if "roc" in curves:
            panels.extend(curve_panels(curves))
        else:
            for name, c in curves.items():
                if isinstance(c, Mapping):
                    panels.extend(curve_panels(c, str(name)))
    scalars = {k: v for k, v in metrics.items() if not isinstance(v, Mapping | list)}
    nested = {k: v for k, v in metrics.items() if isinstance(v, Mapping | list)}
    if scalars:
        panels.append(Panel("metrics", mapping_table(scalars)))
    for key, value in nested.items():
        panels.append(
            Panel(
                f"metrics · {key}",
                mapping_table(value)
                if isinstance(value, Mapping)
                else table(["value"], [[v] for v in value]),
            )
        )
    flat = {k: v for k, v in summary.items() if not isinstance(v, Mapping)}
    if flat:
        panels.append(Panel("summary", mapping_table(flat)))
    for key, value in summary.items():
        if isinstance(value, Mapping):
            panels.append(Panel(f"summary · {key}", mapping_table(value)))
    return panels


def _find(doc: Any, key: str, depth: int = 0) -> Any:
    """The first value under ``key`` anywhere in a nested JSON document (FATE's model layouts vary)."""
    if depth > 8:
        return None
    if isinstance(doc, Mapping):
        if key in doc:
            return doc[key]
        for value in doc.values():
            found = _find(value, key, depth + 1)
            if found is not None:
                return found
    elif isinstance(doc, list):
        for value in doc[:50]:
            found = _find(value, key, depth + 1)
            if found is not None:
                return found
    return None


def _flat_numbers(value: Any) -> list[float] | None:
    if value is None:  # absent: np.asarray would make it one NaN
        return None
    try:
        flat = np.asarray(value, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        return None
    return [float(v) for v in flat] if flat.size else None


def model_panels(key: str, params: Mapping[str, Any], arrays: Mapping[str, Any] | None = None) -> list[Panel]:
    """A stored model share as tables.

    Linear weights by feature (with the intercept), FATE models' coefficients and trees when their
    layout is recognised, and the rest of the parameters.
    """
    arrays = arrays or {}
    panels: list[Panel] = []
    key = "model" if key == "model" else f"model {key}"
    header = params.get("header")
    weights = params.get("weights")
    if weights is None and "weights" in arrays:
        weights = np.asarray(arrays["weights"]).tolist()
    fate_models = params.get("fate_models")
    if isinstance(fate_models, Mapping):
        for name, model in fate_models.items():
            coef = _flat_numbers(_find(model, "coef_"))
            names = _find(model, "header") or _find(model, "feature_names")
            if coef is not None:
                feats = (
                    [str(n) for n in names]
                    if isinstance(names, list) and len(names) == len(coef)
                    else [f"w{i}" for i in range(len(coef))]
                )
                rows: list[list[Any]] = [[f, w] for f, w in zip(feats, coef, strict=True)]
                intercept = _flat_numbers(_find(model, "intercept_"))
                if intercept:
                    rows.append(["(intercept)", intercept[0]])
                panels.append(Panel(f"{key} · {name}: coefficients", table(["feature", "weight"], rows)))
            trees = _find(model, "trees")
            if isinstance(trees, list) and trees:
                names = _find(model, "fid_name_mapping")
                panels.append(
                    Panel(
                        f"{key} · {name}: {len(trees)} trees",
                        tree_tables(trees, names if isinstance(names, Mapping) else None),
                    )
                )
            raw = json.dumps(model, default=str)
            panels.append(
                Panel(
                    f"{key} · {name}",
                    f"<details><summary>model document ({len(raw)} bytes)</summary><pre>{html.escape(raw[:20000])}</pre></details>",
                )
            )
        return panels
    if isinstance(header, list) and isinstance(weights, list) and len(header) == len(weights):
        rows = [[str(f), float(w)] for f, w in zip(header, weights, strict=True)]
        if "intercept" in params:
            rows.append(["(intercept)", params["intercept"]])
        panels.append(Panel(f"{key}: weights", table(["feature", "weight"], rows)))
    class_panel = _class_weights_panel(key, params, arrays)
    if class_panel is not None:
        panels.append(class_panel)
    rest = {
        k: v
        for k, v in params.items()
        if k not in ("header", "weights", "loss_history") and not isinstance(v, Mapping | list)
    }
    if rest:
        panels.append(Panel(key, mapping_table(rest)))
    return panels


def _class_weights_panel(key: str, params: Mapping[str, Any], arrays: Mapping[str, Any]) -> Panel | None:
    """A one-vs-rest linear model's weights: one column per class (hetero LR multi-class), or None.

    The guest's share names its classes (``labels``) and has their intercepts; a host's knows only
    how many there are, so its columns are the classes' indices.
    """
    header = params.get("header")
    rows = params.get("class_weights")
    if rows is None and "class_weights" in arrays:
        rows = np.asarray(arrays["class_weights"]).tolist()
    if not (
        isinstance(header, list)
        and isinstance(rows, list)
        and rows
        and all(isinstance(r, list) and len(r) == len(header) for r in rows)
    ):
        return None
    labels = params.get("labels")
    names = labels if isinstance(labels, list) and len(labels) == len(rows) else list(range(len(rows)))
    body: list[list[Any]] = [[str(f), *(float(r[i]) for r in rows)] for i, f in enumerate(header)]
    intercepts = params.get("intercepts")
    if isinstance(intercepts, list) and len(intercepts) == len(rows):
        body.append(["(intercept)", *(float(b) for b in intercepts)])
    columns = ["feature", *(f"class {n}" for n in names)]
    return Panel(f"{key}: weights, one-vs-rest ({len(rows)} classes)", table(columns, body))


def tree_tables(trees: Sequence[Any], names: Mapping[Any, Any] | None = None, limit: int = 5) -> str:
    """The first ``limit`` trees of a tree model, one row per node.

    A split another party owns shows only that party: its feature and threshold are not in this
    party's model. ``names`` maps feature ids to names (FATE's ``fid_name_mapping``).
    """
    names = {str(k): v for k, v in (names or {}).items()}
    parts = []
    for index, tree in enumerate(trees[:limit]):
        nodes = tree.get("nodes") if isinstance(tree, Mapping) else tree
        if not isinstance(nodes, list):
            continue
        rows = []
        for node in nodes:
            if not isinstance(node, Mapping):
                continue
            leaf = bool(node.get("is_leaf"))
            owner = node.get("sitename") or node.get("party") or ""
            feature = node.get("fid", node.get("feature"))
            split = node.get("bid", node.get("threshold", node.get("split_value")))
            hidden = feature is None or feature == -1
            rows.append([
                node.get("nid", node.get("id")),
                "leaf" if leaf else "split",
                owner,
                "" if leaf else ("(owner only)" if hidden else names.get(str(feature), feature)),
                "" if leaf or hidden else split,
                node.get("weight") if leaf else "",
                node.get("l", node.get("left_nodeid", "")),
                node.get("r", node.get("right_nodeid", "")),
            ])  # fmt: skip
        parts.append(
            f"<h5>tree {index}</h5>"
            + table(["node", "kind", "owner", "feature", "split", "leaf weight", "left", "right"], rows)
        )
    return "".join(parts)


def render_panels(panels: Sequence[Panel]) -> str:
    """Charts side by side, then tables."""
    charts = "".join(
        f"<figure class='panel chart-panel'>{p.body}</figure>" for p in panels if p.kind == "chart"
    )
    tables = "".join(
        f"<section class='panel'><h4>{html.escape(p.title)}</h4>{p.body}</section>"
        for p in panels
        if p.kind != "chart"
    )
    return (f"<div class='charts'>{charts}</div>" if charts else "") + tables


__all__ = [
    "CONFUSION_THRESHOLDS",
    "CURVE_POINTS",
    "Panel",
    "Series",
    "binary_curves",
    "curve_panels",
    "line_chart",
    "mapping_table",
    "model_panels",
    "render_panels",
    "table",
    "task_panels",
    "tree_tables",
]
