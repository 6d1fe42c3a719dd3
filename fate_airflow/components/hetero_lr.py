"""hetero_lr@1.0.0 — FATE 1.x ``HeteroLR`` / 2.x ``coordinated_lr``: vertical logistic regression with an arbiter.

Roles: the guest holds the labels and some features, each host holds other features of the same
(intersected) ids, the arbiter holds the Paillier private key. Rows are aligned by sorting on the id
(checked with a digest before training). Per mini-batch (FATE's protocol, Taylor-approximated loss):

1. each host sends ``[[u_h]] = [[X_h·w_h]]`` (and, with one host, ``[[Σu_h²]]`` and its encrypted
   regulariser for the loss);
2. the guest computes ``[[4d]] = Σ[[u_h]] + (X_g·w_g + b − 2y)`` — ``d = ¼u − ½y`` is the derivative of
   ``log 2 − ½yu + ⅛u²`` with ``y ∈ {−1, 1}`` — re-randomised, and sends it to the hosts;
3. guest and hosts compute their encrypted gradients ``[[Xᵀ·4d]]`` (one multi-exponentiation per
   feature, on the computing pool), add uniform masks ``R mod n`` and send them to the arbiter;
4. the arbiter decrypts the masked gradients (and the encrypted loss), sends each party its masked
   plaintext back; each party removes its mask, adds its penalty and takes an optimizer step;
5. after each epoch the arbiter checks convergence (``diff``/``abs`` on the loss, or
   ``weight_diff`` on ``‖Δw‖``, gathered encrypted through the guest) and tells everyone.

The host sees only ciphertexts and its own data; the arbiter sees masked gradients, the loss and the
weight-change norm; the guest sees ciphertexts of host values. After training (and in predict) the
hosts send their plaintext partial scores ``X_h·w_h`` to the guest, as FATE does, and the guest outputs
``id, label, predict_result, predict_score, predict_detail, type``. Each party saves its own share of
the model (guest: its weights and the intercept; host: its weights; arbiter: training facts).

With several hosts FATE computes no loss; ``early_stop: diff``/``abs`` then falls back to
``weight_diff`` (logged and reported).

Multi-class labels (three or more integer classes) train one-vs-rest, as FATE 2.x's
``coordinated_lr`` does: one model per class (class k's label is +1 on its rows, −1 elsewhere), the
hosts holding their own per-class weights. FATE trains the classes one after another; here they
run in lockstep through the same protocol, every message carrying all still-training classes'
values class-major (so each HE step is one call over all classes and keeps the pool busy), and the
arbiter decides convergence per class, dropping a converged class from the next epochs as FATE's
per-class loop would stop it. The guest's model holds ``labels``, ``class_weights`` and
``intercepts``, a host's ``label_count`` and ``class_weights`` (``ovr: true``); predictions are
FATE's multi-class columns (``predict_score`` the largest class score, ``predict_detail`` every
class's, ``predict_result`` its class) with ``eval_type: multi``.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from fate_airflow.components._frames import (
    binary_predictions,
    feature_matrix,
    label_vector,
    prediction_frame,
    prediction_table,
    sorted_by_id,
)
from fate_airflow.components._lr_params import LRConfig, Optimizer, class_initial_weights, read_config
from fate_airflow.components.context import (
    PREDICT_KEYS,
    TEST_OUT_KEYS,
    TRAIN_OUT_KEYS,
    FateComponent,
    TaskContext,
)
from fate_airflow.components.paillier import (
    HE,
    PAILLIER,
    EncVector,
    Keypair,
    PublicKey,
    decode,
    random_masks,
)
from fate_airflow.core.errors import ComponentError
from fate_airflow.core.types import Party
from fate_airflow.storage.computing import choose_computing
from fate_airflow.storage.table import Table
from fate_airflow.tracking.model_store import StoredModel

#: Below this many Paillier operations per call the pool is not worth its overhead.
_MIN_PARALLEL = 64


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(z, -500, 500))), dtype=np.float64)


def _signed_ints(matrix: np.ndarray, exp: int) -> list[list[int]]:
    """Columns of ``round(x · 2**exp)`` as Python ints (signed)."""
    scaled = np.rint(np.ldexp(matrix, exp))
    return [[int(v) for v in scaled[:, j].tolist()] for j in range(scaled.shape[1])]


def _fixed_point(matrix: np.ndarray, exp: int, where: str) -> np.ndarray:
    """``round(x · 2**exp)`` as int64 (8 bytes per value; columns become Python ints per batch)."""
    scaled = np.rint(np.ldexp(matrix, exp))
    if scaled.size and float(np.abs(scaled).max()) >= 2.0**62:
        raise ComponentError(
            f"{where}: feature values too large for floating_point_precision {exp} (scale the features)"
        )
    return np.asarray(scaled, dtype=np.int64)


def _batch_columns(x_int: np.ndarray, idx: np.ndarray) -> list[list[int]]:
    """The batch's rows of ``x_int``, column by column, as Python ints."""
    columns: list[list[int]] = x_int[idx].T.tolist()
    return columns


def _mask_bytes(values: Sequence[int], n: int) -> bytes:
    width = (n.bit_length() + 7) // 8
    return b"".join(int(v).to_bytes(width, "big") for v in values)


