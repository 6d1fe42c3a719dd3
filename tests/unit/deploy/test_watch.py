"""The drop-folder watcher that triggers an immediate re-parse of the job loader."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from fate_airflow.deploy.watch import DropFolderWatcher, folder_signature


def test_new_changed_and_removed_job_files_each_trigger_one_reparse(tmp_path: Path) -> None:
    calls: list[int] = []
    watcher = DropFolderWatcher(tmp_path, lambda: calls.append(1), interval=0.05)
    assert not watcher.poll_once()
    (tmp_path / "job_dsl.json").write_text("{}")
    assert watcher.poll_once()
    assert not watcher.poll_once()
    (tmp_path / "job_dsl.json").write_text('{"components": {}}')
    assert watcher.poll_once()
    (tmp_path / "job_dsl.json").unlink()
    assert watcher.poll_once()
    assert len(calls) == 3


def test_hidden_files_and_subfolders_are_not_jobs(tmp_path: Path) -> None:
    watcher = DropFolderWatcher(tmp_path, lambda: None)
    (tmp_path / ".job_dsl.json.swp").write_text("x")
    (tmp_path / "archive").mkdir()
    (tmp_path / "archive" / "old_dsl.json").write_text("{}")
    assert not watcher.poll_once()


def test_a_failing_reparse_is_logged_and_watching_goes_on(tmp_path: Path) -> None:
    def refuse() -> None:
        raise RuntimeError("api-server down")

    watcher = DropFolderWatcher(tmp_path, refuse)
    (tmp_path / "a_dsl.json").write_text("{}")
    assert watcher.poll_once()
    (tmp_path / "b_dsl.json").write_text("{}")
    assert watcher.poll_once()


def test_the_watcher_thread_notices_a_drop(tmp_path: Path) -> None:
    seen = threading.Event()
    watcher = DropFolderWatcher(tmp_path, seen.set, interval=0.05)
    watcher.start()
    try:
        (tmp_path / "a_dsl.json").write_text("{}")
        assert seen.wait(5)
    finally:
        watcher.stop()


def test_an_unreadable_folder_has_an_empty_signature(tmp_path: Path) -> None:
    assert folder_signature(tmp_path / "missing") == ()
    os.symlink(tmp_path / "nowhere", tmp_path / "dangling_dsl.json")
    assert folder_signature(tmp_path) == ()
