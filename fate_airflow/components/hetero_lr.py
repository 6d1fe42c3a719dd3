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
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from fate_airflow.components._frames import feature_matrix, label_vector, sorted_by_id
from fate_airflow.components._lr_params import LRConfig, Optimizer, init_weights, read_config
from fate_airflow.components.context import TEST_KEYS, FateComponent, TaskContext
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

_TRAIN = ("train_data", "data", "input_data")
_PREDICT = (*TEST_KEYS, "data", "input_data", "train_data")
_TRAIN_OUT = ("train_output_data", "output_data")
_TEST_OUT = ("test_output_data", "output_data")
#: Below this many Paillier operations per call the pool is not worth its overhead.
_MIN_PARALLEL = 64


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(z, -500, 500))), dtype=np.float64)


def _digest(ids: Sequence[str]) -> bytes:
    return hashlib.sha256("\n".join(ids).encode("utf-8")).digest()


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


def training_seed(cfg: LRConfig, ctx: TaskContext) -> int:
    """The seed of a share's initial weights and mini-batch order.

    FATE's ``random_seed`` when given, else one fixed by the task's name: the same job on the same
    data trains the same model on every run (the cryptographic randomness — masks, Paillier
    nonces — stays fresh and cancels out).
    """
    if cfg.random_seed is not None:
        return cfg.random_seed
    return int.from_bytes(hashlib.sha256(ctx.request.task_name.encode()).digest()[:8], "big")


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
        if any(ref.key == "warm_start_model" for ref in ctx.request.inputs):
            # Every party must refuse alike: an arbiter that took this for predict would leave the
            # others waiting for its key.
            raise ComponentError(
                f"{ctx.where}: warm start (warm_start_model) is not implemented by the native hetero LR; "
                "with the FATE provider installed, FATE's coordinated_lr runs such tasks"
            )
        model = ctx.input_model()
        predict = ctx.stage == "predict" or (model is not None and not ctx.has_input(_TRAIN))
        if predict:
            self._predict(ctx, model)
            return
        if len(ctx.parties_of("arbiter")) != 1:
            raise ComponentError(f"{ctx.where}: hetero LR training needs an arbiter (it holds the key)")
        cfg = read_config(ctx.params)
        for w in cfg.warnings:
            ctx.warning("%s", w)
        ctx.summary["warnings"] = list(cfg.warnings)
        if ctx.role == "arbiter":
            _Arbiter(ctx, cfg).run()
            return
        if ctx.has_input(("validate_data",)):
            ctx.info("validate_data is not used: validation during training is not implemented")
        table = ctx.input_table(_TRAIN)
        if table is None:
            raise ComponentError(f"{ctx.where}: no training data")
        table = sorted_by_id(table)
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
        table = ctx.input_table(_PREDICT)
        if table is None:
            raise ComponentError(f"{ctx.where}: predict needs data (test_data)")
        table = sorted_by_id(table)
        header = list(model.params["header"])
        x = feature_matrix(table, ctx.where, header)
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
            _host_align(share, table.ids, "predict")
            ctx.remote(partial.astype(np.float64), "host_partial_score", "predict", [share.guest])
            ctx.save_empty_data(_TEST_OUT)
            ctx.summary["rows"] = len(x)
            return
        _guest_align(share, table.ids, "predict")
        scores = partial + float(model.params.get("intercept", 0.0))
        for host in share.hosts:
            scores = scores + _partial_scores(ctx, host, "predict", len(x))
        threshold = float(
            ctx.params.get("threshold", "predict_param.threshold", default=model.params.get("threshold", 0.5))
        )
        out = _predictions(table, _sigmoid(scores), threshold, "predict")
        ctx.save_data(out, _TEST_OUT)
        ctx.summary.update({"rows": len(x), "threshold": threshold})


def _partial_scores(ctx: TaskContext, host: Party, tag: str, n: int) -> np.ndarray:
    got = ctx.get_one("host_partial_score", tag, host)
    if not isinstance(got, np.ndarray) or got.shape != (n,) or got.dtype.kind != "f":
        raise ComponentError(f"{ctx.where}: malformed partial scores from {host}")
    return np.asarray(got, dtype=np.float64)


