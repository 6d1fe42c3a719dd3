"""Three gateway processes with mTLS: data round, durability, memory, security and the doctor."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import grpc
import numpy as np
import pytest
from fedgw_support import ARBITER, ARBITER_MAX_MESSAGE, GUEST, HOST, Net, RssSampler, vm_hwm

from fate_airflow.core.errors import FederationError, FederationTimeout
from fate_airflow.core.types import Party
from fate_airflow.federation.api import QueryJob
from fate_airflow.federation.config import GatewayClientConfig
from fate_airflow.federation.errors import HandlerUnavailable, MessageTooLarge, PermissionDenied
from fate_airflow.federation.grpc import GrpcControlClient
from fate_airflow.federation.grpc.localnet import free_port, write_config
from fate_airflow.federation.pki import issue_certificate, party_dns_name
from fate_airflow.federation.serde import chunk_frame, push_header_frame, push_trailer_frame
from fate_airflow.federation.spool import MessageKey
from fate_airflow.proto.federation.v1 import control_pb2

MiB = 1 << 20


def _job() -> str:
    return f"job_{uuid.uuid4().hex[:10]}"


def _ping_ok(net: Net, party_id: str) -> None:
    client = GrpcControlClient(net.client(party_id))
    try:
        assert client.ping(party_id) >= 0
    finally:
        client.close()


def _raw_channel(
    net: Net, party_id: str, *, cert_party: str | None = None, with_cert: bool = True
) -> grpc.Channel:
    """A TLS channel to ``party_id``'s gateway, presenting ``cert_party``'s client cert (or none)."""
    files = net.files[party_id]
    own = net.files[cert_party or party_id]
    creds = grpc.ssl_channel_credentials(
        root_certificates=files.ca_cert.read_bytes(),
        private_key=own.client_key.read_bytes() if with_cert else None,
        certificate_chain=own.client_cert.read_bytes() if with_cert else None,
    )
    return grpc.secure_channel(
        net.gateways[party_id].address,
        creds,
        options=[("grpc.ssl_target_name_override", party_dns_name(party_id))],
    )


# ------------------------------------------------------------------------------------- data plane


@pytest.mark.timeout(60)
def test_round_of_remote_and_get_among_three_parties(net: Net) -> None:
    job = _job()
    guest, host, arbiter = (net.federation(job, p) for p in (GUEST, HOST, ARBITER))
    try:
        arbiter.remote({"n": 2**2048 + 1}, "paillier_pubkey", "0", [GUEST, HOST])
        assert guest.get("paillier_pubkey", "0", [ARBITER], timeout=20) == [{"n": 2**2048 + 1}]
        assert host.get("paillier_pubkey", "0", [ARBITER], timeout=20) == [{"n": 2**2048 + 1}]
        guest.remote(np.arange(1000.0), "fore_gradient", "fit.0.0", [HOST])
        host.remote([2**2047 + i for i in range(50)], "host_forward", "fit.0.0", [GUEST])
        np.testing.assert_array_equal(
            host.get("fore_gradient", "fit.0.0", [GUEST], timeout=20)[0], np.arange(1000.0)
        )
        assert guest.get("host_forward", "fit.0.0", [HOST], timeout=20)[0][-1] == 2**2047 + 49
        guest.remote(1.5, "guest_gradient", "fit.0", [ARBITER])
        host.remote(2.5, "host_gradient", "fit.0", [ARBITER])
        assert arbiter.get("guest_gradient", "fit.0", [GUEST], timeout=20) == [1.5]
        assert arbiter.get("host_gradient", "fit.0", [HOST], timeout=20) == [2.5]
        arbiter.remote(True, "converge_flag", "fit.0", [GUEST, HOST])
        assert guest.get("converge_flag", "fit.0", [ARBITER], timeout=20) == [True]
        assert host.get("converge_flag", "fit.0", [ARBITER], timeout=20) == [True]
    finally:
        for fed in (guest, host, arbiter):
            fed.close()


@pytest.mark.timeout(60)
def test_control_plane_across_processes(net: Net) -> None:
    client = GrpcControlClient(net.client("9999"))
    try:
        assert client.ping("10000") < 5
        assert client.ping("10001") < 5
        # The plain gateway process has no scheduler attached: a clear UNIMPLEMENTED, naming it.
        with pytest.raises(HandlerUnavailable, match="no command handler"):
            client.call("10000", QueryJob("j"))
    finally:
        client.close()


@pytest.mark.timeout(90)
def test_kill9_of_receiving_gateway_between_send_and_get(net: Net) -> None:
    job = _job()
    value = np.random.default_rng(1).random(3 * MiB // 8)  # 3 MiB: several chunks
    guest = net.federation(job, GUEST)
    guest.remote(value, "w", "0", [HOST])  # returns after the host gateway fsynced it
    host_gw = net.gateways["10000"]
    host_gw.kill9()
    assert not host_gw.alive()
    host_gw.start()
    host = net.federation(job, HOST)
    try:
        [received] = host.get("w", "0", [GUEST], timeout=30)
        np.testing.assert_array_equal(received, value)
        # Re-sending the same message (e.g. a retried worker) is dropped: delivered once.
        net.federation(job, GUEST).remote(value, "w", "0", [HOST])
        with pytest.raises(FederationTimeout):
            host.get("w", "0", [GUEST], timeout=1)
    finally:
        guest.close()
        host.close()


@pytest.mark.timeout(120)
def test_waiting_get_receives_a_large_message_while_it_is_spooled(net: Net) -> None:
    job = _job()
    value = np.random.default_rng(3).random(24 * MiB // 8)
    guest, host = net.federation(job, GUEST), net.federation(job, HOST)
    received: list[object] = []
    try:
        getter = threading.Thread(target=lambda: received.extend(host.get("big", "0", [GUEST], timeout=60)))
        getter.start()
        guest.remote(value, "big", "0", [HOST])
        getter.join(60)
        assert not getter.is_alive() and len(received) == 1
        np.testing.assert_array_equal(received[0], value)
        # Confirmed by the receiver after the trailer: delivered once.
        with pytest.raises(FederationTimeout):
            host.get("big", "0", [GUEST], timeout=1)
    finally:
        guest.close()
        host.close()


@pytest.mark.timeout(180)
def test_kill9_of_receiving_gateway_while_its_receiver_streams_the_message(net: Net) -> None:
    """The receiving gateway dies mid-transfer: no half message is ever delivered, the sender
    re-sends after the restart, and the waiting get completes with the whole object."""
    job = _job()
    value = np.random.default_rng(4).random(96 * MiB // 8)
    guest = net.federation(job, GUEST, send_timeout=120.0)
    host = net.federation(job, HOST)
    host_gw = net.gateways["10000"]
    results: dict[str, object] = {}

    def run(name: str, action: object) -> threading.Thread:
        def body() -> None:
            try:
                results[name] = action()  # type: ignore[operator]
            except BaseException as exc:  # pragma: no cover - reported below
                results[name] = exc

        thread = threading.Thread(target=body)
        thread.start()
        return thread

    try:
        getter = run("get", lambda: host.get("w", "0", [GUEST], timeout=150))
        sender = run("remote", lambda: guest.remote(value, "w", "0", [HOST]))
        tmp = host_gw.data_dir / "spool" / "tmp"
        deadline = time.monotonic() + 60
        while not any(tmp.iterdir()) and time.monotonic() < deadline and sender.is_alive():
            time.sleep(0.005)
        host_gw.kill9()
        host_gw.start()
        sender.join(150)
        getter.join(150)
        assert results.get("remote", "missing") is None, results.get("remote")
        [received] = results["get"]  # type: ignore[misc]
        np.testing.assert_array_equal(received, value)
    finally:
        guest.close()
        host.close()


@pytest.mark.timeout(90)
def test_remote_waits_for_a_restarting_destination(net: Net) -> None:
    """Sender-side retry with backoff: the destination gateway is down when remote starts."""
    job = _job()
    host_gw = net.gateways["10000"]
    host_gw.kill9()
    guest = net.federation(job, GUEST, send_timeout=60.0)
    done = threading.Event()
    errors: list[BaseException] = []

    def send() -> None:
        try:
            guest.remote("late", "l", "0", [HOST])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        done.set()

    thread = threading.Thread(target=send)
    thread.start()
    assert not done.wait(1.5), "remote returned although the destination was down"
    host_gw.start()
    assert done.wait(30)
    thread.join()
    assert not errors
    host = net.federation(job, HOST)
    assert host.get("l", "0", [GUEST], timeout=10) == ["late"]
    guest.close()
    host.close()


def _rss(pid: int) -> int:
    import psutil

    return int(psutil.Process(pid).memory_info().rss)


def _large_transfer(net: Net, size: int) -> dict[str, tuple[int, int, int]]:
    """Send ``size`` bytes of float64 guest → host; per gateway (RSS before, sampled peak, VmHWM)."""
    job = _job()
    value = np.random.default_rng(2).random(size // 8)
    guest, host = net.federation(job, GUEST), net.federation(job, HOST)
    gw_guest, gw_host = net.gateways["9999"], net.gateways["10000"]
    before = {p: _rss(net.gateways[p].pid) for p in ("9999", "10000")}
    try:
        with RssSampler(gw_guest.pid) as s_guest, RssSampler(gw_host.pid) as s_host:
            guest.remote(value, "big", "0", [HOST])
            [received] = host.get("big", "0", [GUEST], timeout=600)
        assert received.shape == value.shape
        assert hashlib.sha256(received.data).digest() == hashlib.sha256(value.data).digest()
    finally:
        guest.close()
        host.close()
    return {
        "9999": (before["9999"], s_guest.peak, vm_hwm(gw_guest.pid)),
        "10000": (before["10000"], s_host.peak, vm_hwm(gw_host.pid)),
    }


def _assert_bounded(stats: dict[str, tuple[int, int, int]], growth: int, hwm: int) -> None:
    for party, (before, peak, high_water) in stats.items():
        report = f"gateway {party}: RSS {before / MiB:.0f} → peak {peak / MiB:.0f} MiB, VmHWM {high_water / MiB:.0f} MiB"
        # A gateway that buffered the message would grow by the whole message; streaming keeps
        # it at a few chunks plus gRPC's flow-control windows.
        assert peak - before < growth, report
        assert high_water < hwm, report


@pytest.mark.timeout(180)
def test_256mib_transfer_with_bounded_gateway_memory(net: Net) -> None:
    # The growth bound is the real check (the message is 256 MiB); an idle gateway's own RSS varies
    # with load (150-210 MiB seen), so the absolute bound is the issue's 512 MiB, not a tight one.
    _assert_bounded(_large_transfer(net, 256 * MiB), growth=96 * MiB, hwm=512 * MiB)


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.skipif(os.environ.get("FATE_SLOW") != "1", reason="1 GiB transfer: set FATE_SLOW=1")
def test_1gib_transfer_with_bounded_gateway_memory(net: Net) -> None:
    _assert_bounded(_large_transfer(net, 1024 * MiB), growth=128 * MiB, hwm=512 * MiB)


# ------------------------------------------------------------------------------------- security


@pytest.mark.timeout(60)
def test_client_without_certificate_is_refused(net: Net) -> None:
    channel = _raw_channel(net, "9999", with_cert=False)
    ping = channel.unary_unary("/fate_airflow.federation.v1.Control/Ping")
    with pytest.raises(grpc.RpcError) as info:
        ping(control_pb2.PingRequest(dst_party_id="9999").SerializeToString(), timeout=10)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE  # the TLS handshake itself fails
    channel.close()
    plain = grpc.insecure_channel(net.gateways["9999"].address)
    with pytest.raises(grpc.RpcError):
        plain.unary_unary("/fate_airflow.federation.v1.Control/Ping")(b"", timeout=10)
    plain.close()
    _ping_ok(net, "9999")


@pytest.mark.timeout(60)
def test_certificate_for_the_wrong_party_is_refused(net: Net) -> None:
    # A host worker's (valid) client certificate presented to the guest's gateway.
    wrong = GatewayClientConfig(
        address=net.gateways["9999"].address,
        party_id="10000",
        ca_cert=str(net.files["9999"].ca_cert),
        client_cert=str(net.files["10000"].client_cert),
        client_key=str(net.files["10000"].client_key),
        gateway_party_id="9999",
    )
    client = GrpcControlClient(wrong)
    with pytest.raises(PermissionDenied, match="must use their own party's gateway"):
        client.ping("9999")
    client.close()
    # A certificate the host's CA minted for party 9999: signed by the wrong party's CA.
    forged = issue_certificate(
        net.files["10000"].ca_dir, "9999", "client", net.root / "forged", allow_other_party=True
    )
    client = GrpcControlClient(
        GatewayClientConfig(
            address=net.gateways["9999"].address,
            party_id="9999",
            ca_cert=str(net.files["9999"].ca_cert),
            client_cert=str(forged.cert),
            client_key=str(forged.key),
        )
    )
    with pytest.raises(PermissionDenied, match="not issued by party 9999's CA"):
        client.ping("9999")
    client.close()
    log = net.gateways["9999"].log_text()
    assert "refused Ping from ipv4:127.0.0.1" in log
    _ping_ok(net, "9999")


@pytest.mark.timeout(60)
def test_gateway_with_the_wrong_party_certificate_is_not_reached(net: Net, tmp_path: Path) -> None:
    """Routing party 10000's traffic to the arbiter's gateway fails the TLS name check."""
    misrouted = GatewayClientConfig(
        address=net.gateways["10001"].address,
        party_id="9999",
        ca_cert=str(net.files["9999"].ca_cert),
        client_cert=str(net.files["9999"].client_cert),
        client_key=str(net.files["9999"].client_key),
    )
    client = GrpcControlClient(misrouted)
    with pytest.raises(FederationError, match="unreachable"):
        client.ping("9999", timeout=5)
    client.close()


def _push(channel: grpc.Channel, frames: list[bytes]) -> grpc.RpcError:
    push = channel.stream_unary("/fate_airflow.federation.v1.Transfer/Push")
    with pytest.raises(grpc.RpcError) as info:
        push(iter(frames), timeout=30)
    return info.value


@pytest.mark.timeout(90)
def test_malformed_and_oversized_messages_get_clear_status(net: Net) -> None:
    channel = _raw_channel(net, "9999")
    key = MessageKey(_job(), "m", "0", GUEST, Party("host", "9999"))  # spooled at the guest gateway
    spool = net.gateways["9999"].data_dir / "spool"

    err = _push(channel, [b"\xff\xff\xff\xff"])
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "malformed" in (err.details() or "")
    err = _push(channel, [chunk_frame(b"data before header")])
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "header" in (err.details() or "")
    err = _push(channel, [push_header_frame(key, 4), chunk_frame(b"abcd"), push_trailer_frame(4, b"\0" * 32)])
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "corrupt" in (err.details() or "")
    err = _push(channel, [push_header_frame(key, 4), chunk_frame(b"abcd")])  # no trailer
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "without its trailer" in (err.details() or "")
    assert not list((spool / "messages").rglob("*.msg")) or all(
        key.message_id not in p.name for p in (spool / "messages").rglob("*")
    )
    assert not list((spool / "tmp").iterdir()), "a rejected message left a temp file"

    # One frame above the gateway's frame limit: refused by gRPC itself.
    err = _push(channel, [push_header_frame(key, 0), chunk_frame(b"x" * (2 * MiB))])
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    channel.close()

    # A message above the arbiter's limit, size declared up front: refused before any data moves.
    job = _job()
    guest = net.federation(job, GUEST)
    with pytest.raises(MessageTooLarge, match="accepts at most"):
        guest.remote(np.zeros(ARBITER_MAX_MESSAGE // 8 + 1024), "huge", "0", [ARBITER])
    # The same, lying about its size: the arbiter's spool writer stops it at the limit.
    arb = _raw_channel(net, "10001", cert_party="9999")
    arb.close()
    lying_key = MessageKey(job, "liar", "0", GUEST, ARBITER)
    guest_channel = _raw_channel(net, "9999")
    frames = [push_header_frame(lying_key, 0)] + [
        chunk_frame(b"y" * MiB) for _ in range(ARBITER_MAX_MESSAGE // MiB + 2)
    ]
    frames.append(push_trailer_frame(len(frames) * MiB, b"\0" * 32))
    err = _push(guest_channel, frames)
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "exceeds the limit" in (err.details() or "")
    guest_channel.close()

    # Everyone is still serving, and a good message still goes through.
    for gw in net.gateways.values():
        assert gw.alive()
    guest.remote("still fine", "after", "0", [ARBITER])
    arbiter = net.federation(job, ARBITER)
    assert arbiter.get("after", "0", [GUEST], timeout=20) == ["still fine"]
    guest.close()
    arbiter.close()


# ------------------------------------------------------------------------------------- doctor


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fate_airflow", *args], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.timeout(120)
def test_federation_check_reports_ok(net: Net) -> None:
    result = _cli("federation", "check", "--config", str(net.gateways["9999"].config))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("OK   party") == 2
    assert "TLS ok (party 10000 gateway)" in result.stdout and "ping" in result.stdout

    client_file = write_config(net.root / "client-9999.json", net.client("9999").to_dict())
    result = _cli("federation", "check", "--client-config", str(client_file), "--peer", "10001")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "party 10001 (through the local gateway)" in result.stdout


@pytest.mark.timeout(120)
def test_federation_check_reports_what_is_wrong(net: Net) -> None:
    doc = dict(net.documents["9999"])
    doc["routes"] = {
        "10000": net.gateways["10001"].address,  # the arbiter's gateway answers: wrong party id
        "10001": f"127.0.0.1:{free_port()}",  # nobody listens: refused
        "10002": {"address": "no-such-host.invalid:9370", "via": "10000"},  # DNS failure
    }
    config = write_config(net.root / "gateway-9999-broken.json", doc)
    result = _cli("federation", "check", "--config", str(config), "--timeout", "3")
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout
    assert "FAIL party 10000" in out and "wrong party id: expected the gateway of party 10000" in out
    assert "says party 10001" in out
    assert "FAIL party 10001" in out and "connection refused" in out
    assert "FAIL party 10002" in out and "DNS" in out
    assert "0 ok, 3 failed" in out


@pytest.mark.timeout(60)
def test_sigterm_stops_a_gateway_gracefully(net: Net) -> None:
    gateway = net.gateways["10001"]
    assert gateway.stop() == 0
    assert "received SIGTERM, stopping" in gateway.log_text()
    gateway.start()
    _ping_ok(net, "10001")
