"""hetero_secureboost@1.0.0 — FATE 1.x ``HeteroSecureBoost`` / 2.x ``hetero_secureboost``: vertical gradient boosting.

Roles: the guest holds the labels, some features and the Paillier key; each host holds other features
of the same (intersected) ids. Rows are aligned by sorting on the id (checked with a digest). Per tree
(FATE 2.2's protocol, ``python/fate/ml/ensemble``; see :mod:`._sbt_crypto` for the arithmetic):

1. the guest computes g and h from the loss (one tree per class and round for ``multi:ce``), picks the
   GOSS sample if asked, packs (g, h, 1) of each row into one plaintext, encrypts and sends them;
2. per layer each host sums the ciphertexts into per-node, per-feature, per-bin histograms (the
   smaller child only, the sibling by subtraction), turns them into cumulative left sums — one per
   split candidate that partitions the node's rows in a new way —, shuffles each node's candidates
   with a secret permutation, compresses several into one ciphertext, re-randomises and sends them;
3. the guest decrypts, computes the XGBoost gain of its own (plaintext) and the hosts' candidates and
   keeps the best split per node. A host's winning split is stored at the guest only as (owner, index
   into that host's shuffled list): its feature and threshold never leave the host;
4. the guest sends the layer's nodes without weights; each host maps its own winners back to
   (feature, bin) and tells the guest which rows go left; the guest sends everyone the rows' new nodes.

The host sees ciphertexts, the tree's shape and which rows share a node (as in FATE); it never sees a
label, gradient, hessian, leaf weight or the guest's thresholds. ``complete_secure: k`` grows the first
``k`` trees from the guest's features alone. Predict: the guest walks each row down its own splits; where
a host's split decides, the host is sent the rows' node ids and answers with the nodes it reaches.

Each party saves its share in FATE 2.2's model layout (``HeteroSecureBoostGuest/Host.get_model``) under
``fate_models`` — the board renders its trees (a host's split shown by owner only) and the flow API
returns it as FATE does; a model trained by FATE's own component predicts here too.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from fate_airflow.components._frames import (
    feature_matrix,
    label_vector,
    prediction_frame,
    prediction_table,
    sorted_by_id,
)
from fate_airflow.components._sbt_core import (
    BestSplit,
    Binned,
    Importance,
    Node,
    Objective,
    SplitRules,
    add_importance,
    advance,
    best_splits,
    bin_features,
    candidate_index,
    flat_tree,
    goss_mask,
    plain_histograms,
    predictions_frame_columns,
)
from fate_airflow.components._sbt_crypto import (
    HistogramBuilder,
    KeyOwner,
    PackLayout,
    pack_bytes,
    secret_permutation,
    unpack_bytes,
)
from fate_airflow.components._sbt_params import (
    BINARY_BCE,
    CROSS_ENTROPY_AUTO,
    MULTI_CE,
    REGRESSION_L2,
    SBTConfig,
    read_sbt_config,
)
from fate_airflow.components.context import (
    PREDICT_KEYS,
    TEST_OUT_KEYS,
    TRAIN_OUT_KEYS,
    FateComponent,
    TaskContext,
)
from fate_airflow.components.paillier import Keypair, PublicKey
from fate_airflow.core.errors import ComponentError
from fate_airflow.core.types import Party
from fate_airflow.storage.artifacts import declared_key
from fate_airflow.storage.computing import choose_computing
from fate_airflow.storage.table import Table
from fate_airflow.tracking.model_store import StoredModel

_MODEL_OUT = ("output_model", "train_output_model")
#: Below this many rows the computing pool costs more than it saves.
_MIN_PARALLEL_ROWS = 64


def sitename(party: Party) -> str:
    """FATE's name of a party in tree nodes (``ctx.local.name``): ``guest_9999``."""
    return f"{party.role}_{party.party_id}"


def _int_array(obj: object, what: str, length: int | None = None) -> np.ndarray:
    if not isinstance(obj, np.ndarray) or obj.dtype.kind not in "iu" or obj.ndim not in (1, 2):
        raise ComponentError(f"malformed {what}")
    if length is not None and len(obj) != length:
        raise ComponentError(f"malformed {what}: expected {length} rows, got {len(obj)}")
    return np.asarray(obj, dtype=np.int64)


class HeteroSecureBoost(FateComponent):
    """Vertical SecureBoost (guest + hosts; the guest holds the key)."""

    roles: ClassVar[tuple[str, ...]] = ("guest", "host")

    def execute(self, ctx: TaskContext) -> None:
        """Train, or predict with a stored model."""
        if len(ctx.parties_of("guest")) != 1 or not ctx.parties_of("host"):
            raise ComponentError(
                f"{ctx.where}: hetero SecureBoost needs exactly one guest and at least one host"
            )
        if ctx.stage == "cross_validation" or ctx.has_input(("cv_data",)):
            raise ComponentError(
                f"{ctx.where}: cross validation is not implemented by the native hetero SecureBoost; "
                "with the FATE provider installed, FATE's hetero_secureboost runs such tasks"
            )
        ctx.refuse_warm_start("hetero SecureBoost", "hetero_secureboost")
        model = ctx.input_model()
        if ctx.predicts(model):
            _predict(ctx, model)
            return
        cfg = read_sbt_config(ctx.params)
        ctx.note_warnings(cfg.warnings)
        if ctx.has_input(("validate_data",)):
            ctx.info("validate_data is not used (FATE 2.2's hetero_secureboost does not use it either)")
        table = sorted_by_id(ctx.training_table())
        if ctx.role == "guest":
            _GuestTrainer(ctx, cfg, table).run()
        else:
            _HostTrainer(ctx, cfg, table).run()


