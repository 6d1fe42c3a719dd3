"""Hetero LR parameters, 1.x ``HeteroLR`` and 2.x ``coordinated_lr`` spellings, with FATE's defaults."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from fate_airflow.components.paillier import CipherKind, cipher_from_params
from fate_airflow.components.params import Params
from fate_airflow.core.errors import ComponentError

OPTIMIZERS = ("sgd", "nesterov_momentum_sgd", "rmsprop", "adam", "adagrad")
EARLY_STOP = ("diff", "weight_diff", "abs")
#: Initialisers, by their internal name; FATE 2.x's ``consts`` and ``random`` are spellings of
#: ``const`` and ``random_normal`` (1.x's names), see :data:`_INIT_SPELLINGS`.
INIT_METHODS = ("zeros", "ones", "const", "random_uniform", "random_normal")
_INIT_SPELLINGS = {
    "zeros": "zeros",
    "ones": "ones",
    "const": "const",
    "consts": "const",
    "constant": "const",
    "random_uniform": "random_uniform",
    "random_normal": "random_normal",
    "random": "random_normal",
}


@dataclass(frozen=True)
class LRConfig:
    """Everything hetero LR reads from its parameters.

    ``warnings`` lists what was asked for but replaced (an unsupported optimizer, ...); it is logged
    and reported in the task summary.
    """

    cipher: CipherKind
    key_length: int
    max_iter: int
    batch_size: int | None
    learning_rate: float
    optimizer: str
    penalty: str | None
    alpha: float
    decay: float
    decay_sqrt: bool
    scheduler: dict[str, Any] | None
    early_stop: str
    tol: float
    init_method: str
    init_const: float
    fit_intercept: bool
    random_seed: int | None
    shuffle: bool
    precision: int
    threshold: float
    warnings: tuple[str, ...] = ()


def read_config(p: Params) -> LRConfig:
    """Parse 1.x and 2.x parameters (2.x names win when both are given)."""
    warnings: list[str] = []
    cipher, key_length = cipher_from_params(p, p.where)
    opt_raw = p.get("optimizer", default="rmsprop" if not p.has("epochs") else "sgd")
    if isinstance(opt_raw, dict):  # 2.x: {method, penalty, alpha, optimizer_params: {lr}}
        method = str(opt_raw.get("method") or "sgd").lower()
        penalty_raw = opt_raw.get("penalty", "l2")
        alpha = float(opt_raw.get("alpha", 1.0) if opt_raw.get("alpha") is not None else 1.0)
        lr = float((opt_raw.get("optimizer_params") or {}).get("lr", 0.01))
        decay, decay_sqrt = 0.0, False
    else:
        method = str(opt_raw).lower()
        penalty_raw = p.get("penalty", default="L2")
        alpha = p.number("alpha", default=1.0)
        lr = p.number("learning_rate", default=0.01)
        decay = p.number("decay", default=1.0)
        decay_sqrt = p.boolean("decay_sqrt", default=True)
    if method in ("nesterov", "nesterov_momentum"):
        method = "nesterov_momentum_sgd"
    if method not in OPTIMIZERS:
        warnings.append(f"optimizer {method!r} is not implemented; using sgd")
        method = "sgd"
    penalty = None if penalty_raw in (None, "", "none", "None") else str(penalty_raw).upper()
    if penalty not in (None, "L1", "L2"):
        raise ComponentError(f"{p.where}: penalty {penalty_raw!r} is not L1, L2 or none")
    scheduler = p.get("learning_rate_scheduler", default=None)
    if scheduler is not None and not isinstance(scheduler, dict):
        raise ComponentError(f"{p.where}: learning_rate_scheduler must be an object")
    max_iter = p.integer("epochs", "max_iter", default=20 if p.has("epochs") else 100)
    batch = p.get("batch_size", default=None)
    batch_size = None if batch in (None, -1) else int(batch)
    if batch_size is not None and batch_size <= 0:
        raise ComponentError(f"{p.where}: batch_size must be positive or -1 (full batch), got {batch}")
    early_stop = str(p.get("early_stop", default="diff")).lower()
    if early_stop not in EARLY_STOP:
        raise ComponentError(f"{p.where}: early_stop {early_stop!r} is not one of {EARLY_STOP}")
    init = p.get("init_param", default={}) or {}
    if not isinstance(init, dict):
        raise ComponentError(f"{p.where}: init_param must be an object")
    init_method, init_const = _init_method(p, init, v2=p.has("epochs") or isinstance(opt_raw, dict))
    seed = init.get("random_seed", init.get("random_state"))
    if p.get("cv_param.need_cv", default=False):
        raise ComponentError(f"{p.where}: cross validation (cv_param.need_cv) is not implemented")
    multi = p.get("multi_class", default="ovr")
    p.get("sqn_param", "validation_freqs", "early_stopping_rounds", "metrics", "use_first_metric_only")
    p.get("stepwise_param", "callback_param", "batch_strategy", "masked_rate", "output_cv_data")
    del multi
    precision = p.integer("floating_point_precision", default=23)
    if not 8 <= precision <= 52:
        raise ComponentError(f"{p.where}: floating_point_precision must be in [8, 52], got {precision}")
    threshold = p.number("threshold", "predict_param.threshold", default=0.5)
    return LRConfig(
        cipher=cipher,
        key_length=key_length,
        max_iter=max_iter,
        batch_size=batch_size,
        learning_rate=lr,
        optimizer=method,
        penalty=penalty,
        alpha=alpha,
        decay=decay,
        decay_sqrt=decay_sqrt,
        scheduler=scheduler,
        early_stop=early_stop,
        tol=p.number("tol", default=1e-4),
        init_method=init_method,
        init_const=init_const,
        fit_intercept=bool(init.get("fit_intercept", True)),
        random_seed=None if seed is None else int(seed),
        shuffle=p.boolean("shuffle", default=True),
        precision=precision,
        threshold=threshold,
        warnings=tuple(warnings),
    )


def _init_method(p: Params, init: dict[str, Any], v2: bool) -> tuple[str, float]:
    """The initialiser and its constant, from 1.x or 2.x ``init_param``.

    1.x names them ``init_method``/``init_const``, 2.x ``method``/``fill_val``.

    Defaults follow each version: FATE 2.x's ``InitParam`` has ``method: zeros`` and ``fill_val: 0``
    (the component's default, used when ``init_param`` is absent, is ``random_uniform``); 1.x's has
    ``random_uniform`` and ``init_const: 1``.
    """
    field = "method" if "method" in init else "init_method"
    raw = init.get(field)
    if raw is None:
        raw = "zeros" if v2 and init else "random_uniform"
    method = _INIT_SPELLINGS.get(str(raw).strip().lower())
    if method is None:
        raise ComponentError(f"{p.where}: init_param.{field} {raw!r} is not one of {sorted(_INIT_SPELLINGS)}")
    default_const = 0.0 if v2 or "fill_val" in init else 1.0
    const = init.get("fill_val", init.get("init_const", default_const))
    try:
        value = float(const if const is not None else default_const)
    except (TypeError, ValueError):
        raise ComponentError(f"{p.where}: init_param fill value {const!r} is not a number") from None
    return method, value


def init_weights(cfg: LRConfig, size: int, rng: np.random.Generator) -> np.ndarray:
    """FATE's ``Initializer``: zeros, ones, const, random_uniform ``U[0,1)``, random_normal."""
    if cfg.init_method == "zeros":
        return np.zeros(size)
    if cfg.init_method == "ones":
        return np.ones(size)
    if cfg.init_method == "const":
        return np.full(size, cfg.init_const)
    if cfg.init_method == "random_normal":
        return rng.standard_normal(size)
    return rng.random(size)


def class_initial_weights(cfg: LRConfig, size: int, classes: int, rng: np.random.Generator) -> np.ndarray:
    """Initial weights of each one-vs-rest model, shape ``(classes, size)``.

    FATE 2.x initialises each class's model on its own: with ``random_state`` every class starts
    from the same draw (a generator seeded afresh per class), without it each draws anew. One class
    (binary) draws from ``rng`` exactly as before, so binary training is unchanged.
    """
    if classes > 1 and cfg.random_seed is not None:
        seed = cfg.random_seed
        return np.stack([init_weights(cfg, size, np.random.default_rng(seed)) for _ in range(classes)])
    return np.stack([init_weights(cfg, size, rng) for _ in range(classes)])


class Optimizer:
    """FATE 1.x's optimizers on one party's own parameter vector (its coefficients [+ intercept]).

    The update is per coordinate, so every party can step its own weights with its own (unmasked)
    gradient and the result equals a joint step. L2 is added to the gradient; L1 is a proximal
    soft-threshold after the step, as in FATE.
    """

    def __init__(self, cfg: LRConfig, size: int, fit_intercept: bool) -> None:
        self.cfg = cfg
        self.size = size
        self.fit_intercept = fit_intercept
        self.iters = 0
        self.m = np.zeros(size)
        self.v = np.zeros(size)
        self.beta1_decay = 1.0
        self.beta2_decay = 1.0

    def learning_rate(self) -> float:
        """The rate for the current iteration (1.x decay, or a 2.x scheduler)."""
        cfg = self.cfg
        if cfg.scheduler:
            method = str(cfg.scheduler.get("method", "constant")).lower()
            sp = cfg.scheduler.get("scheduler_params") or {}
            if method == "linear":
                start = float(sp.get("start_factor", 1.0 / 3))
                end = float(sp.get("end_factor", 1.0))
                total = max(1, int(sp.get("total_iters", 5)))
                factor = start + (end - start) * min(self.iters, total) / total
                return cfg.learning_rate * factor
            if method == "step":
                step = max(1, int(sp.get("step_size", 1)))
                return cfg.learning_rate * float(sp.get("gamma", 0.1)) ** (self.iters // step)
            if method == "constant":
                factor = float(sp.get("factor", 1.0 / 3))
                total = int(sp.get("total_iters", 5))
                return cfg.learning_rate * (factor if self.iters < total else 1.0)
            return cfg.learning_rate
        if cfg.decay_sqrt:
            return cfg.learning_rate / math.sqrt(1 + cfg.decay * self.iters)
        return cfg.learning_rate / (1 + cfg.decay * self.iters)

    def _coef(self) -> slice:
        return slice(0, self.size - (1 if self.fit_intercept else 0))

    def step(self, w: np.ndarray, grad: np.ndarray) -> np.ndarray:
        """New parameters after one gradient step."""
        cfg, coef = self.cfg, self._coef()
        g = np.array(grad, dtype=np.float64)
        if cfg.penalty == "L2":
            g[coef] += cfg.alpha * w[coef]
        lr = self.learning_rate()
        if cfg.optimizer == "sgd":
            delta = lr * g
        elif cfg.optimizer == "nesterov_momentum_sgd":
            v = 0.9 * self.m - lr * g
            delta = 0.9 * self.m - 1.9 * v
            self.m = v
        elif cfg.optimizer == "rmsprop":
            self.m = 0.99 * self.m + 0.01 * g * g
            delta = lr * g / np.sqrt(self.m + 1e-6)
        elif cfg.optimizer == "adagrad":
            self.m = self.m + g * g
            delta = lr * g / (np.sqrt(self.m) + 1e-7)
        else:  # adam
            self.beta1_decay *= 0.9
            self.beta2_decay *= 0.999
            self.m = 0.9 * self.m + 0.1 * g
            self.v = 0.999 * self.v + 0.001 * g * g
            delta = lr * (self.m / (1 - self.beta1_decay)) / (np.sqrt(self.v / (1 - self.beta2_decay)) + 1e-8)
        new = w - delta
        if cfg.penalty == "L1":
            shrink = cfg.alpha * cfg.learning_rate / math.sqrt(max(self.iters, 1))
            c = new[coef]
            new[coef] = np.sign(c) * np.maximum(0.0, np.abs(c) - shrink)
        return new

    def penalty_loss(self, w: np.ndarray) -> float:
        """The regulariser's contribution to the loss (coefficients only)."""
        coef = w[self._coef()]
        if self.cfg.penalty == "L2":
            return 0.5 * self.cfg.alpha * float(coef @ coef)
        if self.cfg.penalty == "L1":
            return self.cfg.alpha * float(np.abs(coef).sum())
        return 0.0


__all__ = ["LRConfig", "Optimizer", "class_initial_weights", "init_weights", "read_config"]
