"""The component catalogue: FATE component names → our implementation ids (pure data).

FATE 1.x DSL names a component by its ``module`` (``HeteroLR``), FATE 2.x by its ``component_ref``
(``coordinated_lr``); both map to one implementation id ``name@version`` under which
``fate_airflow.components`` registers the code. A name missing here fails at plan time.

Who runs an entry is decided per task at plan time (:mod:`fate_airflow.dsl.selection`): entries marked
:attr:`CatalogueEntry.native` are implemented by this project (the ``native`` provider; the list must
equal ``fate_airflow.components.registry.IMPLEMENTED``, which a test checks); the others run on an
installed provider that offers their :attr:`CatalogueEntry.fate_component` (FATE 2.2's library, pyfate).
Planned without a list of installed providers, such an entry still plans ("planned-only") and fails when
it runs.

Roles come from FATE's component definitions (1.x ``bind_runner.on_*``, 2.x
``@cpn.component(roles=...)``): a component only runs at roles it supports. 2.x output keys are fixed by
the component spec, so they live here; 1.x outputs are declared in each DSL file instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

GUEST_HOST: tuple[str, ...] = ("guest", "host")
GUEST_HOST_ARBITER: tuple[str, ...] = ("guest", "host", "arbiter")
LOCAL: tuple[str, ...] = ("local",)


@dataclass(frozen=True)
class CatalogueEntry:
    """One implementation and the FATE names that resolve to it.

    :param implementation: our implementation id, ``name@version``.
    :param modules: FATE 1.x ``module`` names.
    :param component_refs: FATE 2.x ``component_ref`` names.
    :param roles_v1: roles the component runs at in 1.x jobs (others are dropped silently).
    :param roles_v2: roles it runs at in 2.x jobs.
    :param outputs_v2: 2.x output artifact keys by kind (``data``, ``model``, ``metric``), as FATE 2.2's
        component of the same name declares them (all stages together).
    :param native: implemented by this project's own components (the ``native`` provider).
    :param fate_component: the FATE 2.2 (pyfate) component providing the same function, run by the
        ``fate`` provider; None where FATE 2.2 has none (or only FATE-Flow itself has one, e.g. the
        table reader, which is FATE-Flow's own component, not pyfate's file reader).
    :param fate_roles: the roles FATE 2.2's component runs at where they differ from
        :attr:`roles_v2` (our native evaluation also runs at the arbiter; FATE's does not).
    """

    implementation: str
    modules: tuple[str, ...] = ()
    component_refs: tuple[str, ...] = ()
    roles_v1: tuple[str, ...] = GUEST_HOST
    roles_v2: tuple[str, ...] = GUEST_HOST
    outputs_v2: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    native: bool = False
    fate_component: str | None = None
    fate_roles: tuple[str, ...] | None = None

    def output_kind_v2(self, key: str) -> str | None:
        """The kind (``data``/``model``/``metric``) of 2.x output ``key``, or None if not declared."""
        for kind, keys in self.outputs_v2.items():
            if key in keys:
                return kind
        return None


_LR_OUTPUTS = {
    "data": ("train_output_data", "test_output_data", "cv_output_datas"),
    "model": ("output_model",),
}
_FIT_TRANSFORM_OUTPUTS = {"data": ("train_output_data", "test_output_data"), "model": ("output_model",)}

#: Every catalogued component, implemented or planned-only.
ENTRIES: tuple[CatalogueEntry, ...] = (
    CatalogueEntry(
        "reader@1.0.0",
        modules=("Reader",),
        component_refs=("reader",),
        roles_v2=("guest", "host", "arbiter", "local"),
        outputs_v2={"data": ("output_data",)},
        native=True,
    ),
    CatalogueEntry(
        "data_transform@1.0.0",
        modules=("DataTransform", "DataIO"),
        component_refs=("dataframe_transformer",),
        roles_v2=("guest", "host", "local"),
        outputs_v2={"data": ("dataframe_output",)},
        native=True,
        fate_component="dataframe_transformer",
    ),
    CatalogueEntry(
        "intersection@1.0.0",
        modules=("Intersection",),
        component_refs=("psi",),
        outputs_v2={"data": ("output_data",)},
        native=True,
        fate_component="psi",
    ),
    CatalogueEntry(
        "feature_scale@1.0.0",
        modules=("FeatureScale",),
        component_refs=("feature_scale",),
        outputs_v2=_FIT_TRANSFORM_OUTPUTS,
        native=True,
        fate_component="feature_scale",
    ),
    CatalogueEntry(
        "hetero_lr@1.0.0",
        modules=("HeteroLR",),
        component_refs=("coordinated_lr",),
        roles_v1=GUEST_HOST_ARBITER,
        roles_v2=GUEST_HOST_ARBITER,
        outputs_v2=_LR_OUTPUTS,
        native=True,
        fate_component="coordinated_lr",
    ),
    CatalogueEntry(
        "evaluation@1.0.0",
        modules=("Evaluation",),
        component_refs=("evaluation",),
        roles_v1=GUEST_HOST_ARBITER,
        roles_v2=GUEST_HOST_ARBITER,
        outputs_v2={"metric": ("metric",)},
        native=True,
        fate_component="evaluation",
        fate_roles=GUEST_HOST,
    ),
    CatalogueEntry(
        "toy_example@1.0.0",
        modules=("SecureAddExample",),
        component_refs=("toy_example",),
        outputs_v2={"data": ("output_data",), "model": ("json_model_output",)},
        native=True,
        fate_component="toy_example",
    ),
    # ---- native too, with FATE's component for what the native one lacks (selection.native_gap).
    CatalogueEntry(
        "homo_lr@1.0.0",
        modules=("HomoLR",),
        component_refs=("homo_lr",),
        roles_v1=GUEST_HOST_ARBITER,
        roles_v2=GUEST_HOST_ARBITER,
        outputs_v2=_FIT_TRANSFORM_OUTPUTS,
        fate_component="homo_lr",
        native=True,
    ),
    CatalogueEntry(
        "hetero_secureboost@1.0.0",
        modules=("HeteroSecureBoost", "HeteroFastSecureBoost"),
        component_refs=("hetero_secureboost",),
        outputs_v2=_LR_OUTPUTS,
        native=True,
        fate_component="hetero_secureboost",
    ),
    # ---- not native: run by the FATE provider where FATE 2.2 has the component (fate_component).
    CatalogueEntry(
        "homo_secureboost@1.0.0",
        modules=("HomoSecureBoost",),
        roles_v1=GUEST_HOST_ARBITER,
    ),
    CatalogueEntry(
        "hetero_feature_binning@1.0.0",
        modules=("HeteroFeatureBinning",),
        component_refs=("hetero_feature_binning",),
        outputs_v2=_FIT_TRANSFORM_OUTPUTS,
        fate_component="hetero_feature_binning",
    ),
    CatalogueEntry(
        "hetero_feature_selection@1.0.0",
        modules=("HeteroFeatureSelection",),
        component_refs=("hetero_feature_selection",),
        outputs_v2={"data": ("train_output_data", "test_output_data"), "model": ("train_output_model",)},
        fate_component="hetero_feature_selection",
    ),
    CatalogueEntry(
        "hetero_linr@1.0.0",
        modules=("HeteroLinR",),
        component_refs=("coordinated_linr",),
        roles_v1=GUEST_HOST_ARBITER,
        roles_v2=GUEST_HOST_ARBITER,
        outputs_v2=_LR_OUTPUTS,
        fate_component="coordinated_linr",
    ),
    CatalogueEntry(
        "hetero_poisson@1.0.0",
        modules=("HeteroPoisson",),
        # FATE 2.2 has no Poisson regression: this 2.x name plans, but no provider offers it.
        component_refs=("coordinated_poisson",),
        roles_v1=GUEST_HOST_ARBITER,
        roles_v2=GUEST_HOST_ARBITER,
        outputs_v2=_LR_OUTPUTS,
    ),
    CatalogueEntry(
        "sshe_lr@1.0.0",
        modules=("HeteroSSHELR",),
        component_refs=("sshe_lr",),
        outputs_v2=_LR_OUTPUTS,
        fate_component="sshe_lr",
    ),
    CatalogueEntry(
        "sshe_linr@1.0.0",
        modules=("HeteroSSHELinR",),
        component_refs=("sshe_linr",),
        outputs_v2=_LR_OUTPUTS,
        fate_component="sshe_linr",
    ),
    CatalogueEntry(
        "data_split@1.0.0",
        modules=("HeteroDataSplit", "HomoDataSplit"),
        component_refs=("data_split",),
        outputs_v2={"data": ("train_output_data", "validate_output_data", "test_output_data")},
        fate_component="data_split",
    ),
    CatalogueEntry(
        "sample@1.0.0",
        modules=("FederatedSample",),
        component_refs=("sample",),
        outputs_v2={"data": ("output_data",)},
        fate_component="sample",
    ),
    CatalogueEntry(
        "union@1.0.0",
        modules=("Union",),
        component_refs=("union",),
        outputs_v2={"data": ("output_data",)},
        fate_component="union",
    ),
    CatalogueEntry(
        "statistics@1.0.0",
        modules=("DataStatistics",),
        component_refs=("statistics",),
        outputs_v2={"model": ("output_model",)},
        fate_component="statistics",
    ),
    CatalogueEntry(
        "feature_correlation@1.0.0",
        modules=("HeteroPearson",),
        component_refs=("feature_correlation",),
        outputs_v2={"model": ("output_model",)},
        fate_component="feature_correlation",
    ),
    CatalogueEntry("one_hot@1.0.0", modules=("OneHotEncoder",)),
    CatalogueEntry("label_transform@1.0.0", modules=("LabelTransform",)),
    CatalogueEntry("feature_imputation@1.0.0", modules=("FeatureImputation",)),
    CatalogueEntry(
        "homo_nn@1.0.0",
        modules=("HomoNN",),
        component_refs=("homo_nn",),
        roles_v1=GUEST_HOST_ARBITER,
        roles_v2=GUEST_HOST_ARBITER,
        outputs_v2=_FIT_TRANSFORM_OUTPUTS,
        fate_component="homo_nn",
    ),
    CatalogueEntry(
        "hetero_nn@1.0.0",
        modules=("HeteroNN",),
        component_refs=("hetero_nn",),
        outputs_v2=_FIT_TRANSFORM_OUTPUTS,
        fate_component="hetero_nn",
    ),
    CatalogueEntry(
        "upload@1.0.0",
        modules=("Upload",),
        component_refs=("upload",),
        roles_v1=LOCAL,
        roles_v2=LOCAL,
    ),
    # FATE 2.2's own test components (artifact_test, dataframe_io_test, multi_model_test, cv_test2) are
    # deliberately not catalogued: they test FATE itself, and no job of FATE's examples uses them.
)


def _index(attr: str) -> Mapping[str, CatalogueEntry]:
    index: dict[str, CatalogueEntry] = {}
    for entry in ENTRIES:
        for name in getattr(entry, attr):
            if name in index:  # pragma: no cover - guards the table above
                raise AssertionError(f"{name} catalogued twice")
            index[name] = entry
    return MappingProxyType(index)


#: 1.x ``module`` name → entry.
BY_MODULE: Mapping[str, CatalogueEntry] = _index("modules")
#: 2.x ``component_ref`` → entry.
BY_COMPONENT_REF: Mapping[str, CatalogueEntry] = _index("component_refs")
#: Implementation id → entry.
BY_IMPLEMENTATION: Mapping[str, CatalogueEntry] = MappingProxyType({e.implementation: e for e in ENTRIES})
#: Implementation ids of the native provider (must equal ``fate_airflow.components.registry.IMPLEMENTED``).
NATIVE_IMPLEMENTATIONS: frozenset[str] = frozenset(e.implementation for e in ENTRIES if e.native)


def lookup_module(module: str) -> CatalogueEntry | None:
    """The entry for 1.x ``module`` (case-sensitive, as FATE), or None."""
    return BY_MODULE.get(module)


def lookup_component_ref(ref: str) -> CatalogueEntry | None:
    """The entry for 2.x ``component_ref``, or None."""
    return BY_COMPONENT_REF.get(ref)


__all__ = [
    "BY_COMPONENT_REF",
    "BY_IMPLEMENTATION",
    "BY_MODULE",
    "ENTRIES",
    "NATIVE_IMPLEMENTATIONS",
    "CatalogueEntry",
    "lookup_component_ref",
    "lookup_module",
]