def _predictions(table: Table, prob: np.ndarray, threshold: float, kind: str) -> Table:
    meta = table.meta
    frame = pd.DataFrame({meta.id_column: table.frame[meta.id_column].astype(str).to_numpy()})
    label = meta.label_column
    if label and label in table.frame.columns:
        frame["label"] = table.frame[label].to_numpy()
    frame["predict_result"] = (prob > threshold).astype(np.int64)
    frame["predict_score"] = prob
    frame["predict_detail"] = [json.dumps({"0": float(1 - p), "1": float(p)}) for p in prob]
    frame["type"] = kind
    return Table.from_frame(
        frame,
        id_column=meta.id_column,
        label_column="label" if "label" in frame.columns else None,
        feature_columns=[],
        extra={"predict_score": "predict_score", "predict_result": "predict_result", "eval_type": "binary"},
    )


def _guest_align(share: _Share, ids: list[str], tag: str) -> None:
    ctx = share.ctx
    ctx.remote({"count": len(ids), "digest": _digest(ids)}, "data_align", tag, share.hosts)
    for host, ack in zip(share.hosts, ctx.get("data_align_ack", tag, share.hosts), strict=True):
        if not isinstance(ack, dict) or not ack.get("ok"):
            count = ack.get("count") if isinstance(ack, dict) else "?"
            raise ComponentError(
                f"{ctx.where}: the rows of {host} ({count}) do not match the guest's ({len(ids)}); "
                "run intersection before hetero LR"
            )


def _host_align(share: _Share, ids: list[str], tag: str) -> None:
    ctx = share.ctx
    msg = ctx.get_one("data_align", tag, share.guest)
    ok = isinstance(msg, dict) and msg.get("count") == len(ids) and msg.get("digest") == _digest(ids)
    ctx.remote({"ok": bool(ok), "count": len(ids)}, "data_align_ack", tag, [share.guest])
    if not ok:
        raise ComponentError(
            f"{ctx.where}: this party's {len(ids)} rows do not match the guest's; run intersection first"
        )


def _public_key(share: _Share) -> PublicKey:
    ctx, cfg = share.ctx, share.cfg
    key = PublicKey.from_wire(
        ctx.get_one("paillier_pubkey", "0", share.arbiters[0]), expected_kind=cfg.cipher
    )
    ctx.info("cipher: %s", key.describe())
    ctx.summary.update({"cipher": key.kind, "key_length": key.key_length})
    return key


