"""A pre-imported, forking FATE worker ("zygote") for one party's FATE provider environment.

Executed by the provider's interpreter (``<env>/bin/python fate_zygote.py FOLDER IDLE_SECONDS``),
never imported by fate-airflow: like :mod:`.fate_task` it uses only the standard library and FATE.

A cold FATE task spends most of its few seconds importing FATE, torch and pandas. The zygote pays
that once: it imports FATE's component machinery and every built-in component, listens on the unix
socket ``FOLDER/zygote.sock`` (``FOLDER`` is party-private, mode 0700) and forks one child per task.
The child is exactly the process ``fate_task.py SPEC RESULT`` would have been, minus the imports:

* its own session (``setsid``), so the task process's process-group kill ends it and its
  computing pool, as for a cold start;
* stdout/stderr on the pipe the task process passed with the request (``SCM_RIGHTS``), so FATE's log
  still streams into the Airflow task log; stdin on ``/dev/null``; the task's cwd and environment;
* RNGs reseeded from ``os.urandom`` (a fresh process would not share the zygote's state), logging
  configured afresh, ``fate_task.main`` run, then ``os._exit`` with its exit code;
* the visible command line of a cold start (``<python> .../fate_task.py SPEC RESULT``), so ``ps`` and
  process matchers see the same FATE processes whichever way a task started, while the zygote itself
  shows as ``fate_zygote.py``.

Protocol, one connection per task: the task process sends a 4-byte big-endian length and a JSON
request (``argv``: the cold start's command line, ``cwd``, ``env``) with one file descriptor
attached (its log pipe). The zygote answers JSON lines: ``{"pid": N}`` once the child runs, then
``{"exit": CODE}`` (``CODE`` as ``Popen.returncode``: negative for a signal) when it ended, or
``{"error": "..."}`` if no child could be started. If the connection drops before the child ended
(the task process was killed), the zygote kills the child's process group: that replaces the
parent-death watchdog, which in a forked child watches the zygote instead.

The zygote is started by the first FATE task that finds none (see
``fate_airflow.components.fate_provider.worker``); it exits by itself once it had no task and no
connection for ``IDLE_SECONDS``. Startup prints nothing to the starter: the starting process exits
0 once the socket accepts connections (the serving process is its fork), or non-zero with the
reason in ``FOLDER/zygote.log``.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import gc
import importlib.util
import json
import logging
import os
import selectors
import signal
import socket
import struct
import sys
import time
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any, cast

#: The socket's name inside the zygote's folder.
SOCKET_NAME = "zygote.sock"
_HEADER = struct.Struct("!I")
#: A request is a command line, a cwd and an environment: anything near this is a bug.
_MAX_REQUEST = 8 << 20
#: Seconds a task process has to send its whole request once connected.
_REQUEST_TIMEOUT = 10.0
#: Seconds between checks for ended children and the idle timeout.
_TICK = 0.2
#: Longest unix socket path to bind directly (sun_path is 108 bytes); longer ones go via /proc.
_MAX_SUN_PATH = 100

log = logging.getLogger("fate_airflow.fate_zygote")


def socket_address(folder: Path) -> tuple[str, int | None]:
    """The address to bind/connect ``folder/zygote.sock`` at, and a directory fd to close after.

    Party homes can be deep; a long path is reached through ``/proc/self/fd/<dirfd>/`` instead.
    """
    path = str(folder / SOCKET_NAME)
    if len(os.fsencode(path)) <= _MAX_SUN_PATH:
        return path, None
    dirfd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    return f"/proc/self/fd/{dirfd}/{SOCKET_NAME}", dirfd


def _load_fate_task() -> ModuleType:
    """fate_task.py beside this file (a script, like this one, not part of an installed package)."""
    path = Path(__file__).with_name("fate_task.py")
    spec = importlib.util.spec_from_file_location("fate_task", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["fate_task"] = module
    spec.loader.exec_module(module)
    return module


def preimport() -> list[str]:
    """Import what every FATE task imports, and every built-in component; returns those that failed."""
    import pandas  # noqa: F401
    import pyarrow.parquet  # noqa: F401
    from fate.arch import URI, CipherKit, Context, dataframe  # noqa: F401
    from fate.components.components import LazyBuildInComponentsLoader
    from fate.components.core import (  # noqa: F401
        ComponentExecutionIO,
        Role,
        Stage,
        load_component,
        load_computing,
        load_device,
        load_federation,
        load_metric_handler,
    )
    from fate.components.core.spec.task import TaskConfigSpec  # noqa: F401

    failed = []
    loader = LazyBuildInComponentsLoader()
    for name in loader.list():
        try:
            loader.load_cpn(name)
        except Exception as exc:  # a broken optional component must not cost the others their warm start
            log.warning("could not pre-import FATE component %s: %s", name, exc)
            failed.append(name)
    return failed


def set_process_title(argv: list[str]) -> bool:
    """Show ``argv`` as this process's command line (``/proc/self/cmdline``, ``ps``, psutil).

    The kernel reads the command line from the original argv/environ memory; when the byte ending
    argv is not NUL it reads one string up to the first NUL (the ``setproctitle`` convention). Only
    call this after the environment was replaced (``os.environ``), since the environ strings are
    overwritten. Returns False where /proc does not give the addresses.
    """
    try:
        raw = Path("/proc/self/stat").read_bytes()
        fields = raw[raw.rindex(b")") + 2 :].split()
        # Fields 48-51 of proc(5): arg_start, arg_end, env_start, env_end (field 3 is fields[0]).
        arg_start, arg_end, env_start, env_end = (int(fields[n - 3]) for n in (48, 49, 50, 51))
    except (OSError, ValueError, IndexError):
        return False
    if not arg_start or arg_end <= arg_start:
        return False
    end = env_end if env_start == arg_end and env_end > env_start else arg_end
    room = end - arg_start
    title = " ".join(argv).encode()[: room - 1] + b"\0"
    # Spaces after the NUL keep the last argv byte non-NUL (the kernel's "title was set" signal).
    ctypes.memmove(arg_start, title + b" " * (room - len(title)), room)
    return True


def _reseed() -> None:
    """Give the child RNG states of its own, as a freshly started process would have."""
    import random

    random.seed()
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed()  # no argument: fresh OS entropy, as at a cold start
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.manual_seed(int.from_bytes(os.urandom(8), "little") >> 1)


def _send(conn: socket.socket, message: dict[str, Any]) -> bool:
    try:
        conn.sendall(json.dumps(message).encode() + b"\n")
    except OSError:
        return False
    return True


def _read_request(conn: socket.socket) -> tuple[dict[str, Any], list[int]]:
    """One request (length-prefixed JSON) and the file descriptors passed with its first bytes."""
    data, fds, flags, _ = socket.recv_fds(conn, 65536, 4)
    try:
        if flags & socket.MSG_CTRUNC:
            raise ValueError("file descriptors were truncated")
        if len(fds) != 1:
            raise ValueError(f"expected one file descriptor (the log pipe), got {len(fds)}")
        while len(data) < _HEADER.size:
            data += _recv_some(conn)
        (size,) = _HEADER.unpack_from(data)
        if size > _MAX_REQUEST:
            raise ValueError(f"request of {size} bytes")
        while len(data) < _HEADER.size + size:
            data += _recv_some(conn)
        request = json.loads(data[_HEADER.size : _HEADER.size + size])
        if not isinstance(request, dict) or not {"argv", "cwd", "env"} <= request.keys():
            raise ValueError("a request needs argv, cwd and env")
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    return request, fds


def _recv_some(conn: socket.socket) -> bytes:
    chunk = conn.recv(65536)
    if not chunk:
        raise ValueError("the connection closed mid-request")
    return chunk


def _kill_group(pid: int) -> None:
    """SIGKILL a child's session/process group (it called setsid, so pgid == pid) and the child."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGKILL)


