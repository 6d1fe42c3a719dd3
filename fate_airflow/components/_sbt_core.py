"""Hetero SecureBoost in plaintext numpy: binning, losses, GOSS, split gains, trees and their FATE layout.

Everything here is local to one party and free of cryptography; :mod:`._sbt_crypto` does the encrypted
histograms and :mod:`.hetero_secureboost` the protocol. Formulas follow FATE 2.2
(``python/fate/ml/ensemble``) so the same job grows the same trees:

* **binning** (``utils/binning.py``): split points are the column's quantiles at ``i / max_bin``
  (``i = 0 … max_bin − 1``), sorted and de-duplicated; FATE's Greenwald–Khanna summary (ε = 1e-4) returns
  the sorted value at rank ``max(⌊q·n⌋ − 1, 0)`` exactly while ε·n < 1, which is what
  :func:`split_points` computes. A value's bin is the first split point ≥ it (the last split point
  counting as +∞, ``torch.bucketize``), so "bin ≤ b" means "value ≤ split point b";
* **gain** (``tree_core/splitter.py``): ``G²/(H + l2)`` with ``G`` soft-thresholded by ``l1``, inputs and
  result truncated to 10 decimals, candidates below ``min_impurity_split``, ``min_leaf_node`` or
  ``min_child_weight`` (either side) dropped, nodes with fewer than ``min_sample_split`` samples not
  split; leaf weight ``−G/(H + l2)``;
* **losses** (``tree_core/loss.py``): ``binary:bce`` (g = p − y, h = p(1 − p)), ``multi:ce`` (one tree per
  class and round, g = p − onehot, h = 2p(1 − p)), ``regression:l2`` (g = 2(ŷ − y), h = 2, initial score
  the label mean);
* **GOSS** (``utils/sample.py``): the ``top_rate`` share with the largest gradient plus a random
  ``other_rate`` share of the rest. FATE ranks by the signed gradient and does not re-weight the sampled
  rest; so do we, so that a FATE job trains the same kind of model.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fate_airflow.components._sbt_params import BINARY_BCE, MULTI_CE, REGRESSION_L2
from fate_airflow.core.errors import ComponentError

#: FATE's TREE_DECIMAL_ROUND: gains, sums and weights are truncated to this many decimals.
TREE_DECIMAL_ROUND = 10
#: FATE's FLOAT_ZERO: a value goes left when ``value <= split + FLOAT_ZERO``.
FLOAT_ZERO = 1e-8


# ----------------------------------------------------------------------------- binning


def split_points(column: np.ndarray, max_bin: int) -> np.ndarray:
    """FATE 2.2's quantile split points of one feature (sorted, unique)."""
    values = np.sort(np.asarray(column, dtype=np.float64))
    n = len(values)
    if n == 0:
        return np.zeros(0)
    ranks = [max(math.floor(i / max_bin * n) - 1, 0) for i in range(max_bin)]
    return np.unique(values[np.minimum(ranks, n - 1)])