def _unmask_bytes(blob: object, count: int, n: int, what: str) -> list[int]:
    width = (n.bit_length() + 7) // 8
    if not isinstance(blob, (bytes, bytearray)) or len(blob) != width * count:
        raise ComponentError(f"malformed {what}")
    out = [int.from_bytes(blob[i : i + width], "big") for i in range(0, len(blob), width)]
    if any(v >= n for v in out):
        raise ComponentError(f"malformed {what}: value out of range")
    return out


class _Share:
    """State shared by the guest and host sides of one run."""

    def __init__(self, ctx: TaskContext, cfg: LRConfig) -> None:
        self.ctx = ctx
        self.cfg = cfg
        self.guest = ctx.parties_of("guest")[0]
        self.hosts = ctx.parties_of("host")
        self.arbiters = ctx.parties_of("arbiter")


class HeteroLR(FateComponent):
    """Vertical logistic regression (guest + hosts + arbiter)."""

    roles: ClassVar[tuple[str, ...]] = ("guest", "host", "arbiter")

    def execute(self, ctx: TaskContext) -> None:
        """Train, or predict with a stored model."""
        if len(ctx.parties_of("guest")) != 1 or not ctx.parties_of("host"):
            raise ComponentError(f"{ctx.where}: hetero LR needs exactly one guest and at least one host")
        if ctx.role == "arbiter" and ctx.stage == "predict":
            ctx.mark_pass("the arbiter has nothing to do in predict")
            return
        # An arbiter that took a warm start for predict would leave the others waiting for its key.
        ctx.refuse_warm_start("hetero LR", "coordinated_lr")
        model = ctx.input_model()
        if ctx.predicts(model):
            self._predict(ctx, model)
            return
        if len(ctx.parties_of("arbiter")) != 1:
            raise ComponentError(f"{ctx.where}: hetero LR training needs an arbiter (it holds the key)")
        cfg = read_config(ctx.params)
        ctx.note_warnings(cfg.warnings)
        if ctx.role == "arbiter":
            _Arbiter(ctx, cfg).run()
            return
        if ctx.has_input(("validate_data",)):
            ctx.info("validate_data is not used: validation during training is not implemented")
        table = sorted_by_id(ctx.training_table())
        if ctx.role == "guest":
            _GuestTrainer(ctx, cfg, table).run()
        else:
            _HostTrainer(ctx, cfg, table).run()

    # ------------------------------------------------------------------ predict

    def _predict(self, ctx: TaskContext, model: StoredModel | None) -> None:
        if ctx.role == "arbiter":
            ctx.mark_pass("the arbiter has nothing to do in predict")
            return
        if model is None:
            raise ComponentError(f"{ctx.where}: predict needs the trained model (model input)")
        table = ctx.input_table(PREDICT_KEYS)
        if table is None:
            raise ComponentError(f"{ctx.where}: predict needs data (test_data)")
        table = sorted_by_id(table)
        header = list(model.params["header"])
        x = feature_matrix(table, ctx.where, header)
        # A one-vs-rest model keeps one weight row per class (FATE 2.x's ``ovr`` estimators).
        ovr = bool(model.params.get("ovr"))
        if ovr:
            w = np.asarray(model.arrays["class_weights"], dtype=np.float64).reshape(-1, len(header))
            partial = x @ w.T
        else:
            w = np.asarray(model.arrays["weights"], dtype=np.float64)
            partial = x @ w if len(header) else np.zeros(len(table.frame))
        share = _Share(ctx, read_config(ctx.params))
        ctx.summary.update(
            {
                "cipher": "none",
                "note": "predict: hosts send plaintext partial scores x·w to the guest, as FATE does",
            }
        )
        ctx.info("predict: plaintext partial scores (FATE's predict protocol), %d rows", len(x))
        if ctx.role == "host":
            ctx.align_rows_as_host(share.guest, table.ids, "predict")
            ctx.remote(partial.astype(np.float64), "host_partial_score", "predict", [share.guest])
            ctx.save_empty_data(TEST_OUT_KEYS)
            ctx.summary["rows"] = len(x)
            return
        ctx.align_rows_as_guest(share.hosts, table.ids, "predict", "hetero LR")
        if ovr:
            labels = [int(v) for v in model.params["labels"]]
            scores = partial + np.asarray(model.params["intercepts"], dtype=np.float64)
            for host in share.hosts:
                scores = scores + _partial_scores(ctx, host, "predict", len(x), len(labels))
            ctx.save_data(_multi_predictions(table, _sigmoid(scores), labels, "predict"), TEST_OUT_KEYS)
            ctx.summary.update({"rows": len(x), "labels": labels})
            return
        scores = partial + float(model.params.get("intercept", 0.0))
        for host in share.hosts:
            scores = scores + _partial_scores(ctx, host, "predict", len(x), None)
        threshold = float(
            ctx.params.get("threshold", "predict_param.threshold", default=model.params.get("threshold", 0.5))
        )
        out = binary_predictions(table, _sigmoid(scores), threshold, "predict")
        ctx.save_data(out, TEST_OUT_KEYS)
        ctx.summary.update({"rows": len(x), "threshold": threshold})


