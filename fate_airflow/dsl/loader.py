"""Entry points: job file(s) → validated :class:`~fate_airflow.dsl.plan.JobPlan`.

The format is recognised from the first file's top level: ``dag`` → FATE 2.x DAG (one file);
``components`` → FATE 1.x DSL (needs its runtime conf as the second file).

Trigger-time overrides are deep-merged into the *job conf document* before planning: the runtime conf
for 1.x, the whole document for 2.x (:func:`job_conf_document` returns it, e.g. as Airflow params).
Problems at fields the overrides wrote name ``trigger conf`` as their source. Overrides travel as
JSON, where the number keys FATE allows in component parameters (``frac: {0: 0.5}``) arrive as
strings; an override key is matched to the file's number key of the same text, so it replaces that
entry instead of adding a second one.

``providers`` lists the component providers installed at this party (``ProviderRegistry.list()``); the
planner chooses one per task from it (:mod:`fate_airflow.dsl.selection`). None means "not known": no
installation is checked, and components this project does not implement plan as before.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fate_airflow.core.errors import DslError
from fate_airflow.core.providers import ProviderInfo
from fate_airflow.dsl._common import TRIGGER_CONF, Doc, Problems, type_name
from fate_airflow.dsl.io import check_plain_data, read_document
from fate_airflow.dsl.merge import deep_merge
from fate_airflow.dsl.plan import JobPlan, PlanFormat
from fate_airflow.dsl.v1 import plan_v1
from fate_airflow.dsl.v2 import plan_v2

if TYPE_CHECKING:
    from fate_airflow.dsl.discovery import JobSource

V1_FORMAT: PlanFormat = "fate-1.x-dsl-v2"
V2_FORMAT: PlanFormat = "fate-2.x-dag"


def _read_mapping(path: Path) -> dict[str, Any]:
    data = read_document(path)
    if not isinstance(data, Mapping):
        raise DslError([f"{path.name}: the top level must be a mapping, got {type_name(data)}"])
    return dict(data)


def detect_format(data: Mapping[str, Any], label: str) -> PlanFormat:
    """Which format a parsed first job file is in (``dag`` or ``schema_version``: 2.x; ``components``: 1.x).

    :raises DslError: none of them at the top level.
    """
    if "dag" in data or "schema_version" in data:
        return V2_FORMAT
    if "components" in data:
        return V1_FORMAT
    if "role" in data or "initiator" in data or "component_parameters" in data:
        raise DslError(
            [
                f"{label}: this looks like a FATE 1.x runtime conf; give the DSL file first and "
                "the conf with --conf"
            ]
        )
    raise DslError(
        [f"{label}: not a FATE job file: expected 'components' (1.x DSL) or 'dag' (2.x DAG) at the top level"]
    )


def _check_overrides(overrides: Mapping[str, Any] | None) -> None:
    if overrides is None:
        return
    if not isinstance(overrides, Mapping):
        raise DslError([f"{TRIGGER_CONF}: expected a mapping, got {type_name(overrides)}"])
    problems = check_plain_data(overrides)
    if problems:
        raise DslError([f"{TRIGGER_CONF}: {p}" for p in problems])


def align_keys(overrides: Mapping[Any, Any], base: Mapping[Any, Any]) -> dict[Any, Any]:
    """``overrides`` with each string key that spells one of ``base``'s number keys replaced by that key.

    JSON (trigger confs, Airflow params) turns ``{0: 0.5}`` into ``{"0": 0.5}``; without this the merge
    would keep both entries.
    """
    numbers = {str(k): k for k in base if not isinstance(k, str)}
    out: dict[Any, Any] = {}
    for key, value in overrides.items():
        target = numbers.get(key, key) if isinstance(key, str) else key
        below = base.get(target)
        if isinstance(value, Mapping) and isinstance(below, Mapping):
            value = align_keys(value, below)
        out[target] = value
    return out


def _changed(before: Mapping[str, Any], after: Mapping[str, Any]) -> str:
    """Suffix of the plan's ``source`` when trigger overrides changed the job conf document."""
    return f" + {TRIGGER_CONF}" if before != after else ""


def load_job(
    dsl_path: str | os.PathLike[str],
    conf_path: str | os.PathLike[str] | None = None,
    *,
    overrides: Mapping[str, Any] | None = None,
    providers: Sequence[ProviderInfo] | None = None,
) -> JobPlan:
    """Read, parse, validate and plan a job.

    :param dsl_path: the 1.x ``dsl`` JSON or the 2.x DAG (YAML or JSON).
    :param conf_path: the 1.x runtime conf (required for 1.x; must be None for 2.x).
    :param overrides: trigger-time values deep-merged into the job conf document first.
    :param providers: the providers installed at this party (None: not known; see the module docstring).
    :raises DslError: with every problem found, one line each (``<file>: <field path>: <message>``).
    """
    _check_overrides(overrides)
    dsl_file = Path(dsl_path)
    data = _read_mapping(dsl_file)
    fmt = detect_format(data, dsl_file.name)
    problems = Problems()
    plan: JobPlan | None
    if fmt == V2_FORMAT:
        if conf_path is not None:
            problems.add(
                Path(conf_path).name, (), "a FATE 2.x DAG carries its own conf (dag.conf); drop --conf"
            )
        aligned = align_keys(overrides, data) if overrides else None
        merged = deep_merge(data, aligned) if aligned else data
        doc = Doc(dsl_file.name, merged, aligned, base=data)
        plan = plan_v2(doc, problems, source=dsl_file.name + _changed(data, merged), providers=providers)
    else:
        dsl = Doc(dsl_file.name, data)
        conf: Doc | None = None
        source = dsl_file.name
        if conf_path is not None:
            conf_file = Path(conf_path)
            conf_data = _read_mapping(conf_file)
            aligned = align_keys(overrides, conf_data) if overrides else None
            merged = deep_merge(conf_data, aligned) if aligned else conf_data
            conf = Doc(conf_file.name, merged, aligned, base=conf_data)
            source = f"{dsl_file.name} + {conf_file.name}{_changed(conf_data, merged)}"
        plan = plan_v1(dsl, conf, problems, source=source, providers=providers)
    problems.raise_if_any()
    if plan is None:  # pragma: no cover - planners return None only after recording a problem
        raise DslError([f"{dsl_file.name}: invalid job"])
    return plan


def load_source(
    source: JobSource,
    *,
    overrides: Mapping[str, Any] | None = None,
    providers: Sequence[ProviderInfo] | None = None,
) -> JobPlan:
    """:func:`load_job` for a discovered :class:`~fate_airflow.dsl.discovery.JobSource`."""
    return load_job(source.dsl_path, source.conf_path, overrides=overrides, providers=providers)


def job_conf_document(source: JobSource) -> dict[str, Any]:
    """The document trigger-time overrides apply to: the 1.x runtime conf, or the whole 2.x DAG.

    :raises DslError: the file cannot be read or parsed, or a 1.x source has no conf.
    """
    if source.format == V2_FORMAT:
        return copy.deepcopy(_read_mapping(Path(source.dsl_path)))
    if source.conf_path is None:
        raise DslError([f"{Path(source.dsl_path).name}: a FATE 1.x DSL needs its runtime conf"])
    return copy.deepcopy(_read_mapping(Path(source.conf_path)))


__all__ = ["align_keys", "detect_format", "job_conf_document", "load_job", "load_source"]
