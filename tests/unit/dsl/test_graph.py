from __future__ import annotations

from fate_airflow.dsl.graph import topological_order


def test_ties_follow_file_order() -> None:
    names = ["d", "b", "c", "a"]
    upstream = {"d": ["a"], "b": ["a"], "c": []}
    order, cycles = topological_order(names, upstream)
    # c and a are ready at once: c comes first in the file; then b before d (file order again).
    assert order == ["c", "a", "d", "b"]
    assert cycles == []


def test_order_is_deterministic_for_diamond() -> None:
    names = ["join", "left", "right", "src"]
    upstream = {"join": ["right", "left"], "left": ["src"], "right": ["src"]}
    assert topological_order(names, upstream) == (["src", "left", "right", "join"], [])


def test_cycle_is_named_from_its_first_task_in_file_order() -> None:
    names = ["x", "a", "b", "c", "after"]
    upstream = {"a": ["c"], "b": ["a"], "c": ["b"], "after": ["c"]}
    order, cycles = topological_order(names, upstream)
    assert order == ["x"]
    assert cycles == [["a", "b", "c", "a"]]


def test_self_loop_and_two_cycles() -> None:
    names = ["s", "p", "q"]
    upstream = {"s": ["s"], "p": ["q"], "q": ["p"]}
    order, cycles = topological_order(names, upstream)
    assert order == []
    assert cycles == [["s", "s"], ["p", "q", "p"]]


def test_unknown_upstream_is_ignored() -> None:
    assert topological_order(["a"], {"a": ["ghost"]}) == (["a"], [])
