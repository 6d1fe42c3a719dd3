from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from fate_airflow.core.errors import StorageError
from fate_airflow.storage import TableStore, UploadSpec, load_upload_config, spec_from_config, upload
from tests.conftest import FATE_EXAMPLES

DATA = FATE_EXAMPLES / "data"
UPLOAD = FATE_EXAMPLES / "upload"


def test_upload_csv_with_id_and_label(tmp_path: Path) -> None:
    store = TableStore.local(tmp_path)
    spec = UploadSpec(DATA / "breast_hetero_guest.csv", "experiment", "breast_hetero_guest", "id", "y")
    meta = upload(store, spec)
    assert meta.row_count == 569
    assert meta.id_column == "id"
    assert meta.label_column == "y"
    assert meta.feature_columns == tuple(f"x{i}" for i in range(10))
    table = store.read("experiment", "breast_hetero_guest")
    assert table.frame["id"].tolist()[:3] == ["133", "273", "175"]
    assert str(table.frame["x0"].dtype) == "float64"
    assert sorted(table.frame["y"].unique().tolist()) == [0, 1]
    assert [m.name for m in store.list()] == ["breast_hetero_guest"]
    assert store.info("experiment", "breast_hetero_guest").schema["x0"] == "float64"


def test_v1_upload_config(tmp_path: Path) -> None:
    spec = load_upload_config(UPLOAD / "v1_upload_host.json", base_dir=FATE_EXAMPLES)
    assert spec.source == "fate-1.x"
    assert spec.partitions == 10
    assert spec.file == DATA / "breast_hetero_host.csv"
    meta = upload(TableStore.local(tmp_path), spec)
    assert (meta.namespace, meta.name) == ("experiment", "breast_hetero_host")
    assert meta.id_column == "id"  # 1.x: the first column
    assert meta.label_column is None
    assert len(meta.feature_columns) == 20


def test_v2_upload_config(tmp_path: Path) -> None:
    spec = load_upload_config(UPLOAD / "v2_upload_guest.json", base_dir=FATE_EXAMPLES)
    assert spec.source == "fate-2.x"
    meta = upload(TableStore.local(tmp_path), spec)
    assert meta.label_column == "y"
    assert meta.id_column == "id"
    assert meta.extra["extend_sid"] is True


def test_yaml_upload_config_is_a_fate_testsuite_data_entry(tmp_path: Path) -> None:
    # The shape of FATE's *_testsuite.yaml ``data:`` entries (relative "examples/data/..." path).
    conf = tmp_path / "motor.yaml"
    conf.write_text(
        "file: examples/data/motor_hetero_guest.csv\n"
        "meta: {delimiter: ',', dtype: float64, label_name: motor_speed, label_type: float64,"
        " match_id_name: idx}\n"
        "partitions: 4\nhead: true\nextend_sid: true\n"
        "table_name: motor_hetero_guest\nnamespace: experiment\n"
    )
    spec = load_upload_config(conf, base_dir=FATE_EXAMPLES)
    assert spec.file == DATA / "motor_hetero_guest.csv"
    meta = upload(TableStore.local(tmp_path / "d"), spec)
    assert (meta.namespace, meta.name, meta.id_column, meta.label_column) == (
        "experiment",
        "motor_hetero_guest",
        "idx",
        "motor_speed",
    )
    assert meta.row_count == 800


def test_yaml_upload_config_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    conf = tmp_path / "broken.yml"
    conf.write_text("namespace: experiment\nname: [t\n")
    with pytest.raises(StorageError, match=r"not a valid YAML upload config: .*broken\.yml.*line"):
        load_upload_config(conf)
    conf.write_text("- a list\n")
    with pytest.raises(StorageError, match=r"broken\.yml: an upload config is an object, not list"):
        load_upload_config(conf)


def test_config_errors_name_file_and_field(tmp_path: Path) -> None:
    conf = tmp_path / "bad.json"
    conf.write_text(json.dumps({"file": "x.csv", "namespace": "experiment"}))
    with pytest.raises(StorageError, match=r"bad\.json: missing field 'name'"):
        load_upload_config(conf)
    conf.write_text(json.dumps({"file": "x.csv", "namespace": "../etc", "name": "t"}))
    with pytest.raises(StorageError, match=r"bad\.json: field 'namespace'.*looks like a path"):
        load_upload_config(conf)


