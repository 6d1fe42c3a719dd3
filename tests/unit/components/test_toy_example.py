from __future__ import annotations

import threading
import time

import pytest

from fate_airflow.components.simulate import TaskSpec, simulate
from fate_airflow.components.toy_example import toy_values
from fate_airflow.core.errors import ComponentError

from .conftest import GUEST, HOST, HOST2, JOB_ID


def _spec(**common: object) -> TaskSpec:
    return TaskSpec(
        "toy_0",
        "toy_example@1.0.0",
        (GUEST, HOST),
        common=common,
        parameters={GUEST: {"seed": 7}, HOST: {"seed": 8}},
        component="SecureAddExample",
    )


def test_secure_sum_is_correct_at_both_parties(data_dirs: dict[str, str]) -> None:
    started = time.monotonic()
    out = simulate(_spec(data_num=1000), job_id=JOB_ID, data_dirs=data_dirs)
    assert time.monotonic() - started < 1.0
    expected = int(toy_values(7, 1000).sum() + toy_values(8, 1000).sum())
    for party in (GUEST, HOST):
        result = out[party].unwrap()
        assert result.status == "success"
        assert result.metrics["sum"] == expected
        assert result.metrics["data_num"] == 2000


def test_nothing_but_masked_values_cross(data_dirs: dict[str, str]) -> None:
    from fate_airflow.federation.inmemory import InMemoryHub

    hub = InMemoryHub()
    simulate(_spec(data_num=50), job_id=JOB_ID, data_dirs=data_dirs, hub=hub)
    own = {int(toy_values(7, 50).sum()), int(toy_values(8, 50).sum())}
    for transfer in hub.log:
        for value in transfer.obj.values():
            assert value not in own


def test_three_parties(data_dirs: dict[str, str]) -> None:
    spec = TaskSpec(
        "toy_0",
        "toy_example@1.0.0",
        (GUEST, HOST, HOST2),
        parameters={GUEST: {"seed": 1}, HOST: {"seed": 2}, HOST2: {"seed": 3}},
        common={"data_num": 10},
    )
    out = simulate(spec, job_id=JOB_ID, data_dirs=data_dirs)
    expected = sum(int(toy_values(s, 10).sum()) for s in (1, 2, 3))
    assert {out[p].unwrap().metrics["sum"] for p in spec.parties} == {expected}


@pytest.mark.parametrize(("fail", "failing"), [(True, {GUEST, HOST}), ("host", {HOST}), ("guest", {GUEST})])
def test_injected_failure(data_dirs: dict[str, str], fail: object, failing: set[object]) -> None:
    out = simulate(_spec(fail=fail), job_id=JOB_ID, data_dirs=data_dirs, get_timeout=1.5)
    for party in failing:
        err = out[party].error
        assert isinstance(err, ComponentError)
        assert str(err) == f"injected failure at {party.role} {party.party_id}"
    for party in {GUEST, HOST} - failing:
        # the peer of a failed party cannot finish the exchange; it times out naming the party
        assert isinstance(out[party].error, ComponentError)
        assert "timed out" in str(out[party].error)


def test_sleep_then_abort(data_dirs: dict[str, str]) -> None:
    abort = threading.Event()
    timer = threading.Timer(0.3, abort.set)
    timer.start()
    started = time.monotonic()
    out = simulate(_spec(sleep_seconds=30.0), job_id=JOB_ID, data_dirs=data_dirs, abort=abort)
    elapsed = time.monotonic() - started
    assert elapsed < 2.0
    for party in (GUEST, HOST):
        err = out[party].error
        assert isinstance(err, ComponentError)
        assert str(err) == "aborted"


def test_sleep_without_abort_completes(data_dirs: dict[str, str]) -> None:
    started = time.monotonic()
    out = simulate(_spec(sleep_seconds=0.3, data_num=5), job_id=JOB_ID, data_dirs=data_dirs)
    assert time.monotonic() - started >= 0.3
    assert out[GUEST].unwrap().metrics["sum"] == out[HOST].unwrap().metrics["sum"]
