from __future__ import annotations

from fate_airflow.dsl._common import Doc, Problems, close_names, format_path, plural


def test_format_path() -> None:
    assert format_path(("role", "guest", 0)) == "role.guest[0]"
    assert (
        format_path(("component_parameters", "role", "host", "0|1")) == "component_parameters.role.host.0|1"
    )
    assert format_path(()) == ""


def test_labels_follow_the_overrides() -> None:
    base = {"a": {"b": 1, "c": [1]}, "d": 1}
    overrides = {"a": {"b": 2, "c": [1]}, "x": "y"}
    doc = Doc("conf.json", {**base, "a": {"b": 2, "c": [1]}, "x": "y"}, overrides, base=base)
    assert doc.label_for(("a", "b")) == "trigger conf"  # changed by the override
    assert doc.label_for(("a", "c", 0)) == "conf.json"  # repeated the file's value
    assert doc.label_for(("d",)) == "conf.json"  # not touched
    assert doc.label_for(("x", "deeper")) == "trigger conf"
    assert doc.label_for(()) == "conf.json"


def test_problems_are_ordered_and_unique() -> None:
    problems = Problems()
    problems.add("a.json", ("x",), "bad")
    problems.add("a.json", ("x",), "bad")
    problems.add("a.json", (), "worse")
    assert problems.lines == ["a.json: x: bad", "a.json: worse"]
    assert len(problems) == 2


def test_small_helpers() -> None:
    assert plural(1, "host") == "1 host"
    assert plural(2, "host") == "2 hosts"
    assert close_names("heterolr", ["HeteroLR", "Union"]) == ["HeteroLR"]
