"""fate_task.py inside FATE 2.2's environment: its computing pool and gRPC.

FATE's standalone computing forks its process pool at the first map. A worker forked after the
parent used gRPC (the osx federation) inherits gRPC's descriptors, and its own gRPC calls fail —
FATE's pushes of table partitions did, as "cannot pickle '_thread.RLock'". fate_task.py forks the
workers before any gRPC use; here a real standalone session, a real gRPC server and a real pool
worker show both orders.
"""

from __future__ import annotations

import subprocess
import textwrap

import pytest

from fate_airflow.components.fate_provider.worker import TASK_SCRIPT

pytestmark = pytest.mark.slow

_PROBE = textwrap.dedent(
    """
    import importlib.util, os, sys, tempfile
    from concurrent.futures import ThreadPoolExecutor
    import grpc
    from fate.arch.computing.backends.standalone import CSession

    spec = importlib.util.spec_from_file_location("fate_task", sys.argv[1])
    fate_task = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fate_task)

    def call(channel):
        # An RPC the server does not implement: reaching it at all answers UNIMPLEMENTED.
        try:
            channel.unary_unary("/probe.Probe/Call")(b"", timeout=5)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                return "ok"
            return f"failed: {exc.code()} {exc.details()}"
        return "ok"

    def child_call(port):
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        try:
            return call(channel)
        finally:
            channel.close()

    session = CSession("probe", data_dir=tempfile.mkdtemp(), options={"task_cores": 2})
    if sys.argv[2] == "early":
        fate_task.start_pool_workers(session)
    server = grpc.server(ThreadPoolExecutor(2))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    parent = grpc.insecure_channel(f"127.0.0.1:{port}")
    assert call(parent) == "ok"
    pool = session._session._pool._pool
    try:
        print(pool.submit(child_call, port).result(timeout=20), flush=True)
    except Exception as exc:  # a worker stuck in inherited gRPC state
        print(f"failed: {exc!r}", flush=True)
    for worker in list(pool._processes.values()):
        worker.kill()
    os._exit(0)
    """
)


def probe(fate_python: str, order: str) -> str:
    out = subprocess.run(
        [fate_python, "-c", _PROBE, str(TASK_SCRIPT), order], capture_output=True, text=True, timeout=90
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip().splitlines()[-1]


def test_pool_workers_forked_before_grpc_can_use_grpc(fate_python: str) -> None:
    assert probe(fate_python, "early") == "ok"


def test_pool_workers_forked_after_grpc_fail_or_hang_which_is_why_fate_task_forks_them_first(
    fate_python: str,
) -> None:
    assert probe(fate_python, "late").startswith("failed")
