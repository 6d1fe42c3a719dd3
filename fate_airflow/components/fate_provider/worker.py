"""How a FATE task's process is started: forked by the party's warm FATE worker, or cold.

A cold start runs ``<provider python> fate_task.py SPEC RESULT`` and pays the interpreter start and
FATE's imports (torch, pandas, FATE's components) on every task. The warm worker is
:mod:`.fate_zygote`: one process per provider environment and party that has imported all that
once and forks a child per task (see its docstring for the protocol). Both give a
:class:`FateProcess`: a pid heading its own process group, a stream with FATE's log lines, an exit
code as ``Popen.returncode``, and a kill that ends the whole tree.

The zygote lives in ``<provider_dir>/run/<provider>-<fingerprint>/`` (mode 0700): the provider
folder belongs to the party, and the fingerprint (interpreter, environment, the two scripts) makes a
rebuilt environment or an upgraded fate-airflow start a new zygote instead of reusing a stale one.
The first task that finds none starts it under a file lock and waits until it serves; it exits after
``FATE_AIRFLOW_FATE_WORKER_IDLE`` seconds (default 300) without tasks. ``FATE_AIRFLOW_FATE_WORKER=off``
turns it off; any failure to reach or start it is reported and the task starts cold.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import select
import signal
import socket
import stat
import struct
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

import psutil

from fate_airflow.core.files import file_lock
from fate_airflow.core.providers import ProviderInfo

#: The provider-side script of the warm worker.
ZYGOTE_SCRIPT = Path(__file__).with_name("fate_zygote.py")
#: The provider-side script of one task (cold starts run it; warm children show it as their title).
TASK_SCRIPT = Path(__file__).with_name("fate_task.py")
SOCKET_NAME = "zygote.sock"
_HEADER = struct.Struct("!I")
#: As in fate_zygote.py: longer socket paths are reached through /proc/self/fd.
_MAX_SUN_PATH = 100
#: Seconds the zygote has to answer a request with the child's pid (it forks in milliseconds).
_PID_TIMEOUT = 60.0
#: Room for the forked child's command line (see ``fate_zygote.set_process_title``).
_TITLE_ROOM = "." * 4096


class WorkerUnavailable(Exception):
    """The warm worker cannot run this task; the message says why (the task then starts cold)."""


class WorkerLost(Exception):
    """The warm worker went away while its child ran the task."""


@dataclass(frozen=True)
class WorkerSettings:
    """Whether and how FATE tasks use the warm worker.

    :param enabled: use the warm worker (else every task starts cold).
    :param idle_seconds: a zygote started by this task exits after this long without tasks.
    :param start_timeout: seconds to wait for a new zygote's imports before starting cold.
    """

    enabled: bool = True
    idle_seconds: float = 300.0
    start_timeout: float = 180.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> WorkerSettings:
        """``FATE_AIRFLOW_FATE_WORKER`` (``off``/``0``/``false`` disables) and ``..._IDLE`` (seconds)."""
        env = os.environ if environ is None else environ
        switch = env.get("FATE_AIRFLOW_FATE_WORKER", "on").strip().lower()
        idle = env.get("FATE_AIRFLOW_FATE_WORKER_IDLE", "").strip()
        return cls(
            enabled=switch not in ("off", "0", "false", "no"),
            idle_seconds=float(idle) if idle else cls.idle_seconds,
        )


class FateProcess(Protocol):
    """A running FATE task share, however it was started."""

    @property
    def pid(self) -> int:
        """The process running fate_task (leader of its own process group)."""

    @property
    def output(self) -> IO[bytes]:
        """FATE's stdout and stderr, merged; EOF once every process of the tree closed it."""

    def wait(self, timeout: float) -> int | None:
        """The exit code (negative: killed by that signal), or None if still running after ``timeout``."""

    def kill(self) -> None:
        """SIGKILL the process, its process group and every descendant, and wait for it."""

    def close(self) -> None:
        """Release what this handle holds (not the process)."""


def kill_tree(pid: int) -> None:
    """SIGKILL ``pid``, its process group (FATE's computing pool) and every descendant."""
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        children = []
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGKILL)
    for child in children:
        with contextlib.suppress(psutil.Error):
            child.kill()