class _GuestTrainer(_Share):
    def __init__(self, ctx: TaskContext, cfg: LRConfig, table: Table) -> None:
        super().__init__(ctx, cfg)
        self.table = table
        self.x = feature_matrix(table, ctx.where)
        y = label_vector(table, ctx.where)
        classes = set(np.unique(y).tolist())
        if not classes <= {0.0, 1.0} and classes != {-1.0, 1.0}:
            raise ComponentError(
                f"{ctx.where}: hetero LR here is binary (labels 0/1); got {sorted(classes)[:10]} "
                "(multi-class one-vs-rest is not implemented)"
            )
        self.y01 = (y > 0).astype(np.float64)
        self.ypm = 2.0 * self.y01 - 1.0

    def run(self) -> None:
        ctx, cfg = self.ctx, self.cfg
        n, f = self.x.shape
        ids = self.table.ids
        _guest_align(self, ids, "train")
        key = _public_key(self)
        computing = choose_computing(n * (f + 1), _MIN_PARALLEL)
        he = HE(key, computing, ctx.abort, _MIN_PARALLEL)
        prec = cfg.precision
        loss_available = len(self.hosts) == 1
        early_stop = cfg.early_stop
        if not loss_available and early_stop in ("diff", "abs"):
            msg = f"early_stop {early_stop!r} needs the loss, which FATE does not compute with several hosts; using weight_diff"
            ctx.warning("%s", msg)
            ctx.summary["warnings"] = [*ctx.summary.get("warnings", []), msg]
            early_stop = "weight_diff"
        ctx.remote(
            {
                "max_iter": cfg.max_iter,
                "early_stop": early_stop,
                "tol": cfg.tol,
                "loss_available": loss_available,
            },
            "train_info",
            "0",
            self.arbiters,
        )
        rng = np.random.default_rng(training_seed(cfg, ctx))
        size = f + (1 if cfg.fit_intercept else 0)
        w = init_weights(cfg, size, rng)
        opt = Optimizer(cfg, size, cfg.fit_intercept)
        x_int = _fixed_point(self.x, prec, ctx.where)
        one = 1 << prec
        batch_size = n if cfg.batch_size is None or cfg.batch_size >= n else cfg.batch_size
        ctx.info(
            "training: %d rows, %d guest features, %d host(s), batch %d, optimizer %s, lr %g, %s, cipher %s",
            n,
            f,
            len(self.hosts),
            batch_size,
            cfg.optimizer,
            cfg.learning_rate,
            f"{cfg.penalty} alpha {cfg.alpha}" if cfg.penalty else "no penalty",
            key.describe(),
        )
        losses: list[float] = []
        converged = False
        iterations = 0
        for it in range(cfg.max_iter):
            opt.iters = it
            order = rng.permutation(n) if cfg.shuffle and batch_size < n else np.arange(n)
            batches = [np.sort(order[s : s + batch_size]).astype(np.int64) for s in range(0, n, batch_size)]
            ctx.remote(
                {"batches": batches, "weight_diff": early_stop == "weight_diff"},
                "batch_info",
                str(it),
                self.hosts,
            )
            ctx.remote({"batches": len(batches)}, "batch_info", str(it), self.arbiters)
            w_start = w.copy()
            for b, idx in enumerate(batches):
                ctx.check_abort()
                tag = f"{it}.{b}"
                w = self._batch(he, opt, w, idx, x_int, one, tag, loss_available)
            iterations = it + 1
            if early_stop == "weight_diff":
                total = he.encrypt([float(np.sum((w - w_start) ** 2))], 2 * prec).cts[0]
                for host in self.hosts:
                    got = ctx.get_one("host_weight_diff", str(it), host)
                    total = he.add_ct(total, he.unpack(got, 1, "host weight diff")[0])
                ctx.remote({"ct": he.pack([total]), "exp": 2 * prec}, "weight_diff", str(it), self.arbiters)
            flag = ctx.get_one("converge_flag", str(it), self.arbiters[0])
            if flag.get("loss") is not None:
                losses.append(float(flag["loss"]))
                ctx.info("iteration %d: loss %.6f", it, losses[-1])
            else:
                ctx.info("iteration %d done", it)
            converged = bool(flag.get("converged"))
            if flag.get("stop"):
                break
        coef = w[:f]
        intercept = float(w[f]) if cfg.fit_intercept else 0.0
        # predictions on the training data (hosts send plaintext partial scores, as FATE does)
        scores = self.x @ coef + intercept
        for host in self.hosts:
            scores = scores + _partial_scores(ctx, host, "train", n)
        prob = _sigmoid(scores)
        out = _predictions(self.table, prob, cfg.threshold, "train")
        label_name = self.table.meta.label_column
        ctx.save_data(out, _TRAIN_OUT)
        ctx.save_model(
            {
                "header": list(self.table.meta.feature_columns),
                "weights": coef.tolist(),
                "intercept": intercept,
                "fit_intercept": cfg.fit_intercept,
                "threshold": cfg.threshold,
                "label_name": label_name,
                "iterations": iterations,
                "converged": converged,
                "loss_history": losses,
                "cipher": key.kind,
                "key_length": key.key_length,
                "optimizer": cfg.optimizer,
                "floating_point_precision": prec,
            },
            {"weights": coef},
            {"module": "HeteroLR", "cipher": key.kind, "key_length": key.key_length},
        )
        ctx.metrics.update({"iterations": iterations, "converged": converged})
        if losses:
            ctx.metrics["loss"] = losses[-1]
        ctx.summary.update(
            {
                "rows": n,
                "features": f,
                "iterations": iterations,
                "converged": converged,
                "loss_history": losses,
                "optimizer": cfg.optimizer,
                "batch_size": batch_size,
                "he_ops": he.counts.as_dict(),
                "workers": computing.cores,
            }
        )
        ctx.info("trained: %d iterations, converged %s, cipher %s", iterations, converged, key.describe())

    def _batch(
        self,
        he: HE,
        opt: Optimizer,
        w: np.ndarray,
        idx: np.ndarray,
        x_int: np.ndarray,
        one: int,
        tag: str,
        loss_available: bool,
    ) -> np.ndarray:
        ctx, cfg = self.ctx, self.cfg
        prec = cfg.precision
        f = self.x.shape[1]
        nb = len(idx)
        intercept = w[f] if cfg.fit_intercept else 0.0
        u_g = self.x[idx] @ w[:f] + intercept
        ypm = self.ypm[idx]
        forwards = [ctx.get_one("host_forward", tag, h) for h in self.hosts]
        u_h: EncVector | None = None
        loss_terms: dict[str, Any] | None = None
        for host, msg in zip(self.hosts, forwards, strict=True):
            if not isinstance(msg, dict):
                raise ComponentError(f"{ctx.where}: malformed forward from {host}")
            vec = he.vec_from_wire(msg.get("forward"), f"forward of {host}", nb)
            if vec.exp != prec:
                raise ComponentError(
                    f"{ctx.where}: {host} encoded its forward at 2^{vec.exp}, expected 2^{prec}"
                )
            u_h = vec if u_h is None else he.add(u_h, vec)
            loss_terms = msg.get("loss_terms")
        assert u_h is not None
        # [[4d]] = [[u_h]] + (u_g - 2y), re-randomised: the host must not recognise its own ciphertexts
        fore = he.add_plain_rerandomize(u_h, u_g - 2.0 * ypm)
        ctx.remote(he.vec_to_wire(fore), "fore_gradient", tag, self.hosts)
        columns = _batch_columns(x_int, idx)
        if cfg.fit_intercept:
            columns.append([one] * nb)
        enc_grad = he.linear_combination(fore, columns)
        masks = random_masks(len(enc_grad), he.key.modulus)
        masked = [he.add_raw(c, r) for c, r in zip(enc_grad, masks, strict=True)]
        ctx.remote({"ct": he.pack(masked), "count": len(masked)}, "guest_gradient", tag, self.arbiters)
        if loss_available:
            ctx.remote(self._loss(he, u_h, u_g, ypm, loss_terms, opt, w, nb), "loss", tag, self.arbiters)
        plain = _unmask_bytes(
            ctx.get_one("guest_optim_gradient", tag, self.arbiters[0]),
            len(masked),
            he.key.modulus,
            "masked gradient",
        )
        grad_int = [(v - r) % he.key.modulus for v, r in zip(plain, masks, strict=True)]
        grad = decode(grad_int, 2 * prec, he.key.modulus) / (4.0 * nb)
        return opt.step(w, grad)

    def _loss(
        self,
        he: HE,
        u_h: EncVector,
        u_g: np.ndarray,
        ypm: np.ndarray,
        terms: Any,
        opt: Optimizer,
        w: np.ndarray,
        nb: int,
    ) -> dict[str, Any]:
        """``[[8·n·(mean Taylor loss + penalties)]]`` at exponent 2P, for the arbiter to decrypt."""
        prec = self.cfg.precision
        if not isinstance(terms, dict):
            raise ComponentError(f"{self.ctx.where}: the host sent no loss terms")
        sq = he.unpack(terms.get("u_square_sum"), 1, "host loss term")[0]
        reg_h = he.unpack(terms.get("reg"), 1, "host penalty")[0]
        a = he.linear_combination(u_h, [[int(v) for v in ypm.tolist()]])[0]  # Σ y·u_h   (exp P)
        b = he.linear_combination(u_h, _signed_ints(u_g.reshape(-1, 1), prec))[0]  # Σ u_g·u_h (exp 2P)
        total = he.add_ct(he.mul_scalar(a, -4 << prec), he.mul_scalar(b, 2))
        total = he.add_ct(total, sq)
        total = he.add_ct(total, he.mul_scalar(reg_h, 8 * nb))
        plain = (
            nb * math.log(2) - 0.5 * float(ypm @ u_g) + 0.125 * float(u_g @ u_g) + nb * opt.penalty_loss(w)
        )
        total = he.add_plain_scalar(total, 8.0 * plain, 2 * prec)
        return {"ct": he.pack([total]), "exp": 2 * prec, "scale": 8 * nb}