class Zygote:
    """Serve task requests on ``folder/zygote.sock`` until idle for ``idle`` seconds."""

    def __init__(self, folder: Path, idle: float, fate_task: ModuleType) -> None:
        self.folder = folder
        self.idle = idle
        self.fate_task = fate_task
        self.stopping = False
        self.selector = selectors.DefaultSelector()
        #: Running children → their task connection (None once the task process went away).
        self.children: dict[int, socket.socket | None] = {}
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        path = folder / SOCKET_NAME
        # A zygote killed with -9 leaves its socket behind; the starter holds the start lock.
        path.unlink(missing_ok=True)
        address, dirfd = socket_address(folder)
        try:
            self.listener.bind(address)
        finally:
            if dirfd is not None:
                os.close(dirfd)
        os.chmod(path, 0o600)
        self.inode = path.stat().st_ino
        self.listener.listen(64)
        self.listener.setblocking(False)
        self.selector.register(self.listener, selectors.EVENT_READ)
        self.last_busy = time.monotonic()

    # ------------------------------------------------------------------ serving

    def serve(self) -> None:
        """Accept tasks, fork children, report their ends; return once idle or asked to stop."""
        signal.signal(signal.SIGTERM, self._stop)
        while not self.stopping:
            for key, _ in self.selector.select(timeout=_TICK):
                if key.fileobj is self.listener:
                    self._accept()
                else:
                    self._on_readable(key.data, cast(socket.socket, key.fileobj))
            self._reap()
            if self.children:
                self.last_busy = time.monotonic()
            elif time.monotonic() - self.last_busy > self.idle:
                log.info("idle for %.0f s; exiting", self.idle)
                break

    def _stop(self, signum: int, frame: Any) -> None:
        self.stopping = True

    def close(self) -> None:
        """Stop listening (the socket file goes first, so new tasks start a new zygote) and end children."""
        path = self.folder / SOCKET_NAME
        with contextlib.suppress(OSError):
            if path.stat().st_ino == self.inode:
                path.unlink()
        self.listener.close()
        for pid, conn in list(self.children.items()):
            _kill_group(pid)
            if conn is not None:
                conn.close()
        self.selector.close()

    def _accept(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        self.last_busy = time.monotonic()
        conn.settimeout(_REQUEST_TIMEOUT)
        try:
            request, fds = _read_request(conn)
        except (OSError, ValueError) as exc:
            log.warning("refusing a malformed request: %s", exc)
            _send(conn, {"error": f"malformed request: {exc}"})
            conn.close()
            return
        try:
            pid = self._fork(request, fds[0], conn)
        except OSError as exc:
            log.error("cannot fork a FATE task: %s", exc)
            _send(conn, {"error": f"cannot fork: {exc}"})
            conn.close()
            return
        finally:
            # Only the child may hold the write end, or the task's log reader never sees EOF.
            os.close(fds[0])
        log.info("pid %d runs %s", pid, " ".join(request["argv"][2:]))
        self.children[pid] = conn
        if not _send(conn, {"pid": pid}):
            self._dropped(pid, conn)
            return
        conn.setblocking(False)
        self.selector.register(conn, selectors.EVENT_READ, pid)

    def _on_readable(self, pid: int, conn: socket.socket) -> None:
        try:
            data = conn.recv(4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:  # the task process sends nothing after its request: EOF means it is gone
            self._dropped(pid, conn)

    def _dropped(self, pid: int, conn: socket.socket) -> None:
        log.warning("the task process of pid %d went away; killing its process group", pid)
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(conn)
        conn.close()
        if pid in self.children:
            self.children[pid] = None
            _kill_group(pid)

    def _reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            code = os.waitstatus_to_exitcode(status)
            conn = self.children.pop(pid, None)
            log.info("pid %d exited with %d", pid, code)
            if conn is not None:
                with contextlib.suppress(KeyError, ValueError):
                    self.selector.unregister(conn)
                conn.setblocking(True)
                _send(conn, {"exit": code})
                conn.close()

    # ------------------------------------------------------------------ the child

    def _fork(self, request: dict[str, Any], out_fd: int, conn: socket.socket) -> int:
        ready_r, ready_w = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child never returns into the serving loop
            code = 70
            try:
                os.close(ready_r)
                code = self._child(request, out_fd, ready_w, conn)
            except BaseException:
                traceback.print_exc()
            finally:
                with contextlib.suppress(Exception):
                    sys.stdout.flush()
                    sys.stderr.flush()
                os._exit(code)
        os.close(ready_w)
        # Report the pid only once the child leads its own group (killpg(pid) reaches all of it) and
        # shows the task's command line.
        os.read(ready_r, 1)
        os.close(ready_r)
        return pid

    def _child(self, request: dict[str, Any], out_fd: int, ready_w: int, conn: socket.socket) -> int:
        os.setsid()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        # The zygote's sockets stay the zygote's: a child holding them would keep them alive.
        self.selector.close()
        self.listener.close()
        conn.close()
        for other in self.children.values():
            if other is not None:
                other.close()
        os.dup2(out_fd, 1)
        os.dup2(out_fd, 2)
        os.close(out_fd)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update({str(k): str(v) for k, v in request["env"].items()})
        argv = [str(a) for a in request["argv"]]
        set_process_title(argv)
        # From here on the pid the task process gets leads its group and shows the task's title.
        os.write(ready_w, b"1")
        os.close(ready_w)
        sys.argv = argv[1:]
        _reseed()
        code = int(self.fate_task.main(sys.argv))
        # What a normal interpreter exit would run (logging.shutdown, multiprocessing's cleanup).
        atexit._run_exitfuncs()
        return code


def main(argv: list[str]) -> int:
    """``fate_zygote.py FOLDER IDLE_SECONDS``: exit 0 once serving (in a fork), non-zero on failure."""
    folder, idle = Path(argv[1]), float(argv[2])
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s zygote[%(process)d]: %(message)s",
    )
    started = time.monotonic()
    fate_task = _load_fate_task()
    failed = preimport()
    zygote = Zygote(folder, idle, fate_task)
    # Objects alive now are shared with every child: keep the collector from touching (copying) them.
    gc.collect()
    gc.freeze()
    log.info(
        "FATE pre-imported in %.1f s (%d modules; failed: %s); serving %s, idle timeout %.0f s",
        time.monotonic() - started,
        len(sys.modules),
        failed or "none",
        folder / SOCKET_NAME,
        idle,
    )
    sys.stdout.flush()
    sys.stderr.flush()
    if os.fork() != 0:
        # The starter waits for this exit: the socket accepts connections from now on.
        os._exit(0)
    (folder / "zygote.pid").write_text(str(os.getpid()))
    try:
        zygote.serve()
    finally:
        zygote.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
