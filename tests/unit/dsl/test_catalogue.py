from __future__ import annotations

import pytest

from fate_airflow.dsl.catalogue import (
    BY_COMPONENT_REF,
    BY_IMPLEMENTATION,
    BY_MODULE,
    ENTRIES,
    lookup_component_ref,
    lookup_module,
)

G, H, A = "guest", "host", "arbiter"


@pytest.mark.parametrize(
    ("module", "ref", "implementation", "roles_v1"),
    [
        ("Reader", "reader", "reader@1.0.0", (G, H)),
        ("DataTransform", "dataframe_transformer", "data_transform@1.0.0", (G, H)),
        ("DataIO", None, "data_transform@1.0.0", (G, H)),
        ("Intersection", "psi", "intersection@1.0.0", (G, H)),
        ("FeatureScale", "feature_scale", "feature_scale@1.0.0", (G, H)),
        ("HeteroLR", "coordinated_lr", "hetero_lr@1.0.0", (G, H, A)),
        ("Evaluation", "evaluation", "evaluation@1.0.0", (G, H, A)),
        ("SecureAddExample", "toy_example", "toy_example@1.0.0", (G, H)),
        ("HomoLR", "homo_lr", "homo_lr@1.0.0", (G, H, A)),
        ("HeteroSecureBoost", "hetero_secureboost", "hetero_secureboost@1.0.0", (G, H)),
        ("HeteroFastSecureBoost", None, "hetero_secureboost@1.0.0", (G, H)),
        ("HeteroFeatureBinning", "hetero_feature_binning", "hetero_feature_binning@1.0.0", (G, H)),
        ("HeteroFeatureSelection", "hetero_feature_selection", "hetero_feature_selection@1.0.0", (G, H)),
        ("HeteroLinR", "coordinated_linr", "hetero_linr@1.0.0", (G, H, A)),
        ("HeteroDataSplit", "data_split", "data_split@1.0.0", (G, H)),
        ("HomoDataSplit", None, "data_split@1.0.0", (G, H)),
        ("FederatedSample", "sample", "sample@1.0.0", (G, H)),
        ("Union", "union", "union@1.0.0", (G, H)),
        ("DataStatistics", "statistics", "statistics@1.0.0", (G, H)),
        ("OneHotEncoder", None, "one_hot@1.0.0", (G, H)),
        ("HeteroPoisson", None, "hetero_poisson@1.0.0", (G, H, A)),
        ("HomoNN", "homo_nn", "homo_nn@1.0.0", (G, H, A)),
        ("HeteroNN", "hetero_nn", "hetero_nn@1.0.0", (G, H)),
        ("HeteroSSHELR", "sshe_lr", "sshe_lr@1.0.0", (G, H)),
        ("LabelTransform", None, "label_transform@1.0.0", (G, H)),
        ("FeatureImputation", None, "feature_imputation@1.0.0", (G, H)),
        ("Upload", "upload", "upload@1.0.0", ("local",)),
    ],
)
def test_required_names(module: str, ref: str | None, implementation: str, roles_v1: tuple[str, ...]) -> None:
    entry = lookup_module(module)
    assert entry is not None
    assert entry.implementation == implementation
    assert entry.roles_v1 == roles_v1
    if ref is not None:
        assert lookup_component_ref(ref) is entry


def test_reader_runs_at_arbiter_and_local_only_in_2x() -> None:
    entry = BY_IMPLEMENTATION["reader@1.0.0"]
    assert entry.roles_v1 == (G, H)
    assert entry.roles_v2 == (G, H, A, "local")


@pytest.mark.parametrize(
    ("ref", "outputs"),
    [
        ("reader", {"data": ("output_data",)}),
        ("psi", {"data": ("output_data",)}),
        ("feature_scale", {"data": ("train_output_data", "test_output_data"), "model": ("output_model",)}),
        (
            "coordinated_lr",
            {
                "data": ("train_output_data", "test_output_data", "cv_output_datas"),
                "model": ("output_model",),
            },
        ),
        ("evaluation", {"metric": ("metric",)}),
    ],
)
def test_2x_output_keys(ref: str, outputs: dict[str, tuple[str, ...]]) -> None:
    entry = lookup_component_ref(ref)
    assert entry is not None
    assert dict(entry.outputs_v2) == outputs


def test_output_kind_lookup() -> None:
    entry = BY_COMPONENT_REF["hetero_feature_selection"]
    assert entry.output_kind_v2("train_output_model") == "model"
    assert entry.output_kind_v2("test_output_data") == "data"
    assert entry.output_kind_v2("nope") is None


def test_ids_are_name_at_version_and_unique() -> None:
    ids = [e.implementation for e in ENTRIES]
    assert len(ids) == len(set(ids))
    for impl in ids:
        name, _, version = impl.partition("@")
        assert name and version.count(".") == 2


def test_unknown_names() -> None:
    assert lookup_module("heterolr") is None  # FATE module names are case-sensitive
    assert lookup_component_ref("HeteroLR") is None
    assert "HeteroLR" in BY_MODULE