# ============================================================================ training: guest


class _GuestTrainer:
    def __init__(self, ctx: TaskContext, cfg: SBTConfig, table: Table) -> None:
        self.ctx = ctx
        self.cfg = cfg
        self.table = table
        self.hosts = ctx.parties_of("host")
        self.site = sitename(ctx.local)
        self.host_sites = [sitename(h) for h in self.hosts]
        self.header = list(table.meta.feature_columns)
        self.x = feature_matrix(table, ctx.where)
        y = label_vector(table, ctx.where)
        objective, num_class = cfg.objective, cfg.num_class
        if objective == CROSS_ENTROPY_AUTO:  # FATE 1.x: binary or multi-class by the labels
            classes = np.unique(y)
            objective = BINARY_BCE if set(classes.tolist()) <= {0.0, 1.0} else MULTI_CE
            num_class = int(classes.max()) + 1 if objective == MULTI_CE else 2
        self.obj = Objective(objective, num_class)
        self.y = self.obj.check_labels(y, ctx.where)
        self.rules = SplitRules(
            cfg.l1,
            cfg.l2,
            cfg.min_impurity_split,
            cfg.min_sample_split,
            cfg.min_leaf_node,
            cfg.min_child_weight,
        )

    # ------------------------------------------------------------------ boosting

    def run(self) -> None:
        ctx, cfg, obj = self.ctx, self.cfg, self.obj
        n, f = self.x.shape
        ctx.align_rows_as_guest(self.hosts, self.table.ids, "train", "hetero SecureBoost")
        started = time.monotonic()
        binned = bin_features(self.x, cfg.max_bin)
        keypair = Keypair.generate(cfg.cipher, cfg.key_length)
        key = keypair.public
        ctx.info("cipher: %s", key.describe())
        if key.kind != "paillier":
            ctx.warning("training WITHOUT encryption (plaintext_debug cipher, explicitly requested)")
        ctx.remote({"key": key.to_wire(), "dim": obj.dim}, "sbt_setup", "0", self.hosts)
        owner = KeyOwner(keypair, choose_computing(n, _MIN_PARALLEL_ROWS), ctx.abort)
        raw, init_score = obj.init_scores(self.y.astype(np.float64))
        rng = np.random.default_rng(cfg.random_seed)
        trees: list[list[Node]] = []
        importances: list[dict[str, Importance]] = []
        losses: list[float] = []
        tree_seconds: list[float] = []
        ctx.info(
            "training: %d rows, %d guest features, %d host(s), objective %s, %d trees × %d, depth %d, cipher %s",
            n, f, len(self.hosts), obj.name, cfg.num_trees, obj.dim, cfg.max_depth, key.describe(),
        )  # fmt: skip
        t = 0
        for r in range(cfg.num_trees):
            ctx.check_abort()
            g_all, h_all = obj.grad_hess(self.y, raw)
            federated = r >= cfg.complete_secure
            for d in range(obj.dim):
                t0 = time.monotonic()
                keep = None
                if cfg.goss and r >= cfg.goss_start_iter:
                    keep = goss_mask(g_all[:, d], cfg.top_rate, cfg.other_rate, rng)
                nodes, leaf, imp = self._tree(t, federated, g_all[:, d], h_all[:, d], keep, binned, owner)
                weights = np.array([nd.weight for nd in nodes])
                raw[:, d] += cfg.learning_rate * weights[leaf]
                trees.append(nodes)
                importances.append(imp)
                tree_seconds.append(time.monotonic() - t0)
                ctx.info(
                    "tree %d (round %d, class %d): %d nodes, %.2f s", t, r, d, len(nodes), tree_seconds[-1]
                )
                t += 1
            losses.append(obj.loss(self.y, raw))
            ctx.info("round %d: loss %.6f", r, losses[-1])
            if (
                cfg.early_stop_tol is not None
                and len(losses) > 1
                and abs(losses[-2] - losses[-1]) < cfg.early_stop_tol
            ):
                ctx.info("loss changed less than tol %g: stopping after %d rounds", cfg.early_stop_tol, r + 1)
                break
        ctx.remote({"done": True}, "tree_start", str(t), self.hosts)
        out = self._predictions(raw)
        ctx.save_data(out, TRAIN_OUT_KEYS)
        doc = self._model(trees, importances, init_score, losses)
        _save(ctx, doc, {"cipher": key.kind, "key_length": key.key_length, "objective": obj.name})
        ctx.metrics.update({"loss_history": losses, "loss": losses[-1], "trees": len(trees)})
        ctx.summary.update(
            {
                "rows": n,
                "features": f,
                "objective": obj.name,
                "num_class": obj.num_class,
                "trees": len(trees),
                "rounds": len(losses),
                "loss_history": losses,
                "cipher": key.kind,
                "key_length": key.key_length,
                "tree_seconds": [round(s, 3) for s in tree_seconds],
                "seconds": round(time.monotonic() - started, 3),
                "he_ops": owner.ops.as_dict(),
                "workers": owner.computing.cores,
            }
        )

    def _predictions(self, raw: np.ndarray) -> Table:
        return _prediction_table(self.table, self.obj, raw, "train")

    def _model(
        self,
        trees: list[list[Node]],
        importances: list[dict[str, Importance]],
        init_score: float | None,
        losses: list[float],
    ) -> dict[str, Any]:
        cfg, obj = self.cfg, self.obj
        total: dict[str, Importance] = {}
        for imp in importances:
            for k, v in imp.items():
                acc = total.setdefault(k, Importance())
                acc.gain += v.gain
                acc.split += v.split
        tree_hyper = {
            "max_depth": cfg.max_depth,
            "valid_features": None,
            "l1": cfg.l1,
            "l2": cfg.l2,
            "use_missing": False,
            "zero_as_missing": False,
            "objective": obj.name,
        }
        return {
            "hyper_param": {
                "num_trees": cfg.num_trees,
                "learning_rate": cfg.learning_rate,
                "max_depth": cfg.max_depth,
                "objective": obj.name,
                "max_bin": cfg.max_bin,
                "l2": cfg.l2,
                "num_class": obj.num_class,
                "complete_secure": cfg.complete_secure,
            },
            "trees": [
                {
                    "nodes": [nd.to_dict() for nd in nodes],
                    "feature_importance": {k: v.to_dict() for k, v in imp.items()},
                    "hyper_param": tree_hyper,
                }
                for nodes, imp in zip(trees, importances, strict=True)
            ],
            "fid_name_mapping": dict(enumerate(self.header)),
            "feature_importance": {k: v.to_dict() for k, v in total.items()},
            "init_score": init_score,
            "loss_history": losses,
        }

    # ------------------------------------------------------------------ one tree

    def _tree(
        self,
        t: int,
        federated: bool,
        g: np.ndarray,
        h: np.ndarray,
        keep: np.ndarray | None,
        binned: Binned,
        owner: KeyOwner,
    ) -> tuple[list[Node], np.ndarray, dict[str, Importance]]:
        """Grow tree ``t``; returns its nodes (by id), each row's leaf id and the guest's importances."""
        ctx, cfg = self.ctx, self.cfg
        tag = str(t)
        n = len(g)
        w = np.ones(n) if keep is None else keep.astype(np.float64)
        gk, hk = g * w, h * w
        layout: PackLayout | None = None
        if federated:
            kept_g = g if keep is None else g[keep]
            kept_h = h if keep is None else h[keep]
            layout = PackLayout.plan(kept_g, kept_h, owner.key_bits, cfg.split_info_pack, ctx.where)
            cts = owner.encrypt(layout.pack(g, h, keep))
            ctx.remote(
                {"mode": "all", "layout": layout.to_wire(), "count": n, "gh": pack_bytes(owner.key, cts)},
                "tree_start",
                tag,
                self.hosts,
            )
        else:
            ctx.remote({"mode": "guest"}, "tree_start", tag, self.hosts)
        feats, bids = candidate_index(binned.n_bins)
        width = binned.width
        root = Node(nid=0, sitename=self.site, grad=float(gk.sum()), hess=float(hk.sum()), sample_num=n)
        nodes: dict[int, Node] = {0: root}
        guest_split: dict[int, tuple[int, int]] = {}
        importance: dict[str, Importance] = {}
        pos = np.zeros(n, dtype=np.int64)
        cur = [root]
        next_id = 1
        for depth in range(cfg.max_depth):
            if not cur:
                break
            ctx.check_abort()
            dtag = f"{t}.{depth}"
            lookup = np.full(next_id, -1, dtype=np.int64)
            for i, nd in enumerate(cur):
                lookup[nd.nid] = i
            active = np.flatnonzero((pos >= 0) & (lookup[np.maximum(pos, 0)] >= 0))
            slots = lookup[pos[active]]
            k = len(cur)
            g_sum = np.array([nd.grad or 0.0 for nd in cur])
            h_sum = np.array([nd.hess or 0.0 for nd in cur])
            c_sum = np.bincount(slots, weights=w[active], minlength=k)
            hg, hh, hc = plain_histograms(
                binned.bins[active], slots, k, width, [gk[active], hk[active], w[active]]
            )
            lg, lh, lc = (np.cumsum(a, axis=2)[:, feats, bids] for a in (hg, hh, hc))
            # guest first, then the hosts in order; a later party wins only with a strictly larger gain
            choices: list[tuple[BestSplit, int] | None] = [
                None if b is None else (b, -1)
                for b in best_splits(self.rules, lg, lh, lc, g_sum, h_sum, c_sum)
            ]
            if federated:
                assert layout is not None
                for hi, host in enumerate(self.hosts):
                    for i, best in enumerate(
                        self._host_best(host, dtag, cur, layout, owner, g_sum, h_sum, c_sum)
                    ):
                        held = choices[i]
                        if best is not None and (held is None or best.gain > held[0].gain):
                            choices[i] = (best, hi)
            nxt: list[Node] = []
            for nd, choice in zip(cur, choices, strict=True):
                if choice is None:
                    nd.is_leaf = True
                    nd.sitename = self.site
                    continue
                best, who = choice
                if who < 0:
                    fi, bi = int(feats[best.index]), int(bids[best.index])
                    nd.sitename = self.site
                    nd.fid = self.header[fi]
                    nd.bid = float(binned.points[fi][bi])
                    guest_split[nd.nid] = (fi, bi)
                    add_importance(importance, self.header[fi], best.gain)
                else:
                    nd.sitename = self.host_sites[who]
                    nd.split_id = best.index
                nd.missing_dir = 1
                nd.l, nd.r = next_id, next_id + 1
                next_id += 2
                left = Node(
                    nid=nd.l,
                    grad=best.lg,
                    hess=best.lh,
                    weight=self.rules.node_weight(best.lg, best.lh),
                    parent_nodeid=nd.nid,
                    sibling_nodeid=nd.r,
                    is_left_node=True,
                )
                rg, rh = float((nd.grad or 0.0) - best.lg), float((nd.hess or 0.0) - best.lh)
                right = Node(
                    nid=nd.r,
                    grad=rg,
                    hess=rh,
                    weight=self.rules.node_weight(rg, rh),
                    parent_nodeid=nd.nid,
                    sibling_nodeid=nd.l,
                )
                nxt += [left, right]
                nodes[left.nid] = left
                nodes[right.nid] = right
            more = bool(nxt) and depth + 1 < cfg.max_depth
            if federated:
                ctx.remote(
                    {"cur": [nd.masked() for nd in cur], "next": [nd.masked() for nd in nxt], "more": more},
                    "sync_nodes",
                    dtag,
                    self.hosts,
                )
            pos = self._move_rows(dtag, cur, pos, active, guest_split, binned, federated)
            for child in nxt:
                child.sample_num = int(np.count_nonzero(pos == child.nid))
            if federated and more:
                ctx.remote(pos.astype(np.int32), "positions", dtag, self.hosts)
            cur = nxt if more else []
            if not more:
                for nd in nxt:
                    nd.is_leaf = True
                    nd.sitename = self.site
        for nd in nodes.values():
            if nd.is_leaf:
                pos[pos == nd.nid] = -(nd.nid + 1)
        if np.any(pos >= 0):
            raise ComponentError(f"{ctx.where}: tree {t}: rows left on inner nodes")
        ordered = [nodes[i] for i in sorted(nodes)]
        if [nd.nid for nd in ordered] != list(range(len(ordered))):
            raise ComponentError(f"{ctx.where}: tree {t}: node ids are not contiguous")
        ctx.remote({"nodes": [nd.masked() for nd in ordered]}, "tree_end", tag, self.hosts)
        return ordered, -(pos + 1), importance

    def _host_best(
        self,
        host: Party,
        dtag: str,
        cur: Sequence[Node],
        layout: PackLayout,
        owner: KeyOwner,
        g_sum: np.ndarray,
        h_sum: np.ndarray,
        c_sum: np.ndarray,
    ) -> list[BestSplit | None]:
        """Decrypt one host's histograms of this layer and find its best split per node."""
        ctx = self.ctx
        msg = ctx.get_one("host_hist", dtag, host)
        nids = [nd.nid for nd in cur]
        if not isinstance(msg, dict) or msg.get("nids") != nids:
            raise ComponentError(f"{ctx.where}: malformed histograms from {host}")
        sizes, counts = msg.get("sizes"), msg.get("cts")
        k = layout.per_ct
        if (
            not isinstance(sizes, list)
            or not isinstance(counts, list)
            or len(sizes) != len(nids)
            or len(counts) != len(nids)
            or not all(isinstance(s, int) and s >= 0 for s in sizes)
            or counts != [math.ceil(s / k) for s in sizes]
        ):
            raise ComponentError(f"{ctx.where}: malformed histogram sizes from {host}")
        cts = unpack_bytes(owner.key, msg.get("ct"), sum(counts), f"histograms from {host}")
        plains = owner.decrypt(cts)
        out: list[BestSplit | None] = []
        start = 0
        for i, (size, count) in enumerate(zip(sizes, counts, strict=True)):
            lg, lh, lc = layout.unpack(plains[start : start + count], size)
            start += count
            out.append(
                best_splits(
                    self.rules,
                    lg[None, :],
                    lh[None, :],
                    lc[None, :],
                    g_sum[i : i + 1],
                    h_sum[i : i + 1],
                    c_sum[i : i + 1],
                )[0]
            )
        return out

    def _move_rows(
        self,
        dtag: str,
        cur: Sequence[Node],
        pos: np.ndarray,
        active: np.ndarray,
        guest_split: Mapping[int, tuple[int, int]],
        binned: Binned,
        federated: bool,
    ) -> np.ndarray:
        """Every active row's node after this layer (guest splits here, host splits from their owner)."""
        ctx = self.ctx
        new = pos.copy()
        rows_of = {nd.nid: active[pos[active] == nd.nid] for nd in cur}
        answers: dict[str, Any] = {}
        if federated:
            for host in self.hosts:
                msg = ctx.get_one("host_directions", dtag, host)
                if not isinstance(msg, dict):
                    raise ComponentError(f"{ctx.where}: malformed directions from {host}")
                answers[sitename(host)] = msg
        for nd in cur:
            rows = rows_of[nd.nid]
            if nd.is_leaf:
                new[rows] = -(nd.nid + 1)
                continue
            if nd.nid in guest_split:
                fi, bi = guest_split[nd.nid]
                go_left = binned.bins[rows, fi] <= bi
            else:
                bits = answers.get(str(nd.sitename), {}).get(str(nd.nid))
                if (
                    not isinstance(bits, np.ndarray)
                    or bits.dtype != np.uint8
                    or len(bits) != (len(rows) + 7) // 8
                ):
                    raise ComponentError(f"{ctx.where}: {nd.sitename} sent no directions for node {nd.nid}")
                go_left = np.unpackbits(bits, count=len(rows)).astype(bool)
            new[rows] = np.where(go_left, nd.l, nd.r)
        return new


