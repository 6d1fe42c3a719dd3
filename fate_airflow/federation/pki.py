"""A small per-party PKI: one CA per party, certificates that carry the party id they speak for.

Every certificate binds exactly one party id, twice:

* a SAN URI ``fate-party://<party id>/<kind>`` (kind = ``ca``, ``gateway`` or ``client``), which the
  gateway reads to learn who called it;
* for gateways, a SAN DNS name :func:`party_dns_name` (the party id hex-encoded under
  ``.party.fate-airflow.invalid``), which clients pass as the TLS target name, so the TLS handshake
  itself proves that the server is the gateway of the party they meant to reach.

A party CA binds its own party id too, and gateways only accept a certificate for party *X* if it
was issued directly by the trusted CA of party *X*: a peer cannot mint certificates for another
party. Keys are ECDSA P-256; private keys are written with mode 0600.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from fate_airflow.core.errors import ConfigError
from fate_airflow.core.types import validate_party_id

CertKind = Literal["ca", "gateway", "client"]
#: URI scheme of the SAN that binds a party id to a certificate.
PARTY_URI_SCHEME = "fate-party"
#: Suffix of the DNS name that binds a party id to a gateway certificate.
PARTY_DNS_SUFFIX = "party.fate-airflow.invalid"
CA_CERT_FILE = "ca.crt"
CA_KEY_FILE = "ca.key"


@dataclass(frozen=True)
class CertIdentity:
    """Who a certificate speaks for."""

    party_id: str
    kind: str

    def __str__(self) -> str:
        return f"party {self.party_id} ({self.kind})"


@dataclass(frozen=True)
class IssuedCert:
    """Paths written by :func:`issue_certificate`."""

    cert: Path
    key: Path
    ca_cert: Path


def party_uri(party_id: str, kind: CertKind) -> str:
    """The SAN URI binding ``party_id`` and ``kind``."""
    return f"{PARTY_URI_SCHEME}://{party_id}/{kind}"


def party_dns_name(party_id: str) -> str:
    """TLS target name of ``party_id``'s gateway.

    Party ids may contain ``_`` and upper case, which DNS names cannot carry faithfully, so the id
    is hex-encoded (split into labels of at most 60 characters).
    """
    hexed = party_id.encode("utf-8").hex()
    labels = [hexed[i : i + 60] for i in range(0, len(hexed), 60)]
    return ".".join([*labels, PARTY_DNS_SUFFIX])


def identity_of(cert: x509.Certificate) -> CertIdentity | None:
    """The party identity bound in ``cert``, or None if it carries no ``fate-party`` URI."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    prefix = f"{PARTY_URI_SCHEME}://"
    for uri in san.get_values_for_type(x509.UniformResourceIdentifier):
        if uri.startswith(prefix):
            party_id, _, kind = uri[len(prefix) :].partition("/")
            try:
                validate_party_id(party_id)
            except ValueError:
                return None
            return CertIdentity(party_id, kind)
    return None


def load_certificate(path: Path | str) -> x509.Certificate:
    """Read a PEM certificate, raising :class:`ConfigError` naming the file on failure."""
    try:
        return x509.load_pem_x509_certificate(Path(path).read_bytes())
    except FileNotFoundError:
        raise ConfigError(f"certificate file {path} does not exist") from None
    except ValueError as exc:
        raise ConfigError(f"{path} is not a PEM certificate: {exc}") from None


def load_certificates(path: Path | str) -> list[x509.Certificate]:
    """Read every PEM certificate of a bundle file."""
    try:
        return x509.load_pem_x509_certificates(Path(path).read_bytes())
    except FileNotFoundError:
        raise ConfigError(f"certificate file {path} does not exist") from None
    except ValueError as exc:
        raise ConfigError(f"{path} is not a PEM certificate bundle: {exc}") from None


