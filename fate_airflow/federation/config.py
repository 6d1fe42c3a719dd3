"""Gateway and gateway-client configuration: dataclasses, file loader, and checks with clear errors.

A gateway config file (YAML or JSON; relative paths are relative to the file)::

    party_id: "9999"                 # or party_ids: ["9999", "9998"] (first = the certificate's)
    listen: "0.0.0.0:9370"           # port 0 = any free port (tests; see --port-file)
    data_dir: "gateway-9999"         # spool lives in <data_dir>/spool
    tls:
      ca_cert: "pki/9999/ca.crt"     # this party's CA (verifies local clients)
      cert: "pki/9999/gateway.crt"   # this gateway's certificate (kind gateway, party 9999)
      key: "pki/9999/gateway.key"
      peer_ca_certs: ["pki/10000/ca.crt", "pki/hub/ca.crt"]
    # insecure: true                 # plaintext, NO authentication: local demos only; excludes tls
    routes:
      "10000": "10.0.0.2:9370"                           # direct
      "10001": {address: "10.0.0.9:9370", via: "hub"}    # through party "hub"'s gateway
      "*": {address: "10.0.0.9:9370", via: "hub"}        # default route (FATE exchange pattern)
    allow: ["10000", "10001"]        # parties that may talk to us (default: route keys); relays too
    trusted_relays: ["hub"]          # may forward on behalf of others; default: none (a `via` is not enough)
    limits: {max_message_bytes: 17179869184, chunk_bytes: 1048576, max_workers: 64}
    retention: {max_age_seconds: 604800, gc_interval_seconds: 600}
    spool: {fsync: always, quota_bytes: 68719476736, per_peer_quota_bytes: 34359738368}
                                     # see SpoolSettings
    ptp_listen: "127.0.0.1:9390"     # optional: the party-internal endpoint (plaintext: loopback or
                                     # unix:/path only): FATE's PTP ("osx") service for the party's
                                     # FATE components, and the native Transfer/Control services for
                                     # workers configured with GatewayClientConfig.internal_address
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeAlias, get_args

from fate_airflow.core.errors import ConfigError
from fate_airflow.core.types import validate_party_id

DEFAULT_CHUNK_BYTES = 1 << 20
DEFAULT_MAX_MESSAGE_BYTES = 16 << 30
DEFAULT_PORT = 9370
#: Bytes the spool may hold in total / for messages from any one party (see :class:`SpoolSettings`).
DEFAULT_SPOOL_QUOTA_BYTES = 64 << 30
DEFAULT_PER_PEER_QUOTA_BYTES = 32 << 30
#: Route-table key of the default route.
DEFAULT_ROUTE = "*"


def parse_address(text: object, where: str) -> tuple[str, int]:
    """Split ``host:port`` (``[v6]:port`` too), raising :class:`ConfigError` naming ``where``."""
    if not isinstance(text, str) or ":" not in text:
        raise ConfigError(f"{where}: expected 'host:port', got {text!r}")
    host, _, port_text = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host:
        raise ConfigError(f"{where}: missing host in {text!r}")
    try:
        port = int(port_text)
    except ValueError:
        raise ConfigError(f"{where}: port {port_text!r} in {text!r} is not a number") from None
    if not 0 <= port <= 65535:
        raise ConfigError(f"{where}: port {port} out of range")
    return host, port


def format_address(host: str, port: int) -> str:
    """Inverse of :func:`parse_address` (brackets IPv6 literals)."""
    try:
        if ipaddress.ip_address(host).version == 6:
            return f"[{host}]:{port}"
    except ValueError:
        pass
    return f"{host}:{port}"


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` (an IP literal or ``localhost``) only accepts connections from this machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_ptp_listen(text: object, where: str = "ptp_listen") -> str:
    """Validate the party-internal endpoint's address: ``unix:/path``, or ``host:port`` on a loopback host.

    The endpoint (FATE's PTP service, and the native services for the party's own workers) speaks
    plaintext without authentication (that is what FATE's components expect of their party's
    OSX), so anything that can connect to it can send as the party: it must not be reachable from
    other machines.

    :raises ConfigError: naming ``where``.
    """
    if isinstance(text, str) and text.startswith("unix:"):
        if not text[len("unix:") :].strip("/"):
            raise ConfigError(f"{where}: missing socket path in {text!r}")
        return text
    host, _ = parse_address(text, where)
    if not is_loopback_host(host):
        raise ConfigError(
            f"{where}: {host} is not a loopback address; the party-internal endpoint is plaintext and "
            "unauthenticated, so it may only listen on 127.0.0.1, ::1, localhost or a unix:/path socket"
        )
    return str(text)


def _party(value: object, where: str) -> str:
    try:
        return validate_party_id(value)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _mapping(value: object, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
    return value


def _number(value: object, where: str, *, minimum: float = 0, integer: bool = True) -> Any:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or (integer and not isinstance(value, int))
    ):
        raise ConfigError(f"{where}: expected {'an integer' if integer else 'a number'}, got {value!r}")
    if value < minimum:
        raise ConfigError(f"{where}: must be >= {minimum}, got {value}")
    return value


def _path(value: object, where: str, base: Path) -> Path:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: expected a file path, got {value!r}")
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def _check_unknown(data: Mapping[str, Any], known: set[str], where: str) -> None:
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(
            f"{where}: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )


@dataclass(frozen=True)
class Route:
    """How to reach a party: the gateway at ``address``, which belongs to party ``via``.

    ``via`` is the destination itself for a direct route, or a hub party that forwards for it. For
    the default route ``"*"`` ``via`` names the hub (required with TLS: it is the identity the
    hub's certificate must carry).
    """

    address: str
    via: str | None


@dataclass(frozen=True)
class TlsConfig:
    """Certificates of a gateway (all PEM files)."""

    ca_cert: Path
    cert: Path
    key: Path
    peer_ca_certs: tuple[Path, ...] = ()


@dataclass(frozen=True)
class Limits:
    """Size and concurrency limits.

    :param max_message_bytes: largest payload accepted (RESOURCE_EXHAUSTED beyond).
    :param chunk_bytes: chunk size of streams; gRPC frames are limited to this plus headers.
    :param max_workers: threads serving RPCs (each waiting ``get`` holds one).
    """

    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    chunk_bytes: int = DEFAULT_CHUNK_BYTES
    max_workers: int = 64

    @property
    def max_frame_bytes(self) -> int:
        """Per-message gRPC limit: one chunk plus room for the frame's own fields."""
        return self.chunk_bytes + (64 << 10)


@dataclass(frozen=True)
class Retention:
    """Spool garbage collection: sessions untouched for ``max_age_seconds`` are deleted."""

    max_age_seconds: float = 7 * 24 * 3600.0
    gc_interval_seconds: float = 600.0


FsyncPolicy: TypeAlias = Literal["always", "never"]


@dataclass(frozen=True)
class SpoolSettings:
    """How the destination gateway stores the messages it accepts.

    :param fsync: ``always`` (the default) flushes each message — file and directory entry — to
        the disk before the sender is told it was accepted, so an accepted message survives a power
        cut or a kernel crash too. ``never`` skips those flushes. An accepted message then still
        survives the gateway process dying in any way (``kill -9`` included), because its bytes
        live in the kernel's page cache, which outlives the process, and the rename that
        publishes it is atomic; but a crash of the machine itself before the kernel has written
        the pages back (Linux: within about 30 s) can lose it while its sender believes it
        delivered — the job then fails with a timeout at the receiver and must be rerun. The
        flushes cost little on large messages (written back in the background while they stream
        in) but dominate small ones (a few milliseconds each: two flushes per message, three for
        the first of a session). Choose ``never`` where rerunning a job after a machine crash is
        acceptable, e.g. a single-host demo or throughput-bound training on reliable hosts.
    :param quota_bytes: most payload bytes the spool holds at once, all senders together: messages
        accepted and not yet consumed, plus those still arriving (counted at their declared size
        from their first frame). A message that would go beyond is refused before anything of it
        is written (RESOURCE_EXHAUSTED, naming the sender, the quota and the current usage); the
        space comes back when its receiver consumes a message, or a session is cleaned up or
        expires. Keeps one party's forgotten or hostile messages from filling the gateway's disk.
    :param per_peer_quota_bytes: the same limit for the messages from one sending party (a peer,
        or this gateway's own party when it sends to itself), so one party cannot use up the
        space the others need.
    """

    fsync: FsyncPolicy = "always"
    quota_bytes: int = DEFAULT_SPOOL_QUOTA_BYTES
    per_peer_quota_bytes: int = DEFAULT_PER_PEER_QUOTA_BYTES

    def __post_init__(self) -> None:
        if self.fsync not in get_args(FsyncPolicy):
            raise ConfigError(f"spool.fsync: expected always or never, got {self.fsync!r}")
        _number(self.quota_bytes, "spool.quota_bytes", minimum=1)
        _number(self.per_peer_quota_bytes, "spool.per_peer_quota_bytes", minimum=1)
        if self.per_peer_quota_bytes > self.quota_bytes:
            raise ConfigError(
                f"spool.per_peer_quota_bytes: {self.per_peer_quota_bytes} is larger than spool.quota_bytes "
                f"({self.quota_bytes}); one party's share cannot exceed the whole spool"
            )


@dataclass(frozen=True)
class GatewayConfig:
    """Configuration of one party's gateway (see the module docstring for the file format)."""

    party_ids: tuple[str, ...]
    listen: str
    data_dir: Path
    tls: TlsConfig | None = None
    insecure: bool = False
    routes: Mapping[str, Route] = field(default_factory=dict)
    allow: frozenset[str] | None = None
    trusted_relays: frozenset[str] | None = None
    limits: Limits = field(default_factory=Limits)
    retention: Retention = field(default_factory=Retention)
    log_level: str = "INFO"
    spool: SpoolSettings = field(default_factory=SpoolSettings)
    #: FATE's PTP ("osx") endpoint for this party's own components; None: not served.
    ptp_listen: str | None = None

    def __post_init__(self) -> None:
        if not self.party_ids:
            raise ConfigError("party_id: the gateway must serve at least one party id")
        for pid in self.party_ids:
            _party(pid, "party_ids")
        parse_address(self.listen, "listen")
        if self.ptp_listen is not None:
            check_ptp_listen(self.ptp_listen)
        if self.limits.max_message_bytes > self.spool.per_peer_quota_bytes:
            raise ConfigError(
                f"limits.max_message_bytes: {self.limits.max_message_bytes} is larger than "
                f"spool.per_peer_quota_bytes ({self.spool.per_peer_quota_bytes}), so a message of the "
                "largest accepted size could never be spooled; lower the limit or raise the quota"
            )
        if self.insecure and self.tls is not None:
            raise ConfigError("insecure: true cannot be combined with tls; choose one")
        if not self.insecure and self.tls is None:
            raise ConfigError(
                "tls: missing; give tls.ca_cert/cert/key (see `fate-airflow pki`) or, for a local demo "
                "only, insecure: true"
            )
        for key, route in self.routes.items():
            if key != DEFAULT_ROUTE:
                _party(key, f"routes.{key}")
            parse_address(route.address, f"routes.{key}")
            if route.via is not None:
                _party(route.via, f"routes.{key}.via")
            if key == DEFAULT_ROUTE and route.via is None and not self.insecure:
                raise ConfigError(
                    "routes.*: the default route needs `via: <hub party id>` so the hub's certificate can "
                    "be checked"
                )
            if key in self.party_ids:
                raise ConfigError(f"routes.{key}: party {key} is served by this gateway; it needs no route")

    @property
    def party_id(self) -> str:
        """The primary party id (the one in the gateway certificate)."""
        return self.party_ids[0]

    @property
    def spool_dir(self) -> Path:
        """Where received messages are kept."""
        return self.data_dir / "spool"

    def route_for(self, party_id: str) -> Route | None:
        """The route to ``party_id`` (direct entry, else the default route)."""
        return self.routes.get(party_id) or self.routes.get(DEFAULT_ROUTE)

    def next_hop_party(self, dst_party_id: str) -> str | None:
        """Party id whose gateway is the next hop to ``dst_party_id`` (None: default route, no via)."""
        route = self.route_for(dst_party_id)
        return None if route is None else route.via

    @property
    def effective_relays(self) -> frozenset[str]:
        """Parties trusted to forward on behalf of others: only those ``trusted_relays`` names.

        Sending through a hub (a route's ``via``) does not make the hub's word about who a message
        comes from trusted: relaying for others is off unless the config says so.
        """
        return self.trusted_relays if self.trusted_relays is not None else frozenset()

    @property
    def effective_allow(self) -> frozenset[str]:
        """Parties allowed to talk to this gateway: ``allow`` (default: the route keys) plus relays."""
        base = (
            self.allow if self.allow is not None else frozenset(k for k in self.routes if k != DEFAULT_ROUTE)
        )
        return base | self.effective_relays

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], base_dir: Path | None = None) -> GatewayConfig:
        """Build from a parsed config document; relative paths resolve against ``base_dir``.

        :raises ConfigError: naming the offending field.
        """
        base = base_dir or Path.cwd()
        data = _mapping(data, "config")
        _check_unknown(
            data,
            {
                "party_id",
                "party_ids",
                "listen",
                "data_dir",
                "tls",
                "insecure",
                "routes",
                "allow",
                "trusted_relays",
                "limits",
                "retention",
                "log_level",
                "spool",
                "ptp_listen",
            },
            "config",
        )
        if "party_ids" in data:
            raw_ids = data["party_ids"]
            if not isinstance(raw_ids, list) or not raw_ids:
                raise ConfigError("party_ids: expected a non-empty list of party ids")
            party_ids = tuple(_party(p, f"party_ids[{i}]") for i, p in enumerate(raw_ids))
        elif "party_id" in data:
            party_ids = (_party(data["party_id"], "party_id"),)
        else:
            raise ConfigError("party_id: missing (the party id this gateway serves)")
        listen = data.get("listen", f"0.0.0.0:{DEFAULT_PORT}")
        parse_address(listen, "listen")
        if "data_dir" not in data:
            raise ConfigError("data_dir: missing (folder for the message spool)")
        data_dir = _path(data["data_dir"], "data_dir", base)
        insecure = data.get("insecure", False)
        if not isinstance(insecure, bool):
            raise ConfigError(f"insecure: expected true or false, got {insecure!r}")
        tls = None
        if data.get("tls") is not None:
            raw_tls = _mapping(data["tls"], "tls")
            _check_unknown(raw_tls, {"ca_cert", "cert", "key", "peer_ca_certs"}, "tls")
            for name in ("ca_cert", "cert", "key"):
                if name not in raw_tls:
                    raise ConfigError(f"tls.{name}: missing")
            peers = raw_tls.get("peer_ca_certs", [])
            if not isinstance(peers, list):
                raise ConfigError("tls.peer_ca_certs: expected a list of file paths")
            tls = TlsConfig(
                ca_cert=_path(raw_tls["ca_cert"], "tls.ca_cert", base),
                cert=_path(raw_tls["cert"], "tls.cert", base),
                key=_path(raw_tls["key"], "tls.key", base),
                peer_ca_certs=tuple(_path(p, f"tls.peer_ca_certs[{i}]", base) for i, p in enumerate(peers)),
            )
            for name in ("ca_cert", "cert", "key"):
                path = getattr(tls, name)
                if not path.is_file():
                    raise ConfigError(f"tls.{name}: file {path} does not exist")
            for i, path in enumerate(tls.peer_ca_certs):
                if not path.is_file():
                    raise ConfigError(f"tls.peer_ca_certs[{i}]: file {path} does not exist")
        routes: dict[str, Route] = {}
        for key, value in _mapping(data.get("routes"), "routes").items():
            key = str(key)
            where = f"routes.{key}"
            if isinstance(value, str):
                routes[key] = Route(value, None if key == DEFAULT_ROUTE else key)
            elif isinstance(value, Mapping):
                _check_unknown(value, {"address", "via"}, where)
                if "address" not in value:
                    raise ConfigError(f"{where}.address: missing")
                via = value.get("via")
                routes[key] = Route(
                    value["address"],
                    _party(via, f"{where}.via")
                    if via is not None
                    else (None if key == DEFAULT_ROUTE else key),
                )
            else:
                raise ConfigError(f"{where}: expected 'host:port' or {{address, via}}, got {value!r}")

        def party_set(name: str) -> frozenset[str] | None:
            if data.get(name) is None:
                return None
            raw = data[name]
            if not isinstance(raw, list):
                raise ConfigError(f"{name}: expected a list of party ids")
            return frozenset(_party(p, f"{name}[{i}]") for i, p in enumerate(raw))

        raw_limits = _mapping(data.get("limits"), "limits")
        _check_unknown(raw_limits, {"max_message_bytes", "chunk_bytes", "max_workers"}, "limits")
        limits = Limits(
            max_message_bytes=_number(
                raw_limits.get("max_message_bytes", DEFAULT_MAX_MESSAGE_BYTES),
                "limits.max_message_bytes",
                minimum=1,
            ),
            chunk_bytes=_number(
                raw_limits.get("chunk_bytes", DEFAULT_CHUNK_BYTES), "limits.chunk_bytes", minimum=1024
            ),
            max_workers=_number(raw_limits.get("max_workers", 64), "limits.max_workers", minimum=4),
        )
        if limits.chunk_bytes > 64 << 20:
            raise ConfigError("limits.chunk_bytes: at most 64 MiB")
        raw_ret = _mapping(data.get("retention"), "retention")
        _check_unknown(raw_ret, {"max_age_seconds", "gc_interval_seconds"}, "retention")
        retention = Retention(
            max_age_seconds=float(
                _number(
                    raw_ret.get("max_age_seconds", 7 * 24 * 3600.0),
                    "retention.max_age_seconds",
                    integer=False,
                )
            ),
            gc_interval_seconds=float(
                _number(
                    raw_ret.get("gc_interval_seconds", 600.0),
                    "retention.gc_interval_seconds",
                    minimum=1,
                    integer=False,
                )
            ),
        )
        raw_spool = _mapping(data.get("spool"), "spool")
        _check_unknown(raw_spool, {"fsync", "quota_bytes", "per_peer_quota_bytes"}, "spool")
        spool = SpoolSettings(
            fsync=raw_spool.get("fsync", "always"),
            quota_bytes=_number(
                raw_spool.get("quota_bytes", DEFAULT_SPOOL_QUOTA_BYTES), "spool.quota_bytes", minimum=1
            ),
            per_peer_quota_bytes=_number(
                raw_spool.get("per_peer_quota_bytes", DEFAULT_PER_PEER_QUOTA_BYTES),
                "spool.per_peer_quota_bytes",
                minimum=1,
            ),
        )
        ptp_listen = data.get("ptp_listen")
        if ptp_listen is not None:
            ptp_listen = check_ptp_listen(ptp_listen)
            if ptp_listen.startswith("unix:") and not ptp_listen.startswith("unix:/"):
                ptp_listen = f"unix:{base / ptp_listen[len('unix:') :]}"  # relative to the file
        log_level = data.get("log_level", "INFO")
        if not isinstance(log_level, str) or log_level.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ConfigError(f"log_level: expected DEBUG, INFO, WARNING or ERROR, got {log_level!r}")
        return cls(
            party_ids=party_ids,
            listen=listen,
            data_dir=data_dir,
            tls=tls,
            insecure=insecure,
            routes=routes,
            allow=party_set("allow"),
            trusted_relays=party_set("trusted_relays"),
            limits=limits,
            retention=retention,
            log_level=log_level.upper(),
            spool=spool,
            ptp_listen=ptp_listen,
        )


