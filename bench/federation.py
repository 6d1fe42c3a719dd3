"""Federation throughput: GrpcFederation through two gateways vs raw grpcio streaming, both mTLS.

Run by hand (not part of the tests)::

    .venv/bin/python bench/federation.py                 # 1 MiB, 64 MiB, 1 GiB
    .venv/bin/python bench/federation.py --sizes 1 64    # MiB

Setup: guest and host gateways as separate processes (``python -m fate_airflow gateway``) on
127.0.0.1 with mutual TLS; the guest worker calls ``remote`` (→ guest gateway → host gateway, which
fsyncs to its spool and acknowledges) and the host worker then calls ``get`` (host gateway → worker,
verified, acknowledged). Time = ``remote`` start to ``get`` end. The raw baseline streams the same
payload bytes in the same chunk size to a bare grpcio server process over mTLS (one hop, no disk).
Peak RSS of each gateway is the kernel's high-water mark (VmHWM).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import numpy as np

from fate_airflow.core.types import Party
from fate_airflow.federation import payload
from fate_airflow.federation.api import FederationSession
from fate_airflow.federation.grpc import GrpcFederation
from fate_airflow.federation.grpc.localnet import (
    client_config,
    free_port,
    gateway_document,
    provision,
    write_config,
)
from fate_airflow.federation.pki import party_dns_name

MiB = 1 << 20
GUEST, HOST = Party("guest", "9999"), Party("host", "10000")
RAW_METHOD = "/bench.Raw/Upload"


def vm_hwm(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def wait_port_file(path: Path, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while not path.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"process for {path.name} failed to start")
        time.sleep(0.05)


# ----------------------------------------------------------------------------- raw baseline server


def raw_server(cert: str, key: str, ca: str, port_file: str) -> None:
    """A bare grpcio server: one client-streaming method that counts bytes (mTLS)."""

    def upload(request_iterator: object, context: grpc.ServicerContext) -> bytes:
        total = 0
        for chunk in request_iterator:  # type: ignore[attr-defined]
            total += len(chunk)
        return str(total).encode()

    server = grpc.server(
        ThreadPoolExecutor(max_workers=4),
        options=[("grpc.max_receive_message_length", 64 * MiB), ("grpc.max_send_message_length", 64 * MiB)],
    )
    handler = grpc.method_handlers_generic_handler(
        "bench.Raw", {"Upload": grpc.stream_unary_rpc_method_handler(upload)}
    )
    server.add_generic_rpc_handlers([handler])
    creds = grpc.ssl_server_credentials(
        [(Path(key).read_bytes(), Path(cert).read_bytes())],
        root_certificates=Path(ca).read_bytes(),
        require_client_auth=True,
    )
    port = server.add_secure_port("127.0.0.1:0", creds)
    server.start()
    Path(port_file).write_text(str(port))
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    server.stop(0)


def raw_transfer(channel: grpc.Channel, value: np.ndarray, chunk: int) -> float:
    upload = channel.stream_unary(RAW_METHOD)
    start = time.perf_counter()
    reply = upload(bytes(c) for c in payload.iter_encode(value, chunk))
    elapsed = time.perf_counter() - start
    assert int(reply) == payload.measure(value)
    return elapsed


# ----------------------------------------------------------------------------- benchmark


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 64, 1024], help="object sizes in MiB")
    parser.add_argument("--chunk", type=int, default=1, help="chunk size in MiB (client and gateways)")
    parser.add_argument(
        "--raw-server", nargs=4, metavar=("CERT", "KEY", "CA", "PORT_FILE"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.raw_server:
        raw_server(*args.raw_server)
        return 0

    chunk = args.chunk * MiB
    root = Path(tempfile.mkdtemp(prefix="bench-federation-"))
    files = provision(root / "pki", ["9999", "10000"])
    addr = {p: f"127.0.0.1:{free_port()}" for p in ("9999", "10000")}
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for party, other in (("9999", "10000"), ("10000", "9999")):
            doc = gateway_document(
                party,
                listen=addr[party],
                data_dir=root / f"gw-{party}",
                routes={other: addr[other]},
                files=files,
                log_level="WARNING",
                limits={"chunk_bytes": chunk},
            )
            config = write_config(root / f"gw-{party}.json", doc)
            port_file = root / f"gw-{party}.port"
            log = (root / f"gw-{party}.log").open("wb")
            procs[party] = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "fate_airflow",
                    "gateway",
                    "--config",
                    str(config),
                    "--port-file",
                    str(port_file),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            wait_port_file(port_file, procs[party])
        raw_port_file = root / "raw.port"
        host_files = files["10000"]
        procs["raw"] = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--raw-server",
                str(host_files.gateway_cert),
                str(host_files.gateway_key),
                str(files["9999"].ca_cert),
                str(raw_port_file),
            ]
        )
        wait_port_file(raw_port_file, procs["raw"])
        guest_files = files["9999"]
        raw_channel = grpc.secure_channel(
            f"127.0.0.1:{raw_port_file.read_text()}",
            grpc.ssl_channel_credentials(
                root_certificates=host_files.ca_cert.read_bytes(),
                private_key=guest_files.client_key.read_bytes(),
                certificate_chain=guest_files.client_cert.read_bytes(),
            ),
            options=[
                ("grpc.ssl_target_name_override", party_dns_name("10000")),
                ("grpc.max_send_message_length", 64 * MiB),
            ],
        )

        rows = []
        for size_mib in sorted(args.sizes):
            size = size_mib * MiB
            value = np.random.default_rng(size_mib).random(size // 8)
            runs = 20 if size_mib <= 4 else (3 if size_mib <= 256 else 1)
            fed_times, raw_times = [], []
            # One endpoint per party for the whole series, as a task would use it (the TLS
            # handshakes are not part of the measurement; the raw channel is reused too).
            session = FederationSession(f"bench_{size_mib}_{os.getpid()}", "t", 0, GUEST, (GUEST, HOST))
            guest = GrpcFederation(session, client_config("9999", addr["9999"], files, chunk_bytes=chunk))
            host = GrpcFederation(session.with_local(HOST), client_config("10000", addr["10000"], files))
            guest.remote(0, "warmup", "0", [HOST])
            host.get("warmup", "0", [GUEST], timeout=60)
            for run in range(runs):
                raw_times.append(raw_transfer(raw_channel, value, chunk))
                start = time.perf_counter()
                guest.remote(value, "x", str(run), [HOST])
                sent = time.perf_counter()
                [received] = host.get("x", str(run), [GUEST], timeout=600)
                done = time.perf_counter()
                fed_times.append((done - start, sent - start, done - sent))
                if run == 0:
                    assert hashlib.sha256(received.data).digest() == hashlib.sha256(value.data).digest()
                del received
            guest.close()
            host.close()
            fed = statistics.median(t[0] for t in fed_times)
            remote_t = statistics.median(t[1] for t in fed_times)
            get_t = statistics.median(t[2] for t in fed_times)
            raw = statistics.median(raw_times)
            rows.append(
                (
                    size_mib,
                    size / MiB / fed,
                    size / MiB / remote_t,
                    size / MiB / get_t,
                    size / MiB / raw,
                    raw / fed,
                    vm_hwm(procs["9999"].pid) / MiB,
                    vm_hwm(procs["10000"].pid) / MiB,
                )
            )
            print(f"done {size_mib} MiB", file=sys.stderr)
        raw_channel.close()
        print(f"\nchunk {args.chunk} MiB, mTLS everywhere, {os.cpu_count()} CPUs")
        header = (
            "| size | federation MB/s (remote+get) | remote MB/s | get MB/s | raw grpcio MB/s | ratio "
            "| guest gw peak RSS | host gw peak RSS |"
        )
        print(header)
        print("|---|---|---|---|---|---|---|---|")
        for size_mib, fed_rate, remote_rate, get_rate, raw_rate, ratio, rss_g, rss_h in rows:
            label = f"{size_mib} MiB" if size_mib < 1024 else f"{size_mib // 1024} GiB"
            print(
                f"| {label} | {fed_rate:.0f} | {remote_rate:.0f} | {get_rate:.0f} | {raw_rate:.0f} | {ratio:.2f} "
                f"| {rss_g:.0f} MiB | {rss_h:.0f} MiB |"
            )
        print("(MB/s = MiB/s; RSS = kernel high-water mark of the gateway process since start)")
    finally:
        for proc in procs.values():
            proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
