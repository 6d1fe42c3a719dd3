from __future__ import annotations

import logging

import pytest

from fate_airflow.components.simulate import TaskSpec, simulate, with_version
from fate_airflow.core.errors import ComponentError, StorageError
from fate_airflow.core.types import InputRef
from fate_airflow.storage import ArtifactAddress, ArtifactStore, TableStore, UploadSpec, upload
from tests.conftest import FATE_EXAMPLES

from .conftest import ARBITER, GUEST, HOST, JOB_ID

DATA = FATE_EXAMPLES / "data"


def _upload(data_dirs: dict[str, str]) -> None:
    upload(
        TableStore.local(data_dirs["9999"]),
        UploadSpec(DATA / "breast_hetero_mini_guest.csv", "experiment", "g"),
    )
    upload(
        TableStore.local(data_dirs["10000"]),
        UploadSpec(DATA / "breast_hetero_mini_host.csv", "experiment", "h"),
    )


def _reader(**outputs: tuple[str, ...]) -> TaskSpec:
    return TaskSpec(
        "reader_0",
        "reader@1.0.0",
        (GUEST, HOST, ARBITER),
        parameters={
            GUEST: {"table": {"name": "g", "namespace": "experiment"}},
            HOST: {"name": "h", "namespace": "experiment"},
        },
        outputs=outputs or {"data": ("data",)},
        component="Reader",
    )


def test_reader_outputs_and_arbiter_pass(data_dirs: dict[str, str], caplog: pytest.LogCaptureFixture) -> None:
    _upload(data_dirs)
    with caplog.at_level(logging.INFO, logger="fate_airflow.components"):
        out = simulate(_reader(), job_id=JOB_ID, data_dirs=data_dirs)
    g, h, a = (out[p].unwrap() for p in (GUEST, HOST, ARBITER))
    assert g.outputs["data"] == ArtifactAddress(JOB_ID, "reader_0", "guest", "9999", "data").uri
    assert h.outputs["data"].endswith("/reader_0/host/10000/data")
    assert a.status == "pass" and not a.outputs
    table = ArtifactStore.local(data_dirs["9999"]).read_data(g.outputs["data"])
    assert table.meta.row_count == 569
    assert any("read fate-table://experiment/g" in r.getMessage() for r in caplog.records)


def test_reader_without_table_names_party_and_parameter(data_dirs: dict[str, str]) -> None:
    spec = TaskSpec("reader_0", "reader@1.0.0", (GUEST,))
    err = simulate(spec, job_id=JOB_ID, data_dirs=data_dirs)[GUEST].error
    assert isinstance(err, ComponentError)
    assert "guest:9999" in str(err) and "table.name" in str(err)


def test_reader_missing_table(data_dirs: dict[str, str]) -> None:
    spec = TaskSpec("reader_0", "reader@1.0.0", (GUEST,), common={"name": "nope", "namespace": "experiment"})
    err = simulate(spec, job_id=JOB_ID, data_dirs=data_dirs)[GUEST].error
    assert isinstance(err, StorageError) and "experiment.nope not found" in str(err)


def test_output_key_mapping_between_1x_and_2x(data_dirs: dict[str, str]) -> None:
    _upload(data_dirs)
    # 2.x reader declares output_data; a 1.x-style consumer asking for "data" still finds it.
    simulate(_reader(data=("output_data",)), job_id=JOB_ID, data_dirs=data_dirs)
    store = ArtifactStore.local(data_dirs["9999"])
    rec = store.resolve(JOB_ID, "reader_0", GUEST, "data", "data")
    assert rec is not None and rec.key == "output_data"


def test_rerun_overwrites_outputs(data_dirs: dict[str, str]) -> None:
    _upload(data_dirs)
    spec = _reader(data=("train",))
    simulate(spec, job_id=JOB_ID, data_dirs=data_dirs)
    store = ArtifactStore.local(data_dirs["9999"])
    assert store.read_index(JOB_ID, "reader_0", GUEST).task_version == 1  # type: ignore[union-attr]
    rerun = with_version(_reader(data=("data",)), 2)
    simulate(rerun, job_id=JOB_ID, data_dirs=data_dirs)
    index = store.read_index(JOB_ID, "reader_0", GUEST)
    assert index is not None and index.task_version == 2
    assert [r.key for r in index.outputs] == ["data"]
    # the old version's output is gone
    with pytest.raises(StorageError):
        store.read_data(ArtifactAddress(JOB_ID, "reader_0", "guest", "9999", "train"))


def test_data_warehouse_input(data_dirs: dict[str, str]) -> None:
    _upload(data_dirs)
    spec = TaskSpec(
        "dt_0",
        "data_transform@1.0.0",
        (GUEST,),
        common={"with_label": True},
        inputs=(InputRef("data", "data", "data_warehouse", namespace="experiment", name="g"),),
    )
    out = simulate(spec, job_id=JOB_ID, data_dirs=data_dirs)[GUEST].unwrap()
    assert out.outputs
