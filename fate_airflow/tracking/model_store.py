"""The party's model store, following FATE's model id / model version convention.

* ``model_id`` — e.g. ``arbiter-10000#guest-9999#host-10000#model`` (chosen by the scheduler);
* ``model_version`` — the training job id;
* party model id — ``<role>#<party_id>#<model_id>``: each (role, party) keeps its own share;
* one entry per component (task name), e.g. ``hetero_lr_0``.

Layout under the party's data dir (no pickle anywhere: JSON + ``.npz`` of numeric arrays)::

    models/<party_model_id>/<model_version, percent-encoded>/<task_name>/{meta.json, params.json, arrays.npz}

Writes are atomic per component (temporary directory + rename). ``export`` zips one model version at
this party; ``import_zip`` restores it, validating every member.
"""

from __future__ import annotations

import io
import json
import shutil
import uuid
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import numpy as np

from fate_airflow.core.errors import StorageError
from fate_airflow.core.files import atomic_directory, atomic_write_bytes, remove_directory
from fate_airflow.core.paths import encode_component, validate_identifier
from fate_airflow.core.types import Party

MODEL_SCHEME = "fate-model"
EXPORT_FORMAT = "fate-airflow-model/1"
_MODELS = "models"
_FILES = ("meta.json", "params.json", "arrays.npz")
#: Refuse to import archives that unpack to more than this (a model here is kilobytes to megabytes).
MAX_IMPORT_BYTES = 1 << 30


def party_model_id(role: str, party_id: str, model_id: str) -> str:
    """FATE's ``<role>#<party_id>#<model_id>``."""
    return f"{role}#{party_id}#{model_id}"


def make_model_id(parties: list[Party] | tuple[Party, ...]) -> str:
    """FATE 1.x model id: roles sorted, each ``role-<ids joined by _>``, joined by ``#``, + ``#model``."""
    by_role: dict[str, list[str]] = {}
    for p in parties:
        by_role.setdefault(p.role, [])
        if p.party_id not in by_role[p.role]:
            by_role[p.role].append(p.party_id)
    parts = [f"{role}-{'_'.join(ids)}" for role, ids in sorted(by_role.items())]
    return "#".join([*parts, "model"])


@dataclass(frozen=True)
class ModelKey:
    """Where one component's model share lives."""

    model_id: str
    model_version: str
    role: str
    party_id: str
    task_name: str

    def __post_init__(self) -> None:
        if not self.model_id or not self.model_version:
            raise StorageError("model id and model version must be non-empty")
        try:
            Party(self.role, self.party_id)
        except ValueError as exc:
            raise StorageError(str(exc)) from None
        validate_identifier(self.task_name, "task name")

    @property
    def party_model_id(self) -> str:
        """``<role>#<party_id>#<model_id>``."""
        return party_model_id(self.role, self.party_id, self.model_id)

    @property
    def uri(self) -> str:
        """``fate-model://<model_id>/<model_version>/<role>/<party_id>/<task_name>`` (percent-encoded)."""
        return (
            f"{MODEL_SCHEME}://{quote(self.model_id, safe='')}/{quote(self.model_version, safe='')}/"
            f"{self.role}/{self.party_id}/{self.task_name}"
        )

    @classmethod
    def parse(cls, uri: str) -> ModelKey:
        """Inverse of :attr:`uri`. :raises StorageError: not a model URI."""
        parts = urlsplit(uri)
        segments = parts.path.strip("/").split("/") if parts.path else []
        if parts.scheme != MODEL_SCHEME or not parts.netloc or len(segments) != 4:
            raise StorageError(
                f"not a model URI: {uri!r} (expected {MODEL_SCHEME}://<model_id>/<model_version>/<role>/"
                "<party_id>/<task_name>)"
            )
        return cls(unquote(parts.netloc), unquote(segments[0]), segments[1], segments[2], segments[3])


@dataclass(frozen=True)
class StoredModel:
    """One component's model share.

    :param meta: JSON-ready facts (component, implementation, stage, cipher, created, ...).
    :param params: JSON-ready parameters (header, weights as lists, scaler statistics, ...).
    :param arrays: numeric numpy arrays (saved as ``.npz``, loaded without pickle).
    """

    meta: Mapping[str, Any]
    params: Mapping[str, Any]
    arrays: Mapping[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelVersionInfo:
    """A model version present at this party (one row of ``fate-airflow model list``)."""

    party_model_id: str
    model_id: str
    model_version: str
    role: str
    party_id: str
    components: tuple[str, ...]
    created: str

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "party_model_id": self.party_model_id,
            "model_id": self.model_id,
            "model_version": self.model_version,
            "role": self.role,
            "party_id": self.party_id,
            "components": list(self.components),
            "created": self.created,
        }


def _npz_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    for name, arr in arrays.items():
        validate_identifier(name, "array name")
        if arr.dtype.hasobject:
            raise StorageError(f"model array {name!r} has dtype object; only numeric arrays are stored")
    buf = io.BytesIO()
    np.savez(buf, allow_pickle=False, **{k: np.asarray(v) for k, v in arrays.items()})  # type: ignore[arg-type]
    return buf.getvalue()


