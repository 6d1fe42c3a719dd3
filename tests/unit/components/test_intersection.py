from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from fate_airflow.components.simulate import TaskSpec
from fate_airflow.core.types import InputRef, Party
from fate_airflow.federation.inmemory import InMemoryHub

from .conftest import GUEST, HOST, HOST2
from .helpers import output_frame, put_table, run

INPUT = (InputRef("data", "data", "data_warehouse", namespace="experiment", name="ids"),)


def _ids(rng: np.random.Generator, universe: int, n: int) -> list[str]:
    return [f"id-{i:06d}" for i in rng.choice(universe, size=n, replace=False)]


def _put(data_dirs: dict[str, str], party: Party, ids: list[str]) -> None:
    frame = pd.DataFrame({"id": ids, "x": np.arange(len(ids), dtype=float)})
    put_table(data_dirs[party.party_id], "ids", frame)


def _psi(parties: tuple[Party, ...], **params: object) -> TaskSpec:
    return TaskSpec(
        "intersection_0",
        "intersection@1.0.0",
        parties,
        common=params,
        inputs=INPUT,
        outputs={"data": ("data",)},
    )


def _wire_bytes(obj: object) -> list[bytes]:
    """Every bytes-like leaf of a message."""
    if isinstance(obj, np.ndarray):
        return [obj.tobytes()]
    if isinstance(obj, (bytes, bytearray)):
        return [bytes(obj)]
    if isinstance(obj, dict):
        return [b for v in obj.values() for b in _wire_bytes(v)]
    if isinstance(obj, (list, tuple)):
        return [b for v in obj for b in _wire_bytes(v)]
    return [str(obj).encode()]


def test_result_is_the_plain_intersection(
    data_dirs: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    rng = np.random.default_rng(5)
    guest_ids, host_ids = _ids(rng, 6000, 2500), _ids(rng, 6000, 2200)  # >= 2000: the pool is used
    _put(data_dirs, GUEST, guest_ids)
    _put(data_dirs, HOST, host_ids)
    hub = InMemoryHub()
    with caplog.at_level(logging.WARNING, logger="fate_airflow.components"):
        out = run(_psi((GUEST, HOST), intersect_method="rsa"), data_dirs, hub=hub)
    expected = set(guest_ids) & set(host_ids)
    assert 0 < len(expected) < 2200
    for party in (GUEST, HOST):
        frame = output_frame(data_dirs, out[party])
        assert set(frame["id"]) == expected  # nothing outside the intersection
        assert len(frame) == len(expected)
        assert out[party].summary["intersect_method"] == "ecdh"
        assert out[party].summary["requested_method"] == "rsa"
        assert out[party].metrics["intersect_count"] == len(expected)
    # the features of the kept rows are the party's own
    gframe = output_frame(data_dirs, out[GUEST])
    assert all(guest_ids[int(x)] == i for i, x in zip(gframe["id"], gframe["x"], strict=True))
    assert any("running ECDH on Curve25519 instead" in r.getMessage() for r in caplog.records)

    # what crossed: 32-byte points (and the host's positions), never raw ids
    all_ids = [i.encode() for i in guest_ids + host_ids]
    names = set()
    for transfer in hub.log:
        names.add(transfer.name)
        if transfer.name.startswith("psi_") and transfer.name != "psi_intersect_index":
            arr = transfer.obj
            assert isinstance(arr, np.ndarray) and arr.dtype == np.uint8 and arr.shape[1] == 32
            assert len({row.tobytes() for row in arr}) == len(arr)  # distinct points
        if transfer.name == "psi_intersect_index":
            assert transfer.dst == HOST
            assert transfer.obj["index"].dtype == np.int64
        blob = b"".join(_wire_bytes(transfer.obj))
        assert not any(i in blob for i in all_ids[:200])
    assert names == {"psi_host_blinded", "psi_guest_blinded", "psi_guest_double", "psi_intersect_index"}


def test_two_hosts(data_dirs: dict[str, str]) -> None:
    rng = np.random.default_rng(9)
    sets = {p: _ids(rng, 800, 500) for p in (GUEST, HOST, HOST2)}
    for p, ids in sets.items():
        _put(data_dirs, p, ids)
    out = run(_psi((GUEST, HOST, HOST2)), data_dirs)
    expected = set(sets[GUEST]) & set(sets[HOST]) & set(sets[HOST2])
    for p in (GUEST, HOST, HOST2):
        assert set(output_frame(data_dirs, out[p])["id"]) == expected


def test_only_output_key_and_no_sync(data_dirs: dict[str, str]) -> None:
    _put(data_dirs, GUEST, ["a", "b", "c"])
    _put(data_dirs, HOST, ["b", "c", "d"])
    out = run(_psi((GUEST, HOST), only_output_key=True), data_dirs)
    frame = output_frame(data_dirs, out[GUEST])
    assert list(frame.columns) == ["id"] and sorted(frame["id"]) == ["b", "c"]
    out = run(_psi((GUEST, HOST), sync_intersect_ids=False), data_dirs)
    assert sorted(output_frame(data_dirs, out[GUEST])["id"]) == ["b", "c"]
    assert len(output_frame(data_dirs, out[HOST])) == 0


def test_empty_intersection(data_dirs: dict[str, str]) -> None:
    _put(data_dirs, GUEST, ["a", "b"])
    _put(data_dirs, HOST, ["c"])
    out = run(_psi((GUEST, HOST)), data_dirs)
    assert len(output_frame(data_dirs, out[GUEST])) == 0
    assert len(output_frame(data_dirs, out[HOST])) == 0
