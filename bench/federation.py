"""Federation throughput: GrpcFederation through two gateways vs raw single-hop grpcio mTLS streaming.

Run by hand (not part of the tests)::

    .venv/bin/python bench/federation.py                      # 1 MiB, 64 MiB, 1 GiB; fsync always and never
    .venv/bin/python bench/federation.py --sizes 64 1024 --fsync always
    .venv/bin/python bench/federation.py --endpoint mtls      # workers on their gateway's mTLS endpoint

Setup: guest and host gateways as separate processes (``python -m fate_airflow gateway``) on
127.0.0.1 with mutual TLS between them, once per ``spool.fsync`` policy. Workers reach their own
gateway on its party-internal endpoint (a unix socket, plaintext; ``--endpoint internal``, the
default, as the party deploy configures workers on the gateway's host) or on its mTLS endpoint
(``--endpoint mtls``, a worker on another host). The guest worker (this process) calls
``remote`` (→ guest gateway → host gateway, which spools the message and acknowledges); the host
worker, a separate process as in a real deployment, calls ``get`` (host gateway → worker, verified,
acknowledged). Two timings per run, both from ``remote`` start to ``get`` end:

* *sequential*: ``get`` is called after ``remote`` returned (the message is complete in the spool);
* *waiting*: the receiver is already blocked in ``get`` when ``remote`` starts — the usual case in
  a federated job — so the gateway streams the message to it while still spooling it.

The raw baseline streams the same payload bytes in the same chunk size to a bare grpcio server
process over mTLS (one hop, no disk, nothing decoded), measured in the same loop. Also reported:
CPU seconds of every process involved per GiB moved (federation: sender, both gateways, receiver;
raw: client and server) — on a busy machine throughput follows CPU cost — and peak RSS of each
gateway (the kernel's high-water mark, VmHWM). Each configuration runs at least 3 times; tables
show medians. Note the machine's load (printed): numbers on a shared machine are noisy.
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import grpc
import numpy as np

from fate_airflow.core.types import Party
from fate_airflow.federation import payload
from fate_airflow.federation.api import FederationSession
from fate_airflow.federation.config import GatewayClientConfig
from fate_airflow.federation.grpc import GrpcFederation
from fate_airflow.federation.grpc.localnet import (
    PartyFiles,
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
_TICK = os.sysconf("SC_CLK_TCK")


def vm_hwm(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def wait_port_file(path: Path, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while not path.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"process for {path.name} failed to start")
        time.sleep(0.05)


def make_value(size_mib: int) -> np.ndarray:
    return np.random.default_rng(size_mib).random(size_mib * MiB // 8)


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


# ----------------------------------------------------------------------------- receiver process


def receiver(config_json: str, session_id: str) -> None:
    """The host worker: ``get X TAG SIZE_MIB`` on stdin → ``done T CPU`` (monotonic end time, own CPU
    seconds), then ``ok``/``bad`` after checking the content against the sender's value (outside
    the timing and the CPU figure)."""
    import json

    config = GatewayClientConfig.from_dict(json.loads(config_json))
    job, task, version = session_id.rsplit("_", 2)
    session = FederationSession(job, task, int(version), HOST, (GUEST, HOST))
    fed = GrpcFederation(session, config)
    for line in sys.stdin:
        _, name, tag, size_text = line.split()
        [received] = fed.get(name, tag, [GUEST], timeout=900)
        times = os.times()
        print(f"done {time.monotonic()!r} {times.user + times.system!r}", flush=True)
        size_mib = int(size_text)
        good = size_mib == 0 or (
            hashlib.sha256(received.data).digest() == hashlib.sha256(make_value(size_mib).data).digest()
        )
        del received
        print("ok" if good else "bad", flush=True)
    fed.close()


class Receiver:
    """Drives the receiver process."""

    def __init__(self, config: GatewayClientConfig, session_id: str) -> None:
        import json

        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--receiver", json.dumps(config.to_dict()), session_id],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._in: IO[str] = self.proc.stdin
        self._out: IO[str] = self.proc.stdout

    def start_get(self, name: str, tag: str, size_mib: int) -> None:
        self._in.write(f"get {name} {tag} {size_mib}\n")
        self._in.flush()

    def finish_get(self) -> float:
        """Monotonic time at which ``get`` returned; checks the content."""
        return self.finish_get_cpu()[0]

    def finish_get_cpu(self) -> tuple[float, float]:
        """(monotonic time at which ``get`` returned, the receiver's CPU seconds then); checks the content."""
        done = self._out.readline().split()
        assert done and done[0] == "done", f"receiver failed: {done}"
        verdict = self._out.readline().strip()
        assert verdict == "ok", "the received object differs from the sent one"
        return float(done[1]), float(done[2])

    def close(self) -> None:
        self._in.close()
        self.proc.wait(60)


# ----------------------------------------------------------------------------- benchmark


@dataclass
class Series:
    """Measurements of one (fsync policy, size)."""

    sequential: list[tuple[float, float, float]] = field(default_factory=list)  # total, remote, get
    waiting: list[float] = field(default_factory=list)
    raw: list[float] = field(default_factory=list)
    # CPU seconds of each waiting-mode transfer: sender, guest gateway, host gateway, receiver.
    cpu_fed: list[tuple[float, ...]] = field(default_factory=list)
    cpu_raw: list[float] = field(default_factory=list)
    rss: tuple[float, float] = (0.0, 0.0)


class Parties:
    """Two gateways with one fsync policy, the raw server, and the endpoints."""

    def __init__(
        self,
        root: Path,
        files: dict[str, PartyFiles],
        chunk: int,
        fsync: str,
        raw_channel: grpc.Channel,
        endpoint: str = "internal",
    ) -> None:
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.addr = {p: f"127.0.0.1:{free_port()}" for p in ("9999", "10000")}
        # Unix socket paths are limited to ~100 bytes: keep them short.
        self.sockets = {p: f"unix:{root}/{p}-{fsync}.sock" for p in ("9999", "10000")}
        self.endpoint = endpoint
        for party, other in (("9999", "10000"), ("10000", "9999")):
            extra: dict[str, object] = {} if fsync == "always" else {"spool": {"fsync": fsync}}
            if endpoint == "internal":
                extra["ptp_listen"] = self.sockets[party]
            doc = gateway_document(
                party,
                listen=self.addr[party],
                data_dir=root / f"gw-{fsync}-{party}",
                routes={other: self.addr[other]},
                files=files,
                log_level="WARNING",
                limits={"chunk_bytes": chunk},
                **extra,
            )
            config = write_config(root / f"gw-{fsync}-{party}.json", doc)
            port_file = root / f"gw-{fsync}-{party}.port"
            log = (root / f"gw-{fsync}-{party}.log").open("wb")
            self.procs[party] = subprocess.Popen(
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
            wait_port_file(port_file, self.procs[party])
        self.files = files
        self.chunk = chunk
        self.raw_channel = raw_channel

    def client(self, party: str, **extra: object) -> GatewayClientConfig:
        """How a worker of ``party`` reaches its gateway (per ``--endpoint``)."""
        if self.endpoint == "internal":
            extra["internal_address"] = self.sockets[party]
        return client_config(party, self.addr[party], self.files, **extra)

    def close(self) -> None:
        for proc in self.procs.values():
            proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()


def run_size(parties: Parties, size_mib: int, runs: int, raw_pid: int) -> Series:
    value = make_value(size_mib)
    series = Series()
    # One endpoint per party for the whole series, as a task would use it (the TLS handshakes are
    # not part of the measurement; the raw channel is reused too).
    session = FederationSession(f"bench{size_mib}x{os.getpid()}", "t", 0, GUEST, (GUEST, HOST))
    guest = GrpcFederation(session, parties.client("9999", chunk_bytes=parties.chunk))
    receiver = Receiver(parties.client("10000"), session.session_id)
    gateway_pids = [parties.procs["9999"].pid, parties.procs["10000"].pid]
    fed_pids = [os.getpid(), *gateway_pids]
    try:
        guest.remote(0, "warmup", "0", [HOST])
        receiver.start_get("warmup", "0", 0)
        receiver.finish_get()
        for run in range(runs):
            cpu0 = cpu_seconds(os.getpid()) + cpu_seconds(raw_pid)
            series.raw.append(raw_transfer(parties.raw_channel, value, parties.chunk))
            series.cpu_raw.append(cpu_seconds(os.getpid()) + cpu_seconds(raw_pid) - cpu0)

            start = time.monotonic()
            guest.remote(value, "seq", str(run), [HOST])
            sent = time.monotonic()
            receiver.start_get("seq", str(run), size_mib if run == 0 else 0)
            done = receiver.finish_get()
            series.sequential.append((done - start, sent - start, done - sent))

            receiver.start_get("wait", str(run), size_mib if run == 0 else 0)
            time.sleep(0.2)  # let the receiver's Pull reach the gateway and wait there
            before = [cpu_seconds(p) for p in fed_pids]
            receiver_before = cpu_seconds(receiver.proc.pid)
            start = time.monotonic()
            guest.remote(value, "wait", str(run), [HOST])
            after = [cpu_seconds(p) for p in fed_pids]
            done, receiver_cpu = receiver.finish_get_cpu()
            after[1:] = [cpu_seconds(p) for p in fed_pids[1:]]  # the gateways work until the get ends
            series.waiting.append(done - start)
            # The receiver's own figure stops at the end of `get`: its content check is not counted.
            series.cpu_fed.append(
                (*(a - b for a, b in zip(after, before, strict=True)), receiver_cpu - receiver_before)
            )
    finally:
        guest.close()
        receiver.close()
    series.rss = (vm_hwm(gateway_pids[0]) / MiB, vm_hwm(gateway_pids[1]) / MiB)
    return series


def report(results: dict[tuple[str, int], Series], chunk_mib: int, endpoint: str) -> None:
    load = Path("/proc/loadavg").read_text().split()[:3]
    hops = (
        "workers on the gateways' party-internal unix sockets (plaintext), mTLS between the gateways"
        if endpoint == "internal"
        else "mTLS on all three hops"
    )
    print(f"\nchunk {chunk_mib} MiB, {hops}, {os.cpu_count()} CPUs, load average {' '.join(load)}")
    print(
        "| size | spool.fsync | federation MB/s: sequential (remote / get) | federation MB/s: receiver "
        "waiting | raw grpcio MB/s | ratio sequential | ratio waiting | guest gw peak RSS "
        "| host gw peak RSS |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    cpu_rows = []
    for (fsync, size_mib), s in sorted(results.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        mb = float(size_mib)
        seq = statistics.median(t[0] for t in s.sequential)
        remote_t = statistics.median(t[1] for t in s.sequential)
        get_t = statistics.median(t[2] for t in s.sequential)
        wait = statistics.median(s.waiting)
        raw = statistics.median(s.raw)
        label = f"{size_mib} MiB" if size_mib < 1024 else f"{size_mib // 1024} GiB"
        print(
            f"| {label} | {fsync} | {mb / seq:.0f} ({mb / remote_t:.0f} / {mb / get_t:.0f}) | {mb / wait:.0f} "
            f"| {mb / raw:.0f} | {raw / seq:.2f} | {raw / wait:.2f} | {s.rss[0]:.0f} MiB | {s.rss[1]:.0f} MiB |"
        )
        # CPU accounting has clock-tick resolution: sum over all runs before dividing.
        gib = len(s.cpu_fed) * mb / 1024
        parts = [sum(run[i] for run in s.cpu_fed) / gib for i in range(4)]
        cpu_rows.append((label, fsync, parts, sum(s.cpu_raw) / (len(s.cpu_raw) * mb / 1024)))
    print(
        "(MB/s = MiB/s; medians of the runs; ratio = raw time / federation time; RSS = kernel "
        "high-water mark of the gateway process since it started, i.e. after all sizes up to that row)"
    )
    print(
        "\n| size | spool.fsync | CPU s per GiB, receiver waiting: sender + guest gw + host gw + receiver "
        "= total | raw: client + server |"
    )
    print("|---|---|---|---|")
    for label, fsync, parts, raw_cpu in cpu_rows:
        print(
            f"| {label} | {fsync} | {' + '.join(f'{p:.1f}' for p in parts)} = {sum(parts):.1f} | {raw_cpu:.1f} |"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 64, 1024], help="object sizes in MiB")
    parser.add_argument("--chunk", type=int, default=1, help="chunk size in MiB (client and gateways)")
    parser.add_argument("--fsync", choices=("always", "never", "both"), default="both")
    parser.add_argument("--runs", type=int, default=0, help="runs per size (default: 20 / 5 / 3 by size)")
    parser.add_argument(
        "--endpoint",
        choices=("internal", "mtls"),
        default="internal",
        help="how workers reach their own gateway: its party-internal unix socket, or its mTLS endpoint",
    )
    parser.add_argument(
        "--raw-server", nargs=4, metavar=("CERT", "KEY", "CA", "PORT_FILE"), help=argparse.SUPPRESS
    )
    parser.add_argument("--receiver", nargs=2, metavar=("CONFIG", "SESSION"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.raw_server:
        raw_server(*args.raw_server)
        return 0
    if args.receiver:
        receiver(*args.receiver)
        return 0

    chunk = args.chunk * MiB
    root = Path(tempfile.mkdtemp(prefix="bench-federation-"))
    files = provision(root / "pki", ["9999", "10000"])
    host_files, guest_files = files["10000"], files["9999"]
    raw_port_file = root / "raw.port"
    raw_proc = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--raw-server",
            str(host_files.gateway_cert),
            str(host_files.gateway_key),
            str(guest_files.ca_cert),
            str(raw_port_file),
        ]
    )
    results: dict[tuple[str, int], Series] = {}
    try:
        wait_port_file(raw_port_file, raw_proc)  # type: ignore[arg-type]
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
        policies = ["always", "never"] if args.fsync == "both" else [args.fsync]
        for fsync in policies:
            parties = Parties(root, files, chunk, fsync, raw_channel, args.endpoint)
            try:
                for size_mib in sorted(args.sizes):
                    runs = args.runs or (20 if size_mib <= 4 else (5 if size_mib <= 256 else 3))
                    results[(fsync, size_mib)] = run_size(parties, size_mib, runs, raw_proc.pid)
                    print(f"done fsync={fsync} {size_mib} MiB", file=sys.stderr)
            finally:
                parties.close()
        raw_channel.close()
        report(results, args.chunk, args.endpoint)
    finally:
        raw_proc.send_signal(signal.SIGTERM)
        raw_proc.wait(15)
    return 0


if __name__ == "__main__":
    sys.exit(main())
