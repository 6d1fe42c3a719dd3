"""Crash-safe writes: readers see the old content or the new, never a half-written file or folder."""

from __future__ import annotations

import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from fate_airflow.core.errors import StorageError
from fate_airflow.core.files import (
    atomic_directory,
    atomic_write_bytes,
    read_or_create_secret,
    write_secret,
)
from fate_airflow.core.paths import decode_component, encode_component, validate_identifier


def test_atomic_write_replaces_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "a" / "f.json"
    atomic_write_bytes(target, b"one")
    atomic_write_bytes(target, b"two")
    assert target.read_bytes() == b"two"
    assert [p.name for p in target.parent.iterdir()] == ["f.json"]


def test_a_secret_is_owner_only_from_its_first_byte_whatever_the_umask(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "secrets.json"
    target.write_text("old, world-readable")
    target.chmod(0o644)
    modes: list[int] = []
    real_fsync = os.fsync

    def watching_fsync(fd: int) -> None:
        # The content is in the temporary now: nobody else may read it at this point already.
        modes.append(os.fstat(fd).st_mode & 0o777)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", watching_fsync)
    old_umask = os.umask(0)
    try:
        write_secret(target, "s3cret")
    finally:
        os.umask(old_umask)
    assert target.read_text() == "s3cret"
    assert target.stat().st_mode & 0o777 == 0o600
    assert modes and modes[0] == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["secrets.json"]


def test_a_party_secret_is_created_once_owner_only_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "party-secret.key"
    with ThreadPoolExecutor(8) as pool:
        first = set(pool.map(lambda _: read_or_create_secret(path), range(8)))
    assert len(first) == 1  # concurrent first users agree on one secret
    (secret,) = first
    assert len(secret) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_or_create_secret(path) == secret
    assert read_or_create_secret(tmp_path / "other.key") != secret


def test_a_failing_fill_leaves_the_old_directory(tmp_path: Path) -> None:
    final = tmp_path / "table"
    atomic_directory(final, lambda d: (d / "x").write_text("old"), overwrite=False)

    def broken(d: Path) -> None:
        (d / "x").write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_directory(final, broken, overwrite=True)
    assert (final / "x").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table"]


def test_existing_directory_needs_overwrite(tmp_path: Path) -> None:
    final = tmp_path / "t"
    atomic_directory(final, lambda d: None, overwrite=False)
    with pytest.raises(StorageError, match="already exists"):
        atomic_directory(final, lambda d: None, overwrite=False)


def test_job_ids_encode_reversibly_into_one_path_component() -> None:
    job = "manual__2026-11-27T10:00:00.123+00:00"
    encoded = encode_component(job)
    assert "/" not in encoded and ":" not in encoded and "+" not in encoded
    assert decode_component(encoded) == job
    assert encode_component("..").startswith("%2E")


@pytest.mark.parametrize("bad", ["../x", "a/b", "", ".hidden"])
def test_paths_are_not_identifiers(bad: str) -> None:
    with pytest.raises(StorageError):
        validate_identifier(bad, "table name")
