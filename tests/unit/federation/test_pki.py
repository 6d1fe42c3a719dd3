"""PKI: party-bound CAs and certificates, and the CLI around them."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from fate_airflow.cli import main
from fate_airflow.core.errors import ConfigError
from fate_airflow.federation import pki


def test_ca_and_certificates_bind_the_party(tmp_path: Path) -> None:
    ca = pki.init_ca("9999", tmp_path / "ca")
    ca_cert = pki.load_certificate(ca)
    assert pki.identity_of(ca_cert) == pki.CertIdentity("9999", "ca")
    assert stat.S_IMODE((tmp_path / "ca" / "ca.key").stat().st_mode) == 0o600
    gw = pki.issue_certificate(
        tmp_path / "ca", "9999", "gateway", tmp_path / "gw", hosts=["127.0.0.1", "gw.example"]
    )
    cert = pki.load_certificate(gw.cert)
    assert pki.identity_of(cert) == pki.CertIdentity("9999", "gateway")
    assert pki.issued_by(cert, ca_cert)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert pki.party_dns_name("9999") in san.get_values_for_type(x509.DNSName)
    assert "gw.example" in san.get_values_for_type(x509.DNSName)
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert (tmp_path / "gw" / "ca.crt").read_bytes() == ca.read_bytes()
    client = pki.issue_certificate(tmp_path / "ca", "9999", "client", tmp_path / "client")
    assert pki.identity_of(pki.load_certificate(client.cert)) == pki.CertIdentity("9999", "client")
    other = pki.init_ca("10000", tmp_path / "other")
    assert not pki.issued_by(cert, pki.load_certificate(other))


def test_a_ca_does_not_issue_for_another_party_by_default(tmp_path: Path) -> None:
    pki.init_ca("9999", tmp_path / "ca")
    with pytest.raises(ConfigError, match="belongs to party 9999"):
        pki.issue_certificate(tmp_path / "ca", "10000", "client", tmp_path / "c")
    forged = pki.issue_certificate(tmp_path / "ca", "10000", "client", tmp_path / "c", allow_other_party=True)
    assert pki.identity_of(pki.load_certificate(forged.cert)) == pki.CertIdentity("10000", "client")


def test_refusals(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="invalid party id"):
        pki.init_ca("bad id!", tmp_path / "x")
    pki.init_ca("9999", tmp_path / "ca")
    with pytest.raises(ConfigError, match="already holds a CA"):
        pki.init_ca("9999", tmp_path / "ca")
    with pytest.raises(ConfigError, match="does not exist"):
        pki.issue_certificate(tmp_path / "nope", "9999", "client", tmp_path / "c")


def test_party_dns_name_is_a_valid_hostname_for_any_party_id() -> None:
    for party in ("9999", "Guest_A", "x" * 64):
        name = pki.party_dns_name(party)
        assert all(0 < len(label) <= 63 for label in name.split(".")) and len(name) <= 253
        assert name.endswith(pki.PARTY_DNS_SUFFIX)
    assert pki.party_dns_name("a") != pki.party_dns_name("A")


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pki", "init-ca", "--party-id", "9999", "--out", str(tmp_path / "ca")]) == 0
    args = ["pki", "issue", "--ca", str(tmp_path / "ca"), "--party-id", "9999", "--kind", "gateway"]
    assert main([*args, "--host", "127.0.0.1", "--out", str(tmp_path / "gw")]) == 0
    assert main(["pki", "show", str(tmp_path / "gw" / "gateway.crt")]) == 0
    assert "party 9999 (gateway)" in capsys.readouterr().out
    # A user error is one line on stderr and exit 1, no traceback.
    assert (
        main(
            [
                "pki",
                "issue",
                "--ca",
                str(tmp_path / "ca"),
                "--party-id",
                "1",
                "--kind",
                "client",
                "--out",
                str(tmp_path / "c"),
            ]
        )
        == 1
    )
    assert "belongs to party 9999" in capsys.readouterr().err


def test_trust_store_remembers_identities_but_never_refusals(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fate_airflow.federation.errors import PermissionDenied
    from fate_airflow.federation.grpc.auth import TrustStore

    ca = pki.init_ca("9999", tmp_path / "ca")
    other_ca = pki.init_ca("10000", tmp_path / "other")
    store = TrustStore(ca, [other_ca])
    good = pki.issue_certificate(tmp_path / "ca", "9999", "client", tmp_path / "client").cert.read_bytes()
    forged = pki.issue_certificate(
        tmp_path / "other", "9999", "client", tmp_path / "forged", allow_other_party=True
    ).cert.read_bytes()
    checks: list[bytes] = []
    real = pki.issued_by

    def counting(cert: x509.Certificate, ca_cert: x509.Certificate) -> bool:
        checks.append(cert.public_bytes(serialization.Encoding.PEM))
        return real(cert, ca_cert)

    monkeypatch.setattr("fate_airflow.federation.grpc.auth.issued_by", counting)
    for _ in range(3):
        assert store.identify(good, ("9999",)) == ("9999", "client")
    assert len(checks) == 1  # the signature is checked once per certificate
    for _ in range(2):
        with pytest.raises(PermissionDenied, match="not issued by party 9999's CA"):
            store.identify(forged, ("9999",))
    assert len(checks) > 2  # a refusal is decided afresh every time


def test_a_peer_ca_claiming_one_of_the_gateways_own_parties_is_refused(tmp_path: Path) -> None:
    from fate_airflow.federation.grpc.auth import TrustStore

    own = pki.init_ca("9999", tmp_path / "own")
    impostor = pki.init_ca("9999", tmp_path / "impostor")  # another key, same party id
    served = pki.init_ca("9998", tmp_path / "served")
    peer = pki.init_ca("10000", tmp_path / "peer")
    with pytest.raises(ConfigError, match=r"impostor/ca.crt claims party 9999, one of this gateway's own"):
        TrustStore(own, [peer, impostor])
    # A party the gateway serves besides its CA's counts as its own too.
    with pytest.raises(ConfigError, match="claims party 9998"):
        TrustStore(own, [peer, served], own_party_ids=("9999", "9998"))
    assert TrustStore(own, [peer, served]).parties() == ["10000", "9998", "9999"]