def provider_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a FATE process: ours without this interpreter's Python settings."""
    env = os.environ if environ is None else environ
    out = {k: v for k, v in env.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    out["PYTHONUNBUFFERED"] = "1"
    out["PYTHONNOUSERSITE"] = "1"
    return out


# ---------------------------------------------------------------------- cold start


class ColdProcess:
    """``<provider python> fate_task.py SPEC RESULT`` as a new process in its own session."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str], cwd: Path) -> None:
        self._proc = subprocess.Popen(
            list(argv),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=str(cwd),
            env=dict(env),
            # Its own process group: stop/abort kills FATE's computing pool with it.
            start_new_session=True,
        )
        assert self._proc.stdout is not None
        self._output: IO[bytes] = self._proc.stdout

    @property
    def pid(self) -> int:
        """The fate_task.py process."""
        return self._proc.pid

    @property
    def output(self) -> IO[bytes]:
        """Its merged stdout/stderr."""
        return self._output

    def wait(self, timeout: float) -> int | None:
        """See :class:`FateProcess`."""
        try:
            return self._proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        """See :class:`FateProcess`."""
        if self._proc.poll() is None:
            kill_tree(self._proc.pid)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._proc.wait(timeout=10)

    def close(self) -> None:
        """See :class:`FateProcess`."""
        self._output.close()


# ---------------------------------------------------------------------- warm worker


def fingerprint(provider: ProviderInfo) -> str:
    """Changes whenever the zygote would run different code: interpreter, environment, scripts."""
    digest = hashlib.sha256()
    digest.update(os.path.realpath(provider.python).encode())
    for path in (Path(provider.env_dir) / "pyvenv.cfg", Path(provider.python)):
        with contextlib.suppress(OSError):
            st = path.stat()
            digest.update(f"{st.st_ino}:{st.st_mtime_ns}".encode())
    for script in (ZYGOTE_SCRIPT, TASK_SCRIPT):
        digest.update(script.read_bytes())
    return digest.hexdigest()[:16]


def worker_folder(provider: ProviderInfo, provider_dir: str | Path) -> Path:
    """The party-private folder of ``provider``'s zygote under the party's provider folder."""
    return Path(provider_dir) / "run" / f"{provider.name}-{provider.version}-{fingerprint(provider)}"


def _private_folder(folder: Path) -> None:
    """Create ``folder`` owner-only (it holds a socket that runs code) or refuse a foreign one."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = folder.lstat()
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        raise WorkerUnavailable(f"{folder} is not a folder owned by this user")
    if st.st_mode & 0o077:
        os.chmod(folder, 0o700)


def _connect(folder: Path) -> socket.socket | None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    path = str(folder / SOCKET_NAME)
    dirfd: int | None = None
    if len(os.fsencode(path)) > _MAX_SUN_PATH:
        dirfd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        path = f"/proc/self/fd/{dirfd}/{SOCKET_NAME}"
    try:
        sock.connect(path)
    except (FileNotFoundError, ConnectionRefusedError):
        sock.close()
        return None
    except OSError:
        sock.close()
        raise
    finally:
        if dirfd is not None:
            os.close(dirfd)
    return sock


def _start_zygote(provider: ProviderInfo, folder: Path, settings: WorkerSettings) -> None:
    """Start the zygote and return once it serves (its first process exits 0 then)."""
    env = provider_env()
    env["FATE_AIRFLOW_ZYGOTE_TITLE_ROOM"] = _TITLE_ROOM
    log_path = folder / "zygote.log"
    with log_path.open("ab") as sink:
        proc = subprocess.Popen(
            [provider.python, str(ZYGOTE_SCRIPT), str(folder), str(settings.idle_seconds)],
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=str(folder),
            env=env,
            # Not in the task's process group: the zygote outlives this task and serves the next.
            start_new_session=True,
        )
    try:
        code = proc.wait(timeout=settings.start_timeout)
    except subprocess.TimeoutExpired:
        kill_tree(proc.pid)
        proc.wait()
        raise WorkerUnavailable(
            f"it did not finish importing FATE within {settings.start_timeout:.0f} s"
        ) from None
    if code != 0:
        tail = log_path.read_text(errors="replace").strip().splitlines()[-1:] or [""]
        raise WorkerUnavailable(f"it failed to start (exit code {code}: {tail[0]}; see {log_path})")


def _connect_or_start(provider: ProviderInfo, folder: Path, settings: WorkerSettings) -> socket.socket:
    sock = _connect(folder)
    if sock is not None:
        return sock
    # One starter per folder: the others wait here and then find the new zygote serving.
    with file_lock(folder / "start.lock"):
        sock = _connect(folder)
        if sock is None:
            _start_zygote(provider, folder, settings)
            sock = _connect(folder)
    if sock is None:
        raise WorkerUnavailable(f"it started but {folder / SOCKET_NAME} refuses connections")
    return sock


class WarmProcess:
    """A FATE task share running in a child forked by the zygote."""

    def __init__(self, sock: socket.socket, pid: int, output: IO[bytes], pending: bytes) -> None:
        self._sock = sock
        self._pid = pid
        self._output = output
        self._buffer = pending
        self._code: int | None = None

    @property
    def pid(self) -> int:
        """The forked child (it called setsid: it leads its own process group)."""
        return self._pid

    @property
    def output(self) -> IO[bytes]:
        """The read end of the pipe the child writes stdout and stderr to."""
        return self._output

    def wait(self, timeout: float) -> int | None:
        """See :class:`FateProcess`; raises :class:`WorkerLost` if the zygote went away."""
        if self._code is not None:
            return self._code
        deadline = time.monotonic() + timeout
        while True:
            message = _next_message(self._sock, self._buffer, deadline)
            if message is None:
                return None
            self._buffer = message[1]
            reply = message[0]
            if "exit" in reply:
                self._code = int(str(reply["exit"]))
                return self._code

    def kill(self) -> None:
        """See :class:`FateProcess`; the zygote reaps the child and reports its end."""
        if self._code is not None:
            return
        kill_tree(self._pid)
        with contextlib.suppress(WorkerLost, OSError, ValueError):
            self.wait(10.0)

    def close(self) -> None:
        """Close the connection (a child still running is then killed by the zygote) and the pipe."""
        self._sock.close()
        self._output.close()


def _next_message(
    sock: socket.socket, buffer: bytes, deadline: float
) -> tuple[dict[str, object], bytes] | None:
    """The next JSON line from the zygote and what is left over, or None at ``deadline``."""
    while b"\n" not in buffer:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([sock], [], [], left)[0]:
            return None
        chunk = sock.recv(65536)
        if not chunk:
            raise WorkerLost("the warm FATE worker closed the connection")
        buffer += chunk
    line, _, rest = buffer.partition(b"\n")
    reply = json.loads(line)
    if not isinstance(reply, dict):
        raise ValueError(f"unexpected reply from the warm FATE worker: {line[:200]!r}")
    return reply, rest


def start_warm(
    provider: ProviderInfo,
    provider_dir: str | Path,
    argv: Sequence[str],
    env: Mapping[str, str],
    cwd: Path,
    settings: WorkerSettings,
) -> WarmProcess:
    """Run ``argv`` (a cold start's command line) as a child of ``provider``'s zygote.

    :raises WorkerUnavailable: the zygote could not be reached, started or asked; nothing runs.
    """
    try:
        folder = worker_folder(provider, provider_dir)
        _private_folder(folder)
    except OSError as exc:
        raise WorkerUnavailable(f"no folder for it: {exc}") from exc
    payload = json.dumps({"argv": list(argv), "cwd": str(cwd), "env": dict(env)}).encode()
    last = "no attempt"
    # A zygote that just reached its idle timeout closes connections it has not accepted yet: the
    # second attempt starts a new one.
    for _ in range(2):
        try:
            sock = _connect_or_start(provider, folder, settings)
        except OSError as exc:
            raise WorkerUnavailable(f"cannot reach it: {exc}") from exc
        read_fd, write_fd = os.pipe()
        try:
            message = _HEADER.pack(len(payload)) + payload
            sent = socket.send_fds(sock, [message], [write_fd])
            sock.sendall(message[sent:])
            os.close(write_fd)
            write_fd = -1
            found = _next_message(sock, b"", time.monotonic() + _PID_TIMEOUT)
            if found is None:
                raise WorkerUnavailable(f"it did not start the task within {_PID_TIMEOUT:.0f} s")
            reply, rest = found
            if "pid" not in reply:
                raise WorkerUnavailable(f"it refused the task: {reply.get('error')}")
            return WarmProcess(sock, int(str(reply["pid"])), os.fdopen(read_fd, "rb"), rest)
        except (OSError, WorkerLost, ValueError) as exc:
            last = str(exc)
            sock.close()
            os.close(read_fd)
        except BaseException:
            # Closing the connection makes the zygote kill a child it may have started.
            sock.close()
            os.close(read_fd)
            raise
        finally:
            if write_fd >= 0:
                os.close(write_fd)
    raise WorkerUnavailable(f"the connection failed twice (last: {last})")


__all__ = [
    "TASK_SCRIPT",
    "ZYGOTE_SCRIPT",
    "ColdProcess",
    "FateProcess",
    "WarmProcess",
    "WorkerLost",
    "WorkerSettings",
    "WorkerUnavailable",
    "fingerprint",
    "kill_tree",
    "provider_env",
    "start_warm",
    "worker_folder",
]
