"""The explicit component registry: catalogue implementation id → component class.

The DSL catalogue maps FATE 1.x module names (``HeteroLR``) and 2.x component refs
(``coordinated_lr``) onto these ids; this module maps the ids onto code. Ids that are catalogued but
not built yet are listed in :data:`PLANNED`: a job using them plans, but running them raises
:class:`~fate_airflow.core.errors.NotImplementedComponentError` — never a fake success.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from types import MappingProxyType
from typing import Literal

from fate_airflow.components.api import Component
from fate_airflow.core.errors import ComponentError, NotImplementedComponentError

#: Implemented components: id → ``module:Class``. Imported on first use, so a task pays only for
#: its own component's dependencies (scikit-learn for evaluation, Paillier for hetero LR, ...).
IMPLEMENTED: Mapping[str, str] = MappingProxyType(
    {
        "reader@1.0.0": "fate_airflow.components.reader:Reader",
        "data_transform@1.0.0": "fate_airflow.components.data_transform:DataTransform",
        "feature_scale@1.0.0": "fate_airflow.components.feature_scale:FeatureScale",
        "intersection@1.0.0": "fate_airflow.components.intersection:Intersection",
        "hetero_lr@1.0.0": "fate_airflow.components.hetero_lr:HeteroLR",
        "hetero_secureboost@1.0.0": "fate_airflow.components.hetero_secureboost:HeteroSecureBoost",
        "homo_lr@1.0.0": "fate_airflow.components.homo_lr:HomoLR",
        "evaluation@1.0.0": "fate_airflow.components.evaluation:Evaluation",
        "toy_example@1.0.0": "fate_airflow.components.toy_example:ToyExample",
    }
)


def component_class(implementation: str) -> type[Component]:
    """The class implementing ``implementation`` (imports its module). :raises KeyError: not implemented."""
    module, _, name = IMPLEMENTED[implementation].partition(":")
    cls = getattr(importlib.import_module(module), name)
    assert isinstance(cls, type) and issubclass(cls, Component)
    return cls


#: Catalogued but not implemented yet.
PLANNED: frozenset[str] = frozenset(
    f"{name}@1.0.0"
    for name in (
        "hetero_feature_binning",
        "hetero_feature_selection",
        "hetero_linr",
        "data_split",
        "sample",
        "union",
        "statistics",
        "one_hot",
        "hetero_poisson",
        "homo_nn",
        "hetero_nn",
        "sshe_lr",
        "label_transform",
        "feature_imputation",
        "upload",
        # also catalogued by the DSL (fate_airflow.dsl.catalogue), not built yet
        "homo_secureboost",
        "sshe_linr",
        "feature_correlation",
    )
)


def status(implementation: str) -> Literal["implemented", "planned", "unknown"]:
    """Whether ``implementation`` is implemented, only catalogued, or unknown."""
    if implementation in IMPLEMENTED:
        return "implemented"
    if implementation in PLANNED:
        return "planned"
    return "unknown"


def catalogue() -> dict[str, str]:
    """Every known implementation id with its status, sorted by id."""
    ids = sorted(set(IMPLEMENTED) | PLANNED)
    return {i: status(i) for i in ids}


def get_component(implementation: str, component: str = "") -> Component:
    """A fresh instance of the component implementing ``implementation``.

    :param component: the module / component_ref as written in the job file (for the message).
    :raises NotImplementedComponentError: the id is catalogued but not implemented yet.
    :raises ComponentError: the id is unknown.
    """
    if implementation in IMPLEMENTED:
        return component_class(implementation)()
    label = component or implementation.split("@")[0]
    if implementation in PLANNED:
        raise NotImplementedComponentError(f"component {label} ({implementation}) is not implemented yet")
    raise ComponentError(
        f"unknown component implementation {implementation!r} for {label}; known: {', '.join(sorted(IMPLEMENTED))}"
    )


__all__ = ["IMPLEMENTED", "PLANNED", "catalogue", "component_class", "get_component", "status"]
