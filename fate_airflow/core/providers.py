"""Component providers: who runs a component, and the party's registry of installed ones.

Like FATE-Flow, this project implements no algorithm in its scheduler: a task's component is run by a
*provider*, a ``name:version`` with its own environment (FATE-Flow's "multi-type, multi-version
components"). Two kinds exist:

* ``native`` — this project's own components (:mod:`fate_airflow.components`), always present, run in
  the party's own interpreter;
* installed providers, e.g. ``fate:2.2.0`` — FATE 2.2's library (pyfate) in an isolated virtual
  environment (it cannot share one with Airflow 3), installed by ``fate-airflow provider install``.

Each party keeps the installed ones in ``<provider dir>/registry.json`` (``[fate] provider_dir``,
by default ``<party home>/providers``). The file is only ever replaced whole (temporary sibling +
fsync + rename), under an advisory lock, so a reader sees the old or the new registry and two
concurrent installs do not lose each other's entry.

Provider references (:func:`parse_provider_ref`) accept FATE-Flow 2.x's spelling
``name:version@device`` (``fate:2.2.0@local``) and the shorter ``fate:2.2.0``, ``fate==2.2.0``,
``fate@2.2.0``, ``fate`` (newest installed) and ``native``.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fate_airflow import __version__
from fate_airflow.core.errors import ConfigError
from fate_airflow.core.files import atomic_write_bytes, file_lock

log = logging.getLogger(__name__)

#: Name of the built-in provider (this project's components).
NATIVE = "native"
#: The registry file inside a party's provider folder.
REGISTRY_FILE = "registry.json"
#: Version of the registry file's layout.
REGISTRY_FORMAT = 1

#: Provider names: lower-case identifiers (they appear in refs, folder names and task summaries).
_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
#: Versions: PEP 440-ish tokens (``2.2.0``, ``2.2.0rc1``, ``2.2.0+local``).
_VERSION = re.compile(r"[0-9][0-9A-Za-z.+_-]{0,63}")
#: FATE-Flow's devices; only ``local`` (a process on this machine) is supported here.
_DEVICES = ("local",)
_REF_FORMS = "name:version@device (fate:2.2.0@local), name:version, name==version, name@version, name"


@dataclass(frozen=True)
class ProviderInfo:
    """One provider as the registry knows it.

    :param name: ``native`` or an installed provider's name (``fate``).
    :param version: the provider's version (``0.1.0`` for native = this project's version, ``2.2.0``).
    :param python: interpreter of the provider's isolated environment (``""`` for native).
    :param env_dir: the environment's folder (``""`` for native).
    :param components: the FATE 2.x component names the provider offers (as its own
        ``component list`` prints them); empty for native, whose components the DSL catalogue marks.
    :param installed_at: when it was registered, ISO 8601 (``""`` for native).
    """

    name: str
    version: str
    python: str = ""
    env_dir: str = ""
    components: tuple[str, ...] = ()
    installed_at: str = ""

    @property
    def ref(self) -> str:
        """How plans name the provider: ``native``, or ``name:version`` (e.g. ``fate:2.2.0``)."""
        return NATIVE if self.name == NATIVE else f"{self.name}:{self.version}"

    @property
    def is_native(self) -> bool:
        """Whether this is the built-in provider."""
        return self.name == NATIVE

    def offers(self, component: str) -> bool:
        """Whether the provider lists FATE 2.x component ``component``."""
        return component in self.components

    def to_dict(self) -> dict[str, Any]:
        """JSON form (one entry of ``registry.json``)."""
        return {
            "name": self.name,
            "version": self.version,
            "python": self.python,
            "env_dir": self.env_dir,
            "components": list(self.components),
            "installed_at": self.installed_at,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProviderInfo:
        """Inverse of :meth:`to_dict`.

        :raises ConfigError: a field is missing or has the wrong type.
        """
        if not isinstance(data, Mapping):
            raise ConfigError(f"provider entry must be a mapping, got {type(data).__name__}")
        name, version = data.get("name"), data.get("version")
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ConfigError(f"provider entry: invalid name {name!r}")
        if not isinstance(version, str) or not _VERSION.fullmatch(version):
            raise ConfigError(f"provider {name}: invalid version {version!r}")
        components = data.get("components") or []
        if not isinstance(components, list) or not all(isinstance(c, str) for c in components):
            raise ConfigError(f"provider {name}:{version}: components must be a list of names")
        texts: dict[str, str] = {}
        for key in ("python", "env_dir", "installed_at"):
            value = data.get(key) or ""
            if not isinstance(value, str):
                raise ConfigError(f"provider {name}:{version}: {key} must be a string")
            texts[key] = value
        return cls(name, version, components=tuple(components), **texts)


def native_provider() -> ProviderInfo:
    """The built-in provider: this project's components, at this project's version."""
    return ProviderInfo(NATIVE, __version__)


def parse_provider_ref(text: str) -> tuple[str, str | None]:
    """``(name, version or None)`` from a provider reference.

    Accepted: ``fate:2.2.0@local`` (FATE-Flow 2.x), ``fate:2.2.0``, ``fate==2.2.0``, ``fate@2.2.0``,
    ``fate`` and ``native``. A version of ``*`` (FATE-Flow's wildcard) means "any": None.

    :raises ConfigError: anything else, or a device other than ``local``.
    """
    if not isinstance(text, str):
        raise ConfigError(f"provider must be a string like fate:2.2.0, got {type(text).__name__}")
    raw = text.strip()
    name, version, device = raw, None, None
    if "==" in raw:
        name, _, version = raw.partition("==")
    elif ":" in raw:
        name, _, rest = raw.partition(":")
        version, sep, device = rest.partition("@")
        if not sep:
            device = None
    elif "@" in raw:
        name, _, version = raw.partition("@")
    if device is not None and device not in (*_DEVICES, "*"):
        raise ConfigError(
            f"provider {text!r}: device {device!r} is not supported; components run as local processes "
            "(use @local or leave the device out)"
        )
    if not _NAME.fullmatch(name):
        raise ConfigError(f"invalid provider {text!r}: expected {_REF_FORMS}")
    if version is not None and version != "*" and not _VERSION.fullmatch(version):
        raise ConfigError(f"invalid provider {text!r}: bad version {version!r}; expected {_REF_FORMS}")
    return name, None if version in (None, "*") else version


def version_key(version: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key ordering versions numerically (``2.10.0`` after ``2.9.1``); text parts sort after."""
    parts = re.split(r"[.+_-]", version)
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in parts)