def _partial_scores(ctx: TaskContext, host: Party, tag: str, n: int, classes: int | None) -> np.ndarray:
    """A host's plaintext partial scores: ``(n,)`` for a binary model, ``(n, classes)`` for one-vs-rest."""
    got = ctx.get_one("host_partial_score", tag, host)
    shape = (n,) if classes is None else (n, classes)
    if not isinstance(got, np.ndarray) or got.shape != shape or got.dtype.kind != "f":
        kind = "binary" if classes is None else f"{classes}-class one-vs-rest"
        raise ComponentError(
            f"{ctx.where}: malformed partial scores from {host} (expected {shape} for a {kind} model; "
            "were guest and host models trained together?)"
        )
    return np.asarray(got, dtype=np.float64)


def _multi_predictions(table: Table, prob: np.ndarray, labels: Sequence[int], kind: str) -> Table:
    """FATE 2.x's multi-class output (``predict_tools.compute_predict_details``, ``MULTI``).

    ``prob`` holds each class model's sigmoid, ``(rows, classes)``, unnormalised as in FATE:
    ``predict_score`` is the largest, ``predict_detail`` maps every class to its score and
    ``predict_result`` is the class of the largest. (FATE writes the argmax *index* there, which is
    the label for its usual labels 0..K−1; the label itself is what evaluation compares.)
    """
    frame = prediction_frame(table)
    best = np.argmax(prob, axis=1)
    frame["predict_result"] = np.asarray(labels, dtype=np.int64)[best]
    frame["predict_score"] = prob[np.arange(len(prob)), best]
    frame["predict_detail"] = [
        json.dumps({str(c): float(v) for c, v in zip(labels, row, strict=True)}) for row in prob.tolist()
    ]
    frame["type"] = kind
    return prediction_table(table, frame, "multi")


def _public_key(share: _Share) -> PublicKey:
    ctx, cfg = share.ctx, share.cfg
    key = PublicKey.from_wire(
        ctx.get_one("paillier_pubkey", "0", share.arbiters[0]), expected_kind=cfg.cipher
    )
    ctx.info("cipher: %s", key.describe())
    ctx.summary.update({"cipher": key.kind, "key_length": key.key_length})
    return key


def _label_classes(y: np.ndarray, where: str) -> list[int] | None:
    """The sorted class labels of a multi-class label column, or None for a binary one.

    Binary is FATE's 0/1 (or −1/1) label and keeps the single-model protocol; three or more classes
    train one-vs-rest, as FATE 2.x's ``coordinated_lr`` does when ``get_dummies`` gives more than two
    columns. Two classes other than 0/1 are refused (FATE would take label 1 as positive, whatever
    the other one is).
    """
    values = np.unique(y)
    classes = set(values.tolist())
    if classes <= {0.0, 1.0} or classes == {-1.0, 1.0}:
        return None
    if len(values) == 2:
        raise ComponentError(f"{where}: binary hetero LR needs labels 0/1 (or -1/1); got {sorted(classes)}")
    if not np.all(values == np.rint(values)):
        raise ComponentError(
            f"{where}: multi-class (one-vs-rest) hetero LR needs integer class labels; got {values[:10].tolist()}"
        )
    return [int(v) for v in values]


def _check_classes(ctx: TaskContext, got: object, label_count: int) -> list[int]:
    """A peer's list of the classes still training: sorted, distinct indices below ``label_count``."""
    if (
        not isinstance(got, list)
        or not got
        or not all(isinstance(k, int) and 0 <= k < label_count for k in got)
        or got != sorted(set(got))
    ):
        raise ComponentError(f"{ctx.where}: malformed class list from a peer")
    return got


def _split(vec: EncVector, parts: int) -> list[EncVector]:
    """``parts`` equal class blocks of a class-major encrypted vector."""
    size = len(vec) // parts
    return [EncVector(vec.cts[j * size : (j + 1) * size], vec.exp) for j in range(parts)]


