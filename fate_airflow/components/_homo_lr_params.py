"""Homo LR parameters (FATE 1.x ``HomoLR`` and 2.x ``homo_lr`` spellings) and the local optimizers.

FATE 2.2's ``homo_lr`` trains a torch ``Linear`` + sigmoid with a torch optimizer and aggregates the
model after every epoch (FedAvg weighted by sample count). Its parameters and defaults
(``python/fate/components/components/homo_lr.py``, ``fate/ml/glm/homo/lr/client.py``):

* ``epochs`` 20, ``batch_size`` 100, ``threshold`` 0.5, ``ovr`` false, ``label_num`` null;
* ``optimizer`` ``{method: sgd, penalty: l2, alpha: 1.0, optimizer_params: {lr: 0.01, weight_decay: 0}}``
  — penalty ``l2`` becomes the torch ``weight_decay`` (``alpha``; torch applies it to the intercept
  too), ``l1`` adds ``alpha·Σ|w|`` (intercept included) to the loss;
* ``init_param`` ``{method: random, fill_val: 1.0, fit_intercept: true}`` — ``random`` is N(0, 1) on
  the coefficients, the intercept starts at 0;
* ``learning_rate_scheduler`` ``{method: constant, scheduler_params: {factor: 1.0}}``, stepped after
  every optimizer step (the HF trainer FATE uses does so).

FATE 1.x ``HomoLR`` (``max_iter`` 100, full batch, ``sgd`` at 0.01 with ``decay``/``decay_sqrt``, L2
``alpha`` 1.0 on the coefficients only, ``early_stop`` ``diff`` with ``tol`` 1e-4 checked by the
arbiter on the aggregated loss, ``aggregate_iters`` 1) is trained with the 1.x optimizers of
:mod:`fate_airflow.components._lr_params`.

Secure aggregation settings are this project's own (FATE 2.2 has no dropout tolerance), under
``secure_aggregate_param``: ``threshold`` (clients needed to finish a round, and shares needed to
rebuild a secret; default ``⌊n/2⌋ + 1``, at least 2), ``timeout`` (seconds the arbiter waits for
stragglers in each step before treating them as dropped, default 60) and ``precision`` (fraction
bits of the fixed-point encoding, default 24).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np

from fate_airflow.components._lr_params import LRConfig
from fate_airflow.components._lr_params import Optimizer as Fate1Optimizer
from fate_airflow.components.params import Params
from fate_airflow.core.errors import ComponentError

Dialect = Literal["1.x", "2.x"]

#: torch optimizers implemented natively, with the hyper-parameters each accepts.
TORCH_OPTIMIZERS: Mapping[str, frozenset[str]] = {
    "sgd": frozenset({"lr", "momentum", "dampening", "weight_decay", "nesterov"}),
    "adam": frozenset({"lr", "betas", "eps", "weight_decay", "amsgrad"}),
    "adamw": frozenset({"lr", "betas", "eps", "weight_decay", "amsgrad"}),
    "rmsprop": frozenset({"lr", "alpha", "eps", "weight_decay", "momentum", "centered"}),
    "adagrad": frozenset({"lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps"}),
}
#: torch's own default learning rates (FATE passes ``optimizer_params`` straight to torch).
_TORCH_LR = {"sgd": 0.01, "adam": 0.001, "adamw": 0.001, "rmsprop": 0.01, "adagrad": 0.01}
#: torch performance switches that do not change the result.
_TORCH_IGNORED = frozenset({"foreach", "differentiable", "capturable", "fused"})
FATE1_OPTIMIZERS = ("sgd", "nesterov_momentum_sgd", "rmsprop", "adam", "adagrad")
INIT_METHODS = {
    "zeros": "zeros",
    "ones": "ones",
    "consts": "const",
    "const": "const",
    "random": "random_normal",
    "random_normal": "random_normal",
    "random_uniform": "random_uniform",
}
SCHEDULERS = ("constant", "linear", "step")
EARLY_STOP = ("diff", "abs", "weight_diff")


@dataclass(frozen=True)
class SecAggConfig:
    """Secure aggregation settings.

    :param threshold: ``t``, or None for the default ``max(2, ⌊n/2⌋ + 1)`` over ``n`` clients.
    :param timeout: seconds the arbiter waits for the rest once a step's first message arrived.
    :param precision: fraction bits of the fixed-point encoding.
    """

    threshold: int | None = None
    timeout: float = 60.0
    precision: int = 24

    def threshold_for(self, clients: int, where: str) -> int:
        """``t`` for ``clients`` clients. :raises ComponentError: out of range (naming the field)."""
        t = self.threshold if self.threshold is not None else max(2, clients // 2 + 1)
        if not 2 <= t <= clients:
            raise ComponentError(
                f"{where}: secure_aggregate_param.threshold must be between 2 and the number of clients "
                f"({clients}), got {t}"
            )
        return t


@dataclass(frozen=True)
class HomoLRConfig:
    """Everything homo LR reads from its parameters (see the module docstring for the defaults)."""

    dialect: Dialect
    epochs: int
    batch_size: int | None
    optimizer: str
    optimizer_params: Mapping[str, Any]
    learning_rate: float
    penalty: Literal["L1", "L2"] | None
    alpha: float
    scheduler: Mapping[str, Any] | None
    decay: float
    decay_sqrt: bool
    early_stop: str | None
    tol: float
    aggregate_every: int
    init_method: str
    init_const: float
    fit_intercept: bool
    random_seed: int | None
    shuffle: bool
    threshold: float
    secagg: SecAggConfig
    warnings: tuple[str, ...] = field(default_factory=tuple)


def _dialect(p: Params, component: str) -> Dialect:
    if component == "HomoLR":
        return "1.x"
    if component == "homo_lr" or p.has("epochs") or isinstance(p.get("optimizer"), Mapping):
        return "2.x"
    return "1.x" if p.has("max_iter", "learning_rate", "aggregate_iters", "decay") else "2.x"


def _number(value: Any, name: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ComponentError(f"{where}: parameter {name!r} must be a number, got {value!r}")
    return float(value)


def _penalty(raw: Any, name: str, where: str) -> Literal["L1", "L2"] | None:
    if raw is None or str(raw).lower() in ("", "none"):
        return None
    value = str(raw).upper()
    if value == "L1":
        return "L1"
    if value == "L2":
        return "L2"
    raise ComponentError(f"{where}: parameter {name!r} is {raw!r}; expected l1, l2 or none")


def _secagg(p: Params) -> SecAggConfig:
    raw = p.get("secure_aggregate_param", default={})
    if not isinstance(raw, Mapping):
        raise ComponentError(f"{p.where}: parameter 'secure_aggregate_param' must be an object")
    unknown = sorted(set(raw) - {"threshold", "timeout", "precision"})
    if unknown:
        raise ComponentError(
            f"{p.where}: secure_aggregate_param.{unknown[0]} is not a setting "
            "(known: threshold, timeout, precision)"
        )
    threshold = raw.get("threshold")
    if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, int)):
        raise ComponentError(
            f"{p.where}: secure_aggregate_param.threshold must be an integer, got {threshold!r}"
        )
    timeout = _number(raw.get("timeout", 60.0), "secure_aggregate_param.timeout", p.where)
    if timeout <= 0:
        raise ComponentError(f"{p.where}: secure_aggregate_param.timeout must be positive, got {timeout}")
    precision = raw.get("precision", 24)
    if isinstance(precision, bool) or not isinstance(precision, int) or not 8 <= precision <= 40:
        raise ComponentError(
            f"{p.where}: secure_aggregate_param.precision must be an integer in [8, 40], got {precision!r}"
        )
    return SecAggConfig(threshold, timeout, precision)


def _init(p: Params, default_method: str, where: str) -> tuple[str, float, bool, int | None]:
    init = p.get("init_param", default={}) or {}
    if not isinstance(init, Mapping):
        raise ComponentError(f"{where}: parameter 'init_param' must be an object")
    raw = init.get("method", init.get("init_method")) or default_method
    method = INIT_METHODS.get(str(raw).lower())
    if method is None:
        raise ComponentError(f"{where}: init_param.method {raw!r} is not one of {sorted(set(INIT_METHODS))}")
    const = _number(init.get("fill_val", init.get("init_const", 1.0)) or 0.0, "init_param.fill_val", where)
    fit = init.get("fit_intercept", True)
    if not isinstance(fit, bool):
        raise ComponentError(f"{where}: init_param.fit_intercept must be a boolean, got {fit!r}")
    seed = init.get("random_state", init.get("random_seed"))
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ComponentError(f"{where}: init_param.random_state must be an integer, got {seed!r}")
    return method, const, fit, seed


def _batch(p: Params, default: int | None) -> int | None:
    value = p.get("batch_size", default=default)
    if value is None or value == -1:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ComponentError(
            f"{p.where}: parameter 'batch_size' must be a positive integer or -1, got {value!r}"
        )
    return int(value)


def _threshold(p: Params) -> float:
    value = p.number("threshold", "predict_param.threshold", default=0.5)
    if not 0.0 <= value <= 1.0:
        raise ComponentError(f"{p.where}: parameter 'threshold' must be in [0, 1], got {value}")
    return value


def _refuse_unsupported(p: Params) -> None:
    if p.boolean("ovr", default=False):
        raise ComponentError(
            f"{p.where}: parameter 'ovr' (multi-class one-vs-rest) is not implemented by the native homo_lr; "
            "FATE's homo_lr (FATE provider) runs it"
        )
    label_num = p.get("label_num")
    if label_num is not None and label_num != 2:
        raise ComponentError(
            f"{p.where}: parameter 'label_num' {label_num!r}: the native homo_lr is binary (labels 0/1)"
        )
    if p.get("cv_param.need_cv", default=False):
        raise ComponentError(f"{p.where}: cross validation (cv_param.need_cv) is not implemented")


def read_homo_config(p: Params, component: str) -> HomoLRConfig:
    """Parse ``homo_lr`` (2.x) or ``HomoLR`` (1.x) parameters; errors name the field."""
    dialect = _dialect(p, component)
    _refuse_unsupported(p)
    warnings: list[str] = []
    if p.has("secure_aggregate") and not p.boolean("secure_aggregate", default=True):
        warnings.append("secure_aggregate false is ignored: the native homo_lr always aggregates securely")
    # read (and so mark as known) the settings that change nothing here
    p.get("encrypt_param", "re_encrypt_batches", "validation_freqs", "early_stopping_rounds", "metrics")
    p.get("use_first_metric_only", "callback_param", "multi_class", "floating_point_precision")
    if dialect == "2.x":
        return _read_v2(p, warnings)
    return _read_v1(p, warnings)


def _read_v2(p: Params, warnings: list[str]) -> HomoLRConfig:
    where = p.where
    epochs = p.integer("epochs", "max_iter", default=20)
    if epochs <= 0:
        raise ComponentError(f"{where}: parameter 'epochs' must be positive, got {epochs}")
    opt = p.get("optimizer", default=None)
    if opt is None:
        opt = {"method": "sgd", "penalty": "l2", "alpha": 1.0, "optimizer_params": {"lr": 0.01}}
    if isinstance(opt, str):  # a 1.x-style string in a 2.x job
        opt = {"method": opt, "optimizer_params": {"lr": p.number("learning_rate", default=0.01)}}
    if not isinstance(opt, Mapping):
        raise ComponentError(f"{where}: parameter 'optimizer' must be an object")
    method = str(opt.get("method") or "sgd").lower()
    if method not in TORCH_OPTIMIZERS:
        raise ComponentError(
            f"{where}: optimizer.method {method!r} is not implemented by the native homo_lr "
            f"(implemented: {', '.join(TORCH_OPTIMIZERS)})"
        )
    penalty = _penalty(opt.get("penalty", "l2"), "optimizer.penalty", where)
    alpha = _number(opt.get("alpha", 1.0) if opt.get("alpha") is not None else 1.0, "optimizer.alpha", where)
    if alpha < 0:
        raise ComponentError(f"{where}: optimizer.alpha must be >= 0, got {alpha}")
    hp = opt.get("optimizer_params") or {}
    if not isinstance(hp, Mapping):
        raise ComponentError(f"{where}: optimizer.optimizer_params must be an object")
    for key, value in hp.items():
        if key in _TORCH_IGNORED:
            continue
        if key not in TORCH_OPTIMIZERS[method]:
            raise ComponentError(
                f"{where}: optimizer.optimizer_params.{key} is not a {method} setting "
                f"(known: {', '.join(sorted(TORCH_OPTIMIZERS[method]))})"
            )
        if key in ("amsgrad", "centered", "nesterov"):
            if not isinstance(value, bool):
                raise ComponentError(f"{where}: optimizer.optimizer_params.{key} must be a boolean")
            if value and key != "nesterov":
                raise ComponentError(
                    f"{where}: optimizer.optimizer_params.{key} true is not implemented by the native homo_lr"
                )
        elif key == "betas":
            if not (isinstance(value, (list, tuple)) and len(value) == 2):
                raise ComponentError(f"{where}: optimizer.optimizer_params.betas must be two numbers")
            for b in value:
                _number(b, "optimizer.optimizer_params.betas", where)
        else:
            _number(value, f"optimizer.optimizer_params.{key}", where)
    lr = float(hp.get("lr", _TORCH_LR[method]))
    if lr <= 0:
        raise ComponentError(f"{where}: optimizer.optimizer_params.lr must be positive, got {lr}")
    scheduler = p.get("learning_rate_scheduler", default=None)
    if scheduler is not None:
        if not isinstance(scheduler, Mapping):
            raise ComponentError(f"{where}: parameter 'learning_rate_scheduler' must be an object")
        sm = str(scheduler.get("method", "constant")).lower()
        if sm not in SCHEDULERS:
            raise ComponentError(
                f"{where}: learning_rate_scheduler.method {sm!r} is not one of {', '.join(SCHEDULERS)}"
            )
        if not isinstance(scheduler.get("scheduler_params") or {}, Mapping):
            raise ComponentError(f"{where}: learning_rate_scheduler.scheduler_params must be an object")
    init_method, const, fit, seed = _init(p, "random", where)
    return HomoLRConfig(
        dialect="2.x",
        epochs=epochs,
        batch_size=_batch(p, 100),
        optimizer=method,
        optimizer_params=dict(hp),
        learning_rate=lr,
        penalty=penalty,
        alpha=alpha,
        scheduler=dict(scheduler) if scheduler else None,
        decay=0.0,
        decay_sqrt=False,
        early_stop=None,
        tol=0.0,
        aggregate_every=1,
        init_method=init_method,
        init_const=const,
        fit_intercept=fit,
        random_seed=seed,
        shuffle=p.boolean("shuffle", default=True),
        threshold=_threshold(p),
        secagg=_secagg(p),
        warnings=tuple(warnings),
    )


def _read_v1(p: Params, warnings: list[str]) -> HomoLRConfig:
    where = p.where
    max_iter = p.integer("max_iter", "epochs", default=100)
    if max_iter <= 0:
        raise ComponentError(f"{where}: parameter 'max_iter' must be positive, got {max_iter}")
    method = str(p.get("optimizer", default="sgd")).lower()
    if method in ("nesterov", "nesterov_momentum"):
        method = "nesterov_momentum_sgd"
    if method not in FATE1_OPTIMIZERS:
        raise ComponentError(
            f"{where}: parameter 'optimizer' {method!r} is not implemented by the native HomoLR "
            f"(implemented: {', '.join(FATE1_OPTIMIZERS)})"
        )
    lr = p.number("learning_rate", default=0.01)
    if lr <= 0:
        raise ComponentError(f"{where}: parameter 'learning_rate' must be positive, got {lr}")
    alpha = p.number("alpha", default=1.0)
    if alpha < 0:
        raise ComponentError(f"{where}: parameter 'alpha' must be >= 0, got {alpha}")
    early_stop = str(p.get("early_stop", default="diff")).lower()
    if early_stop not in EARLY_STOP:
        raise ComponentError(f"{where}: parameter 'early_stop' {early_stop!r} is not one of {EARLY_STOP}")
    every = p.integer("aggregate_iters", default=1)
    if every <= 0:
        raise ComponentError(f"{where}: parameter 'aggregate_iters' must be positive, got {every}")
    init_method, const, fit, seed = _init(p, "random_uniform", where)
    return HomoLRConfig(
        dialect="1.x",
        epochs=max_iter,
        batch_size=_batch(p, None),
        optimizer=method,
        optimizer_params={},
        learning_rate=lr,
        penalty=_penalty(p.get("penalty", default="L2"), "penalty", where),
        alpha=alpha,
        scheduler=None,
        decay=p.number("decay", default=1.0),
        decay_sqrt=p.boolean("decay_sqrt", default=True),
        early_stop=early_stop,
        tol=p.number("tol", default=1e-4),
        aggregate_every=every,
        init_method=init_method,
        init_const=const,
        fit_intercept=fit,
        random_seed=seed,
        shuffle=p.boolean("shuffle", default=True),
        threshold=_threshold(p),
        secagg=_secagg(p),
        warnings=tuple(warnings),
    )


# ---------------------------------------------------------------------------- initial weights


def initial_weights(cfg: HomoLRConfig, features: int, rng: np.random.Generator) -> np.ndarray:
    """Coefficients followed by the intercept (when fitted).

    2.x (torch ``init_model``): the intercept starts at 0 whatever the method; 1.x: the same
    initializer fills both.
    """
    size = features + (1 if cfg.fit_intercept else 0)
    if cfg.init_method == "zeros":
        w = np.zeros(size)
    elif cfg.init_method == "ones":
        w = np.ones(size)
    elif cfg.init_method == "const":
        w = np.full(size, cfg.init_const)
    elif cfg.init_method == "random_normal":
        w = rng.standard_normal(size)
    else:
        w = rng.random(size)
    if cfg.dialect == "2.x" and cfg.fit_intercept:
        w[-1] = 0.0
    return w


# ---------------------------------------------------------------------------- optimizers


class LocalOptimizer(Protocol):
    """What a client's training loop needs from an optimizer."""

    def start_epoch(self, epoch: int) -> None:
        """Called before each local epoch."""

    def step(self, w: np.ndarray, grad: np.ndarray) -> np.ndarray:
        """New parameters after one step on the mean log-loss gradient ``grad`` (no penalty)."""

    def penalty_loss(self, w: np.ndarray) -> float:
        """What the penalty adds to the reported loss."""


