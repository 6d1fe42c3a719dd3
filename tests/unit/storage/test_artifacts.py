from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from fate_airflow.core.errors import StorageError
from fate_airflow.core.paths import decode_component, encode_component
from fate_airflow.core.types import Party
from fate_airflow.storage import (
    ArtifactAddress,
    ArtifactStore,
    OutputIndex,
    OutputRecord,
    Table,
    declared_key,
)

JOB = "manual__2026-11-27T10:00:00.123+00:00"
GUEST = Party("guest", "9999")


def _table() -> Table:
    return Table.from_frame(pd.DataFrame({"id": ["a", "b"], "x": [1.0, 2.0]}), id_column="id")


def test_uri_round_trip_and_safe_path(tmp_path: Path) -> None:
    addr = ArtifactAddress(JOB, "reader_0", "guest", "9999", "data")
    assert addr.uri == (
        "fate-artifact://manual__2026-11-27T10%3A00%3A00.123%2B00%3A00/reader_0/guest/9999/data"
    )
    assert ArtifactAddress.parse(addr.uri) == addr
    store = ArtifactStore.local(str(tmp_path))
    uri = store.write_data(addr, _table())
    assert store.read_data(uri).frame["x"].tolist() == [1.0, 2.0]
    stored = list((tmp_path / "artifacts").iterdir())
    assert [p.name for p in stored] == ["manual__2026-11-27T10%3A00%3A00.123%2B00%3A00"]


def test_job_id_encoding_is_injective() -> None:
    ids = ["a:b", "a_b", "a%3Ab", "..", ".x", "a/b"]
    encoded = [encode_component(i) for i in ids]
    assert len(set(encoded)) == len(ids)
    assert all("/" not in e and not e.startswith(".") for e in encoded)
    assert [decode_component(e) for e in encoded] == ids


def test_bad_uris() -> None:
    for uri in ("file:///etc/passwd", "fate-artifact://job/t/guest", "fate-artifact://job/../x/guest/1/data"):
        with pytest.raises(StorageError):
            ArtifactAddress.parse(uri)


def test_resolution_by_key_alias_and_single_output(tmp_path: Path) -> None:
    store = ArtifactStore.local(str(tmp_path))
    uri = store.write_data(ArtifactAddress(JOB, "reader_0", "guest", "9999", "data"), _table())
    store.write_index(
        JOB, "reader_0", GUEST, OutputIndex(1, (OutputRecord("data", "data", uri, ("output_data",)),))
    )
    for key in ("data", "output_data", "table"):
        rec = store.resolve(JOB, "reader_0", GUEST, key, "data")
        assert rec is not None and rec.uri == uri
    with pytest.raises(StorageError, match="has not finished here"):
        store.resolve(JOB, "reader_0", Party("host", "10000"), "data", "data")
    # a producer with only a model output has no data for a consumer
    assert store.resolve(JOB, "reader_0", GUEST, "model", "model") is None


def test_empty_output_resolves_to_none(tmp_path: Path) -> None:
    store = ArtifactStore.local(str(tmp_path))
    store.write_index(JOB, "lr_0", GUEST, OutputIndex(1, (OutputRecord("data", "data", "", empty=True),)))
    assert store.resolve(JOB, "lr_0", GUEST, "data", "data") is None


def test_declared_key() -> None:
    assert declared_key({"data": ("train",)}, "data", ("output_data",), "data") == "train"
    assert (
        declared_key(
            {"data": ("train_output_data", "test_output_data")}, "data", ("train_output_data",), "data"
        )
        == "train_output_data"
    )
    assert declared_key({}, "data", ("output_data",), "data") == "data"
