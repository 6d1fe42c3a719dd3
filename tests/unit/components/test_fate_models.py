"""FATE's model folders (its NN models) packed into the model store and restored for a predict task."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fate_airflow.components.fate_provider.component import _pack_dir, _unpack_dir
from fate_airflow.tracking import ModelKey, ModelStore


def test_a_model_folder_survives_the_model_store_byte_for_byte(tmp_path: Path) -> None:
    folder = tmp_path / "output_model"
    (folder / "sub").mkdir(parents=True)
    (folder / "model.pt").write_bytes(bytes(range(256)) * 40)
    (folder / "sub" / "meta.json").write_text('{"epochs": 3}')
    store = ModelStore(tmp_path / "data")
    key = ModelKey("m", "v", "guest", "9999", "nn_0")
    store.save(
        key, {"fate_model_dirs": ["output_model"]}, {"fate_model_dir__output_model": _pack_dir(folder)}
    )

    loaded = store.load(key).arrays["fate_model_dir__output_model"]
    assert loaded.dtype == np.uint8
    restored = tmp_path / "restored"
    _unpack_dir(loaded, restored)
    assert (restored / "model.pt").read_bytes() == (folder / "model.pt").read_bytes()
    assert (restored / "sub" / "meta.json").read_text() == '{"epochs": 3}'
