from __future__ import annotations

import time
from pathlib import Path

import pytest

from fate_airflow.core.errors import DslError
from fate_airflow.dsl.io import MAX_JOB_FILE_BYTES, MAX_NESTING, check_plain_data, parse_text, read_document


def _read_problems(path: Path) -> list[str]:
    with pytest.raises(DslError) as excinfo:
        read_document(path)
    return excinfo.value.problems


def test_size_limit_checked_before_parsing(tmp_path: Path) -> None:
    big = tmp_path / "big.json"
    # Not valid JSON at all: the size check must come first.
    big.write_bytes(b"{" * (MAX_JOB_FILE_BYTES + 1))
    assert _read_problems(big) == [
        f"big.json: file is {MAX_JOB_FILE_BYTES + 1} bytes; job files are limited to 1048576 bytes (1 MiB)"
    ]


def test_file_at_the_limit_is_read(tmp_path: Path) -> None:
    path = tmp_path / "ok.json"
    body = '{"a": "' + "x" * (MAX_JOB_FILE_BYTES - 10) + '"}'
    path.write_text(body)
    assert len(body) <= MAX_JOB_FILE_BYTES
    assert read_document(path)["a"].startswith("xxx")


def test_yaml_bomb_fails_fast(tmp_path: Path) -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 12):
        prev, cur = chr(ord("a") + i - 1), chr(ord("a") + i)
        lines.append(
            f"{cur}: &{cur} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]"
        )
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(lines) + "\n")
    started = time.perf_counter()
    problems = _read_problems(bomb)
    assert time.perf_counter() - started < 1.0
    assert problems == [
        "bomb.yaml: line 1, column 4: YAML anchor '&a' refused: anchors and aliases are not allowed in job "
        "files; write the values out"
    ]


def test_yaml_alias_refused(tmp_path: Path) -> None:
    path = tmp_path / "dag.yaml"
    # An alias without a known anchor is a parse error in YAML; the alias check must still not expand.
    path.write_text("a: 1\nb: &x {c: 2}\nd: *x\n")
    assert _read_problems(path) == [
        "dag.yaml: line 2, column 4: YAML anchor '&x' refused: anchors and aliases are not allowed in job "
        "files; write the values out"
    ]


def test_ampersand_in_strings_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "dag.yaml"
    path.write_text("a: 'R&D * 2'\n")
    assert read_document(path) == {"a": "R&D * 2"}


def test_malformed_json_reports_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "job_conf.json"
    path.write_text('{\n  "role": {\n    "guest": [9999,]\n  }\n}\n')
    assert _read_problems(path) == [
        "job_conf.json: line 3, column 20: invalid JSON: Expecting value",
    ]


def test_malformed_yaml_reports_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "dag.yaml"
    path.write_text("dag:\n  tasks: [a, b\n  stage: train\n")
    problems = _read_problems(path)
    assert len(problems) == 1
    assert problems[0].startswith("dag.yaml: line 3, column 8: invalid YAML: ")


def test_yaml_unsafe_tag_refused(tmp_path: Path) -> None:
    path = tmp_path / "dag.yaml"
    path.write_text("dag: !!python/object/apply:os.system ['true']\n")
    problems = _read_problems(path)
    assert len(problems) == 1
    assert problems[0].startswith(
        "dag.yaml: line 1, column 6: invalid YAML: could not determine a constructor"
    )


def test_json_duplicate_key(tmp_path: Path) -> None:
    path = tmp_path / "job_dsl.json"
    path.write_text('{"components": {}, "components": {}}')
    assert _read_problems(path) == ["job_dsl.json: duplicate key 'components' in a JSON object"]


def test_yaml_duplicate_key(tmp_path: Path) -> None:
    path = tmp_path / "dag.yaml"
    path.write_text("dag: {}\ndag: {}\n")
    problems = _read_problems(path)
    assert problems[0].startswith('dag.yaml: line 2, column 1: invalid YAML: found duplicate key "dag"')


def test_json_nan_refused(tmp_path: Path) -> None:
    path = tmp_path / "conf.json"
    path.write_text('{"a": NaN}')
    assert _read_problems(path) == ["conf.json: NaN is not valid JSON (use null or a number)"]


def test_empty_files(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text("  \n")
    (tmp_path / "b.yaml").write_text("# only a comment\n")
    assert _read_problems(tmp_path / "a.json") == ["a.json: empty file"]
    assert _read_problems(tmp_path / "b.yaml") == ["b.yaml: empty file"]


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope_dsl.json"
    assert _read_problems(missing) == [f"{missing}: no such file"]


def test_directory_is_not_a_job_file(tmp_path: Path) -> None:
    assert _read_problems(tmp_path) == [f"{tmp_path}: not a regular file"]


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "conf.json"
    path.write_bytes(b'{"a": "\xff"}')
    assert _read_problems(path) == ["conf.json: not UTF-8 text (byte 7)"]


def test_yaml_dates_and_non_string_keys_refused(tmp_path: Path) -> None:
    path = tmp_path / "dag.yaml"
    path.write_text("dag:\n  conf:\n    when: 2024-01-01\n    1: one\n")
    assert _read_problems(path) == [
        "dag.yaml: dag.conf: key 1 is an integer; keys must be strings (quote it)",
        "dag.yaml: dag.conf.when: date value is not allowed here; quote it as a string",
    ]


def test_deep_nesting_refused() -> None:
    deep = "[" * 5000 + "]" * 5000
    with pytest.raises(DslError) as excinfo:
        parse_text(deep, "deep.json", yaml=False)
    assert excinfo.value.problems[0].startswith("deep.json: ")
    assert "nesting too deep" in excinfo.value.problems[0]


def test_moderate_nesting_limit() -> None:
    data: object = 1
    for _ in range(MAX_NESTING + 1):
        data = [data]
    assert check_plain_data(data) == [f"{'[0]' * (MAX_NESTING + 1)}: nesting too deep (at most 64 levels)"]


def test_suffix_decides_parser(tmp_path: Path) -> None:
    (tmp_path / "job.txt").write_text("dag:\n  stage: train\n")
    (tmp_path / "job2.txt").write_text('{"dag": {}}')
    assert read_document(tmp_path / "job.txt") == {"dag": {"stage": "train"}}
    assert read_document(tmp_path / "job2.txt") == {"dag": {}}
