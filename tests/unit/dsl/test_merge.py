from __future__ import annotations

from fate_airflow.dsl import deep_merge
from fate_airflow.dsl.merge import merge_all


def test_dicts_merge_recursively_scalars_and_lists_replace() -> None:
    base = {"a": 1, "nested": {"x": 1, "y": {"deep": 1}}, "items": [1, 2]}
    override = {"nested": {"y": {"deeper": 2}, "z": 3}, "items": [3], "a": None}
    assert deep_merge(base, override) == {
        "a": None,
        "nested": {"x": 1, "y": {"deep": 1, "deeper": 2}, "z": 3},
        "items": [3],
    }


def test_inputs_are_not_modified_and_not_shared() -> None:
    base = {"nested": {"x": [1]}}
    override = {"other": {"y": [2]}}
    merged = deep_merge(base, override)
    merged["nested"]["x"].append(9)
    merged["other"]["y"].append(9)
    assert base == {"nested": {"x": [1]}}
    assert override == {"other": {"y": [2]}}


def test_mapping_replaces_scalar_and_back() -> None:
    assert deep_merge({"a": 1}, {"a": {"b": 2}}) == {"a": {"b": 2}}
    assert deep_merge({"a": {"b": 2}}, {"a": 1}) == {"a": 1}


def test_merge_all_skips_missing_layers() -> None:
    assert merge_all(None, {"a": 1}, {}, {"b": 2}, None) == {"a": 1, "b": 2}
    assert merge_all() == {}
