"""The warm FATE worker's process mechanics, without FATE.

fate_zygote.py's :class:`Zygote` serves here with a stand-in for fate_task.py (a function that
prints, sleeps, forks and exits as its JSON "spec" says), so forking, log pipes, exit codes, kills,
dropped connections and the idle timeout are checked in a second each. Real pyfate through the
warm worker is tests/integration/components/test_fate_zygote.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from fate_airflow.components.fate_provider.worker import (
    TASK_SCRIPT,
    ZYGOTE_SCRIPT,
    WarmProcess,
    WorkerSettings,
    WorkerUnavailable,
    provider_env,
    start_warm,
    worker_folder,
)
from fate_airflow.core.providers import ProviderInfo

_SERVE = textwrap.dedent(
    """
    import importlib.util, json, os, sys, time, types
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("fate_zygote", sys.argv[1])
    zygote = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(zygote)

    def main(argv):
        task = json.loads(Path(argv[1]).read_text())
        print(task.get("print", ""), flush=True)
        print("to stderr", file=sys.stderr, flush=True)
        if task.get("grandchild") and os.fork() == 0:
            time.sleep(600)
            os._exit(0)
        time.sleep(task.get("sleep", 0))
        Path(argv[2]).write_text(json.dumps({"cwd": os.getcwd(), "env": os.environ.get("MARK")}))
        return task.get("code", 0)

    server = zygote.Zygote(Path(sys.argv[2]), float(sys.argv[3]), types.SimpleNamespace(main=main))
    print("ready", flush=True)
    try:
        server.serve()
    finally:
        server.close()
    """
)


@pytest.fixture
def provider(tmp_path: Path) -> ProviderInfo:
    return ProviderInfo("fate", "2.2.0", python=sys.executable, env_dir=str(tmp_path / "env"))


def _serve(provider: ProviderInfo, provider_dir: Path, idle: float) -> subprocess.Popen[str]:
    folder = worker_folder(provider, provider_dir)
    folder.mkdir(mode=0o700, parents=True)
    proc = subprocess.Popen(
        [sys.executable, "-c", _SERVE, str(ZYGOTE_SCRIPT), str(folder), str(idle)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


@pytest.fixture
def zygote(provider: ProviderInfo, tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    proc = _serve(provider, tmp_path / "providers", 60.0)
    yield proc
    proc.terminate()
    proc.wait(10)


def _task(
    provider: ProviderInfo, tmp_path: Path, name: str, **spec: object
) -> tuple[WarmProcess, Path, list[str]]:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "spec.json").write_text(json.dumps(spec))
    argv = [provider.python, str(TASK_SCRIPT), str(folder / "spec.json"), str(folder / "result.json")]
    env = {**provider_env(), "MARK": name}
    warm = start_warm(provider, tmp_path / "providers", argv, env, folder, WorkerSettings())
    return warm, folder, argv


def _wait(warm: WarmProcess, timeout: float = 20.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code = warm.wait(0.2)
        if code is not None:
            return code
    raise AssertionError("the forked task did not end")


def _gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.1)
    return False


def test_settings_from_the_environment() -> None:
    assert WorkerSettings.from_env({}) == WorkerSettings()
    off = WorkerSettings.from_env({"FATE_AIRFLOW_FATE_WORKER": "off", "FATE_AIRFLOW_FATE_WORKER_IDLE": "7"})
    assert not off.enabled and off.idle_seconds == 7.0
    assert WorkerSettings.from_env({"FATE_AIRFLOW_FATE_WORKER": "1"}).enabled


def test_the_folder_changes_with_the_environment(provider: ProviderInfo, tmp_path: Path) -> None:
    other = ProviderInfo("fate", "2.2.0", python="/elsewhere/bin/python", env_dir="/elsewhere")
    assert worker_folder(provider, tmp_path) != worker_folder(other, tmp_path)
    assert worker_folder(provider, tmp_path).parent == tmp_path / "run"


def test_a_forked_task_streams_its_output_and_reports_its_exit_code(
    provider: ProviderInfo, tmp_path: Path, zygote: subprocess.Popen[str]
) -> None:
    warm, folder, argv = _task(provider, tmp_path, "one", print="hello from FATE", sleep=0.5, code=3)
    assert warm.pid != zygote.pid
    # The child shows a cold start's command line; it heads its own session.
    assert psutil.Process(warm.pid).cmdline() == argv
    assert os.getsid(warm.pid) == warm.pid and os.getpgid(warm.pid) == warm.pid
    assert _wait(warm) == 3
    lines = warm.output.read().decode().splitlines()
    warm.close()
    assert lines == ["hello from FATE", "to stderr"]
    assert json.loads((folder / "result.json").read_text()) == {"cwd": str(folder), "env": "one"}


def test_two_tasks_run_concurrently(
    provider: ProviderInfo, tmp_path: Path, zygote: subprocess.Popen[str]
) -> None:
    started = time.monotonic()
    first, _, _ = _task(provider, tmp_path, "a", sleep=1.5)
    second, _, _ = _task(provider, tmp_path, "b", sleep=1.5, code=1)
    assert first.pid != second.pid
    assert (_wait(first), _wait(second)) == (0, 1)
    assert time.monotonic() - started < 2.9
    first.close()
    second.close()


def test_kill_ends_the_whole_forked_tree(
    provider: ProviderInfo, tmp_path: Path, zygote: subprocess.Popen[str]
) -> None:
    warm, _, _ = _task(provider, tmp_path, "tree", sleep=600, grandchild=True)
    deadline = time.monotonic() + 10
    while not psutil.Process(warm.pid).children() and time.monotonic() < deadline:
        time.sleep(0.05)
    (grandchild,) = psutil.Process(warm.pid).children()
    warm.kill()
    assert warm.wait(0) == -9
    warm.close()
    assert _gone(grandchild.pid)


def test_a_dropped_connection_kills_the_child(
    provider: ProviderInfo, tmp_path: Path, zygote: subprocess.Popen[str]
) -> None:
    warm, _, _ = _task(provider, tmp_path, "dropped", sleep=600, grandchild=True)
    pid = warm.pid
    deadline = time.monotonic() + 10
    while not psutil.Process(pid).children() and time.monotonic() < deadline:
        time.sleep(0.05)
    (grandchild,) = psutil.Process(pid).children()
    warm.close()  # what a killed task process's connection does
    assert _gone(pid) and _gone(grandchild.pid)
    assert zygote.poll() is None


def test_the_zygote_exits_when_idle(provider: ProviderInfo, tmp_path: Path) -> None:
    proc = _serve(provider, tmp_path / "providers", 3.0)
    warm, _, _ = _task(provider, tmp_path, "last", sleep=1.5)
    assert _wait(warm) == 0  # a running task is not idleness
    warm.close()
    assert proc.wait(10) == 0
    assert not (worker_folder(provider, tmp_path / "providers") / "zygote.sock").exists()


def test_a_zygote_that_cannot_start_is_reported(provider: ProviderInfo, tmp_path: Path) -> None:
    # This interpreter has no FATE: the real fate_zygote.py fails its imports.
    folder = tmp_path / "task"
    folder.mkdir()
    argv = [provider.python, str(TASK_SCRIPT), str(folder / "spec.json"), str(folder / "result.json")]
    with pytest.raises(WorkerUnavailable, match="No module named 'fate'"):
        start_warm(provider, tmp_path / "providers", argv, provider_env(), folder, WorkerSettings())


def test_set_process_title_replaces_the_command_line(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import importlib.util, os, sys, time
        spec = importlib.util.spec_from_file_location("fate_zygote", sys.argv[1])
        zygote = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(zygote)
        os.environ.clear()
        os.environ.update({"PATH": "/usr/bin"})
        print(zygote.set_process_title(["/env/bin/python", "/x/fate_task.py", "/t/spec.json", "/t/result.json"]))
        sys.stdout.flush()
        time.sleep(30)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(ZYGOTE_SCRIPT)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "ROOM": "." * 1024},
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "True"
        assert psutil.Process(proc.pid).cmdline() == [
            "/env/bin/python",
            "/x/fate_task.py",
            "/t/spec.json",
            "/t/result.json",
        ]
    finally:
        proc.kill()
        proc.wait()
