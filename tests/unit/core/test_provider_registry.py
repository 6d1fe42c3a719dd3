"""The provider registry: references, the registry file, atomic and concurrent updates."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from fate_airflow import __version__
from fate_airflow.core import files
from fate_airflow.core.errors import ConfigError
from fate_airflow.core.providers import (
    NATIVE,
    ProviderInfo,
    ProviderRegistry,
    native_provider,
    parse_provider_ref,
)

FATE = ProviderInfo(
    "fate",
    "2.2.0",
    python="/envs/fate-2.2.0-abc/bin/python",
    env_dir="/envs/fate-2.2.0-abc",
    components=("psi", "hetero_secureboost"),
    installed_at="2026-01-01T00:00:00+00:00",
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("fate:2.2.0@local", ("fate", "2.2.0")),
        ("fate==2.2.0", ("fate", "2.2.0")),
        ("fate@2.2.0", ("fate", "2.2.0")),
        ("fate:2.2.0", ("fate", "2.2.0")),
        ("fate", ("fate", None)),
        ("fate:*@*", ("fate", None)),
        (" native ", (NATIVE, None)),
    ],
)
def test_provider_refs(text: str, expected: tuple[str, str | None]) -> None:
    assert parse_provider_ref(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("fate:2.2.0@docker", "device 'docker' is not supported"),
        ("", "invalid provider ''"),
        ("FATE", "invalid provider 'FATE'"),
        ("fate:", "bad version ''"),
        ("fate==2.2.0/../x", "bad version"),
        ("fate 2.2.0", "invalid provider"),
    ],
)
def test_bad_provider_refs(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_provider_ref(text)


def test_non_string_ref() -> None:
    with pytest.raises(ConfigError, match="must be a string"):
        parse_provider_ref(2.2)  # type: ignore[arg-type]


def test_info_ref_and_round_trip() -> None:
    assert FATE.ref == "fate:2.2.0"
    assert native_provider().ref == NATIVE
    assert native_provider().version == __version__
    assert ProviderInfo.from_dict(FATE.to_dict()) == FATE
    assert FATE.offers("psi") and not FATE.offers("upload")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"version": "1"}, "invalid name"),
        ({"name": "fate", "version": ""}, "invalid version"),
        ({"name": "fate", "version": "2.2.0", "components": "psi"}, "components must be a list"),
        ({"name": "fate", "version": "2.2.0", "python": 3}, "python must be a string"),
    ],
)
def test_info_from_bad_dict(data: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ProviderInfo.from_dict(data)


def test_empty_registry_lists_native_only(tmp_path: Path) -> None:
    registry = ProviderRegistry(tmp_path / "missing")
    assert registry.list() == [native_provider()]
    assert registry.find("fate") is None
    assert registry.find(NATIVE) == native_provider()
    assert registry.find(NATIVE, "0.0.0") is None
    assert registry.remove("fate", "2.2.0") is False
    assert not (tmp_path / "missing").exists()  # reading never creates anything


def test_register_find_list_remove(tmp_path: Path) -> None:
    registry = ProviderRegistry(tmp_path)
    older = ProviderInfo("fate", "2.1.0", components=("psi",))
    newer = ProviderInfo("fate", "2.10.0", components=("psi",))
    for info in (FATE, newer, older):
        registry.register(info)
    assert [p.ref for p in registry.list()] == ["native", "fate:2.1.0", "fate:2.2.0", "fate:2.10.0"]
    assert registry.find("fate") == newer  # numeric version order, not text order
    assert registry.find("fate", "2.2.0") == FATE
    assert registry.find("fate", "9.9.9") is None
    # Registering the same name and version again replaces the entry.
    moved = ProviderInfo("fate", "2.2.0", python="/other/bin/python", components=("psi",))
    registry.register(moved)
    assert registry.find("fate", "2.2.0") == moved
    assert len(registry.list()) == 4
    assert registry.remove("fate", "2.2.0") is True
    assert registry.remove("fate", "2.2.0") is False
    assert [p.ref for p in registry.list()] == ["native", "fate:2.1.0", "fate:2.10.0"]
    data = json.loads((tmp_path / "registry.json").read_text())
    assert data["format"] == 1
    assert [p["version"] for p in data["providers"]] == ["2.1.0", "2.10.0"]


def test_native_is_built_in(tmp_path: Path) -> None:
    registry = ProviderRegistry(tmp_path)
    with pytest.raises(ConfigError, match="built in"):
        registry.register(native_provider())
    with pytest.raises(ConfigError, match="built in"):
        registry.remove(NATIVE, __version__)


def test_invalid_entry_is_not_written(tmp_path: Path) -> None:
    registry = ProviderRegistry(tmp_path)
    with pytest.raises(ConfigError, match="invalid version"):
        registry.register(ProviderInfo("fate", "../x"))
    assert not registry.path.exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "invalid JSON"),
        ('{"format": 1}', "no 'providers' list"),
        ('{"format": 99, "providers": []}', "format 99 is not supported"),
        ('{"format": 1, "providers": [{"name": "fate"}]}', "invalid version"),
    ],
)
def test_corrupt_registry_is_an_error_naming_the_file(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "registry.json").write_text(content)
    registry = ProviderRegistry(tmp_path)
    with pytest.raises(ConfigError, match=message) as excinfo:
        registry.list()
    assert str(tmp_path / "registry.json") in str(excinfo.value)
    with pytest.raises(ConfigError):
        registry.register(FATE)  # never overwrites a registry it cannot read
    assert (tmp_path / "registry.json").read_text() == content


def test_a_failed_write_leaves_the_old_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    registry = ProviderRegistry(tmp_path)
    registry.register(FATE)
    before = registry.path.read_bytes()

    def crash(src: object, dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(files.os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        registry.register(ProviderInfo("fate", "2.3.0"))
    monkeypatch.undo()
    assert registry.path.read_bytes() == before
    leftovers = [p.name for p in tmp_path.iterdir() if p.name not in ("registry.json", ".registry.lock")]
    assert leftovers == []


def test_concurrent_registrations_are_all_kept(tmp_path: Path) -> None:
    errors: list[BaseException] = []

    def register(i: int) -> None:
        try:
            ProviderRegistry(tmp_path).register(ProviderInfo("fate", f"2.{i}.0"))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=register, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert {p.version for p in ProviderRegistry(tmp_path).list()[1:]} == {f"2.{i}.0" for i in range(12)}


def test_registry_file_is_replaced_not_rewritten(tmp_path: Path) -> None:
    registry = ProviderRegistry(tmp_path)
    registry.register(FATE)
    inode = os.stat(registry.path).st_ino
    registry.register(ProviderInfo("fate", "2.3.0"))
    # A new file renamed over the old one: readers holding the old file never see half of the new.
    assert os.stat(registry.path).st_ino != inode