class _GuestTrainer(_Share):
    """The guest's side: labels, its features, the intercepts; drives the batch plan.

    Binary trains one model; a multi-class label trains ``K`` one-vs-rest models in lockstep — each
    batch message carries every still-training class's values (class-major), so the hosts encrypt
    and the guest re-randomises all classes in one HE call each (every core busy), and a class leaves
    the lockstep when the arbiter finds it converged, as FATE's per-class training would stop it.
    """

    def __init__(self, ctx: TaskContext, cfg: LRConfig, table: Table) -> None:
        super().__init__(ctx, cfg)
        self.table = table
        self.x = feature_matrix(table, ctx.where)
        y = label_vector(table, ctx.where)
        self.labels = _label_classes(y, ctx.where)
        if self.labels is None:
            self.ypm = (2.0 * (y > 0).astype(np.float64) - 1.0).reshape(1, -1)
        else:
            # one-vs-rest: class k's label is +1 on its rows, -1 elsewhere (FATE's get_dummies)
            self.ypm = np.where(y[None, :] == np.asarray(self.labels, dtype=np.float64)[:, None], 1.0, -1.0)

    @property
    def multi(self) -> bool:
        """Whether this is a one-vs-rest (multi-class) run."""
        return self.labels is not None

    def run(self) -> None:
        ctx, cfg = self.ctx, self.cfg
        n, f = self.x.shape
        k_all = self.ypm.shape[0]
        ids = self.table.ids
        self.ctx.align_rows_as_guest(self.hosts, ids, "train", "hetero LR")
        key = _public_key(self)
        computing = choose_computing(n * (f + 1) * k_all, _MIN_PARALLEL)
        he = HE(key, computing, ctx.abort, _MIN_PARALLEL)
        prec = cfg.precision
        loss_available = len(self.hosts) == 1
        early_stop = cfg.early_stop
        if not loss_available and early_stop in ("diff", "abs"):
            msg = f"early_stop {early_stop!r} needs the loss, which FATE does not compute with several hosts; using weight_diff"
            ctx.warning("%s", msg)
            ctx.summary["warnings"] = [*ctx.summary.get("warnings", []), msg]
            early_stop = "weight_diff"
        train_info: dict[str, Any] = {
            "max_iter": cfg.max_iter,
            "early_stop": early_stop,
            "tol": cfg.tol,
            "loss_available": loss_available,
        }
        if self.multi:
            # the count only: the label values stay with the guest (FATE sends the hosts the same)
            train_info["label_count"] = k_all
        ctx.remote(train_info, "train_info", "0", self.arbiters)
        rng = np.random.default_rng(ctx.training_seed(cfg.random_seed))
        size = f + (1 if cfg.fit_intercept else 0)
        w = class_initial_weights(cfg, size, k_all, rng)
        opts = [Optimizer(cfg, size, cfg.fit_intercept) for _ in range(k_all)]
        x_int = _fixed_point(self.x, prec, ctx.where)
        one = 1 << prec
        batch_size = n if cfg.batch_size is None or cfg.batch_size >= n else cfg.batch_size
        ctx.info(
            "training: %d rows, %d guest features, %d host(s), %s, batch %d, optimizer %s, lr %g, %s, cipher %s",
            n,
            f,
            len(self.hosts),
            f"{k_all} classes one-vs-rest" if self.multi else "binary",
            batch_size,
            cfg.optimizer,
            cfg.learning_rate,
            f"{cfg.penalty} alpha {cfg.alpha}" if cfg.penalty else "no penalty",
            key.describe(),
        )
        # per epoch, the arbiter's loss (one-vs-rest: the mean over the classes still training)
        losses: list[float] = []
        class_losses: list[list[float]] = [[] for _ in range(k_all)]
        class_converged = [False] * k_all
        class_iterations = [0] * k_all
        active = list(range(k_all))
        iterations = 0
        for it in range(cfg.max_iter):
            for k in active:
                opts[k].iters = it
            order = rng.permutation(n) if cfg.shuffle and batch_size < n else np.arange(n)
            batches = [np.sort(order[s : s + batch_size]).astype(np.int64) for s in range(0, n, batch_size)]
            host_plan: dict[str, Any] = {"batches": batches, "weight_diff": early_stop == "weight_diff"}
            arbiter_plan: dict[str, Any] = {"batches": len(batches)}
            if self.multi:
                host_plan.update({"label_count": k_all, "classes": list(active)})
                arbiter_plan["classes"] = list(active)
            ctx.remote(host_plan, "batch_info", str(it), self.hosts)
            ctx.remote(arbiter_plan, "batch_info", str(it), self.arbiters)
            w_start = w[active].copy()
            for b, idx in enumerate(batches):
                ctx.check_abort()
                tag = f"{it}.{b}"
                w[active] = self._batch(he, opts, w, active, idx, x_int, one, tag, loss_available)
            iterations = it + 1
            for k in active:
                class_iterations[k] = it + 1
            if early_stop == "weight_diff":
                sums = np.sum((w[active] - w_start) ** 2, axis=1)
                totals = he.encrypt(sums, 2 * prec).cts
                for host in self.hosts:
                    got = he.unpack(
                        ctx.get_one("host_weight_diff", str(it), host), len(active), "host weight diff"
                    )
                    totals = [he.add_ct(t, g) for t, g in zip(totals, got, strict=True)]
                ctx.remote({"ct": he.pack(totals), "exp": 2 * prec}, "weight_diff", str(it), self.arbiters)
            flag = ctx.get_one("converge_flag", str(it), self.arbiters[0])
            if not isinstance(flag, dict):
                raise ComponentError(f"{ctx.where}: malformed convergence flag")
            converged_now, losses_now = self._class_flags(flag, len(active))
            for k, conv, loss in zip(active, converged_now, losses_now, strict=True):
                class_converged[k] = conv
                if loss is not None:
                    class_losses[k].append(loss)
            if flag.get("loss") is not None:
                losses.append(float(flag["loss"]))
                ctx.info("iteration %d: loss %.6f", it, losses[-1])
            else:
                ctx.info("iteration %d done", it)
            active = [k for k, conv in zip(active, converged_now, strict=True) if not conv]
            if flag.get("stop"):
                break
        # predictions on the training data (hosts send plaintext partial scores, as FATE does)
        coef = w[:, :f]
        intercepts = w[:, f] if cfg.fit_intercept else np.zeros(k_all)
        scores = self.x @ coef.T + intercepts
        for host in self.hosts:
            part = _partial_scores(ctx, host, "train", n, k_all if self.multi else None)
            scores = scores + (part if self.multi else part[:, None])
        label_name = self.table.meta.label_column
        common = {
            "header": list(self.table.meta.feature_columns),
            "fit_intercept": cfg.fit_intercept,
            "threshold": cfg.threshold,
            "label_name": label_name,
            "iterations": iterations,
            "converged": all(class_converged),
            "cipher": key.kind,
            "key_length": key.key_length,
            "optimizer": cfg.optimizer,
            "floating_point_precision": prec,
        }
        meta = {"module": "HeteroLR", "cipher": key.kind, "key_length": key.key_length}
        if self.labels is None:
            out = binary_predictions(self.table, _sigmoid(scores[:, 0]), cfg.threshold, "train")
            ctx.save_data(out, TRAIN_OUT_KEYS)
            ctx.save_model(
                {
                    **common,
                    "weights": coef[0].tolist(),
                    "intercept": float(intercepts[0]),
                    "loss_history": losses,
                },
                {"weights": coef[0]},
                meta,
            )
        else:
            out = _multi_predictions(self.table, _sigmoid(scores), self.labels, "train")
            ctx.save_data(out, TRAIN_OUT_KEYS)
            ctx.save_model(
                {
                    **common,
                    "ovr": True,
                    "labels": self.labels,
                    "class_weights": coef.tolist(),
                    "intercepts": intercepts.tolist(),
                    "class_iterations": class_iterations,
                    "class_converged": class_converged,
                    "class_loss_history": class_losses,
                },
                {"class_weights": coef, "intercepts": intercepts},
                meta,
            )
        ctx.metrics.update({"iterations": iterations, "converged": all(class_converged)})
        if losses:
            ctx.metrics["loss"] = losses[-1]
        ctx.summary.update(
            {
                "rows": n,
                "features": f,
                "iterations": iterations,
                "converged": all(class_converged),
                "loss_history": losses,
                "optimizer": cfg.optimizer,
                "batch_size": batch_size,
                "he_ops": he.counts.as_dict(),
                "workers": computing.cores,
            }
        )
        if self.multi:
            ctx.summary.update(
                {
                    "labels": self.labels,
                    "class_iterations": class_iterations,
                    "class_converged": class_converged,
                    "class_loss_history": class_losses,
                }
            )
        ctx.info(
            "trained: %d iterations, converged %s, cipher %s",
            iterations,
            all(class_converged),
            key.describe(),
        )

    def _class_flags(self, flag: dict[str, Any], count: int) -> tuple[list[bool], list[float | None]]:
        """Per still-training class: converged, and this epoch's loss (None without one)."""
        if not self.multi:
            loss = flag.get("loss")
            return [bool(flag.get("converged"))], [None if loss is None else float(loss)]
        conv, losses = flag.get("class_converged"), flag.get("class_loss")
        if not (isinstance(conv, list) and isinstance(losses, list) and len(conv) == len(losses) == count):
            raise ComponentError(f"{self.ctx.where}: malformed per-class convergence flags")
        return [bool(c) for c in conv], [None if v is None else float(v) for v in losses]

    def _batch(
        self,
        he: HE,
        opts: list[Optimizer],
        w: np.ndarray,
        active: list[int],
        idx: np.ndarray,
        x_int: np.ndarray,
        one: int,
        tag: str,
        loss_available: bool,
    ) -> np.ndarray:
        """One mini-batch step of every class in ``active``; their new weights, one row per class."""
        ctx, cfg = self.ctx, self.cfg
        prec = cfg.precision
        f = self.x.shape[1]
        nb, m = len(idx), len(active)
        wa = w[active]
        intercepts = wa[:, f] if cfg.fit_intercept else np.zeros(m)
        u_g = wa[:, :f] @ self.x[idx].T + intercepts[:, None]  # (classes, rows)
        ypm = self.ypm[np.asarray(active)][:, idx]
        forwards = [ctx.get_one("host_forward", tag, h) for h in self.hosts]
        u_h: EncVector | None = None
        loss_terms: dict[str, Any] | None = None
        for host, msg in zip(self.hosts, forwards, strict=True):
            if not isinstance(msg, dict):
                raise ComponentError(f"{ctx.where}: malformed forward from {host}")
            vec = he.vec_from_wire(msg.get("forward"), f"forward of {host}", nb * m)
            if vec.exp != prec:
                raise ComponentError(
                    f"{ctx.where}: {host} encoded its forward at 2^{vec.exp}, expected 2^{prec}"
                )
            u_h = vec if u_h is None else he.add(u_h, vec)
            loss_terms = msg.get("loss_terms")
        assert u_h is not None
        # [[4d]] = [[u_h]] + (u_g - 2y), re-randomised: the host must not recognise its own ciphertexts.
        # All classes in one call (class-major), so the pool works on every class at once.
        fore = he.add_plain_rerandomize(u_h, (u_g - 2.0 * ypm).ravel())
        ctx.remote(he.vec_to_wire(fore), "fore_gradient", tag, self.hosts)
        columns = _batch_columns(x_int, idx)
        if cfg.fit_intercept:
            columns.append([one] * nb)
        enc_grad = [ct for part in _split(fore, m) for ct in he.linear_combination(part, columns)]
        masks = random_masks(len(enc_grad), he.key.modulus)
        masked = [he.add_raw(c, r) for c, r in zip(enc_grad, masks, strict=True)]
        ctx.remote({"ct": he.pack(masked), "count": len(masked)}, "guest_gradient", tag, self.arbiters)
        if loss_available:
            ctx.remote(
                self._loss(he, _split(u_h, m), u_g, ypm, loss_terms, [opts[k] for k in active], wa, nb),
                "loss",
                tag,
                self.arbiters,
            )
        plain = _unmask_bytes(
            ctx.get_one("guest_optim_gradient", tag, self.arbiters[0]),
            len(masked),
            he.key.modulus,
            "masked gradient",
        )
        grad_int = [(v - r) % he.key.modulus for v, r in zip(plain, masks, strict=True)]
        grad = (decode(grad_int, 2 * prec, he.key.modulus) / (4.0 * nb)).reshape(m, -1)
        return np.stack([opts[k].step(w[k], grad[j]) for j, k in enumerate(active)])

    def _loss(
        self,
        he: HE,
        u_h: list[EncVector],
        u_g: np.ndarray,
        ypm: np.ndarray,
        terms: Any,
        opts: list[Optimizer],
        w: np.ndarray,
        nb: int,
    ) -> dict[str, Any]:
        """Per class, ``[[8·n·(mean Taylor loss + penalties)]]`` at exponent 2P, for the arbiter to decrypt."""
        prec = self.cfg.precision
        m = len(u_h)
        if not isinstance(terms, dict):
            raise ComponentError(f"{self.ctx.where}: the host sent no loss terms")
        sq = he.unpack(terms.get("u_square_sum"), m, "host loss term")
        reg_h = he.unpack(terms.get("reg"), m, "host penalty")
        totals = []
        for j in range(m):
            a = he.linear_combination(u_h[j], [[int(v) for v in ypm[j].tolist()]])[0]  # Σ y·u_h   (exp P)
            b = he.linear_combination(u_h[j], _signed_ints(u_g[j].reshape(-1, 1), prec))[0]  # Σ u_g·u_h (2P)
            total = he.add_ct(he.mul_scalar(a, -4 << prec), he.mul_scalar(b, 2))
            total = he.add_ct(total, sq[j])
            total = he.add_ct(total, he.mul_scalar(reg_h[j], 8 * nb))
            plain = (
                nb * math.log(2)
                - 0.5 * float(ypm[j] @ u_g[j])
                + 0.125 * float(u_g[j] @ u_g[j])
                + nb * opts[j].penalty_loss(w[j])
            )
            totals.append(he.add_plain_scalar(total, 8.0 * plain, 2 * prec))
        return {"ct": he.pack(totals), "exp": 2 * prec, "scale": 8 * nb}