def _load_npz(data: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


class ModelStore:
    """Model shares of one party (all its roles) under ``<data_dir>/models``."""

    def __init__(self, data_dir: str | Path) -> None:
        self.root = Path(data_dir) / _MODELS

    def _version_dir(self, pmid: str, model_version: str) -> Path:
        return self.root / encode_component(pmid, keep="#") / encode_component(model_version)

    def _dir(self, key: ModelKey) -> Path:
        return self._version_dir(key.party_model_id, key.model_version) / key.task_name

    def save(
        self,
        key: ModelKey,
        params: Mapping[str, Any],
        arrays: Mapping[str, np.ndarray] | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> str:
        """Store a component's share (replacing an earlier save of the same key); returns its URI."""
        full_meta = {
            **(meta or {}),
            "model_id": key.model_id,
            "model_version": key.model_version,
            "role": key.role,
            "party_id": key.party_id,
            "party_model_id": key.party_model_id,
            "task_name": key.task_name,
            "created": datetime.now(UTC).isoformat(timespec="milliseconds"),
        }
        try:
            files = {
                "meta.json": json.dumps(full_meta, indent=2, sort_keys=True).encode(),
                "params.json": json.dumps(params, indent=2, sort_keys=True).encode(),
                "arrays.npz": _npz_bytes(arrays or {}),
            }
        except (TypeError, ValueError) as exc:
            raise StorageError(f"model {key.uri} is not JSON-serialisable: {exc}") from exc
        self._write_dir(self._dir(key), files, overwrite=True)
        return key.uri

    def _write_dir(self, final: Path, files: Mapping[str, bytes], *, overwrite: bool) -> None:
        def fill(tmp: Path) -> None:
            for name, data in files.items():
                atomic_write_bytes(tmp / name, data)

        atomic_directory(final, fill, overwrite=overwrite)

    def delete(self, key: ModelKey) -> bool:
        """Remove a component's share (and its version folder once empty); False if it was not stored.

        The folder is renamed aside first, so a reader sees the whole share or none of it.
        """
        path = self._dir(key)
        if not remove_directory(path):
            return False
        version_dir = path.parent
        if version_dir.is_dir() and not any(version_dir.iterdir()):
            version_dir.rmdir()
        return True

    def exists(self, key: ModelKey) -> bool:
        """Whether the component's share is stored."""
        return (self._dir(key) / "meta.json").is_file()

    def load(self, key: ModelKey) -> StoredModel:
        """Load a component's share. :raises StorageError: naming the model when absent or corrupt."""
        path = self._dir(key)
        if not (path / "meta.json").is_file():
            have = self.components(key.party_model_id, key.model_version)
            hint = f"; this version has {list(have)}" if have else "; no such model version at this party"
            raise StorageError(
                f"model {key.party_model_id} version {key.model_version} has no component {key.task_name!r}{hint}"
            )
        try:
            meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
            params = json.loads((path / "params.json").read_text(encoding="utf-8"))
            arrays = _load_npz((path / "arrays.npz").read_bytes())
        except (OSError, ValueError) as exc:
            raise StorageError(f"model {key.uri} is corrupt: {exc}") from exc
        return StoredModel(meta, params, arrays)

    def components(self, pmid: str, model_version: str) -> tuple[str, ...]:
        """Task names stored for one model version."""
        base = self._version_dir(pmid, model_version)
        if not base.is_dir():
            return ()
        return tuple(
            sorted(
                p.name for p in base.iterdir() if not p.name.startswith(".") and (p / "meta.json").is_file()
            )
        )

    def list(self, model_id: str | None = None) -> list[ModelVersionInfo]:
        """Every model version at this party (optionally of one model id), oldest first."""
        out: list[ModelVersionInfo] = []
        if not self.root.is_dir():
            return out
        for pm_dir in sorted(self.root.iterdir()):
            if pm_dir.name.startswith(".") or not pm_dir.is_dir():
                continue
            for v_dir in sorted(pm_dir.iterdir()):
                if v_dir.name.startswith(".") or not v_dir.is_dir():
                    continue
                metas = [
                    json.loads((c / "meta.json").read_text(encoding="utf-8"))
                    for c in sorted(v_dir.iterdir())
                    if not c.name.startswith(".") and (c / "meta.json").is_file()
                ]
                if not metas:
                    continue
                first = metas[0]
                if model_id is not None and first["model_id"] != model_id:
                    continue
                out.append(
                    ModelVersionInfo(
                        party_model_id=first["party_model_id"],
                        model_id=first["model_id"],
                        model_version=first["model_version"],
                        role=first["role"],
                        party_id=first["party_id"],
                        components=tuple(m["task_name"] for m in metas),
                        created=min(m.get("created", "") for m in metas),
                    )
                )
        out.sort(key=lambda i: (i.created, i.party_model_id))
        return out

    def export(self, pmid: str, model_version: str, dest: str | Path) -> Path:
        """Zip one model version at this party into ``dest`` (a file, or a directory to put it in).

        :raises StorageError: the version does not exist here.
        """
        components = self.components(pmid, model_version)
        if not components:
            raise StorageError(f"model {pmid} version {model_version} not found at this party")
        dest = Path(dest)
        if dest.is_dir():
            dest = dest / f"{encode_component(pmid)}__{encode_component(model_version)}.zip"
        base = self._version_dir(pmid, model_version)
        first = json.loads((base / components[0] / "meta.json").read_text(encoding="utf-8"))
        manifest = {
            "format": EXPORT_FORMAT,
            "party_model_id": pmid,
            "model_id": first["model_id"],
            "model_version": model_version,
            "role": first["role"],
            "party_id": first["party_id"],
            "components": list(components),
        }
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("manifest.json", json.dumps(manifest, indent=2, sort_keys=True))
            for comp in components:
                for fname in _FILES:
                    zf.write(base / comp / fname, f"{comp}/{fname}")
        atomic_write_bytes(dest, buf.getvalue())
        return dest

    def import_zip(self, source: str | Path, *, overwrite: bool = False) -> ModelVersionInfo:
        """Restore a model version exported by :meth:`export`.

        :raises StorageError: the archive is not a model export, is unsafe (paths, sizes, pickled
            arrays), or the version exists and ``overwrite`` is false.
        """
        source = Path(source)
        try:
            zf = zipfile.ZipFile(source)
        except FileNotFoundError:
            raise StorageError(f"{source}: file not found") from None
        except (zipfile.BadZipFile, OSError) as exc:
            raise StorageError(f"{source}: not a zip archive: {exc}") from exc
        with zf:
            if sum(i.file_size for i in zf.infolist()) > MAX_IMPORT_BYTES:
                raise StorageError(f"{source}: archive too large")
            try:
                manifest = json.loads(zf.read("manifest.json"))
            except KeyError:
                raise StorageError(f"{source}: no manifest.json; not a fate-airflow model export") from None
            except ValueError as exc:
                raise StorageError(f"{source}: manifest.json is not JSON: {exc}") from exc
            if not isinstance(manifest, dict) or manifest.get("format") != EXPORT_FORMAT:
                raise StorageError(f"{source}: unsupported model export format {manifest.get('format')!r}")
            for fld in ("party_model_id", "model_id", "model_version", "role", "party_id", "components"):
                if fld not in manifest:
                    raise StorageError(f"{source}: manifest.json lacks {fld!r}")
            pmid, version = str(manifest["party_model_id"]), str(manifest["model_version"])
            if pmid != party_model_id(manifest["role"], str(manifest["party_id"]), manifest["model_id"]):
                raise StorageError(f"{source}: manifest party_model_id does not match role/party_id/model_id")
            components = [validate_identifier(c, "component name") for c in manifest["components"]]
            expected = {"manifest.json"} | {f"{c}/{f}" for c in components for f in _FILES}
            names = set(zf.namelist())
            if names != expected:
                raise StorageError(
                    f"{source}: unexpected archive members {sorted(names - expected)} or missing "
                    f"{sorted(expected - names)}"
                )
            contents = {name: zf.read(name) for name in expected if name != "manifest.json"}
        for comp in components:
            try:
                meta = json.loads(contents[f"{comp}/meta.json"])
                json.loads(contents[f"{comp}/params.json"])
                _load_npz(contents[f"{comp}/arrays.npz"])
            except (ValueError, OSError) as exc:
                raise StorageError(f"{source}: component {comp!r} is corrupt: {exc}") from exc
            if meta.get("party_model_id") != pmid or meta.get("model_version") != version:
                raise StorageError(f"{source}: component {comp!r} belongs to another model")
        target = self._version_dir(pmid, version)
        if self.components(pmid, version) and not overwrite:
            raise StorageError(
                f"model {pmid} version {version} already exists at this party (use --overwrite)"
            )
        staged = target.parent / f".import-{target.name}-{uuid.uuid4().hex}"
        try:
            for comp in components:
                for fname in _FILES:
                    atomic_write_bytes(staged / comp / fname, contents[f"{comp}/{fname}"])
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists():
                trash = target.parent / f".trash-{target.name}-{uuid.uuid4().hex}"
                target.rename(trash)
                staged.rename(target)
                shutil.rmtree(trash, ignore_errors=True)
            else:
                staged.rename(target)
        except BaseException:
            shutil.rmtree(staged, ignore_errors=True)
            raise
        return next(i for i in self.list() if i.party_model_id == pmid and i.model_version == version)


__all__ = [
    "EXPORT_FORMAT",
    "MODEL_SCHEME",
    "ModelKey",
    "ModelStore",
    "ModelVersionInfo",
    "StoredModel",
    "make_model_id",
    "party_model_id",
]
