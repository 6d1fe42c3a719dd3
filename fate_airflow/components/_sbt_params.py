"""Hetero SecureBoost parameters: FATE 2.x ``hetero_secureboost`` names and defaults, 1.x ``HeteroSecureBoost`` too.

FATE 2.2's component (``python/fate/components/components/hetero_secureboost.py``) defines the names and
defaults used here. A FATE 1.x conf is read with its own spellings (``bin_num``, ``tree_param.max_depth``,
``objective_param.objective``, ``criterion_params: [l2, l1]``, ``run_goss``, ``cipher_compress``, ...);
what it leaves out takes FATE 2.2's defaults, as the FATE provider's 1.x translation does
(``fate_airflow.dsl.v1_to_v2``). When both spellings are given the 2.x one wins. 1.x settings without a
2.x meaning are accepted only at the value that behaves like FATE 2.2 and are errors naming the field
otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fate_airflow.components.paillier import CipherKind, cipher_from_params
from fate_airflow.components.params import Params
from fate_airflow.core.errors import ComponentError

BINARY_BCE = "binary:bce"
MULTI_CE = "multi:ce"
REGRESSION_L2 = "regression:l2"
#: 1.x ``cross_entropy`` is binary or multi-class by the labels (FATE 1.x counts the classes).
CROSS_ENTROPY_AUTO = "cross_entropy"
OBJECTIVES = (BINARY_BCE, MULTI_CE, REGRESSION_L2)
_OBJECTIVE_SPELLINGS = {
    BINARY_BCE: BINARY_BCE,
    MULTI_CE: MULTI_CE,
    REGRESSION_L2: REGRESSION_L2,
    # FATE 1.x objective_param.objective
    "cross_entropy": CROSS_ENTROPY_AUTO,
    "lse": REGRESSION_L2,
}


@dataclass(frozen=True)
class SBTConfig:
    """Everything hetero SecureBoost reads from its parameters (FATE 2.2 defaults).

    ``objective`` may be :data:`CROSS_ENTROPY_AUTO` (a 1.x conf): the guest then decides binary or
    multi-class from its labels. ``warnings`` lists settings accepted but not honoured exactly; they are
    logged and reported in the task summary.
    """

    num_trees: int = 3
    learning_rate: float = 0.3
    max_depth: int = 3
    complete_secure: int = 0
    max_bin: int = 32
    objective: str = BINARY_BCE
    num_class: int = 2
    goss: bool = False
    goss_start_iter: int = 5
    top_rate: float = 0.2
    other_rate: float = 0.1
    l1: float = 0.0
    l2: float = 0.1
    min_impurity_split: float = 1e-2
    min_sample_split: int = 2
    min_leaf_node: int = 1
    min_child_weight: float = 1.0
    gh_pack: bool = True
    split_info_pack: bool = True
    hist_sub: bool = True
    cipher: CipherKind = "paillier"
    key_length: int = 1024
    random_seed: int = 42
    early_stop_tol: float | None = None
    warnings: tuple[str, ...] = ()


def _named(p: Params, names: tuple[str, ...]) -> tuple[str, ...]:
    """``names`` with the spelling the job used first, so an error names the field as written."""
    present = [n for n in names if p.has(n)]
    return tuple(present + [n for n in names if n not in present])


def _positive_int(p: Params, names: tuple[str, ...], default: int, minimum: int = 1) -> int:
    names = _named(p, names)
    value = p.integer(*names, default=default)
    if value < minimum:
        raise ComponentError(f"{p.where}: parameter {names[0]!r} must be >= {minimum}, got {value}")
    return value


def _number(p: Params, names: tuple[str, ...], default: float, *, low: float, strict: bool) -> float:
    names = _named(p, names)
    value = p.number(*names, default=default)
    if value < low or (strict and value == low):
        op = ">" if strict else ">="
        raise ComponentError(f"{p.where}: parameter {names[0]!r} must be {op} {low}, got {value}")
    return value


def _criterion(p: Params) -> tuple[float | None, float | None]:
    """1.x ``tree_param.criterion_params``: ``[l2, l1]`` (a list) or ``{"l1", "l2"}``."""
    raw = p.get("tree_param.criterion_params", default=None)
    if raw is None:
        return None, None
    if isinstance(raw, list) and 1 <= len(raw) <= 2:
        return float(raw[0]), float(raw[1]) if len(raw) == 2 else None
    if isinstance(raw, dict) and set(raw) <= {"l1", "l2"}:
        l2, l1 = raw.get("l2"), raw.get("l1")
        return (None if l2 is None else float(l2)), (None if l1 is None else float(l1))
    raise ComponentError(
        f"{p.where}: parameter 'tree_param.criterion_params' must be [l2, l1] or {{l1, l2}}, got {raw!r}"
    )


def _complete_secure(p: Params) -> int:
    raw = p.get("complete_secure", default=0)
    if isinstance(raw, bool):  # 1.x: the first tree uses guest features only
        return 1 if raw else 0
    if isinstance(raw, int) and raw >= 0:
        return raw
    raise ComponentError(
        f"{p.where}: parameter 'complete_secure' must be a number of trees >= 0 (or a 1.x boolean), got {raw!r}"
    )


def _only(p: Params, name: str, accepted: tuple[Any, ...], why: str) -> None:
    """A 1.x setting FATE 2.2 does not have: fine at the values behaving like 2.2, else an error."""
    value = p.get(name, default=None)
    if value is not None and value not in accepted:
        raise ComponentError(f"{p.where}: parameter {name!r} = {value!r} is not supported ({why})")


def read_sbt_config(p: Params) -> SBTConfig:
    """Parse FATE 2.x and 1.x hetero SecureBoost parameters.

    :raises ComponentError: a bad value, naming the parameter (``objective``, ``max_depth``, ...).
    """
    warnings: list[str] = []
    cipher, key_length = cipher_from_params(p, p.where)
    if cipher == "paillier" and key_length < 1024:
        raise ComponentError(f"{p.where}: parameter 'he_param.key_length' must be >= 1024, got {key_length}")
    objective = p.choice(
        *_named(p, ("objective", "objective_param.objective")),
        default=BINARY_BCE,
        choices=_OBJECTIVE_SPELLINGS,
    )
    task_type = p.string("task_type", default=None)
    if task_type is not None:
        kind = task_type.strip().lower()
        if kind not in ("classification", "regression"):
            raise ComponentError(
                f"{p.where}: parameter 'task_type' is {task_type!r}; expected classification or regression"
            )
        if (kind == "regression") != (objective == REGRESSION_L2):
            raise ComponentError(
                f"{p.where}: parameter 'task_type' {task_type!r} does not match objective {objective!r}"
            )
    num_class = _positive_int(p, ("num_class",), 2)
    if objective == MULTI_CE and num_class < 3:
        raise ComponentError(
            f"{p.where}: parameter 'num_class' must be >= 3 for objective multi:ce, got {num_class}"
        )
    l2_v1, l1_v1 = _criterion(p)
    l1 = _number(p, ("l1",), l1_v1 if l1_v1 is not None else 0.0, low=0.0, strict=False)
    l2 = _number(p, ("l2",), l2_v1 if l2_v1 is not None else 0.1, low=0.0, strict=False)
    top_rate = _number(p, ("top_rate",), 0.2, low=0.0, strict=True)
    other_rate = _number(p, ("other_rate",), 0.1, low=0.0, strict=True)
    if top_rate >= 1 or other_rate >= 1 or top_rate + other_rate > 1:
        raise ComponentError(
            f"{p.where}: parameters 'top_rate' ({top_rate}) and 'other_rate' ({other_rate}) must each be "
            "below 1 and sum to at most 1"
        )
    max_bin = _positive_int(p, ("max_bin", "bin_num"), 32, minimum=2)
    if max_bin > 65535:
        raise ComponentError(f"{p.where}: parameter 'max_bin' must be at most 65535, got {max_bin}")
    # 1.x settings that FATE 2.2 has no counterpart for
    _only(p, "tree_param.criterion_method", ("xgboost",), "FATE 2.x uses the xgboost gain")
    for name in ("use_missing", "zero_as_missing", "tree_param.use_missing", "tree_param.zero_as_missing"):
        _only(p, name, (False,), "FATE 2.x has no missing-value mode")
    _only(p, "subsample_feature_rate", (1, 1.0), "FATE 2.x always uses every feature")
    _only(p, "boosting_strategy", ("std",), "only standard boosting (layered/mix trees are FATE 1.x only)")
    _only(p, "multi_mode", ("single_output",), "one tree per class, as FATE 2.x")
    _only(p, "cv_param.need_cv", (False,), "cross validation is a separate 2.x stage")
    for name in ("work_mode", "tree_num_per_party", "guest_depth", "host_depth"):
        if p.get(name, default=None) is not None:
            raise ComponentError(
                f"{p.where}: parameter {name!r} is FATE 1.x HeteroFastSecureBoost's (mix/layered trees), "
                "which the native hetero SecureBoost does not implement"
            )
    if p.get("early_stopping_rounds", default=None) is not None:
        warnings.append(
            "early_stopping_rounds needs validation during training, which FATE 2.x does not do; ignored"
        )
    p.get("validation_freqs", "metrics", "use_first_metric_only", "tree_param.max_split_nodes")
    p.get("EINI_inference", "EINI_random_mask", "sparse_optimization", "callback_param", "predict_param")
    early_stop = p.boolean("n_iter_no_change", default=False)
    tol = p.number("tol", default=1e-4)
    gh_pack = p.boolean("gh_pack", default=True)
    if not gh_pack:
        warnings.append(
            "gh_pack=false: g and h are packed into one plaintext anyway (same model, half the work)"
        )
    return SBTConfig(
        num_trees=_positive_int(p, ("num_trees",), 3),
        learning_rate=_number(p, ("learning_rate",), 0.3, low=0.0, strict=True),
        max_depth=_positive_int(p, ("max_depth", "tree_param.max_depth"), 3),
        complete_secure=_complete_secure(p),
        max_bin=max_bin,
        objective=objective,
        num_class=num_class,
        goss=p.boolean("goss", "run_goss", default=False),
        goss_start_iter=_positive_int(p, ("goss_start_iter",), 5, minimum=0),
        top_rate=top_rate,
        other_rate=other_rate,
        l1=l1,
        l2=l2,
        min_impurity_split=_number(
            p, ("min_impurity_split", "tree_param.min_impurity_split"), 1e-2, low=0.0, strict=True
        ),
        min_sample_split=_positive_int(p, ("min_sample_split", "tree_param.min_sample_split"), 2),
        min_leaf_node=_positive_int(p, ("min_leaf_node", "tree_param.min_leaf_node"), 1),
        min_child_weight=_number(
            p, ("min_child_weight", "tree_param.min_child_weight"), 1.0, low=0.0, strict=True
        ),
        gh_pack=gh_pack,
        split_info_pack=p.boolean("split_info_pack", "cipher_compress", default=True),
        hist_sub=p.boolean("hist_sub", default=True),
        cipher=cipher,
        key_length=key_length,
        random_seed=p.integer("random_seed", default=42),
        early_stop_tol=tol if early_stop else None,
        warnings=tuple(warnings),
    )


__all__ = [
    "BINARY_BCE",
    "CROSS_ENTROPY_AUTO",
    "MULTI_CE",
    "OBJECTIVES",
    "REGRESSION_L2",
    "SBTConfig",
    "read_sbt_config",
]
