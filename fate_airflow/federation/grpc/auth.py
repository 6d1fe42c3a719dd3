"""Who is calling: certificates → party identities, and the gateway's trust store.

Trust model (mTLS, the default):

* Each party has its own CA (:mod:`fate_airflow.federation.pki`); a gateway trusts its own CA and
  the peer CAs listed in its config. Every CA certificate binds one party id.
* A caller's certificate must be issued *directly* by the trusted CA of the party it names, so no
  party can mint a certificate for another. Local clients (workers, schedulers) present
  ``client`` certificates of one of the gateway's own party ids; peer gateways present ``gateway``
  certificates.
* A peer gateway speaks for its own party. It may claim to forward for another party (the
  ``x-fate-origin-party`` header, FATE's exchange/hub pattern) only if the receiving gateway lists
  it in ``trusted_relays``; the receiver then trusts the hub's word for the origin, and the origin
  must still be in the allowlist.

With ``insecure: true`` nobody is authenticated: callers *claim* an identity with the
``x-fate-party-id`` / ``x-fate-peer-kind`` headers. That is for local demos only.

The party-internal endpoint (``ptp_listen``: loopback or a unix socket, never reachable from other
hosts) needs no certificate either: whoever reaches it is a process of the gateway's own party, so
a caller there names which of the gateway's own party ids it speaks for (``x-fate-party-id``) and
is always a local client (:func:`internal_caller`); it can never pass for a peer gateway.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from fate_airflow.core.errors import ConfigError
from fate_airflow.federation.config import GatewayConfig
from fate_airflow.federation.errors import PermissionDenied, Unauthenticated
from fate_airflow.federation.pki import identity_of, issued_by, load_certificates

#: Metadata: the party a forwarded message or command originally came from.
ORIGIN_KEY = "x-fate-origin-party"
#: Metadata: how many gateways a request has passed (loop guard).
HOPS_KEY = "x-fate-hops"
#: Metadata used only in insecure mode: the caller's claimed party id and kind.
CLAIMED_PARTY_KEY = "x-fate-party-id"
CLAIMED_KIND_KEY = "x-fate-peer-kind"
#: Most gateways a request may pass (client's gateway → hub → destination is 2).
MAX_HOPS = 4


@dataclass(frozen=True)
class Caller:
    """An authenticated (or, in insecure mode, claimed) caller of a gateway RPC.

    :param party_id: the party the certificate binds.
    :param kind: ``gateway`` (a peer's gateway) or ``client`` (a local worker/scheduler).
    :param peer: the transport address, for log lines.
    :param verified: False in insecure mode.
    """

    party_id: str
    kind: str
    peer: str
    verified: bool = True

    def __str__(self) -> str:
        return f"{self.kind} of party {self.party_id} at {self.peer}"


class TrustStore:
    """The CA certificates a gateway trusts, indexed by the party id each one binds.

    :raises ConfigError: a listed CA file is missing, is not a party CA, or is unreadable.
    """

    def __init__(self, own_ca: Path, peer_cas: Sequence[Path], own_party_ids: Sequence[str] = ()) -> None:
        self._by_party: dict[str, list[x509.Certificate]] = {}
        self._pem_by_party: dict[str, bytes] = {}
        self.own: list[x509.Certificate] = []
        own_ids = set(own_party_ids)
        for index, path in enumerate([own_ca, *peer_cas]):
            for cert in load_certificates(path):
                ident = identity_of(cert)
                if ident is None or ident.kind != "ca":
                    raise ConfigError(
                        f"{path} is not a fate-airflow party CA (no fate-party://<id>/ca in its SAN); create "
                        "CAs with `fate-airflow pki init-ca`"
                    )
                if index == 0:
                    own_ids.add(ident.party_id)
                elif ident.party_id in own_ids:
                    # Trusting it would let whoever holds that key mint certificates speaking for us.
                    raise ConfigError(
                        f"tls.peer_ca_certs: {path} claims party {ident.party_id}, one of this gateway's own "
                        "parties; a peer's CA must bind the peer's party id — remove it, or put this "
                        "party's own CA in tls.ca_cert"
                    )
                self._by_party.setdefault(ident.party_id, []).append(cert)
                pem = cert.public_bytes(Encoding.PEM)
                self._pem_by_party[ident.party_id] = self._pem_by_party.get(ident.party_id, b"") + pem
                if index == 0:
                    self.own.append(cert)
        self.bundle = b"".join(self._pem_by_party.values())

    @classmethod
    def from_config(cls, config: GatewayConfig) -> TrustStore:
        """The trust store of a TLS gateway config."""
        if config.tls is None:
            raise ConfigError("the gateway runs insecure; it has no trust store")
        return cls(config.tls.ca_cert, config.tls.peer_ca_certs, config.party_ids)

    def parties(self) -> list[str]:
        """Party ids with a trusted CA."""
        return sorted(self._by_party)

    def root_pem_for(self, party_id: str) -> bytes:
        """PEM of the CA(s) of ``party_id`` (TLS roots when connecting to that party's gateway).

        :raises ConfigError: no trusted CA binds that party.
        """
        try:
            return self._pem_by_party[party_id]
        except KeyError:
            raise ConfigError(
                f"no trusted CA for party {party_id}: add its ca.crt to tls.peer_ca_certs"
            ) from None

    def identify(self, pem: bytes, served: Sequence[str]) -> tuple[str, str]:
        """(party id, kind) of a caller certificate, checked against the CA of that party.

        Clients of extra party ids a gateway serves may be issued by the gateway's own CA.

        :raises Unauthenticated: not a fate-airflow certificate.
        :raises PermissionDenied: issued by a CA that does not belong to the party it names.
        """
        return _identify_cached(self, pem, tuple(served))


@functools.lru_cache(maxsize=256)
def _parse(pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem)


@functools.lru_cache(maxsize=256)
def _identify_cached(store: TrustStore, pem: bytes, served: tuple[str, ...]) -> tuple[str, str]:
    # Every call of every RPC identifies its caller, and checking the issuer's signature costs
    # ~0.1 ms. The answer only depends on the certificate bytes and the (immutable) trust store,
    # so it is remembered; refusals raise and are therefore never cached (each one is logged).
    return _identify(store, pem, served)


def _identify(store: TrustStore, pem: bytes, served: tuple[str, ...]) -> tuple[str, str]:
    try:
        cert = _parse(pem)
    except ValueError:
        raise Unauthenticated("unreadable client certificate") from None
    ident = identity_of(cert)
    if ident is None or ident.kind not in ("gateway", "client"):
        raise Unauthenticated(
            f"certificate {cert.subject.rfc4514_string()} carries no fate-party identity "
            "(fate-party://<id>/gateway or /client)"
        )
    if any(issued_by(cert, ca) for ca in store._by_party.get(ident.party_id, [])):
        return ident.party_id, ident.kind
    if ident.kind == "client" and ident.party_id in served and any(issued_by(cert, ca) for ca in store.own):
        return ident.party_id, ident.kind
    raise PermissionDenied(
        f"certificate claims party {ident.party_id} but was not issued by party {ident.party_id}'s CA "
        f"(issuer {cert.issuer.rfc4514_string()})"
    )


def internal_caller(metadata: Mapping[str, str], peer: str, config: GatewayConfig) -> Caller:
    """The caller of a native RPC on the party-internal endpoint: a client of one of the gateway's parties.

    :param metadata: the call's invocation metadata.
    :raises Unauthenticated: the caller did not name its party.
    :raises PermissionDenied: it named a party this gateway does not serve, or claimed to be a
        gateway (peers only ever come in over mTLS).
    """
    party = metadata.get(CLAIMED_PARTY_KEY)
    if not party:
        raise Unauthenticated(
            f"{CLAIMED_PARTY_KEY} header missing: callers of the party-internal endpoint name the party "
            "they speak for"
        )
    if party not in config.party_ids:
        raise PermissionDenied(
            f"party {party} ({CLAIMED_PARTY_KEY}) is not served by this gateway, which serves party "
            f"{', '.join(config.party_ids)}; the party-internal endpoint is for the gateway's own parties only"
        )
    kind = metadata.get(CLAIMED_KIND_KEY, "client")
    if kind != "client":
        raise PermissionDenied(
            f"a {kind} cannot use the party-internal endpoint of party {config.party_id}'s gateway; peer "
            "gateways connect to its mTLS endpoint"
        )
    return Caller(party, "client", f"internal endpoint {peer}", verified=False)


def authorize_client(caller: Caller, config: GatewayConfig) -> None:
    """Only clients of this gateway's own party ids may use the local-client RPCs.

    :raises PermissionDenied: naming the caller.
    """
    if caller.kind != "client":
        raise PermissionDenied(f"{caller}: only local clients (client certificates) may do this")
    if caller.party_id not in config.party_ids:
        raise PermissionDenied(
            f"{caller}: clients of party {caller.party_id} must use their own party's gateway "
            f"(this one serves {', '.join(config.party_ids)})"
        )


def origin_of(caller: Caller, claimed_origin: str | None, config: GatewayConfig) -> str:
    """The party a request really comes from, checked against the allowlist and relay trust.

    :raises PermissionDenied: naming the caller and what it may not do.
    """
    if caller.kind == "client":
        authorize_client(caller, config)
        if claimed_origin and claimed_origin != caller.party_id:
            raise PermissionDenied(f"{caller}: a client cannot speak for party {claimed_origin}")
        return caller.party_id
    if caller.kind != "gateway":
        raise Unauthenticated(f"{caller}: unknown peer kind {caller.kind!r}")
    allow = config.effective_allow
    if caller.party_id not in allow:
        raise PermissionDenied(f"{caller}: party {caller.party_id} is not in this gateway's allowlist")
    if not claimed_origin or claimed_origin == caller.party_id:
        return caller.party_id
    if caller.party_id not in config.effective_relays:
        raise PermissionDenied(
            f"{caller}: party {caller.party_id} is not a trusted relay, so it cannot forward for party "
            f"{claimed_origin}"
        )
    if claimed_origin not in allow:
        raise PermissionDenied(
            f"{caller}: forwarded on behalf of party {claimed_origin}, which is not in this gateway's allowlist"
        )
    return claimed_origin


__all__ = [
    "CLAIMED_KIND_KEY",
    "CLAIMED_PARTY_KEY",
    "HOPS_KEY",
    "MAX_HOPS",
    "ORIGIN_KEY",
    "Caller",
    "TrustStore",
    "authorize_client",
    "internal_caller",
    "origin_of",
]
