"""FATE 1.x DSL modules on FATE 2.2's components: which module maps to which, and the parameter table.

A 1.x task whose module this project does not implement natively runs on the FATE provider (FATE 2.2's
own library) when :data:`MODULES` maps the module onto a 2.x component with the same function. Its
parameters are then rewritten by :data:`PARAMETERS` — one rule per 1.x parameter (dotted path into
the module's parameter object), applied to the parameters as FATE's runtime conf writes them for each
party:

==========================  =====================================================================
rule                        meaning
==========================  =====================================================================
``Rule("x")``               copy the value to 2.x parameter ``x`` (dotted: ``optimizer.alpha``)
``Rule("x", values={..})``  map the value through the dict (1.x spelling → 2.x spelling); any other
                            value is an error listing the accepted ones
``Rule("x", convert=f)``    ``f(value)`` is the 2.x value (raises ``ValueError`` with the reason)
``Rule(None, accept=(..))`` no 2.x parameter; accepted only for the listed values, for which FATE
                            2.2 behaves the same (e.g. ``use_missing: false``); :data:`ANY` accepts
                            every value (settings without an effect on the result, such as
                            performance knobs, or settings that only matter together with a
                            parameter that itself has no translation)
``Rule(None, convert=f)``   ``f(value)`` returns several 2.x parameters at once (a mapping)
==========================  =====================================================================

Anything not in a module's table is a plan error naming the file and field (``no translation for
HeteroSecureBoost.tree_param.max_split_nodes ...``); for the mapped modules without a table (Union,
HeteroFeatureSelection, HeteroPearson, HeteroSSHELR, HeteroSSHELinR) every non-empty parameter set
is an error. A ``null`` value means "FATE's default" in 1.x confs and is left out. ``need_run`` is
handled by the planner before translation.

Two deliberate limits, both visible to the user:

* Only the parameters a job writes are translated. Parameters it leaves out take FATE 2.2's defaults,
  not FATE 1.x's (e.g. 3 trees instead of 5 for SecureBoost): FATE 2.x re-implemented its algorithms,
  so a 1.x job never reproduces FATE 1.x's numbers exactly, and we do not pretend otherwise.
* Settings whose FATE 1.x behaviour FATE 2.2 does not have (learning-rate ``decay``, HomoLR's ``tol``
  / ``early_stop``, ``early_stopping_rounds``, feature subsampling, ...) are errors rather than
  silently dropped, except at the value FATE 2.2 behaves like. Remove them, or write the job as a
  FATE 2.x DAG, to run it.

Composite translations that need several 1.x fields at once (FederatedSample's ``mode`` +
``fractions`` → ``frac``; HeteroDataSplit's 1.x default split when no size is given) are done by
:data:`FINISH` after the table.

Integer keys: FederatedSample's stratified ``fractions`` ``[[label, rate], ...]`` becomes FATE 2.2's
``frac: {label: rate}`` with integer labels kept as integers, the form pyfate's ``sample`` expects;
plans keep such keys losslessly (see :mod:`fate_airflow.dsl.plan`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

#: FATE 1.x module → FATE 2.2 component with the same function (others have no FATE counterpart here).
MODULES: Mapping[str, str] = {
    "HeteroSecureBoost": "hetero_secureboost",
    "HomoLR": "homo_lr",
    "HeteroFeatureBinning": "hetero_feature_binning",
    "HeteroFeatureSelection": "hetero_feature_selection",
    "HeteroDataSplit": "data_split",
    "FederatedSample": "sample",
    "Union": "union",
    "DataStatistics": "statistics",
    "HeteroPearson": "feature_correlation",
    "HeteroLinR": "coordinated_linr",
    "HeteroSSHELR": "sshe_lr",
    "HeteroSSHELinR": "sshe_linr",
}


class _Any:
    def __repr__(self) -> str:
        return "ANY"


#: ``Rule(None, accept=ANY)``: every value is accepted (and has no 2.x counterpart).
ANY: Final = _Any()


@dataclass(frozen=True)
class Rule:
    """How one FATE 1.x parameter becomes FATE 2.2 parameters (see the module docstring).

    :param target: dotted 2.x parameter path, or None when the 1.x parameter has no 2.x counterpart.
    :param values: 1.x value → 2.x value (others are errors).
    :param convert: value → 2.x value (or, with ``target`` None, → mapping of 2.x paths to values);
        raises ``ValueError`` with the reason.
    :param accept: with ``target`` None: the values accepted (dropped); :data:`ANY` for all.
    :param why: shown in the error when a value is refused.
    """

    target: str | None
    values: Mapping[Any, Any] | None = None
    convert: Callable[[Any], Any] | None = None
    accept: tuple[Any, ...] | _Any = ()
    why: str = ""


def _lower_choice(choices: Mapping[str, Any], what: str) -> Callable[[Any], Any]:
    # FATE 1.x checks most string choices case-insensitively (check_and_change_lower).
    def convert(value: Any) -> Any:
        if isinstance(value, str) and value.lower() in choices:
            return choices[value.lower()]
        raise ValueError(f"{what} {value!r} has no FATE 2.2 counterpart; accepted: {', '.join(choices)}")

    return convert


def _criterion_params(value: Any) -> Mapping[str, Any]:
    # 1.x: [l2, l1] (a list) or {"l1": .., "l2": ..}; 2.x: separate l2 and l1.
    if isinstance(value, list) and 1 <= len(value) <= 2:
        out = {"l2": value[0]}
        if len(value) == 2:
            out["l1"] = value[1]
        return out
    if isinstance(value, Mapping) and set(value) <= {"l1", "l2"}:
        return dict(value)
    raise ValueError(f"expected [l2, l1] or {{l1, l2}}, got {value!r}")


def _complete_secure(value: Any) -> int:
    # 1.x: a boolean (build the first tree with guest features only); 2.x: how many such trees.
    if isinstance(value, bool):
        return 1 if value else 0
    if isinstance(value, int) and value >= 0:
        return value
    raise ValueError(f"expected true or false, got {value!r}")


def _positive_batch(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    raise ValueError(
        f"batch_size {value!r}: FATE 2.2's homo_lr has no full-batch setting (-1); give a batch size > 0"
    )


def _batch_or_full(value: Any) -> int | None:
    if value == -1:
        return None  # 1.x full batch = 2.x batch_size null
    return _positive_batch(value)


#: FATE 1.x statistic names (federatedml consts) → FATE 2.2 metric names.
_STATISTICS = {
    "count": "count",
    "sum": "sum",
    "mean": "mean",
    "stddev": "std",
    "median": "median",
    "min": "min",
    "max": "max",
    "variance": "var",
    "coefficient_of_variance": "coefficient_of_variation",
    "missing_count": "missing_count",
    "missing_ratio": "missing_ratio",
    "skewness": "skewness",
    "kurtosis": "kurtosis",
}
#: What FATE 1.x always computes (StatisticsParam.BASIC_STAT; requested ones are added to it).
_BASIC_STATISTICS = (
    "sum",
    "mean",
    "stddev",
    "median",
    "min",
    "max",
    "missing_ratio",
    "missing_count",
    "skewness",
    "kurtosis",
    "coefficient_of_variance",
)


def _statistics(value: Any) -> list[str]:
    requested = [value] if isinstance(value, str) else value
    if not isinstance(requested, list) or not all(isinstance(v, str) for v in requested):
        raise ValueError(f"expected a statistic name or a list of them, got {value!r}")
    names = list(_BASIC_STATISTICS)
    for name in requested:
        if name != "summary" and name not in names:
            names.append(name)
    out: list[str] = []
    for name in names:
        if name in _STATISTICS:
            out.append(_STATISTICS[name])
        elif name.endswith("%") and name[:-1].isdigit() and int(name[:-1]) <= 100:
            out.append(name)  # percentiles are written the same way in both versions
        else:
            raise ValueError(f"statistic {name!r} has no FATE 2.2 counterpart")
    return out


_PAILLIER = {"paillier": "paillier"}
_OPTIMIZERS = {"sgd": "sgd", "adam": "adam", "rmsprop": "rmsprop", "adagrad": "adagrad"}
_PENALTIES = {"l1": "l1", "l2": "l2", "none": None}
_INIT_METHODS = {
    "zeros": "zeros",
    "ones": "ones",
    "const": "consts",
    "random_normal": "random",
    "random_uniform": "random_uniform",
}
_CV_ONLY = Rule(None, accept=ANY, why="only used with cv_param.need_cv: true")

_INIT_PARAM = {
    "init_param.init_method": Rule("init_param.method", convert=_lower_choice(_INIT_METHODS, "init_method")),
    "init_param.init_const": Rule("init_param.fill_val"),
    "init_param.fit_intercept": Rule("init_param.fit_intercept"),
    "init_param.random_seed": Rule("init_param.random_state"),
}
_GLM_OPTIMIZER = {
    "learning_rate": Rule("optimizer.optimizer_params.lr"),
    "optimizer": Rule("optimizer.method", convert=_lower_choice(_OPTIMIZERS, "optimizer")),
    "penalty": Rule("optimizer.penalty", convert=_lower_choice(_PENALTIES, "penalty")),
    "alpha": Rule("optimizer.alpha"),
}
_CROSS_VALIDATION = {
    "cv_param.need_cv": Rule(None, accept=(False,), why="cross validation is a separate 2.x stage"),
    "cv_param.n_splits": _CV_ONLY,
    "cv_param.shuffle": _CV_ONLY,
    "cv_param.random_seed": _CV_ONLY,
    "cv_param.mode": _CV_ONLY,
    "cv_param.role": _CV_ONLY,
    "cv_param.output_fold_history": _CV_ONLY,
    "cv_param.history_value_type": _CV_ONLY,
}
_HE = {
    "encrypt_param.method": Rule("he_param.kind", convert=_lower_choice(_PAILLIER, "encrypt_param.method")),
    "encrypt_param.key_length": Rule("he_param.key_length"),
}

#: FATE 1.x module → its parameter table (see the module docstring for the rule kinds).
PARAMETERS: Mapping[str, Mapping[str, Rule]] = {
    "HeteroSecureBoost": {
        "num_trees": Rule("num_trees"),
        "learning_rate": Rule("learning_rate"),
        "bin_num": Rule("max_bin"),
        "task_type": Rule(
            None, accept=("classification", "regression"), why="objective_param.objective decides"
        ),
        "objective_param.objective": Rule(
            "objective",
            # Binary only: FATE 1.x infers the class count from the data, FATE 2.2 needs
            # objective multi:ce + num_class, which a 1.x conf cannot say.
            values={"cross_entropy": "binary:bce", "lse": "regression:l2"},
            why="multi-class jobs need a FATE 2.x DAG (objective multi:ce with num_class)",
        ),
        "tree_param.max_depth": Rule("max_depth"),
        "tree_param.min_sample_split": Rule("min_sample_split"),
        "tree_param.min_leaf_node": Rule("min_leaf_node"),
        "tree_param.min_impurity_split": Rule("min_impurity_split"),
        "tree_param.min_child_weight": Rule("min_child_weight"),
        "tree_param.criterion_method": Rule(None, accept=("xgboost",), why="FATE 2.2 uses the xgboost gain"),
        "tree_param.criterion_params": Rule(None, convert=_criterion_params),
        "tree_param.max_split_nodes": Rule(None, accept=ANY, why="a performance knob"),
        "tree_param.use_missing": Rule(None, accept=(False,)),
        "tree_param.zero_as_missing": Rule(None, accept=(False,)),
        "complete_secure": Rule("complete_secure", convert=_complete_secure),
        "use_missing": Rule(None, accept=(False,), why="FATE 2.2 has no missing-value mode"),
        "zero_as_missing": Rule(None, accept=(False,), why="FATE 2.2 has no missing-value mode"),
        "subsample_feature_rate": Rule(None, accept=(1, 1.0), why="FATE 2.2 always uses every feature"),
        "validation_freqs": Rule(
            None, accept=ANY, why="FATE 2.2 evaluates a validate_data input after every tree"
        ),
        **_HE,
        **_CROSS_VALIDATION,
    },
    "HomoLR": {
        "max_iter": Rule("epochs"),
        "batch_size": Rule("batch_size", convert=_positive_batch),
        **_GLM_OPTIMIZER,
        **_INIT_PARAM,
        "encrypt_param.method": Rule(None, accept=(None,), why="FATE 2.2's homo_lr aggregates securely"),
        **_CROSS_VALIDATION,
    },
    "HeteroLinR": {
        "max_iter": Rule("epochs"),
        "batch_size": Rule("batch_size", convert=_batch_or_full),
        "tol": Rule("tol"),
        "early_stop": Rule(
            "early_stop",
            convert=_lower_choice({"diff": "diff", "abs": "abs", "weight_diff": "weight_diff"}, "early_stop"),
        ),
        "floating_point_precision": Rule("floating_point_precision"),
        **_GLM_OPTIMIZER,
        **_INIT_PARAM,
        **_HE,
        **_CROSS_VALIDATION,
    },
    "HeteroFeatureBinning": {
        "method": Rule(
            "method", convert=_lower_choice({"quantile": "quantile", "bucket": "bucket"}, "method")
        ),
        "bin_num": Rule("n_bins"),
        "bin_names": Rule("bin_col"),
        "bin_indexes": Rule("bin_idx", convert=lambda v: None if v == -1 else v),
        "category_names": Rule("category_col"),
        "category_indexes": Rule("category_idx", convert=lambda v: None if v == -1 else v),
        "adjustment_factor": Rule("adjustment_factor"),
        "error": Rule("relative_error"),
        "local_only": Rule("local_only"),
        "compress_thres": Rule(None, accept=ANY, why="a performance knob"),
        "head_size": Rule(None, accept=ANY, why="a performance knob"),
        "skip_static": Rule(None, accept=(False,)),
        "transform_param.transform_type": Rule(
            "transform_method",
            values={"bin_num": "bin_idx", "woe": "woe"},
            why="FATE 2.2 has bin_idx and woe",
        ),
        "transform_param.transform_cols": Rule(
            None, accept=(-1,), why="FATE 2.2 transforms every binned column"
        ),
        "transform_param.transform_names": Rule(
            None, accept=([],), why="FATE 2.2 transforms every binned column"
        ),
        **_HE,
    },
    "DataStatistics": {
        "statistics": Rule("metrics", convert=_statistics),
        "column_indexes": Rule(None, accept=(-1,), why="FATE 2.2 selects columns with skip_col instead"),
        "column_names": Rule(None, accept=([],), why="FATE 2.2 selects columns with skip_col instead"),
        "abnormal_list": Rule(None, accept=([],)),
        "quantile_error": Rule("relative_error"),
        "bias": Rule("bias"),
    },
    "HeteroDataSplit": {
        "random_state": Rule("random_state"),
        "train_size": Rule("train_size"),
        "validate_size": Rule("validate_size"),
        "test_size": Rule("test_size"),
        "stratified": Rule("stratified"),
        "shuffle": Rule(None, accept=(True,), why="FATE 2.2 always shuffles"),
    },
    "FederatedSample": {
        "mode": Rule(None, accept=("random", "stratified")),  # used by FINISH
        "fractions": Rule(None, accept=ANY),  # used by FINISH
        "method": Rule("replace", values={"downsample": False, "upsample": True}),
        "random_state": Rule("random_state"),
        "task_type": Rule("hetero_sync", values={"hetero": True, "homo": False}),
    },
}


def _finish_sample(original: Mapping[str, Any], out: dict[str, Any]) -> None:
    fractions = original.get("fractions")
    if fractions is None:
        return
    mode = str(original.get("mode") or "random").lower()
    if mode == "random":
        if isinstance(fractions, bool) or not isinstance(fractions, (int, float)):
            raise ValueError(f"fractions: random mode takes a number, got {fractions!r}")
        out["frac"] = fractions
        return
    if not isinstance(fractions, list) or not all(isinstance(p, list) and len(p) == 2 for p in fractions):
        raise ValueError(f"fractions: stratified mode takes [[label, rate], ...], got {fractions!r}")
    frac: dict[Any, Any] = {}
    for label, rate in fractions:
        # pyfate's sample compares labels as integers (label_0, label_1 columns): keep ints as ints.
        key = int(label) if isinstance(label, str) and label.lstrip("-").isdigit() else label
        frac[key] = rate
    out["frac"] = frac


def _finish_data_split(original: Mapping[str, Any], out: dict[str, Any]) -> None:
    # FATE 1.x splits 0.8 / 0.2 / 0 when no size is given (DataSplitParam.check); FATE 2.2 has no such default.
    if all(original.get(k) is None for k in ("train_size", "validate_size", "test_size")):
        out.update(train_size=0.8, validate_size=0.2, test_size=0.0)


#: Translations needing several 1.x fields: ``f(original parameters, translated) -> None``.
FINISH: Mapping[str, Callable[[Mapping[str, Any], dict[str, Any]], None]] = {
    "FederatedSample": _finish_sample,
    "HeteroDataSplit": _finish_data_split,
}


def _set(out: dict[str, Any], dotted: str, value: Any) -> None:
    node = out
    *parents, last = dotted.split(".")
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[last] = value


def _accepted(value: Any, accept: tuple[Any, ...] | _Any) -> bool:
    if isinstance(accept, _Any):
        return True
    return any(type(value) is type(a) and value == a for a in accept) or any(
        isinstance(a, float) and isinstance(value, int) and not isinstance(value, bool) and value == a
        for a in accept
    )


def _shown(accept: tuple[Any, ...]) -> str:
    """Accepted values in the job file's (JSON) spelling."""
    return ", ".join(
        "null" if a is None else repr(a).lower() if isinstance(a, bool) else repr(a) for a in accept
    )