def issued_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    """Whether ``ca`` directly issued ``cert`` (name and signature both match)."""
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    data = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _check_party(party_id: str) -> str:
    try:
        return validate_party_id(party_id)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def init_ca(party_id: str, out_dir: Path | str, *, days: int = 3650, overwrite: bool = False) -> Path:
    """Create party ``party_id``'s CA in ``out_dir`` (``ca.crt``, ``ca.key``); returns the cert path.

    :raises ConfigError: the folder already holds a CA and ``overwrite`` is False.
    """
    party_id = _check_party(party_id)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = out / CA_CERT_FILE, out / CA_KEY_FILE
    if not overwrite and (cert_path.exists() or key_path.exists()):
        raise ConfigError(f"{out} already holds a CA; pass overwrite to replace it")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "fate-airflow"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"fate-airflow party {party_id} CA"),
        ]
    )
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(party_uri(party_id, "ca"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    _write_key(key_path, key)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path


def _load_ca(ca_dir: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey, CertIdentity]:
    cert = load_certificate(ca_dir / CA_CERT_FILE)
    try:
        key = serialization.load_pem_private_key((ca_dir / CA_KEY_FILE).read_bytes(), password=None)
    except FileNotFoundError:
        raise ConfigError(f"{ca_dir / CA_KEY_FILE} does not exist (is {ca_dir} a party CA folder?)") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ConfigError(f"{ca_dir / CA_KEY_FILE} is not an ECDSA key")
    ident = identity_of(cert)
    if ident is None or ident.kind != "ca":
        raise ConfigError(f"{ca_dir / CA_CERT_FILE} is not a fate-airflow party CA (no fate-party://…/ca)")
    return cert, key, ident


def _host_names(hosts: Sequence[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def issue_certificate(
    ca_dir: Path | str,
    party_id: str,
    kind: Literal["gateway", "client"],
    out_dir: Path | str,
    *,
    hosts: Sequence[str] = (),
    days: int = 825,
    allow_other_party: bool = False,
    name: str | None = None,
) -> IssuedCert:
    """Issue a ``kind`` certificate for ``party_id`` signed by the party CA in ``ca_dir``.

    Writes ``<name>.crt`` / ``<name>.key`` (``name`` defaults to ``kind``) and a copy of the CA
    certificate into ``out_dir``. Gateway certificates get the party DNS name plus ``hosts`` (DNS
    names or IP addresses the gateway is reached at) and may act as TLS server and client; client
    certificates are for a party's own workers and schedulers talking to their gateway.

    :param allow_other_party: let a CA issue for a party id other than its own. Only useful for
        client certificates of extra party ids a gateway serves (and for tests of refusals).
    :raises ConfigError: bad party id, missing CA, or a foreign party id without the flag.
    """
    party_id = _check_party(party_id)
    if kind not in ("gateway", "client"):
        raise ConfigError(f"certificate kind must be gateway or client, not {kind!r}")
    ca_path = Path(ca_dir)
    ca_cert, ca_key, ca_ident = _load_ca(ca_path)
    if ca_ident.party_id != party_id and not allow_other_party:
        raise ConfigError(
            f"the CA in {ca_path} belongs to party {ca_ident.party_id}; it cannot issue for party {party_id}"
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [x509.UniformResourceIdentifier(party_uri(party_id, kind))]
    usages = [ExtendedKeyUsageOID.CLIENT_AUTH]
    if kind == "gateway":
        sans.append(x509.DNSName(party_dns_name(party_id)))
        sans.extend(_host_names(hosts))
        usages.insert(0, ExtendedKeyUsageOID.SERVER_AUTH)
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "fate-airflow"),
                    x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, kind),
                    x509.NameAttribute(NameOID.COMMON_NAME, party_id),
                ]
            )
        )
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(min(now + dt.timedelta(days=days), ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    stem = name or kind
    cert_path, key_path = out / f"{stem}.crt", out / f"{stem}.key"
    _write_key(key_path, key)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    ca_copy = out / CA_CERT_FILE
    if ca_copy.resolve() != (ca_path / CA_CERT_FILE).resolve():
        shutil.copyfile(ca_path / CA_CERT_FILE, ca_copy)
    return IssuedCert(cert_path, key_path, ca_copy)


def describe_certificate(path: Path | str) -> str:
    """One-paragraph human description of a certificate file (``fate-airflow pki show``)."""
    cert = load_certificate(path)
    ident = identity_of(cert)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [str(v) for v in san.get_values_for_type(x509.DNSName)]
        names += [str(v) for v in san.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        names = []
    return "\n".join(
        [
            f"file:      {path}",
            f"identity:  {ident if ident else 'none (not a fate-airflow certificate)'}",
            f"subject:   {cert.subject.rfc4514_string()}",
            f"issuer:    {cert.issuer.rfc4514_string()}",
            f"valid:     {cert.not_valid_before_utc:%Y-%m-%d} .. {cert.not_valid_after_utc:%Y-%m-%d}",
            f"hosts:     {', '.join(names) if names else '-'}",
        ]
    )


__all__ = [
    "CA_CERT_FILE",
    "CA_KEY_FILE",
    "PARTY_DNS_SUFFIX",
    "PARTY_URI_SCHEME",
    "CertIdentity",
    "CertKind",
    "IssuedCert",
    "describe_certificate",
    "identity_of",
    "init_ca",
    "issue_certificate",
    "issued_by",
    "load_certificate",
    "load_certificates",
    "party_dns_name",
    "party_uri",
]
