from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fate_airflow.cli import main
from fate_airflow.tracking import ModelKey, ModelStore

MODEL_ID = "arbiter-10000#guest-9999#host-10000#model"
VERSION = "manual__2026-11-27T10:00:00.123+00:00"


def test_list_export_import(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src, dst = tmp_path / "a", tmp_path / "b"
    ModelStore(src).save(
        ModelKey(MODEL_ID, VERSION, "guest", "9999", "hetero_lr_0"),
        {"intercept": 0.5},
        {"weights": np.ones(3)},
    )
    assert main(["model", "list", "--data-dir", str(src), "--json"]) == 0
    [info] = json.loads(capsys.readouterr().out)
    assert info["party_model_id"] == f"guest#9999#{MODEL_ID}"
    assert info["components"] == ["hetero_lr_0"]
    zip_path = tmp_path / "m.zip"
    args = ["model", "export", "--model-id", MODEL_ID, "--role", "guest", "--party-id", "9999"]
    assert main([*args, "--model-version", VERSION, "-o", str(zip_path), "--data-dir", str(src)]) == 0
    assert main(["model", "import", "-f", str(zip_path), "--data-dir", str(dst)]) == 0
    assert "imported guest#9999#" in capsys.readouterr().out
    assert (
        ModelStore(dst).load(ModelKey(MODEL_ID, VERSION, "guest", "9999", "hetero_lr_0")).params["intercept"]
        == 0.5
    )
    assert main(["model", "import", "-f", str(zip_path), "--data-dir", str(dst)]) == 1
    assert "already exists" in capsys.readouterr().err
    assert (
        main(
            [
                "model",
                "export",
                "--party-model-id",
                "guest#9999#nope",
                "--model-version",
                VERSION,
                "-o",
                str(tmp_path),
                "--data-dir",
                str(src),
            ]
        )
        == 1
    )
    assert "not found at this party" in capsys.readouterr().err
    assert (
        main(["model", "export", "--model-version", VERSION, "-o", str(tmp_path), "--data-dir", str(src)])
        == 1
    )
    assert "--party-model-id" in capsys.readouterr().err
