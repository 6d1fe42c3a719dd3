"""Layer 2: party storage (tables addressed by namespace/name, component artifacts) and the computing API.

Data-dir layout (``<data_dir>`` = ``PartyTaskRequest.data_dir`` or ``$FATE_AIRFLOW_DATA_DIR``)::

    tables/<namespace>/<name>/{data.parquet, meta.json}
    artifacts/<job_id, percent-encoded>/<task>/<role>/<party_id>/<output_key>/{data.parquet, meta.json}
    artifacts/<job_id, percent-encoded>/<task>/<role>/<party_id>/_outputs.json
"""

from __future__ import annotations

from fate_airflow.core.paths import encode_component, validate_identifier
from fate_airflow.storage.artifacts import (
    ARTIFACT_SCHEME,
    ArtifactAddress,
    ArtifactStore,
    OutputIndex,
    OutputRecord,
    declared_key,
)
from fate_airflow.storage.computing import (
    Computing,
    ComputingAborted,
    Partitioned,
    ProcessPoolComputing,
    SerialComputing,
    choose_computing,
    default_computing,
)
from fate_airflow.storage.table import LocalParquetEngine, Location, StorageEngine, Table, TableMeta
from fate_airflow.storage.tables import DATA_DIR_ENV, TableStore, resolve_data_dir, table_uri
from fate_airflow.storage.upload import (
    UploadSpec,
    load_upload_config,
    read_csv_table,
    spec_from_config,
    upload,
)

__all__ = [
    "ARTIFACT_SCHEME",
    "DATA_DIR_ENV",
    "ArtifactAddress",
    "ArtifactStore",
    "Computing",
    "ComputingAborted",
    "LocalParquetEngine",
    "Location",
    "OutputIndex",
    "OutputRecord",
    "Partitioned",
    "ProcessPoolComputing",
    "SerialComputing",
    "StorageEngine",
    "Table",
    "TableMeta",
    "TableStore",
    "UploadSpec",
    "choose_computing",
    "declared_key",
    "default_computing",
    "encode_component",
    "load_upload_config",
    "read_csv_table",
    "resolve_data_dir",
    "spec_from_config",
    "table_uri",
    "upload",
    "validate_identifier",
]