#: One problem: the 1.x field path (relative to the module's parameters) and the message.
Problem = tuple[tuple[str | int, ...], str]


def translate(module: str, parameters: Mapping[str, Any]) -> tuple[dict[str, Any], list[Problem]]:
    """Translate one party's 1.x parameters of ``module`` into FATE 2.2 parameters of ``MODULES[module]``.

    :returns: the 2.x parameters and the problems (field path relative to the parameters, message).
    :raises KeyError: ``module`` is not in :data:`MODULES`.
    """
    component = MODULES[module]
    table = PARAMETERS.get(module, {})
    out: dict[str, Any] = {}
    problems: list[Problem] = []

    def no_translation(path: tuple[str | int, ...], dotted: str) -> None:
        problems.append(
            (
                path,
                f"no translation for {module}.{dotted} to FATE 2.2's {component}: remove it, or write the job as a FATE 2.x DAG",
            )
        )

    def walk(node: Mapping[Any, Any], prefix: str, path: tuple[str | int, ...]) -> None:
        for key, value in node.items():
            dotted = f"{prefix}{key}"
            kpath = (*path, key)
            if value is None:
                continue  # 1.x writes null for "FATE's default"
            rule = table.get(dotted)
            if rule is None:
                if isinstance(value, Mapping) and any(name.startswith(dotted + ".") for name in table):
                    walk(value, dotted + ".", kpath)
                else:
                    no_translation(kpath, dotted)
                continue
            try:
                _apply(rule, dotted, value, out)
            except ValueError as exc:
                problems.append((kpath, f"{module}.{dotted}: {exc}"))

    walk(parameters, "", ())
    finish = FINISH.get(module)
    if finish is not None and not problems:
        try:
            finish(parameters, out)
        except ValueError as exc:
            problems.append(((), f"{module}: {exc}"))
    return out, problems


def _apply(rule: Rule, dotted: str, value: Any, out: dict[str, Any]) -> None:
    why = f" ({rule.why})" if rule.why else ""
    if rule.target is None:
        if rule.convert is not None:
            for target, converted in rule.convert(value).items():
                _set(out, target, converted)
            return
        if not isinstance(rule.accept, _Any) and not _accepted(value, rule.accept):
            raise ValueError(
                f"{value!r} has no FATE 2.2 counterpart{why}; accepted only: {_shown(rule.accept)}"
            )
        return
    if rule.values is not None:
        try:
            hit = value in rule.values
        except TypeError:  # unhashable (a list or mapping)
            hit = False
        if not hit:
            raise ValueError(
                f"{value!r} has no FATE 2.2 counterpart{why}; accepted: {', '.join(map(repr, rule.values))}"
            )
        _set(out, rule.target, rule.values[value])
        return
    _set(out, rule.target, rule.convert(value) if rule.convert is not None else value)


__all__ = ["ANY", "FINISH", "MODULES", "PARAMETERS", "Rule", "translate"]