def bucketize(column: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Bin index of each value: the first split point ≥ it, the last point counting as +∞."""
    bounds = np.array(points, dtype=np.float64)
    bounds[-1] = np.inf
    return np.searchsorted(bounds, np.asarray(column, dtype=np.float64), side="left")


@dataclass(frozen=True)
class Binned:
    """A party's features, binned.

    :param bins: ``(rows, features)`` bin indices (uint8 up to 256 bins, else uint16).
    :param points: per feature, its split points (``points[f][b]`` is the threshold of bin ``b``).
    """

    bins: np.ndarray
    points: tuple[np.ndarray, ...]

    @property
    def n_bins(self) -> np.ndarray:
        """Bins per feature."""
        return np.array([len(p) for p in self.points], dtype=np.int64)

    @property
    def width(self) -> int:
        """The largest bin count (histogram arrays are padded to it)."""
        return int(self.n_bins.max()) if self.points else 1


def bin_features(x: np.ndarray, max_bin: int) -> Binned:
    """Quantile-bin every column of ``x``."""
    points = tuple(split_points(x[:, j], max_bin) for j in range(x.shape[1]))
    dtype = np.uint8 if max_bin <= 256 else np.uint16
    bins = np.zeros(x.shape, dtype=dtype)
    for j, pts in enumerate(points):
        bins[:, j] = bucketize(x[:, j], pts).astype(dtype)
    return Binned(bins, points)


def candidate_index(n_bins: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The split candidates of a party, as ``(feature, bin)`` pairs in feature order.

    The last bin of a feature is never a candidate: nothing would go right.
    """
    feats = np.repeat(np.arange(len(n_bins)), np.maximum(n_bins - 1, 0))
    bids = np.concatenate([np.arange(max(int(k) - 1, 0)) for k in n_bins]) if len(n_bins) else np.zeros(0)
    return feats.astype(np.int64), bids.astype(np.int64)


def plain_histograms(
    bins: np.ndarray, slots: np.ndarray, n_slots: int, width: int, values: Sequence[np.ndarray]
) -> list[np.ndarray]:
    """Per-slot, per-feature, per-bin sums of each of ``values`` (``(n_slots, features, width)``).

    One ``np.bincount`` per value over the flattened ``slot · F · width + f · width + bin`` index.
    """
    n, f = bins.shape
    if n == 0 or f == 0:
        return [np.zeros((n_slots, f, width)) for _ in values]
    flat = (slots[:, None] * (f * width) + np.arange(f)[None, :] * width + bins.astype(np.int64)).ravel()
    size = n_slots * f * width
    out = []
    for v in values:
        weights = np.repeat(np.asarray(v, dtype=np.float64), f)
        out.append(np.bincount(flat, weights=weights, minlength=size).reshape(n_slots, f, width))
    return out


# ----------------------------------------------------------------------------- losses


class Objective:
    """FATE 2.2's losses: initial scores, gradients/hessians, predictions and the loss.

    :param name: ``binary:bce``, ``multi:ce`` or ``regression:l2``.
    :param num_class: classes (multi-class only; binary is 2, regression None).
    """

    def __init__(self, name: str, num_class: int | None) -> None:
        self.name = name
        self.num_class = num_class if name == MULTI_CE else (2 if name == BINARY_BCE else None)

    @property
    def dim(self) -> int:
        """Trees per boosting round (one per class for multi-class)."""
        return int(self.num_class) if self.name == MULTI_CE and self.num_class else 1

    @property
    def task_type(self) -> str:
        """``binary``, ``multi`` or ``regression`` (FATE's ``get_task_info``)."""
        return self.name.split(":")[0]

    def check_labels(self, y: np.ndarray, where: str) -> np.ndarray:
        """Labels as this objective needs them (class indices as int64 for classification)."""
        if self.name == REGRESSION_L2:
            return np.asarray(y, dtype=np.float64)
        if not np.all(np.mod(y, 1) == 0):
            raise ComponentError(f"{where}: classification labels must be integers, got non-integer values")
        labels = np.asarray(y, dtype=np.int64)
        classes = set(np.unique(labels).tolist())
        if self.name == BINARY_BCE and classes != {0, 1}:
            raise ComponentError(
                f"{where}: objective binary:bce needs labels 0 and 1, got {sorted(classes)[:10]}"
            )
        if self.name == MULTI_CE:
            assert self.num_class is not None
            if min(classes) < 0 or max(classes) >= self.num_class:
                raise ComponentError(
                    f"{where}: objective multi:ce with num_class {self.num_class} needs labels in "
                    f"0..{self.num_class - 1}, got {sorted(classes)[:10]}"
                )
        return labels

    def init_scores(self, y: np.ndarray) -> tuple[np.ndarray, float | None]:
        """Initial raw scores ``(rows, dim)`` and FATE's ``init_score`` (the label mean for regression)."""
        n = len(y)
        if self.name == REGRESSION_L2:
            mean = float(np.mean(y))
            return np.full((n, 1), mean), mean
        return np.zeros((n, self.dim)), None

    def predict(self, raw: np.ndarray) -> np.ndarray:
        """Raw scores → probabilities (sigmoid / softmax) or values (regression), ``(rows, dim)``."""
        if self.name == BINARY_BCE:
            return np.asarray(1.0 / (1.0 + np.exp(-raw)), dtype=np.float64)
        if self.name == MULTI_CE:
            e = np.exp(raw - raw.max(axis=1, keepdims=True))
            return np.asarray(e / e.sum(axis=1, keepdims=True), dtype=np.float64)
        return np.asarray(raw, dtype=np.float64)

    def grad_hess(self, y: np.ndarray, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Gradients and hessians ``(rows, dim)`` at the current raw scores."""
        p = self.predict(raw)
        if self.name == BINARY_BCE:
            return p - y[:, None], p * (1 - p)
        if self.name == MULTI_CE:
            onehot = np.zeros_like(p)
            onehot[np.arange(len(y)), y.astype(np.int64)] = 1.0
            return p - onehot, 2.0 * p * (1 - p)
        return 2.0 * (raw - y[:, None]), np.full_like(raw, 2.0)

    def loss(self, y: np.ndarray, raw: np.ndarray) -> float:
        """Mean loss (FATE's ``compute_loss``)."""
        p = self.predict(raw)
        if self.name == BINARY_BCE:
            with np.errstate(divide="ignore", invalid="ignore"):
                terms = -(y * np.log(p[:, 0]) + (1 - y) * np.log(1 - p[:, 0]))
            return float(np.mean(np.where(np.isfinite(terms), terms, 1.0)))
        if self.name == MULTI_CE:
            with np.errstate(divide="ignore"):
                terms = -np.log(p[np.arange(len(y)), y.astype(np.int64)])
            return float(np.mean(np.where(np.isfinite(terms), terms, 1.0)))
        return float(np.mean((y - raw[:, 0]) ** 2))


def goss_mask(g: np.ndarray, top_rate: float, other_rate: float, rng: np.random.Generator) -> np.ndarray:
    """FATE's GOSS: the ``top_rate`` rows with the largest (signed) gradient plus a random ``other_rate`` of the rest."""
    n = len(g)
    top = int(n * top_rate)
    other = int(n * other_rate)
    order = np.argsort(-g, kind="stable")
    mask = np.zeros(n, dtype=bool)
    mask[order[:top]] = True
    rest = order[top:]
    if other and len(rest):
        mask[rng.choice(rest, size=min(other, len(rest)), replace=False)] = True
    return mask


# ----------------------------------------------------------------------------- splits


def truncate(x: Any) -> Any:
    """FATE's ``SBTSplitter.truncate``: floor to :data:`TREE_DECIMAL_ROUND` decimals."""
    scale = 10.0**TREE_DECIMAL_ROUND
    return np.floor(np.asarray(x, dtype=np.float64) * scale) / scale


@dataclass(frozen=True)
class SplitRules:
    """FATE's split criteria (``SBTSplitter``)."""

    l1: float = 0.0
    l2: float = 0.1
    min_impurity_split: float = 1e-2
    min_sample_split: int = 2
    min_leaf_node: int = 1
    min_child_weight: float = 1.0

    def _l1(self, g: np.ndarray) -> np.ndarray:
        if self.l1 == 0:
            return g
        return np.where(g < -self.l1, g + self.l1, np.where(g > self.l1, g - self.l1, 0.0))

    def node_gain(self, g: np.ndarray, h: np.ndarray) -> np.ndarray:
        """``G² / (H + l2)`` (NaN where H is 0, as FATE)."""
        g = self._l1(truncate(g))
        h = np.where(truncate(h) == 0, np.nan, truncate(h))
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.asarray(g * g / (h + self.l2), dtype=np.float64)

    def node_weight(self, g: float, h: float) -> float:
        """Leaf weight ``−G / (H + l2)``."""
        gg = float(self._l1(np.asarray(g, dtype=np.float64)))
        return float(truncate(-(gg / (h + self.l2))))

    def gains(
        self,
        lg: np.ndarray,
        lh: np.ndarray,
        lc: np.ndarray,
        g_sum: np.ndarray,
        h_sum: np.ndarray,
        c_sum: np.ndarray,
    ) -> np.ndarray:
        """Gain of every candidate ``(nodes, candidates)``; −inf where a rule forbids the split."""
        g_sum, h_sum, c_sum = g_sum[:, None], h_sum[:, None], c_sum[:, None]
        rg, rh, rc = g_sum - lg, h_sum - lh, c_sum - lc
        with np.errstate(invalid="ignore"):
            gain = truncate(self.node_gain(lg, lh) + self.node_gain(rg, rh) - self.node_gain(g_sum, h_sum))
        bad = (
            np.isnan(gain)
            | (gain < self.min_impurity_split)
            | (lc < self.min_leaf_node)
            | (rc < self.min_leaf_node)
            | (lh < self.min_child_weight)
            | (rh < self.min_child_weight)
        )
        return np.where(bad, -np.inf, gain)


@dataclass(frozen=True)
class BestSplit:
    """The best split of one node found in one party's histogram.

    :param index: candidate index in that party's (for a host: shuffled) candidate list.
    """

    gain: float
    index: int
    lg: float
    lh: float
    lc: float


def best_splits(
    rules: SplitRules,
    lg: np.ndarray,
    lh: np.ndarray,
    lc: np.ndarray,
    g_sum: np.ndarray,
    h_sum: np.ndarray,
    c_sum: np.ndarray,
) -> list[BestSplit | None]:
    """Per node, the best candidate (first of equal gains, as ``torch.max``), or None."""
    if lg.shape[1] == 0:
        return [None] * lg.shape[0]
    gain = rules.gains(lg, lh, lc, g_sum, h_sum, c_sum)
    best = np.argmax(gain, axis=1)
    out: list[BestSplit | None] = []
    for i, j in enumerate(best.tolist()):
        value = float(gain[i, j])
        if value == -np.inf or c_sum[i] < rules.min_sample_split:
            out.append(None)
        else:
            out.append(BestSplit(value, j, float(lg[i, j]), float(lh[i, j]), float(lc[i, j])))
    return out


# ----------------------------------------------------------------------------- trees


@dataclass
class Node:
    """One tree node in FATE 2.2's layout (``tree_core/decision_tree.py Node.to_dict``).

    A split owned by another party has ``fid``/``bid`` None here: only its owner (``sitename``) knows the
    feature and threshold; ``split_id`` is the owner's opaque handle for it.
    """

    nid: int
    sitename: str | None = None
    fid: str | None = None
    bid: float | None = None
    weight: float = 0.0
    is_leaf: bool = False
    grad: float | None = None
    hess: float | None = None
    l: int = -1  # noqa: E741 - FATE's field name
    r: int = -1
    missing_dir: int = 1
    sample_num: int = 0
    is_left_node: bool = False
    sibling_nodeid: int | None = None
    parent_nodeid: int | None = None
    split_id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """FATE's node dict."""
        return {
            "nid": self.nid,
            "sitename": self.sitename,
            "fid": self.fid,
            "bid": self.bid,
            "weight": self.weight,
            "is_leaf": self.is_leaf,
            "grad": self.grad,
            "hess": self.hess,
            "l": self.l,
            "r": self.r,
            "missing_dir": self.missing_dir,
            "sample_num": self.sample_num,
            "is_left_node": self.is_left_node,
            "sibling_nodeid": self.sibling_nodeid,
            "parent_nodeid": self.parent_nodeid,
            "split_id": self.split_id,
        }

    def masked(self) -> dict[str, Any]:
        """What other parties may see of the node: structure and owner, no feature, threshold or weight."""
        return {
            "nid": self.nid,
            "sitename": self.sitename,
            "is_leaf": self.is_leaf,
            "l": self.l,
            "r": self.r,
            "sample_num": self.sample_num,
            "is_left_node": self.is_left_node,
            "sibling_nodeid": self.sibling_nodeid,
            "parent_nodeid": self.parent_nodeid,
            "split_id": self.split_id,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Node:
        """Inverse of :meth:`to_dict` (also reads :meth:`masked` dicts)."""
        names = cls.__dataclass_fields__
        return cls(**{k: d[k] for k in names if k in d})


@dataclass
class Importance:
    """FATE's ``FeatureImportance``: summed gain and split count."""

    gain: float = 0.0
    split: int = 0

    def to_dict(self) -> dict[str, Any]:
        """FATE's dict form."""
        return {"gain": self.gain, "split": self.split}


def add_importance(into: dict[str, Importance], name: str, gain: float) -> None:
    """Count one split on ``name`` with ``gain``."""
    imp = into.setdefault(name, Importance())
    imp.gain += gain
    imp.split += 1


@dataclass
class FlatTree:
    """A tree as arrays indexed by node id, for vectorised traversal.

    :param local: whether this party owns the node's split (and so has ``col``/``value``).
    :param col: the data column the split tests (−1 where not local).
    """

    is_leaf: np.ndarray
    local: np.ndarray
    col: np.ndarray
    value: np.ndarray
    left: np.ndarray
    right: np.ndarray
    weight: np.ndarray


def flat_tree(
    nodes: Sequence[Mapping[str, Any]], sitename: str, columns: Mapping[str, int], where: str
) -> FlatTree:
    """Arrays of a FATE-layout tree for party ``sitename`` whose data has ``columns`` (name → index)."""
    size = 1 + max((int(n["nid"]) for n in nodes), default=0)
    is_leaf = np.ones(size, dtype=bool)
    local = np.zeros(size, dtype=bool)
    col = np.full(size, -1, dtype=np.int64)
    value = np.zeros(size)
    left = np.full(size, -1, dtype=np.int64)
    right = np.full(size, -1, dtype=np.int64)
    weight = np.zeros(size)
    for n in nodes:
        nid = int(n["nid"])
        is_leaf[nid] = bool(n.get("is_leaf"))
        weight[nid] = float(n.get("weight") or 0.0)
        left[nid] = int(n.get("l", -1))
        right[nid] = int(n.get("r", -1))
        if not is_leaf[nid] and n.get("sitename") == sitename:
            fid = n.get("fid")
            if fid is None or n.get("bid") is None:
                raise ComponentError(f"{where}: node {nid} of this party has no feature or threshold")
            if str(fid) not in columns:
                raise ComponentError(f"{where}: the model splits on feature {fid!r}, which the data lacks")
            local[nid] = True
            col[nid] = columns[str(fid)]
            value[nid] = float(n["bid"])
    return FlatTree(is_leaf, local, col, value, left, right, weight)


def advance(tree: FlatTree, pos: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Move each row down through this party's splits until a leaf (−(nid+1)) or another party's split.

    :param pos: current node id per row, negative when the row already reached a leaf.
    """
    pos = pos.copy()
    rows = np.arange(len(pos))
    for _ in range(len(tree.is_leaf) + 1):
        active = pos >= 0
        at = np.where(active, pos, 0)
        leaf = active & tree.is_leaf[at]
        pos[leaf] = -(pos[leaf] + 1)
        step = active & ~tree.is_leaf[at] & tree.local[at]
        if not step.any():
            break
        r = rows[step]
        node = pos[r]
        go_left = x[r, tree.col[node]] <= tree.value[node] + FLOAT_ZERO
        pos[r] = np.where(go_left, tree.left[node], tree.right[node])
    return pos


def predictions_frame_columns(
    objective: Objective, raw: np.ndarray, threshold: float = 0.5
) -> dict[str, Any]:
    """``predict_result``, ``predict_score`` and ``predict_detail`` (FATE's ``compute_predict_details``)."""
    pred = objective.predict(raw)
    if objective.task_type == "binary":
        p = pred[:, 0]
        return {
            "predict_result": (p > threshold).astype(np.int64),
            "predict_score": p,
            "predict_detail": [json.dumps({"0": float(1 - v), "1": float(v)}) for v in p],
        }
    if objective.task_type == "multi":
        return {
            "predict_result": np.argmax(pred, axis=1).astype(np.int64),
            "predict_score": pred.max(axis=1),
            "predict_detail": [json.dumps({str(j): float(v) for j, v in enumerate(row)}) for row in pred],
        }
    v = pred[:, 0]
    return {
        "predict_result": v,
        "predict_score": v,
        "predict_detail": [json.dumps({"predict_score": float(s)}) for s in v],
    }


__all__ = [
    "FLOAT_ZERO",
    "BestSplit",
    "Binned",
    "FlatTree",
    "Importance",
    "Node",
    "Objective",
    "SplitRules",
    "add_importance",
    "advance",
    "best_splits",
    "bin_features",
    "bucketize",
    "candidate_index",
    "flat_tree",
    "goss_mask",
    "plain_histograms",
    "predictions_frame_columns",
    "split_points",
    "truncate",
]