class _HostTrainer(_Share):
    def __init__(self, ctx: TaskContext, cfg: LRConfig, table: Table) -> None:
        super().__init__(ctx, cfg)
        self.table = table
        self.x = feature_matrix(table, ctx.where)

    def run(self) -> None:
        ctx, cfg = self.ctx, self.cfg
        n, f = self.x.shape
        _host_align(self, self.table.ids, "train")
        key = _public_key(self)
        computing = choose_computing(n * f, _MIN_PARALLEL)
        he = HE(key, computing, ctx.abort, _MIN_PARALLEL)
        prec = cfg.precision
        loss_available = len(self.hosts) == 1
        rng = np.random.default_rng(training_seed(cfg, ctx))
        w = init_weights(cfg, f, rng)
        opt = Optimizer(cfg, f, fit_intercept=False)
        x_int = _fixed_point(self.x, prec, ctx.where)
        ctx.info("training: %d rows, %d host features, cipher %s", n, f, key.describe())
        iterations = 0
        for it in itertools.count():
            opt.iters = it
            info = ctx.get_one("batch_info", str(it), self.guest)
            batches = info.get("batches") if isinstance(info, dict) else None
            if not isinstance(batches, list) or not all(
                isinstance(b, np.ndarray)
                and b.dtype.kind in "iu"
                and (len(b) == 0 or (b.min() >= 0 and b.max() < n))
                for b in batches
            ):
                raise ComponentError(f"{ctx.where}: malformed batch plan from the guest")
            w_start = w.copy()
            for b, idx in enumerate(batches):
                ctx.check_abort()
                tag = f"{it}.{b}"
                u = self.x[idx] @ w
                msg: dict[str, Any] = {"forward": he.vec_to_wire(he.encrypt(u, prec))}
                if loss_available:
                    sq = he.encrypt([float(u @ u)], 2 * prec).cts
                    reg = he.encrypt([opt.penalty_loss(w)], 2 * prec).cts
                    msg["loss_terms"] = {"u_square_sum": he.pack(sq), "reg": he.pack(reg)}
                ctx.remote(msg, "host_forward", tag, [self.guest])
                fore = he.vec_from_wire(
                    ctx.get_one("fore_gradient", tag, self.guest), "fore gradient", len(idx)
                )
                enc_grad = he.linear_combination(fore, _batch_columns(x_int, idx))
                masks = random_masks(f, he.key.modulus)
                masked = [he.add_raw(c, r) for c, r in zip(enc_grad, masks, strict=True)]
                ctx.remote({"ct": he.pack(masked), "count": f}, "host_gradient", tag, self.arbiters)
                plain = _unmask_bytes(
                    ctx.get_one("host_optim_gradient", tag, self.arbiters[0]),
                    f,
                    he.key.modulus,
                    "masked gradient",
                )
                grad_int = [(v - r) % he.key.modulus for v, r in zip(plain, masks, strict=True)]
                grad = decode(grad_int, 2 * prec, he.key.modulus) / (4.0 * len(idx))
                w = opt.step(w, grad)
            iterations = it + 1
            if info.get("weight_diff"):
                diff = he.encrypt([float(np.sum((w - w_start) ** 2))], 2 * prec)
                ctx.remote(he.pack(diff.cts), "host_weight_diff", str(it), [self.guest])
            flag = ctx.get_one("converge_flag", str(it), self.arbiters[0])
            if not isinstance(flag, dict):
                raise ComponentError(f"{ctx.where}: malformed convergence flag")
            if flag.get("stop"):
                break
        ctx.remote((self.x @ w).astype(np.float64), "host_partial_score", "train", [self.guest])
        ctx.save_empty_data(_TRAIN_OUT)
        ctx.save_model(
            {
                "header": list(self.table.meta.feature_columns),
                "weights": w.tolist(),
                "iterations": iterations,
            },
            {"weights": w},
            {"module": "HeteroLR", "cipher": key.kind, "key_length": key.key_length},
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
        ctx.info("trained: %d iterations, cipher %s", iterations, key.describe())


class _Arbiter(_Share):
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
        he = HE(key, choose_computing(0, 1), ctx.abort)
        losses: list[float] = []
        converged = False
        iterations = 0
        for it in range(max_iter):
            plan = ctx.get_one("batch_info", str(it), self.guest)
            n_batches = int(plan.get("batches", 0)) if isinstance(plan, dict) else 0
            if n_batches <= 0:
                raise ComponentError(f"{ctx.where}: malformed batch plan from the guest")
            batch_losses = []
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
                    ct = he.unpack(msg.get("ct"), 1, "loss")[0]
                    value = decode(keypair.decrypt([ct]), int(msg["exp"]), key.modulus)[0] / float(
                        msg["scale"]
                    )
                    he.counts.decryptions += 1
                    batch_losses.append(value)
            iterations = it + 1
            loss = float(np.mean(batch_losses)) if batch_losses else None
            if loss is not None:
                losses.append(loss)
            if early_stop == "weight_diff":
                msg = ctx.get_one("weight_diff", str(it), self.guest)
                ct = he.unpack(msg.get("ct"), 1, "weight diff")[0]
                diff = math.sqrt(max(0.0, decode(keypair.decrypt([ct]), int(msg["exp"]), key.modulus)[0]))
                converged = diff < tol
            elif early_stop == "abs":
                converged = loss is not None and loss < tol
            else:
                converged = loss is not None and len(losses) > 1 and abs(losses[-2] - losses[-1]) < tol
            stop = converged or it == max_iter - 1
            ctx.remote(
                {"stop": stop, "converged": converged, "loss": loss}, "converge_flag", str(it), [self.guest]
            )
            ctx.remote({"stop": stop, "converged": converged}, "converge_flag", str(it), self.hosts)
            if loss is not None:
                ctx.info("iteration %d: loss %.6f", it, loss)
            if stop:
                break
        ctx.save_model(
            {
                "iterations": iterations,
                "converged": converged,
                "loss_history": losses,
                "cipher": key.kind,
                "key_length": key.key_length,
            },
            meta={"module": "HeteroLR", "cipher": key.kind, "key_length": key.key_length},
        )
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