class ProviderRegistry:
    """The providers installed at one party (``<root>/registry.json``); native is always listed.

    :param root: the party's provider folder (``[fate] provider_dir``). It need not exist: an absent
        registry lists native only.
    """

    _LOCK = ".registry.lock"

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"ProviderRegistry({str(self.root)!r})"

    @property
    def path(self) -> Path:
        """The registry file."""
        return self.root / REGISTRY_FILE

    # ------------------------------------------------------------------ reading
    def _read(self) -> list[ProviderInfo]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise ConfigError(
                f"{self.path}: cannot read the provider registry: {exc.strerror or exc}"
            ) from None
        try:
            doc = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{self.path}: not a valid provider registry (invalid JSON: {exc})") from None
        if not isinstance(doc, Mapping) or not isinstance(doc.get("providers"), list):
            raise ConfigError(f"{self.path}: not a valid provider registry (no 'providers' list)")
        if doc.get("format") != REGISTRY_FORMAT:
            raise ConfigError(
                f"{self.path}: provider registry format {doc.get('format')!r} is not supported "
                f"(expected {REGISTRY_FORMAT})"
            )
        try:
            return [ProviderInfo.from_dict(item) for item in doc["providers"]]
        except ConfigError as exc:
            raise ConfigError(f"{self.path}: {exc}") from None

    def list(self) -> list[ProviderInfo]:
        """Native first, then the installed providers by name and version (oldest first).

        :raises ConfigError: the registry file exists but is unreadable or invalid.
        """
        installed = sorted(self._read(), key=lambda p: (p.name, version_key(p.version)))
        return [native_provider(), *installed]

    def find(self, name: str, version: str | None = None) -> ProviderInfo | None:
        """The provider ``name`` at ``version`` (the newest installed one when None), or None."""
        if name == NATIVE:
            native = native_provider()
            return native if version in (None, native.version) else None
        matches = [p for p in self._read() if p.name == name and version in (None, p.version)]
        if not matches:
            return None
        return max(matches, key=lambda p: version_key(p.version))

    # ------------------------------------------------------------------ writing
    @contextmanager
    def _locked(self) -> Iterator[None]:
        # Read-modify-write under an advisory lock: two installs registering into one party at the same
        # time must both end up in the file.
        with file_lock(self.root / self._LOCK):
            yield

    def _write(self, providers: Iterable[ProviderInfo]) -> None:
        ordered = sorted(providers, key=lambda p: (p.name, version_key(p.version)))
        doc = {"format": REGISTRY_FORMAT, "providers": [p.to_dict() for p in ordered]}
        atomic_write_bytes(self.path, (json.dumps(doc, indent=2) + "\n").encode())

    def register(self, info: ProviderInfo) -> None:
        """Add ``info``, replacing an entry with the same name and version (atomic).

        :raises ConfigError: ``info`` is the native provider (it is built in), or the registry is invalid.
        """
        if info.name == NATIVE:
            raise ConfigError("the native provider is built in and cannot be registered")
        ProviderInfo.from_dict(info.to_dict())  # validate name/version before anything is written
        with self._locked():
            others = [p for p in self._read() if (p.name, p.version) != (info.name, info.version)]
            self._write([*others, info])

    def remove(self, name: str, version: str) -> bool:
        """Unregister ``name:version``; False if it was not registered. The environment is left alone.

        :raises ConfigError: ``name`` is native, or the registry is invalid.
        """
        if name == NATIVE:
            raise ConfigError("the native provider is built in and cannot be removed")
        if not self.path.exists():
            return False
        with self._locked():
            current = self._read()
            kept = [p for p in current if (p.name, p.version) != (name, version)]
            if len(kept) == len(current):
                return False
            self._write(kept)
            return True


def party_providers(provider_dir: str | Path | None) -> list[ProviderInfo] | None:
    """The providers installed at a party, or None when the party has no provider folder setting.

    An unreadable registry leaves native only (logged): jobs needing another provider then plan as
    invalid, naming the problem, rather than failing halfway through a run.
    """
    if not provider_dir:
        return None
    try:
        return ProviderRegistry(provider_dir).list()
    except ConfigError as exc:
        log.error("provider registry unreadable, planning with the native provider only: %s", exc)
        return [native_provider()]


__all__ = [
    "NATIVE",
    "REGISTRY_FILE",
    "ProviderInfo",
    "ProviderRegistry",
    "native_provider",
    "parse_provider_ref",
    "party_providers",
    "version_key",
]