# ============================================================================ training: host


class _HostTrainer:
    def __init__(self, ctx: TaskContext, cfg: SBTConfig, table: Table) -> None:
        self.ctx = ctx
        self.cfg = cfg
        self.table = table
        self.guest = ctx.parties_of("guest")[0]
        self.site = sitename(ctx.local)
        self.header = list(table.meta.feature_columns)
        self.x = feature_matrix(table, ctx.where)

    def run(self) -> None:
        ctx, cfg = self.ctx, self.cfg
        n, f = self.x.shape
        ctx.align_rows_as_host(self.guest, self.table.ids, "train")
        started = time.monotonic()
        binned = bin_features(self.x, cfg.max_bin)
        setup = ctx.get_one("sbt_setup", "0", self.guest)
        if not isinstance(setup, dict):
            raise ComponentError(f"{ctx.where}: malformed setup from the guest")
        key = _guest_key(ctx, setup.get("key"), self.cfg)
        ctx.info("training: %d rows, %d host features, cipher %s", n, f, key.describe())
        builder = HistogramBuilder(key, choose_computing(n, _MIN_PARALLEL_ROWS), ctx.abort)
        feats, bids = candidate_index(binned.n_bins)
        # The candidate order must stay secret from the guest, yet repeat run after run: the guest
        # takes the first of equally good splits (frequent under GOSS, where unsampled rows weigh
        # nothing), so a fresh shuffle each run would grow different trees from the same job.
        data = hashlib.sha256(np.ascontiguousarray(binned.bins).tobytes()).hexdigest()
        self.order_key = ctx.private_key(f"sbt candidate order\0seed {cfg.random_seed}\0bins {data}")
        trees: list[list[dict[str, Any]]] = []
        importances: list[dict[str, Importance]] = []
        tree_seconds: list[float] = []
        t = 0
        while True:
            ctx.check_abort()
            msg = ctx.get_one("tree_start", str(t), self.guest)
            if not isinstance(msg, dict):
                raise ComponentError(f"{ctx.where}: malformed tree start from the guest")
            if msg.get("done"):
                break
            t0 = time.monotonic()
            own: dict[int, tuple[int, int]] = {}
            if msg.get("mode") == "all":
                own = self._tree(t, msg, binned, builder, feats, bids, key)
            elif msg.get("mode") != "guest":
                raise ComponentError(f"{ctx.where}: unknown tree mode from the guest")
            end = ctx.get_one("tree_end", str(t), self.guest)
            nodes = end.get("nodes") if isinstance(end, dict) else None
            if not isinstance(nodes, list) or not all(isinstance(nd, dict) for nd in nodes):
                raise ComponentError(f"{ctx.where}: malformed tree from the guest")
            tree, imp = self._own_tree(nodes, own, binned)
            trees.append(tree)
            importances.append(imp)
            tree_seconds.append(time.monotonic() - t0)
            t += 1
        ctx.save_empty_data(TRAIN_OUT_KEYS)
        total: dict[str, Importance] = {}
        for imp in importances:
            for k, v in imp.items():
                acc = total.setdefault(k, Importance())
                acc.split += v.split
        doc = {
            "hyper_param": {
                "num_trees": cfg.num_trees,
                "max_depth": cfg.max_depth,
                "max_bin": cfg.max_bin,
                "complete_secure": cfg.complete_secure,
            },
            "trees": [
                {
                    "nodes": nodes,
                    "feature_importance": {k: v.to_dict() for k, v in imp.items()},
                    "hyper_param": {
                        "max_depth": cfg.max_depth,
                        "valid_features": None,
                        "use_missing": False,
                        "zero_as_missing": False,
                    },
                }
                for nodes, imp in zip(trees, importances, strict=True)
            ],
            "fid_name_mapping": dict(enumerate(self.header)),
            "feature_importance": {k: v.to_dict() for k, v in total.items()},
        }
        _save(ctx, doc, {"cipher": key.kind, "key_length": key.key_length})
        ctx.summary.update(
            {
                "rows": n,
                "features": f,
                "trees": len(trees),
                "cipher": key.kind,
                "key_length": key.key_length,
                "tree_seconds": [round(s, 3) for s in tree_seconds],
                "seconds": round(time.monotonic() - started, 3),
                "he_ops": builder.ops.as_dict(),
                "workers": builder.computing.cores,
            }
        )

    def _tree(
        self,
        t: int,
        msg: Mapping[str, Any],
        binned: Binned,
        builder: HistogramBuilder,
        feats: np.ndarray,
        bids: np.ndarray,
        key: PublicKey,
    ) -> dict[int, tuple[int, int]]:
        """Serve the guest's layers of tree ``t``; returns this host's splits ``nid → (feature, bin)``."""
        ctx, cfg = self.ctx, self.cfg
        n = len(self.x)
        layout = PackLayout.from_wire(msg.get("layout"), builder.key_bits)
        if msg.get("count") != n:
            raise ComponentError(f"{ctx.where}: the guest sent g/h for {msg.get('count')} rows, not {n}")
        cts = unpack_bytes(key, msg.get("gh"), n, "encrypted g/h")
        width = binned.width
        n_bins = binned.n_bins
        pos = np.zeros(n, dtype=np.int64)
        cur: list[dict[str, Any]] = [
            {"nid": 0, "parent_nodeid": None, "sibling_nodeid": None, "is_left_node": False}
        ]
        cache: dict[int, list[int]] = {}
        own: dict[int, tuple[int, int]] = {}
        for depth in itertools.count():
            ctx.check_abort()
            dtag = f"{t}.{depth}"
            nids = [int(nd["nid"]) for nd in cur]
            count = {nid: int(np.count_nonzero(pos == nid)) for nid in nids}
            direct: list[int] = []
            derived: list[tuple[int, int, int]] = []  # (strong, parent, weak)
            seen: set[int] = set()
            for nd in cur:
                nid, parent, sib = int(nd["nid"]), nd.get("parent_nodeid"), nd.get("sibling_nodeid")
                if nid in seen:
                    continue
                if (
                    cfg.hist_sub
                    and parent is not None
                    and int(parent) in cache
                    and sib is not None
                    and int(sib) in count
                ):
                    sib = int(sib)
                    left, right = (nid, sib) if nd.get("is_left_node") else (sib, nid)
                    # FATE: the left child is the weak one unless its sibling is strictly smaller
                    weak = right if count[right] < count[left] else left
                    strong = left if weak == right else right
                    direct.append(weak)
                    derived.append((strong, int(parent), weak))
                    seen.update((left, right))
                else:
                    direct.append(nid)
                    seen.add(nid)
            rows = np.flatnonzero(np.isin(pos, direct))
            slot_of = {nid: i for i, nid in enumerate(direct)}
            slots = np.array([slot_of[p] for p in pos[rows].tolist()], dtype=np.int64)
            hists = builder.histograms(
                [cts[r] for r in rows.tolist()], binned.bins[rows], slots, len(direct), width
            )
            hist_of = dict(zip(direct, hists, strict=True))
            for strong, parent, weak in derived:
                hist_of[strong] = builder.subtract(cache[parent], hist_of[weak])
            cache = hist_of if cfg.hist_sub else {}
            perms: dict[int, np.ndarray] = {}
            shuffled: list[list[int]] = []
            for nid in nids:
                cands = builder.cumulative(hist_of[nid], n_bins, width)
                # A candidate whose bin is empty splits the node's rows exactly as the one before it
                # (and one with nothing on a side does not split them): send each partition once, as
                # the lowest threshold. The guest learns nothing new (equal sums decrypt equal) and
                # decrypts less; ties resolve like the guest's own features (lowest bin first).
                useful = _useful_candidates(binned.bins[pos == nid], feats, bids, width)
                perms[nid] = useful[secret_permutation(len(useful), self.order_key, f"{dtag}.{nid}")]
                shuffled.append([cands[i] for i in perms[nid].tolist()])
            sealed = builder.seal(shuffled, layout)
            blobs = [ct for node_cts in sealed for ct in node_cts]
            sizes = [len(c) for c in shuffled]
            counts = [len(c) for c in sealed]
            ctx.remote(
                {"nids": nids, "sizes": sizes, "cts": counts, "ct": builder.pack_bytes(blobs)},
                "host_hist",
                dtag,
                [self.guest],
            )
            sync = ctx.get_one("sync_nodes", dtag, self.guest)
            if (
                not isinstance(sync, dict)
                or not isinstance(sync.get("cur"), list)
                or not isinstance(sync.get("next"), list)
            ):
                raise ComponentError(f"{ctx.where}: malformed nodes from the guest")
            directions: dict[str, np.ndarray] = {}
            for nd in sync["cur"]:
                if not isinstance(nd, dict) or nd.get("is_leaf") or nd.get("sitename") != self.site:
                    continue
                nid, split_id = int(nd["nid"]), nd.get("split_id")
                if nid not in perms or not isinstance(split_id, int) or not 0 <= split_id < len(perms[nid]):
                    raise ComponentError(f"{ctx.where}: the guest chose an unknown split for node {nid}")
                idx = int(perms[nid][split_id])
                fi, bi = int(feats[idx]), int(bids[idx])
                own[nid] = (fi, bi)
                node_rows = np.flatnonzero(pos == nid)
                directions[str(nid)] = np.packbits(binned.bins[node_rows, fi] <= bi)
            ctx.remote(directions, "host_directions", dtag, [self.guest])
            if not sync.get("more"):
                break
            pos = _int_array(ctx.get_one("positions", dtag, self.guest), "node positions from the guest", n)
            cur = [nd for nd in sync["next"] if isinstance(nd, dict) and isinstance(nd.get("nid"), int)]
            if not cur:
                break
        return own

    def _own_tree(
        self, nodes: list[dict[str, Any]], own: Mapping[int, tuple[int, int]], binned: Binned
    ) -> tuple[list[dict[str, Any]], dict[str, Importance]]:
        """The tree as this host keeps it: the guest's masked nodes plus this host's feature and threshold."""
        out = []
        imp: dict[str, Importance] = {}
        for nd in sorted(nodes, key=lambda d: int(d.get("nid", -1))):
            node = Node.from_dict(nd)
            node.weight = 0.0  # leaf weights stay at the guest
            if node.nid in own and not node.is_leaf:
                fi, bi = own[node.nid]
                node.fid = self.header[fi]
                node.bid = float(binned.points[fi][bi])
                acc = imp.setdefault(node.fid, Importance())
                acc.split += 1
            out.append(node.to_dict())
        return out, imp