def scheduled_rate(base: float, scheduler: Mapping[str, Any] | None, step: int) -> float:
    """The rate after ``step`` scheduler steps of torch's ``ConstantLR`` / ``LinearLR`` / ``StepLR``."""
    if not scheduler:
        return base
    method = str(scheduler.get("method", "constant")).lower()
    sp = scheduler.get("scheduler_params") or {}
    if method == "linear":
        start = float(sp.get("start_factor", 1.0 / 3))
        end = float(sp.get("end_factor", 1.0))
        total = max(1, int(sp.get("total_iters", 5)))
        return base * (start + (end - start) * min(step, total) / total)
    if method == "step":
        return base * float(sp.get("gamma", 0.1)) ** (step // max(1, int(sp.get("step_size", 1))))
    factor = float(sp.get("factor", 1.0 / 3))
    return base * (factor if step < int(sp.get("total_iters", 5)) else 1.0)


class TorchOptimizer:
    """torch's SGD / Adam / AdamW / RMSprop / Adagrad update rules on one flat parameter vector.

    FATE 2.x's penalties: ``l2`` is torch's ``weight_decay`` (on every parameter, the intercept
    too — torch does not single it out); ``l1`` adds ``alpha·sign(w)`` to the gradient (the
    gradient of ``alpha·Σ|w|``, which FATE adds to the loss).
    """

    def __init__(self, cfg: HomoLRConfig, size: int) -> None:
        self.cfg = cfg
        hp = cfg.optimizer_params
        self.method = cfg.optimizer
        self.base_lr = cfg.learning_rate
        self.weight_decay = cfg.alpha if cfg.penalty == "L2" else float(hp.get("weight_decay", 0.0))
        if cfg.penalty != "L2" and self.method == "adamw" and "weight_decay" not in hp:
            self.weight_decay = 0.01  # torch's AdamW default
        self.l1 = cfg.alpha if cfg.penalty == "L1" else 0.0
        self.momentum = float(hp.get("momentum", 0.0))
        self.dampening = float(hp.get("dampening", 0.0))
        self.nesterov = bool(hp.get("nesterov", False))
        betas = hp.get("betas", (0.9, 0.999))
        self.beta1, self.beta2 = float(betas[0]), float(betas[1])
        default_eps = 1e-10 if self.method == "adagrad" else 1e-8
        self.eps = float(hp.get("eps", default_eps))
        self.rms_alpha = float(hp.get("alpha", 0.99))
        self.lr_decay = float(hp.get("lr_decay", 0.0))
        self.buf: np.ndarray | None = None
        self.m = np.zeros(size)
        self.v = np.full(size, float(hp.get("initial_accumulator_value", 0.0)))
        self.steps = 0

    def start_epoch(self, epoch: int) -> None:
        """The torch schedulers count optimizer steps, not epochs: nothing to do."""

    def step(self, w: np.ndarray, grad: np.ndarray) -> np.ndarray:
        """One torch optimizer step, then one scheduler step."""
        g = np.array(grad, dtype=np.float64)
        if self.l1:
            g += self.l1 * np.sign(w)
        lr = scheduled_rate(self.base_lr, self.cfg.scheduler, self.steps)
        self.steps += 1
        if self.weight_decay and self.method != "adamw":
            g += self.weight_decay * w
        if self.method == "sgd":
            if self.momentum:
                if self.buf is None:
                    self.buf = g.copy()
                else:
                    self.buf = self.momentum * self.buf + (1 - self.dampening) * g
                g = g + self.momentum * self.buf if self.nesterov else self.buf
            return np.asarray(w - lr * g)
        if self.method in ("adam", "adamw"):
            if self.method == "adamw":
                w = w * (1 - lr * self.weight_decay)
            self.m = self.beta1 * self.m + (1 - self.beta1) * g
            self.v = self.beta2 * self.v + (1 - self.beta2) * g * g
            m_hat = self.m / (1 - self.beta1**self.steps)
            v_hat = self.v / (1 - self.beta2**self.steps)
            return np.asarray(w - lr * m_hat / (np.sqrt(v_hat) + self.eps))
        if self.method == "rmsprop":
            self.v = self.rms_alpha * self.v + (1 - self.rms_alpha) * g * g
            scaled = g / (np.sqrt(self.v) + self.eps)
            if self.momentum:
                self.buf = scaled if self.buf is None else self.momentum * self.buf + scaled
                scaled = self.buf
            return np.asarray(w - lr * scaled)
        # adagrad
        clr = lr / (1 + (self.steps - 1) * self.lr_decay)
        self.v = self.v + g * g
        return np.asarray(w - clr * g / (np.sqrt(self.v) + self.eps))

    def penalty_loss(self, w: np.ndarray) -> float:
        """FATE 2.x adds only the L1 term to the loss (weight decay lives in the optimizer)."""
        return self.l1 * float(np.abs(w).sum())


class Fate1xOptimizer:
    """FATE 1.x's optimizers (:class:`fate_airflow.components._lr_params.Optimizer`).

    L2 and L1 act on the coefficients only; the learning rate decays per epoch.
    """

    def __init__(self, cfg: HomoLRConfig, size: int) -> None:
        lr_cfg = LRConfig(
            # the cipher fields belong to hetero LR; the optimizer never reads them
            cipher="paillier",
            key_length=0,
            max_iter=cfg.epochs,
            batch_size=cfg.batch_size,
            learning_rate=cfg.learning_rate,
            optimizer=cfg.optimizer,
            penalty=cfg.penalty,
            alpha=cfg.alpha,
            decay=cfg.decay,
            decay_sqrt=cfg.decay_sqrt,
            scheduler=None,
            early_stop=cfg.early_stop or "diff",
            tol=cfg.tol,
            init_method=cfg.init_method,
            init_const=cfg.init_const,
            fit_intercept=cfg.fit_intercept,
            random_seed=cfg.random_seed,
            shuffle=cfg.shuffle,
            precision=23,
            threshold=cfg.threshold,
        )
        self._opt = Fate1Optimizer(lr_cfg, size, cfg.fit_intercept)

    def start_epoch(self, epoch: int) -> None:
        """1.x decays the rate by epoch."""
        self._opt.iters = epoch

    def step(self, w: np.ndarray, grad: np.ndarray) -> np.ndarray:
        """One 1.x step."""
        return self._opt.step(w, grad)

    def penalty_loss(self, w: np.ndarray) -> float:
        """The 1.x regulariser on the coefficients."""
        return self._opt.penalty_loss(w)


def make_optimizer(cfg: HomoLRConfig, size: int) -> LocalOptimizer:
    """The optimizer of ``cfg``'s dialect."""
    if cfg.dialect == "1.x":
        return Fate1xOptimizer(cfg, size)
    return TorchOptimizer(cfg, size)


__all__ = [
    "HomoLRConfig",
    "LocalOptimizer",
    "SecAggConfig",
    "initial_weights",
    "make_optimizer",
    "read_homo_config",
    "scheduled_rate",
]