class _HostTrainer(_Share):
    """A host's side: its features and weights (one row per class), no labels."""

    def __init__(self, ctx: TaskContext, cfg: LRConfig, table: Table) -> None:
        super().__init__(ctx, cfg)
        self.table = table
        self.x = feature_matrix(table, ctx.where)

    def run(self) -> None:
        ctx, cfg = self.ctx, self.cfg
        n, f = self.x.shape
        self.ctx.align_rows_as_host(self.guest, self.table.ids, "train")
        key = _public_key(self)
        computing = choose_computing(n * f, _MIN_PARALLEL)
        he = HE(key, computing, ctx.abort, _MIN_PARALLEL)
        prec = cfg.precision
        loss_available = len(self.hosts) == 1
        rng = np.random.default_rng(ctx.training_seed(cfg.random_seed))
        x_int = _fixed_point(self.x, prec, ctx.where)
        ctx.info("training: %d rows, %d host features, cipher %s", n, f, key.describe())
        # The class count arrives with the first batch plan (absent: binary, one model).
        label_count: int | None = None
        w = np.zeros((0, f))
        opts: list[Optimizer] = []
        iterations = 0
        for it in itertools.count():
            info = ctx.get_one("batch_info", str(it), self.guest)
            batches = info.get("batches") if isinstance(info, dict) else None
            if not isinstance(batches, list) or not all(
                isinstance(b, np.ndarray)
                and b.dtype.kind in "iu"
                and (len(b) == 0 or (b.min() >= 0 and b.max() < n))
                for b in batches
            ):
                raise ComponentError(f"{ctx.where}: malformed batch plan from the guest")
            count = info.get("label_count", 1)
            if label_count is None:
                if not isinstance(count, int) or count < 1:
                    raise ComponentError(f"{ctx.where}: malformed class count from the guest")
                label_count = count
                w = class_initial_weights(cfg, f, label_count, rng)
                opts = [Optimizer(cfg, f, fit_intercept=False) for _ in range(label_count)]
            elif count != label_count:
                raise ComponentError(f"{ctx.where}: the guest changed the class count during training")
            active = _check_classes(ctx, info.get("classes", [0]), label_count)
            m = len(active)
            for k in active:
                opts[k].iters = it
            w_start = w[active].copy()
            for b, idx in enumerate(batches):
                ctx.check_abort()
                tag = f"{it}.{b}"
                u = w[active] @ self.x[idx].T  # (classes, rows), sent class-major
                # every class's forward in one HE call: the pool encrypts them all at once
                msg: dict[str, Any] = {"forward": he.vec_to_wire(he.encrypt(u.ravel(), prec))}
                if loss_available:
                    terms = [float(u[j] @ u[j]) for j in range(m)]
                    terms += [opts[k].penalty_loss(w[k]) for k in active]
                    cts = he.encrypt(terms, 2 * prec).cts
                    msg["loss_terms"] = {"u_square_sum": he.pack(cts[:m]), "reg": he.pack(cts[m:])}
                ctx.remote(msg, "host_forward", tag, [self.guest])
                fore = he.vec_from_wire(
                    ctx.get_one("fore_gradient", tag, self.guest), "fore gradient", len(idx) * m
                )
                columns = _batch_columns(x_int, idx)
                enc_grad = [ct for part in _split(fore, m) for ct in he.linear_combination(part, columns)]
                masks = random_masks(len(enc_grad), he.key.modulus)
                masked = [he.add_raw(c, r) for c, r in zip(enc_grad, masks, strict=True)]
                ctx.remote({"ct": he.pack(masked), "count": len(masked)}, "host_gradient", tag, self.arbiters)
                plain = _unmask_bytes(
                    ctx.get_one("host_optim_gradient", tag, self.arbiters[0]),
                    len(masked),
                    he.key.modulus,
                    "masked gradient",
                )
                grad_int = [(v - r) % he.key.modulus for v, r in zip(plain, masks, strict=True)]
                grad = (decode(grad_int, 2 * prec, he.key.modulus) / (4.0 * len(idx))).reshape(m, f)
                for j, k in enumerate(active):
                    w[k] = opts[k].step(w[k], grad[j])
            iterations = it + 1
            if info.get("weight_diff"):
                diff = he.encrypt(np.sum((w[active] - w_start) ** 2, axis=1), 2 * prec)
                ctx.remote(he.pack(diff.cts), "host_weight_diff", str(it), [self.guest])
            flag = ctx.get_one("converge_flag", str(it), self.arbiters[0])
            if not isinstance(flag, dict):
                raise ComponentError(f"{ctx.where}: malformed convergence flag")
            if flag.get("stop"):
                break
        multi = w.shape[0] > 1
        partial = self.x @ w.T
        ctx.remote(
            (partial if multi else partial[:, 0]).astype(np.float64),
            "host_partial_score",
            "train",
            [self.guest],
        )
        ctx.save_empty_data(TRAIN_OUT_KEYS)
        meta = {"module": "HeteroLR", "cipher": key.kind, "key_length": key.key_length}
        if multi:
            # FATE's host model knows the class count, not the labels
            params: dict[str, Any] = {
                "header": list(self.table.meta.feature_columns),
                "ovr": True,
                "label_count": w.shape[0],
                "class_weights": w.tolist(),
                "iterations": iterations,
            }
            ctx.save_model(params, {"class_weights": w}, meta)
        else:
            ctx.save_model(
                {
                    "header": list(self.table.meta.feature_columns),
                    "weights": w[0].tolist(),
                    "iterations": iterations,
                },
                {"weights": w[0]},
                meta,
            )
        ctx.summary.update(
            {
                "rows": n,
                "features": f,
                "iterations": iterations,
                "he_ops": he.counts.as_dict(),
                "workers": computing.cores,
            }
        )
        if multi:
            ctx.summary["label_count"] = w.shape[0]
        ctx.info("trained: %d iterations, cipher %s", iterations, key.describe())