def test_missing_id_column_is_named(tmp_path: Path) -> None:
    spec = UploadSpec(DATA / "breast_hetero_guest.csv", "experiment", "t", id_column="uid")
    with pytest.raises(StorageError, match=r"breast_hetero_guest\.csv: id column 'uid' not found"):
        upload(TableStore.local(tmp_path), spec)


def test_duplicate_ids_rejected(tmp_path: Path) -> None:
    csv = tmp_path / "dup.csv"
    csv.write_text("id,x\n1,0.5\n2,0.1\n1,0.3\n")
    with pytest.raises(StorageError, match=r"dup\.csv: duplicate id '1'"):
        upload(TableStore.local(tmp_path / "d"), UploadSpec(csv, "ns", "t"))


@pytest.mark.parametrize("bad", ["../x", "a/b", "..", ".hidden", ""])
def test_identifiers_that_are_paths_are_rejected(tmp_path: Path, bad: str) -> None:
    store = TableStore.local(tmp_path)
    spec = UploadSpec(DATA / "breast_hetero_mini_host.csv", bad, "t")
    with pytest.raises(StorageError):
        upload(store, spec)
    with pytest.raises(StorageError):
        upload(store, UploadSpec(DATA / "breast_hetero_mini_host.csv", "ns", bad))
    assert not any(p.is_file() for p in tmp_path.rglob("*"))


def test_malformed_csv_leaves_no_table(tmp_path: Path) -> None:
    csv = tmp_path / "bad.csv"
    csv.write_text("id,x,y\n1,0.5,1\n2,0.1,0,7,8\n")
    store = TableStore.local(tmp_path / "d")
    with pytest.raises(StorageError, match=r"bad\.csv"):
        upload(store, UploadSpec(csv, "ns", "t"))
    assert not store.exists("ns", "t")
    assert store.list() == []


def test_failure_while_writing_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = TableStore.local(tmp_path / "d")

    def broken_write(table: object, where: object, **kwargs: object) -> None:
        Path(str(where)).write_bytes(b"PAR1 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", broken_write)
    with pytest.raises(StorageError, match="disk full"):
        upload(store, UploadSpec(DATA / "breast_hetero_mini_host.csv", "ns", "t"))
    assert not store.exists("ns", "t")
    leftovers = [p for p in (tmp_path / "d").rglob("*") if p.is_file()]
    assert leftovers == []


def test_existing_table_needs_overwrite(tmp_path: Path) -> None:
    store = TableStore.local(tmp_path)
    spec = UploadSpec(DATA / "breast_hetero_mini_host.csv", "ns", "t")
    upload(store, spec)
    with pytest.raises(StorageError, match="already exists"):
        upload(store, spec)
    assert upload(store, spec, overwrite=True).row_count == 569
    assert store.delete("ns", "t")
    assert not store.delete("ns", "t")
    with pytest.raises(StorageError, match=r"table ns\.t not found"):
        store.read("ns", "t")


def test_missing_values_become_nan(tmp_path: Path) -> None:
    csv = tmp_path / "m.csv"
    csv.write_text("id,a,b,c\nu1,1,,x\nu2,NA,2.5,y\nu3,3,1,z\n")
    store = TableStore.local(tmp_path / "d")
    upload(store, UploadSpec(csv, "ns", "t"))
    frame = store.read("ns", "t").frame
    assert frame["a"].isna().tolist() == [False, True, False]
    assert frame["b"].isna().tolist() == [True, False, False]
    assert frame["c"].tolist() == ["x", "y", "z"]


def test_spec_from_config_relative_file(tmp_path: Path) -> None:
    spec = spec_from_config(
        {"file": "examples/data/breast_hetero_guest.csv", "namespace": "n", "table_name": "t", "head": 1},
        base_dir=FATE_EXAMPLES,
    )
    assert spec.file == DATA / "breast_hetero_guest.csv"
