from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from fate_airflow.core.errors import StorageError
from fate_airflow.core.types import Party
from fate_airflow.tracking import MetricsStore, ModelKey, ModelStore, make_model_id, party_model_id

MODEL_ID = "arbiter-10000#guest-9999#host-10000#model"
VERSION = "manual__2026-11-27T10:00:00.123+00:00"


def _key(task: str = "hetero_lr_0", role: str = "guest", pid: str = "9999") -> ModelKey:
    return ModelKey(MODEL_ID, VERSION, role, pid, task)


def test_fate_model_id_convention() -> None:
    parties = [
        Party("guest", "9999"),
        Party("host", "10000"),
        Party("host", "10001"),
        Party("arbiter", "10000"),
    ]
    assert make_model_id(parties) == "arbiter-10000#guest-9999#host-10000_10001#model"
    assert party_model_id("guest", "9999", MODEL_ID) == f"guest#9999#{MODEL_ID}"
    assert _key().party_model_id == f"guest#9999#{MODEL_ID}"


def test_round_trip(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    weights = np.array([0.5, -1.25, 3.0])
    uri = store.save(
        _key(), {"header": ["x0", "x1", "x2"], "intercept": 0.1}, {"weights": weights}, {"cipher": "paillier"}
    )
    assert ModelKey.parse(uri) == _key()
    model = store.load(_key())
    assert model.params["header"] == ["x0", "x1", "x2"]
    np.testing.assert_array_equal(model.arrays["weights"], weights)
    assert model.meta["cipher"] == "paillier"
    assert model.meta["party_model_id"] == f"guest#9999#{MODEL_ID}"
    # FATE layout: models/<party_model_id>/<version>/<component>
    assert (tmp_path / "models" / f"guest#9999#{MODEL_ID}").is_dir()
    [info] = store.list()
    assert info.components == ("hetero_lr_0",)
    assert info.model_version == VERSION


def test_object_arrays_are_refused(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="only numeric"):
        ModelStore(tmp_path).save(_key(), {}, {"bad": np.array([object()], dtype=object)})


def test_missing_component_is_explained(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    store.save(_key("data_transform_0"), {"a": 1})
    with pytest.raises(
        StorageError, match=r"no component 'hetero_lr_0'; this version has \['data_transform_0'\]"
    ):
        store.load(_key())
    with pytest.raises(StorageError, match="no such model version"):
        store.load(ModelKey(MODEL_ID, "other", "guest", "9999", "x"))


def test_export_import(tmp_path: Path) -> None:
    src = ModelStore(tmp_path / "a")
    src.save(_key("data_transform_0"), {"header": ["x0"]})
    src.save(_key(), {"intercept": 1.5}, {"weights": np.arange(3.0)})
    archive = src.export(f"guest#9999#{MODEL_ID}", VERSION, tmp_path)
    dst = ModelStore(tmp_path / "b")
    info = dst.import_zip(archive)
    assert info.components == ("data_transform_0", "hetero_lr_0")
    np.testing.assert_array_equal(dst.load(_key()).arrays["weights"], np.arange(3.0))
    with pytest.raises(StorageError, match="already exists"):
        dst.import_zip(archive)
    dst.import_zip(archive, overwrite=True)
    with pytest.raises(StorageError, match="not found at this party"):
        src.export("guest#9999#nope", VERSION, tmp_path)


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_import_rejects_bad_archives(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "m")
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"not a zip")
    with pytest.raises(StorageError, match="not a zip"):
        store.import_zip(bad)
    bad.write_bytes(_zip({"x.txt": b""}))
    with pytest.raises(StorageError, match="no manifest"):
        store.import_zip(bad)
    manifest = {
        "format": "fate-airflow-model/1",
        "party_model_id": f"guest#9999#{MODEL_ID}",
        "model_id": MODEL_ID,
        "model_version": VERSION,
        "role": "guest",
        "party_id": "9999",
        "components": ["../evil"],
    }
    bad.write_bytes(_zip({"manifest.json": json.dumps(manifest).encode()}))
    with pytest.raises(StorageError, match=r"component name '../evil' looks like a path"):
        store.import_zip(bad)
    manifest["components"] = ["lr_0"]
    bad.write_bytes(
        _zip({"manifest.json": json.dumps(manifest).encode(), "lr_0/meta.json": b"{}", "../../x": b""})
    )
    with pytest.raises(StorageError, match="unexpected archive members"):
        store.import_zip(bad)
    assert store.list() == []


def test_metrics_store(tmp_path: Path) -> None:
    ms = MetricsStore(tmp_path)
    party = Party("guest", "9999")
    assert ms.load(VERSION, "evaluation_0", party) is None
    ms.save(VERSION, "evaluation_0", party, task_version=2, metrics={"auc": 0.99}, summary={"rows": 3})
    assert ms.load(VERSION, "evaluation_0", party) == {
        "task_version": 2,
        "metrics": {"auc": 0.99},
        "summary": {"rows": 3},
    }