def _useful_candidates(node_bins: np.ndarray, feats: np.ndarray, bids: np.ndarray, width: int) -> np.ndarray:
    """Indices of the candidates that split a node's rows in a new way: non-empty bin, rows on both sides."""
    n_rows, n_feat = node_bins.shape
    if n_rows == 0 or len(feats) == 0:
        return np.zeros(0, dtype=np.int64)
    flat = (np.arange(n_feat)[None, :] * width + node_bins.astype(np.int64)).ravel()
    counts = np.bincount(flat, minlength=n_feat * width).reshape(n_feat, width)
    left = np.cumsum(counts, axis=1)[feats, bids]
    return np.flatnonzero((counts[feats, bids] > 0) & (left < n_rows)).astype(np.int64)


def _guest_key(ctx: TaskContext, obj: object, cfg: SBTConfig) -> PublicKey:
    try:
        key = PublicKey.from_wire(obj, expected_kind=cfg.cipher)
    except ComponentError as exc:
        raise ComponentError(f"{ctx.where}: {str(exc).replace('the arbiter', 'the guest')}") from None
    ctx.info("cipher: %s", key.describe())
    return key


def _save(ctx: TaskContext, doc: Mapping[str, Any], meta: Mapping[str, Any]) -> None:
    """Save a share: FATE's model document under ``fate_models`` (keyed like FATE's output)."""
    key = declared_key(ctx.request.outputs, "model", _MODEL_OUT, "model")
    ctx.save_model(
        {"fate_models": {key: doc}}, meta={"module": "HeteroSecureBoost", **meta}, preferred=_MODEL_OUT
    )


