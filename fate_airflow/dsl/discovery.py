"""Finding job files in a drop folder (one Airflow DAG per job).

Rules (the folder is scanned non-recursively; names starting with ``.`` are skipped):

* **FATE 1.x pairs.** ``<P>_dsl.json`` is a DSL; ``<X>_conf.json`` is a runtime conf. A conf pairs with
  the DSL whose prefix ``P`` is the *longest* with ``X == P`` or ``X`` starting with ``P + "_"``, so
  ``<P>_conf.json`` and variants ``<P>_<variant>_conf.json`` all use ``<P>_dsl.json``. The DAG id is
  ``X`` (the conf's stem without ``_conf``): ``hetero_lr_normal_conf.json`` → ``hetero_lr_normal``,
  ``test_intersect_job_rsa_conf.json`` → ``test_intersect_job_rsa``. A DSL no conf pairs with, or a
  conf without a DSL, is a :class:`SourceError`.
* **FATE 2.x DAGs.** Any other ``*.yaml``, ``*.yml`` or ``*.json`` whose top level has a ``dag`` key;
  the DAG id is the file stem (``train_lr.yaml`` → ``train_lr``). Other files are ignored. A ``.json``
  that cannot be parsed is a :class:`SourceError` (it may well be a broken job).
* DAG ids keep ``[A-Za-z0-9_.-]``; any other character becomes ``_``. Two jobs with one DAG id are
  both reported as :class:`SourceError`.

Discovery runs at every Airflow DAG parse, so it only reads what it must: 1.x files are recognised by
name alone; a YAML file is scanned for a top-level ``dag:`` line (and parsed only when written in
flow style); a JSON file that is not named ``*_dsl.json``/``*_conf.json`` is parsed (size-limited).
"""

from __future__ import annotations

import json
import os
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from fate_airflow.core.errors import ConfigError, DslError
from fate_airflow.dsl.io import is_yaml_name, parse_text, read_text
from fate_airflow.dsl.plan import PlanFormat

DSL_SUFFIX = "_dsl.json"
CONF_SUFFIX = "_conf.json"
_DAG_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
_YAML_DAG_KEY = re.compile(r"""^(?:dag|"dag"|'dag')[ \t]*:""", re.MULTILINE)


@dataclass(frozen=True)
class JobSource:
    """One job found in the folder.

    :param dag_id: the Airflow DAG id for this job.
    :param dsl_path: the 1.x DSL or the 2.x DAG file.
    :param conf_path: the 1.x runtime conf; None for 2.x.
    :param format: ``fate-1.x-dsl-v2`` or ``fate-2.x-dag`` (from the file names/top level; the files
        are validated only when loaded).
    """

    dag_id: str
    dsl_path: Path
    conf_path: Path | None
    format: PlanFormat


@dataclass(frozen=True)
class SourceError:
    """Files that look like a job but cannot become one.

    :param dag_id: the DAG id the files would have had.
    :param files: the files concerned.
    :param problems: one line each, naming the file (a list, like ``DslError.problems``).
    """

    dag_id: str
    files: tuple[Path, ...]
    problems: list[str]


def dag_id_for(text: str) -> str:
    """``text`` with every character outside ``[A-Za-z0-9_.-]`` replaced by ``_``."""
    return _DAG_ID_UNSAFE.sub("_", text)


def _is_dag_document(path: Path) -> bool:
    """Whether a non-1.x file is a 2.x DAG; raises DslError if it cannot tell (unreadable JSON)."""
    text = read_text(path)
    if is_yaml_name(path.name):
        if _YAML_DAG_KEY.search(text):
            return True
        if not text.lstrip().startswith("{"):
            return False
        data = parse_text(text, path.name, yaml=True)
    else:
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):
            data = parse_text(text, path.name, yaml=False)  # raises with line and column
    return isinstance(data, dict) and "dag" in data


def discover_jobs(folder: str | os.PathLike[str]) -> tuple[list[JobSource], list[SourceError]]:
    """Scan ``folder`` for jobs (see the module docstring for the naming rules).

    :returns: ``(jobs, errors)``, each sorted by DAG id.
    :raises ConfigError: the folder does not exist or cannot be listed.
    """
    root = Path(folder)
    try:
        names = sorted(
            entry.name
            for entry in os.scandir(root)
            if not entry.name.startswith(".") and entry.is_file(follow_symlinks=True)
        )
    except OSError as exc:
        raise ConfigError(f"{root}: cannot list job folder: {exc.strerror or exc}") from None

    jobs: list[JobSource] = []
    errors: list[SourceError] = []
    dsls: dict[str, Path] = {}
    confs: list[tuple[str, Path]] = []
    for name in names:
        path = root / name
        lower = name.lower()
        if lower.endswith(DSL_SUFFIX) and len(name) > len(DSL_SUFFIX):
            dsls[name[: -len(DSL_SUFFIX)]] = path
        elif lower.endswith(CONF_SUFFIX) and len(name) > len(CONF_SUFFIX):
            confs.append((name[: -len(CONF_SUFFIX)], path))
        elif is_yaml_name(name) or lower.endswith(".json"):
            try:
                if _is_dag_document(path):
                    jobs.append(JobSource(dag_id_for(path.stem), path, None, "fate-2.x-dag"))
            except DslError as exc:
                errors.append(SourceError(dag_id_for(path.stem), (path,), list(exc.problems)))

    paired: set[str] = set()
    for stem, conf in confs:
        prefixes = [p for p in dsls if stem == p or stem.startswith(p + "_")]
        if not prefixes:
            errors.append(
                SourceError(
                    dag_id_for(stem),
                    (conf,),
                    [
                        f"{conf.name}: no DSL for this runtime conf: expected {stem}{DSL_SUFFIX} "
                        f"(or <P>{DSL_SUFFIX} where {stem} starts with <P>_) in the same folder"
                    ],
                )
            )
            continue
        prefix = max(prefixes, key=len)
        paired.add(prefix)
        jobs.append(JobSource(dag_id_for(stem), dsls[prefix], conf, "fate-1.x-dsl-v2"))
    for prefix, dsl in dsls.items():
        if prefix not in paired:
            errors.append(
                SourceError(
                    dag_id_for(prefix),
                    (dsl,),
                    [
                        f"{dsl.name}: no runtime conf for this DSL: expected {prefix}{CONF_SUFFIX} or "
                        f"{prefix}_<variant>{CONF_SUFFIX} in the same folder"
                    ],
                )
            )

    by_id: dict[str, list[JobSource]] = defaultdict(list)
    for job in jobs:
        by_id[job.dag_id].append(job)
    unique: list[JobSource] = []
    for dag_id, group in by_id.items():
        if len(group) == 1:
            unique.extend(group)
            continue
        files = [f for job in group for f in (job.dsl_path, job.conf_path) if f is not None]
        listing = ", ".join(sorted(dict.fromkeys(f.name for f in files)))
        for job in group:
            own = tuple(f for f in (job.dsl_path, job.conf_path) if f is not None)
            errors.append(
                SourceError(
                    dag_id,
                    own,
                    [
                        f"{own[-1].name}: dag id {dag_id!r} is also produced by other job files ({listing}); "
                        "rename one"
                    ],
                )
            )
    unique.sort(key=lambda j: j.dag_id)
    errors.sort(key=lambda e: (e.dag_id, [str(f) for f in e.files]))
    return unique, errors


__all__ = ["CONF_SUFFIX", "DSL_SUFFIX", "JobSource", "SourceError", "dag_id_for", "discover_jobs"]