def read_document(path: Path | str) -> tuple[Mapping[str, Any], Path]:
    """Parse a YAML or JSON file into a mapping; returns it with the file's folder."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {file} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {file}: {exc}") from None
    try:
        if file.suffix.lower() == ".json":
            doc = json.loads(text)
        else:
            from ruamel.yaml import YAML
            from ruamel.yaml.error import YAMLError

            try:
                doc = YAML(typ="safe", pure=True).load(text)
            except YAMLError as exc:
                raise ConfigError(f"{file}: invalid YAML: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{file}: invalid JSON: {exc}") from None
    if not isinstance(doc, Mapping):
        raise ConfigError(f"{file}: expected a mapping at the top level")
    return doc, file.resolve().parent


def load_gateway_config(path: Path | str) -> GatewayConfig:
    """Load a gateway config file (YAML or JSON).

    :raises ConfigError: the message starts with the file name and names the field.
    """
    doc, base = read_document(path)
    try:
        return GatewayConfig.from_dict(doc, base)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


@dataclass(frozen=True)
class GatewayClientConfig:
    """How a worker or scheduler reaches its own party's gateway (stored in an Airflow connection).

    Two ways in: the gateway's mutually authenticated endpoint at ``address`` (client certificate
    of the party; works from any host), or, with ``internal_address``, its party-internal endpoint
    (``ptp_listen`` in the gateway config): plaintext over loopback or a unix socket, for
    processes on the gateway's own host (or sharing its socket's volume). That saves a TLS hop in
    each direction of every transfer; the gateway applies the same rules there (a client speaks
    only as one of the gateway's own parties; scoping, size limits, quotas and checksums as
    always). Anything that can open the socket can speak as the party, so it must stay
    party-internal, as the gateway config enforces.

    :param address: the local gateway's mTLS endpoint, ``host:port``.
    :param party_id: the party this client speaks for (its client certificate must say so).
    :param ca_cert: the party CA certificate (verifies the gateway).
    :param client_cert: this client's certificate (kind ``client``).
    :param client_key: its private key.
    :param insecure: plaintext without authentication (local demos only; excludes the TLS paths).
    :param gateway_party_id: party id in the gateway's certificate, if not ``party_id`` (a gateway
        serving several party ids carries its primary one).
    :param chunk_bytes: chunk size of uploads.
    :param send_timeout: how long ``remote`` keeps retrying while a gateway is unreachable.
    :param internal_address: the gateway's party-internal endpoint (``unix:/path`` or a loopback
        ``host:port``); when set, every client built from this config uses it instead of
        ``address``, and the TLS settings may be omitted.
    """

    address: str
    party_id: str
    ca_cert: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    insecure: bool = False
    gateway_party_id: str | None = None
    chunk_bytes: int = DEFAULT_CHUNK_BYTES
    send_timeout: float = 300.0
    internal_address: str | None = None

    def __post_init__(self) -> None:
        parse_address(self.address, "address")
        _party(self.party_id, "party_id")
        if self.internal_address is not None:
            check_ptp_listen(self.internal_address, "internal_address")
        tls_paths = (self.ca_cert, self.client_cert, self.client_key)
        if self.insecure and any(tls_paths):
            raise ConfigError("insecure: true cannot be combined with ca_cert/client_cert/client_key")
        if not self.insecure and self.internal_address is None and not all(tls_paths):
            raise ConfigError(
                "ca_cert, client_cert and client_key are all required (or internal_address for the "
                "gateway's party-internal endpoint, or insecure: true for a local demo)"
            )
        if any(tls_paths) and not all(tls_paths):
            raise ConfigError(
                "ca_cert, client_cert and client_key are all required together, or none of them"
            )
        if self.gateway_party_id is not None:
            _party(self.gateway_party_id, "gateway_party_id")
        _number(self.chunk_bytes, "chunk_bytes", minimum=1024)
        if self.chunk_bytes > 64 << 20:
            raise ConfigError("chunk_bytes: at most 64 MiB")
        _number(self.send_timeout, "send_timeout", integer=False)

    @property
    def target(self) -> str:
        """Where clients connect: the internal endpoint if configured, else ``address``."""
        return self.internal_address or self.address

    @property
    def plaintext(self) -> bool:
        """No TLS towards the gateway (internal endpoint or insecure): the caller names its party."""
        return self.insecure or self.internal_address is not None

    @property
    def server_party_id(self) -> str:
        """Party id the gateway's certificate must carry."""
        return self.gateway_party_id or self.party_id

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (e.g. an Airflow connection's ``extra``)."""
        return {
            "address": self.address,
            "party_id": self.party_id,
            "ca_cert": self.ca_cert,
            "client_cert": self.client_cert,
            "client_key": self.client_key,
            "insecure": self.insecure,
            "gateway_party_id": self.gateway_party_id,
            "chunk_bytes": self.chunk_bytes,
            "send_timeout": self.send_timeout,
            "internal_address": self.internal_address,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GatewayClientConfig:
        """Inverse of :meth:`to_dict`; missing optional fields take their defaults.

        :raises ConfigError: unknown or invalid fields, naming them.
        """
        data = _mapping(data, "gateway client config")
        known = set(cls.__dataclass_fields__)
        _check_unknown(data, known, "gateway client config")
        for name in ("address", "party_id"):
            if name not in data:
                raise ConfigError(f"gateway client config: {name} missing")
        kwargs = {k: v for k, v in data.items() if v is not None or k in ("gateway_party_id",)}
        if "party_id" in kwargs:
            kwargs["party_id"] = _party(kwargs["party_id"], "party_id")
        return cls(**kwargs)

    @classmethod
    def load(cls, path: Path | str) -> GatewayClientConfig:
        """Load from a YAML/JSON file; relative certificate paths resolve against its folder."""
        doc, base = read_document(path)
        data = dict(doc)
        for name in ("ca_cert", "client_cert", "client_key"):
            if isinstance(data.get(name), str):
                data[name] = str(_path(data[name], name, base))
        internal = data.get("internal_address")
        if isinstance(internal, str) and internal.startswith("unix:") and not internal.startswith("unix:/"):
            data["internal_address"] = f"unix:{base / internal[len('unix:') :]}"  # relative to the file
        try:
            return cls.from_dict(data)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None


__all__ = [
    "DEFAULT_CHUNK_BYTES",
    "DEFAULT_MAX_MESSAGE_BYTES",
    "DEFAULT_PER_PEER_QUOTA_BYTES",
    "DEFAULT_ROUTE",
    "DEFAULT_SPOOL_QUOTA_BYTES",
    "FsyncPolicy",
    "GatewayClientConfig",
    "GatewayConfig",
    "Limits",
    "Retention",
    "Route",
    "SpoolSettings",
    "TlsConfig",
    "check_ptp_listen",
    "format_address",
    "is_loopback_host",
    "load_gateway_config",
    "parse_address",
    "read_document",
]