def _prediction_table(table: Table, obj: Objective, raw: np.ndarray, kind: str) -> Table:
    frame = prediction_frame(table)
    for name, values in predictions_frame_columns(obj, raw).items():
        frame[name] = values
    frame["type"] = kind
    return prediction_table(table, frame, obj.task_type)


# ============================================================================ predict


def _fate_doc(ctx: TaskContext, model: StoredModel | None) -> Mapping[str, Any]:
    if model is None:
        raise ComponentError(f"{ctx.where}: predict needs the trained model (model input)")
    docs = model.params.get("fate_models")
    if not isinstance(docs, Mapping) or not docs:
        raise ComponentError(f"{ctx.where}: the model input is not a hetero SecureBoost model")
    doc = docs.get("output_model") or docs.get("model") or next(iter(docs.values()))
    if not isinstance(doc, Mapping) or not isinstance(doc.get("trees"), list):
        raise ComponentError(f"{ctx.where}: the model input has no trees (not a hetero SecureBoost model)")
    return doc


def _header(doc: Mapping[str, Any]) -> list[str]:
    mapping = doc.get("fid_name_mapping") or {}
    return [str(mapping[k]) for k in sorted(mapping, key=lambda k: int(k))]


def _predict(ctx: TaskContext, model: StoredModel | None) -> None:
    doc = _fate_doc(ctx, model)
    table = ctx.input_table(PREDICT_KEYS)
    if table is None:
        raise ComponentError(f"{ctx.where}: predict needs data (test_data)")
    table = sorted_by_id(table)
    header = _header(doc)
    x = feature_matrix(table, ctx.where, header)
    columns = {name: i for i, name in enumerate(header)}
    site = sitename(ctx.local)
    trees = [flat_tree(t["nodes"], site, columns, ctx.where) for t in doc["trees"]]
    guest = ctx.parties_of("guest")[0]
    hosts = ctx.parties_of("host")
    n = len(x)
    ctx.summary.update({"rows": n, "trees": len(trees)})
    if ctx.role == "host":
        ctx.align_rows_as_host(guest, table.ids, "predict")
        for r in itertools.count():
            msg = ctx.get_one("predict_round", f"p{r}", guest)
            if not isinstance(msg, dict):
                raise ComponentError(f"{ctx.where}: malformed predict round from the guest")
            if msg.get("stop"):
                break
            rows = _int_array(msg.get("rows"), "predict rows from the guest")
            pos = _int_array(msg.get("pos"), "predict positions from the guest", len(rows))
            if (
                pos.ndim != 2
                or pos.shape[1] != len(trees)
                or (len(rows) and (rows.min() < 0 or rows.max() >= n))
            ):
                raise ComponentError(f"{ctx.where}: malformed predict positions from the guest")
            new = (
                np.stack([advance(tr, pos[:, j], x[rows]) for j, tr in enumerate(trees)], axis=1)
                if len(trees)
                else pos
            )
            ctx.remote(new.astype(np.int32), "host_pos", f"p{r}", [guest])
        ctx.save_empty_data(TEST_OUT_KEYS)
        return
    ctx.align_rows_as_guest(hosts, table.ids, "predict", "hetero SecureBoost")
    hyper = doc.get("hyper_param") or {}
    obj = Objective(str(hyper.get("objective", BINARY_BCE)), hyper.get("num_class"))
    lr = float(hyper.get("learning_rate", 0.3))
    pos = np.zeros((n, len(trees)), dtype=np.int64)
    rounds = 0
    for r in itertools.count():
        for j, tr in enumerate(trees):
            pos[:, j] = advance(tr, pos[:, j], x)
        pending = np.flatnonzero((pos >= 0).any(axis=1))
        if not len(pending):
            ctx.remote({"stop": True}, "predict_round", f"p{r}", hosts)
            break
        before = pos[pending].copy()
        ctx.remote(
            {"stop": False, "rows": pending, "pos": before.astype(np.int32)}, "predict_round", f"p{r}", hosts
        )
        merged = before.copy()
        for host in hosts:
            got = _int_array(
                ctx.get_one("host_pos", f"p{r}", host), f"predict positions from {host}", len(pending)
            )
            if got.shape != before.shape:
                raise ComponentError(f"{ctx.where}: malformed predict positions from {host}")
            # FATE's _merge_pos_arr: a host's answer wins where it moved the row on
            moved = (merged >= 0) & ((got < 0) | (got > merged))
            merged[moved] = got[moved]
        if np.array_equal(merged, before):
            stuck = sorted(
                {str(nd.get("sitename")) for t in doc["trees"] for nd in t["nodes"]}
                - {sitename(p) for p in ctx.request.parties}
            )
            raise ComponentError(
                f"{ctx.where}: predict makes no progress; the model has splits of parties not in this task: {stuck}"
            )
        pos[pending] = merged
        rounds = r + 1
    raw = _raw_scores(doc, obj, lr, -(pos + 1))
    out = _prediction_table(table, obj, raw, "predict")
    ctx.save_data(out, TEST_OUT_KEYS)
    ctx.summary.update({"objective": obj.name, "predict_rounds": rounds})


def _raw_scores(doc: Mapping[str, Any], obj: Objective, lr: float, leaves: np.ndarray) -> np.ndarray:
    """Σ learning_rate · leaf weight per class (tree ``t`` scores class ``t mod dim``), plus init_score."""
    n = leaves.shape[0]
    raw = np.zeros((n, obj.dim))
    for j, tree in enumerate(doc["trees"]):
        weights = np.zeros(1 + max(int(nd["nid"]) for nd in tree["nodes"]))
        for nd in tree["nodes"]:
            weights[int(nd["nid"])] = float(nd.get("weight") or 0.0)
        raw[:, j % obj.dim] += lr * weights[leaves[:, j]]
    if obj.name == REGRESSION_L2 and doc.get("init_score") is not None:
        raw += float(doc["init_score"])
    return raw


__all__ = ["HeteroSecureBoost", "sitename"]