def _converged(
    early_stop: str, tol: float, losses: list[float], loss: float | None, diff: float | None
) -> bool:
    """Whether one class converged this epoch, by FATE's ``converge_func_factory``.

    ``weight_diff``: ‖Δw‖ < tol; ``abs``: loss ≤ tol; ``diff``: |Δloss| < tol between consecutive epochs.
    """
    if early_stop == "weight_diff":
        return diff is not None and diff < tol
    if early_stop == "abs":
        return loss is not None and loss <= tol
    return loss is not None and len(losses) > 1 and abs(losses[-2] - losses[-1]) < tol


class _Arbiter(_Share):
    """Holds the key: decrypts masked gradients and losses, decides convergence per class."""

    def run(self) -> None:
        ctx, cfg = self.ctx, self.cfg
        keypair = Keypair.generate(cfg.cipher, cfg.key_length)
        key = keypair.public
        ctx.info("generated keypair: %s", key.describe())
        if key.kind != PAILLIER:
            ctx.warning("training WITHOUT encryption (plaintext_debug cipher, explicitly requested)")
        ctx.summary.update({"cipher": key.kind, "key_length": key.key_length})
        ctx.remote(key.to_wire(), "paillier_pubkey", "0", [self.guest, *self.hosts])
        info = ctx.get_one("train_info", "0", self.guest)
        if not isinstance(info, dict):
            raise ComponentError(f"{ctx.where}: malformed training plan from the guest")
        max_iter = int(info.get("max_iter", cfg.max_iter))
        early_stop = str(info.get("early_stop", cfg.early_stop))
        tol = float(info.get("tol", cfg.tol))
        loss_available = bool(info.get("loss_available", False))
        multi = "label_count" in info
        label_count = int(info.get("label_count", 1))
        if label_count < 1:
            raise ComponentError(f"{ctx.where}: malformed class count from the guest")
        he = HE(key, choose_computing(0, 1), ctx.abort)
        class_losses: list[list[float]] = [[] for _ in range(label_count)]
        class_converged = [False] * label_count
        losses: list[float] = []
        iterations = 0
        for it in range(max_iter):
            plan = ctx.get_one("batch_info", str(it), self.guest)
            n_batches = int(plan.get("batches", 0)) if isinstance(plan, dict) else 0
            if n_batches <= 0:
                raise ComponentError(f"{ctx.where}: malformed batch plan from the guest")
            active = _check_classes(ctx, plan.get("classes", [0]), label_count)
            m = len(active)
            batch_losses: list[list[float]] = [[] for _ in range(m)]
            for b in range(n_batches):
                ctx.check_abort()
                tag = f"{it}.{b}"
                self._decrypt_back(
                    ctx, he, keypair, "guest_gradient", "guest_optim_gradient", self.guest, tag, key.modulus
                )
                for host in self.hosts:
                    self._decrypt_back(
                        ctx, he, keypair, "host_gradient", "host_optim_gradient", host, tag, key.modulus
                    )
                if loss_available:
                    msg = ctx.get_one("loss", tag, self.guest)
                    cts = he.unpack(msg.get("ct"), m, "loss")
                    values = decode(keypair.decrypt(cts), int(msg["exp"]), key.modulus) / float(msg["scale"])
                    he.counts.decryptions += m
                    for j in range(m):
                        batch_losses[j].append(float(values[j]))
            iterations = it + 1
            diffs: list[float | None] = [None] * m
            if early_stop == "weight_diff":
                msg = ctx.get_one("weight_diff", str(it), self.guest)
                cts = he.unpack(msg.get("ct"), m, "weight diff")
                he.counts.decryptions += m
                sums = decode(keypair.decrypt(cts), int(msg["exp"]), key.modulus)
                diffs = [math.sqrt(max(0.0, float(v))) for v in sums]
            epoch_losses: list[float | None] = []
            converged_now: list[bool] = []
            for j, k in enumerate(active):
                loss = float(np.mean(batch_losses[j])) if batch_losses[j] else None
                if loss is not None:
                    class_losses[k].append(loss)
                class_converged[k] = _converged(early_stop, tol, class_losses[k], loss, diffs[j])
                epoch_losses.append(loss)
                converged_now.append(class_converged[k])
            known = [v for v in epoch_losses if v is not None]
            loss_now = float(np.mean(known)) if known else None
            if loss_now is not None:
                losses.append(loss_now)
            stop = all(converged_now) or it == max_iter - 1
            to_guest: dict[str, Any] = {"stop": stop, "converged": all(converged_now), "loss": loss_now}
            if multi:
                to_guest.update({"class_converged": converged_now, "class_loss": epoch_losses})
            ctx.remote(to_guest, "converge_flag", str(it), [self.guest])
            ctx.remote({"stop": stop, "converged": all(converged_now)}, "converge_flag", str(it), self.hosts)
            if loss_now is not None:
                ctx.info("iteration %d: loss %.6f", it, loss_now)
            if stop:
                break
        converged = all(class_converged)
        params: dict[str, Any] = {
            "iterations": iterations,
            "converged": converged,
            "loss_history": losses,
            "cipher": key.kind,
            "key_length": key.key_length,
        }
        if multi:
            params.update(
                {
                    "label_count": label_count,
                    "class_converged": class_converged,
                    "class_loss_history": class_losses,
                }
            )
        ctx.save_model(params, meta={"module": "HeteroLR", "cipher": key.kind, "key_length": key.key_length})
        ctx.metrics.update({"iterations": iterations, "converged": converged})
        if losses:
            ctx.metrics["loss"] = losses[-1]
        ctx.summary.update(
            {
                "iterations": iterations,
                "converged": converged,
                "loss_history": losses,
                "decryptions": he.counts.decryptions,
            }
        )
        if multi:
            ctx.summary.update({"label_count": label_count, "class_converged": class_converged})
        ctx.info("done: %d iterations, converged %s, cipher %s", iterations, converged, key.describe())

    @staticmethod
    def _decrypt_back(
        ctx: TaskContext,
        he: HE,
        keypair: Keypair,
        name: str,
        reply: str,
        party: Party,
        tag: str,
        modulus: int,
    ) -> None:
        msg = ctx.get_one(name, tag, party)
        if not isinstance(msg, dict) or not isinstance(msg.get("count"), int):
            raise ComponentError(f"{ctx.where}: malformed {name} from {party}")
        cts = he.unpack(msg.get("ct"), msg["count"], f"{name} from {party}")
        plain = keypair.decrypt(cts)
        he.counts.decryptions += len(cts)
        ctx.remote(_mask_bytes(plain, modulus), reply, tag, [party])


__all__ = ["HeteroLR"]
