"""FATE 2.x DAG (YAML or JSON): ``schema_version`` 2.x + ``dag``.

Semantics follow FATE-Flow 2.2 (see ``fate-flow.md`` §2.3):

* ``dag.parties`` lists ``{role, party_id: [ids]}``; a task runs at its explicit ``parties`` or, when
  it has none, at every job party whose role the component supports;
* parameters at a party are ``tasks.<t>.parameters`` with each matching
  ``party_tasks.<alias>.tasks.<t>.parameters`` deep-merged over it (aliases in file order);
* task conf is ``dag.conf.task`` ← ``tasks.<t>.conf`` (:attr:`TaskPlan.conf`), then per party
  ``party_tasks.<alias>.conf`` ← ``party_tasks.<alias>.tasks.<t>.conf`` (:attr:`PartyTask.conf`);
* inputs are ``task_output_artifact`` (an edge), ``data_warehouse`` (a stored table) or
  ``model_warehouse`` (a stored model); ``party_tasks.<alias>.tasks.<t>.inputs`` replace the task's
  input of the same kind and key at the alias's parties. ``parties`` (or the older ``roles``) inside
  an input restrict which parties consume it. ``dependent_tasks`` is informational and ignored;
* the provider running a task is the task conf's ``provider`` (``dag.conf.task.provider`` ←
  ``tasks.<t>.conf.provider``, e.g. ``fate:2.2.0@local``), else chosen by
  :mod:`fate_airflow.dsl.selection`; one provider runs a task at every party, so a
  ``party_tasks`` conf may only repeat it. The job-wide ``dag.conf.task.provider`` does not apply to
  the table reader, which is FATE-Flow's own component in FATE too, not a provider's.

Schema ``2.0.0.alpha`` (``inputs.artifacts``, file-URI readers) is historical and rejected; a DAG
labelled alpha that uses none of its constructs (``flow test toy``'s) reads the same in both and plans.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from fate_airflow.core.providers import NATIVE, ProviderInfo
from fate_airflow.core.types import ROLE_ORDER, InputKind, InputRef, Party
from fate_airflow.dsl._common import (
    Doc,
    FieldPath,
    Problems,
    check_component_name,
    check_party_id,
    check_role,
    check_table_part,
    close_names,
    did_you_mean,
    get_mapping,
    get_str,
    type_name,
)
from fate_airflow.dsl.catalogue import BY_COMPONENT_REF, BY_MODULE, CatalogueEntry, lookup_component_ref
from fate_airflow.dsl.graph import topological_order
from fate_airflow.dsl.merge import merge_all
from fate_airflow.dsl.plan import JobPlan, PartyTask, PlanFormat, TaskPlan
from fate_airflow.dsl.selection import Explicit, Want, native_gap, select_provider

FORMAT: PlanFormat = "fate-2.x-dag"
STAGES: tuple[str, ...] = ("train", "predict", "default", "cross_validation")
#: ``2.<minor>.<patch>`` optionally followed by a beta or release-candidate tag.
SCHEMA_VERSION = re.compile(r"2\.\d+\.\d+(?:[.-]?(?:beta|rc)\d*)?")
SUPPORTED_SCHEMAS = "2.x from 2.0.0.beta on (e.g. 2.0.0.beta, 2.0.0, 2.1.0, 2.2.0)"
READER = "reader@1.0.0"
INPUT_SOURCES: Mapping[str, tuple[str, ...]] = {
    "data": ("task_output_artifact", "data_warehouse"),
    "model": ("task_output_artifact", "model_warehouse"),
}


@dataclass
class _Spec:
    """One artifact reference inside an input slot."""

    source: str  # task_output_artifact | data_warehouse | model_warehouse
    body: Mapping[str, Any]
    path: FieldPath
    filter: frozenset[Party] | None = None  # from `parties` / `roles`


@dataclass
class _Slot:
    """``inputs.<kind>.<key>`` of a task (origin None) or of a party_tasks alias (origin = alias)."""

    origin: str | None
    kind: str
    key: str
    specs: list[_Spec]


@dataclass
class _Task:
    name: str
    ref: str | None
    entry: CatalogueEntry | None
    parameters: Mapping[str, Any]
    conf: Mapping[str, Any]
    stage: str
    explicit: list[Party] | None
    slots: list[_Slot]
    path: FieldPath
    running: list[Party] = field(default_factory=list)
    #: Where the effective ``conf.provider`` was written (task conf, else dag.conf.task), if anywhere.
    provider_path: FieldPath | None = None


@dataclass
class _AliasTask:
    parameters: Mapping[str, Any]
    conf: Mapping[str, Any]
    slots: list[_Slot]
    path: FieldPath


@dataclass
class _Alias:
    name: str
    parties: frozenset[Party]
    conf: Mapping[str, Any]
    tasks: dict[str, _AliasTask]


# --------------------------------------------------------------------------- small parsers


def _uses_alpha_inputs(data: Mapping[str, Any]) -> bool:
    """Whether a DAG uses the 2.0.0 alpha schema's own constructs (``inputs.artifacts``).

    FATE-Client 2.2 still labels DAGs without inputs ``2.0.0.alpha`` (``flow test toy``), and
    FATE-Flow 2.2 runs them: they read the same in both schemas.
    """
    dag = data.get("dag")
    tasks = dag.get("tasks") if isinstance(dag, Mapping) else None
    for body in (tasks or {}).values() if isinstance(tasks, Mapping) else ():
        inputs = body.get("inputs") if isinstance(body, Mapping) else None
        if isinstance(inputs, Mapping) and "artifacts" in inputs:
            return True
    return False


def _check_schema(doc: Doc, problems: Problems) -> bool:
    version = doc.data.get("schema_version")
    path: FieldPath = ("schema_version",)
    if version is None:
        problems.add(doc, path, f"missing (required); supported: {SUPPORTED_SCHEMAS}")
        return False
    if isinstance(version, str) and "alpha" in version.lower() and _uses_alpha_inputs(doc.data):
        problems.add(
            doc,
            path,
            f"unsupported schema version {version!r}: the 2.0.0 alpha DAG schema (inputs.artifacts, "
            f"file-URI readers) is historical; supported: {SUPPORTED_SCHEMAS}",
        )
        return False
    if isinstance(version, str) and "alpha" in version.lower():
        return True
    if not isinstance(version, str) or not SCHEMA_VERSION.fullmatch(version):
        problems.add(doc, path, f"unsupported schema version {version!r}; supported: {SUPPORTED_SCHEMAS}")
        return False
    return True


def _party_list(
    doc: Doc,
    problems: Problems,
    value: object,
    path: FieldPath,
    *,
    known: frozenset[Party] | None,
) -> list[Party] | None:
    """``[{role, party_id: [ids]}, ...]`` as parties in file order (duplicates dropped).

    :param known: the job's parties; entries outside it are problems. None while reading
        ``dag.parties`` itself.
    """
    if not isinstance(value, list):
        problems.add(doc, path, f"expected a list of {{role, party_id}} entries, got {type_name(value)}")
        return None
    parties: list[Party] = []
    for i, item in enumerate(value):
        ipath = (*path, i)
        if not isinstance(item, Mapping):
            problems.add(doc, ipath, f"expected a mapping {{role, party_id}}, got {type_name(item)}")
            continue
        role = check_role(problems, doc, item.get("role"), (*ipath, "role"))
        ids = item.get("party_id")
        if ids is None:
            problems.add(doc, (*ipath, "party_id"), "missing (required)")
            continue
        if not isinstance(ids, list):
            problems.add(doc, (*ipath, "party_id"), f"expected a list of party ids, got {type_name(ids)}")
            continue
        if not ids:
            problems.add(doc, (*ipath, "party_id"), "empty list")
        for j, raw in enumerate(ids):
            pid = check_party_id(problems, doc, raw, (*ipath, "party_id", j))
            if pid is None or role is None:
                continue
            party = Party(role, pid)
            if known is not None and party not in known:
                problems.add(
                    doc, (*ipath, "party_id", j), f"{role} {pid} is not a party of the job (dag.parties)"
                )
                continue
            if party in parties:
                if known is None:
                    problems.add(doc, (*ipath, "party_id", j), f"{role} {pid} listed twice")
                continue
            parties.append(party)
    return parties


def _plan_order(parties: list[Party]) -> list[Party]:
    """Guests, then hosts, then arbiters (then local), each in file order."""
    return sorted(parties, key=lambda p: ROLE_ORDER.index(p.role))


def _stage(doc: Doc, problems: Problems, value: object, path: FieldPath, default: str) -> str:
    if value is None:
        return default
    if value not in STAGES:
        problems.add(doc, path, f"unknown stage {value!r}; expected one of {', '.join(STAGES)}")
        return default
    return str(value)


def _parse_slots(
    doc: Doc, problems: Problems, owner: Mapping[str, Any], path: FieldPath, origin: str | None
) -> list[_Slot]:
    """The ``inputs`` of a task or alias task, in file order."""
    inputs = get_mapping(problems, doc, owner, "inputs", path)
    slots: list[_Slot] = []
    for kind, by_key in (inputs or {}).items():
        kpath = (*path, kind)
        if kind not in INPUT_SOURCES:
            problems.add(doc, kpath, f"unknown input kind {kind!r}; expected data or model")
            continue
        if by_key is None:
            continue
        if not isinstance(by_key, Mapping):
            problems.add(doc, kpath, f"expected a mapping of inputs, got {type_name(by_key)}")
            continue
        for key, spec in by_key.items():
            spath = (*kpath, key)
            if not isinstance(spec, Mapping):
                problems.add(doc, spath, f"expected a mapping, got {type_name(spec)}")
                continue
            allowed = INPUT_SOURCES[kind]
            specs: list[_Spec] = []
            for source, body in spec.items():
                bpath = (*spath, source)
                if source not in allowed:
                    problems.add(
                        doc, bpath, f"unknown {kind} input source {source!r}; expected {' or '.join(allowed)}"
                    )
                    continue
                bodies = body if source == "task_output_artifact" and isinstance(body, list) else [body]
                for i, item in enumerate(bodies):
                    ipath = (*bpath, i) if isinstance(body, list) else bpath
                    if not isinstance(item, Mapping):
                        problems.add(doc, ipath, f"expected a mapping, got {type_name(item)}")
                        continue
                    specs.append(_Spec(source, item, ipath))
            if len({s.source for s in specs}) > 1:
                problems.add(doc, spath, f"give one of {' or '.join(allowed)}, not both")
                continue
            if specs:
                slots.append(_Slot(origin, kind, key, specs))
    return slots


# --------------------------------------------------------------------------- plan


@dataclass
class _Context:
    doc: Doc
    problems: Problems
    parties: list[Party]  # plan order
    known: frozenset[Party]
    tasks: dict[str, _Task]
    aliases: list[_Alias]
    model_warehouse: Mapping[str, Any]


def plan_v2(
    doc: Doc,
    problems: Problems,
    *,
    source: str,
    providers: Sequence[ProviderInfo] | None = None,
) -> JobPlan | None:
    """Validate a 2.x DAG document and build its plan.

    :param doc: the parsed document, with trigger overrides merged in.
    :param problems: receives every problem found.
    :param source: the plan's ``source`` text.
    :param providers: the providers installed at this party (None: not known, see
        :mod:`fate_airflow.dsl.selection`).
    :returns: the plan, or None if any problem was found.
    """
    if not _check_schema(doc, problems):
        return None
    kind = doc.data.get("kind")
    if kind is not None and kind != "fate":
        problems.add(doc, ("kind",), f"unsupported kind {kind!r}; only 'fate' DAGs are supported")
    dag = get_mapping(problems, doc, doc.data, "dag", ("dag",), required=True)
    if dag is None:
        return None

    raw_parties = dag.get("parties")
    if raw_parties is None:
        problems.add(doc, ("dag", "parties"), "missing (required)")
    parsed = (
        _party_list(doc, problems, raw_parties, ("dag", "parties"), known=None)
        if raw_parties is not None
        else []
    )
    parties = _plan_order(parsed or [])
    if raw_parties is not None and not parties and parsed is not None:
        problems.add(doc, ("dag", "parties"), "no parties")

    conf = get_mapping(problems, doc, dag, "conf", ("dag", "conf")) or {}
    conf_task = get_mapping(problems, doc, conf, "task", ("dag", "conf", "task")) or {}
    if conf.get("provider") is not None:
        problems.add(
            doc,
            ("dag", "conf", "provider"),
            "FATE-Flow 2.x reads the provider from the task conf: move it to dag.conf.task.provider",
        )
    model_warehouse = (
        get_mapping(problems, doc, conf, "model_warehouse", ("dag", "conf", "model_warehouse")) or {}
    )
    job_stage = _stage(doc, problems, dag.get("stage"), ("dag", "stage"), "train")
    initiator = _initiator(doc, problems, conf, parties)

    ctx = _Context(doc, problems, parties, frozenset(parties), {}, [], model_warehouse)
    section = get_mapping(problems, doc, dag, "tasks", ("dag", "tasks"), required=True)
    if section is not None and not section:
        problems.add(doc, ("dag", "tasks"), "no tasks")
    for name, body in (section or {}).items():
        ctx.tasks[name] = _parse_task(ctx, name, body, conf_task, job_stage)
    _parse_aliases(ctx, dag)
    for task in ctx.tasks.values():
        task.running = _running(ctx, task)
        if task.entry is not None and task.explicit is None and parties and not task.running:
            problems.add(
                doc,
                task.path,
                f"component {task.ref!r} runs at none of the job's parties "
                f"(it runs at {', '.join(task.entry.roles_v2)})",
            )

    inputs = {name: _resolve_inputs(ctx, task) for name, task in ctx.tasks.items()}
    upstream = {
        name: sorted({i.producer_task for i in refs if i.source == "task" and i.producer_task})
        for name, refs in inputs.items()
    }
    order, cycles = topological_order(list(ctx.tasks), upstream)
    for cycle in cycles:
        problems.add(doc, ("dag", "tasks"), f"cycle: {' -> '.join(cycle)}")
    shares = {name: _shares(ctx, task) for name, task in ctx.tasks.items()}
    chosen = {name: _provider(ctx, task, providers) for name, task in ctx.tasks.items()}
    _same_provider_for_models(ctx, inputs, chosen)
    for name, task in ctx.tasks.items():
        provider = chosen[name]
        if provider is not None and provider != NATIVE and task.entry is not None:
            shares[name], inputs[name] = _fate_roles_only(ctx, task, shares[name], inputs[name], provider)
    if problems or initiator is None:
        return None

    tasks: list[TaskPlan] = []
    for name in order:
        task = ctx.tasks[name]
        assert task.entry is not None and task.ref is not None  # no problems recorded
        tasks.append(
            TaskPlan(
                name=name,
                component=task.ref,
                implementation=task.entry.implementation,
                upstream=tuple(upstream[name]),
                parties=tuple(shares[name]),
                inputs=tuple(inputs[name]),
                outputs=dict(task.entry.outputs_v2),
                stage=task.stage,
                conf=dict(task.conf),
                provider=chosen[name] or NATIVE,
            )
        )
    return JobPlan(
        format=FORMAT,
        stage=job_stage,
        initiator=initiator,
        parties=tuple(parties),
        tasks=tuple(tasks),
        job_parameters=merge_all(conf),
        source=source,
    )


def _initiator(doc: Doc, problems: Problems, conf: Mapping[str, Any], parties: list[Party]) -> Party | None:
    """The scheduler party: ``scheduler_party_id``, else ``initiator_party_id``, else the first guest."""
    for key in ("scheduler_party_id", "initiator_party_id"):
        if conf.get(key) is None:
            continue
        path: FieldPath = ("dag", "conf", key)
        pid = check_party_id(problems, doc, conf[key], path)
        if pid is None:
            return None
        roles = [p.role for p in parties if p.party_id == pid]
        if not roles:
            if parties:
                problems.add(doc, path, f"party {pid} is not a party of the job (dag.parties)")
            return None
        return Party("guest" if "guest" in roles else roles[0], pid)
    guests = [p for p in parties if p.role == "guest"]
    return guests[0] if guests else (parties[0] if parties else None)


def _parse_task(
    ctx: _Context, name: str, body: object, conf_task: Mapping[str, Any], job_stage: str
) -> _Task:
    doc, problems = ctx.doc, ctx.problems
    path: FieldPath = ("dag", "tasks", name)
    check_component_name(problems, doc, name, path, "task")
    if not isinstance(body, Mapping):
        problems.add(doc, path, f"expected a mapping, got {type_name(body)}")
        return _Task(name, None, None, {}, {}, job_stage, None, [], path)
    ref = get_str(problems, doc, body, "component_ref", (*path, "component_ref"), required=True)
    entry = lookup_component_ref(ref) if ref else None
    if ref and entry is None:
        hits = close_names(ref, BY_COMPONENT_REF)
        hint = f"; close known names: {', '.join(hits)}" if hits else ""
        other = BY_MODULE.get(ref)
        if other is not None:
            refs = " or ".join(other.component_refs) or "none yet"
            hint = f"; {ref!r} is a FATE 1.x module name (its 2.x component_ref: {refs})"
        problems.add(
            doc, (*path, "component_ref"), f"unknown component_ref {ref!r}: not in the catalogue{hint}"
        )
    parameters = get_mapping(problems, doc, body, "parameters", (*path, "parameters")) or {}
    task_conf = get_mapping(problems, doc, body, "conf", (*path, "conf")) or {}
    stage = _stage(doc, problems, body.get("stage"), (*path, "stage"), job_stage)
    explicit: list[Party] | None = None
    if body.get("parties") is not None:
        explicit = _party_list(doc, problems, body["parties"], (*path, "parties"), known=ctx.known) or []
        if body["parties"] == []:
            problems.add(doc, (*path, "parties"), "empty list: leave it out to run at every supported party")
        if entry is not None:
            explicit = _supported(ctx, entry, ref or "", body["parties"], explicit, (*path, "parties"))
    if entry is not None and entry.implementation == READER:
        _check_table_params(ctx, parameters, (*path, "parameters"))
    slots = _parse_slots(doc, problems, body, (*path, "inputs"), None)
    provider_path: FieldPath | None = None
    if task_conf.get("provider") is not None:
        provider_path = (*path, "conf", "provider")
    elif conf_task.get("provider") is not None:
        provider_path = ("dag", "conf", "task", "provider")
    merged = merge_all(conf_task, task_conf)
    return _Task(
        name, ref, entry, parameters, merged, stage, explicit, slots, path, provider_path=provider_path
    )


def _same_provider_for_models(
    ctx: _Context, inputs: Mapping[str, Sequence[InputRef]], chosen: dict[str, str | None]
) -> None:
    """A model passed between tasks stays within one provider: FATE reads only FATE's models.

    A native task whose model feeds a FATE task (native LR fitted, FATE's LR warm-started from it), or
    that reads a FATE task's model, runs FATE's component of the same name instead — unless the job
    file named its provider, which is then a problem naming the edge.
    """
    changed = True
    while changed:
        changed = False
        for name, refs in inputs.items():
            for ref in refs:
                producer = ref.producer_task
                if ref.kind != "model" or ref.source != "task" or producer not in chosen:
                    continue
                pair = (chosen[name], chosen[producer])
                if None in pair or pair[0] == pair[1] or NATIVE not in pair:
                    continue
                native_side = name if pair[0] == NATIVE else producer
                fate_ref = pair[1] if pair[0] == NATIVE else pair[0]
                task = ctx.tasks[native_side]
                if task.entry is None or task.entry.fate_component is None or task.provider_path is not None:
                    ctx.problems.add(
                        ctx.doc,
                        (*task.path, "component_ref"),
                        f"task {native_side} runs natively but its model connects it to {name if native_side == producer else producer}, "
                        f"which runs {fate_ref}: a model passes only between tasks of one provider",
                    )
                    chosen[native_side] = None
                    continue
                chosen[native_side] = fate_ref
                changed = True


def _provider(ctx: _Context, task: _Task, providers: Sequence[ProviderInfo] | None) -> str | None:
    """The provider running ``task`` (:mod:`fate_airflow.dsl.selection`); None after a problem."""
    if task.entry is None or task.ref is None:
        return None
    entry, value = task.entry, task.conf.get("provider")
    explicit: Explicit | None = None
    if value is not None and task.provider_path is not None:
        job_wide = task.provider_path[:3] == ("dag", "conf", "task")
        # FATE-Flow's own components (the table reader) are not provider components: a job-wide
        # provider does not move them; naming a provider on the task itself still does (and fails).
        if not (job_wide and entry.native and entry.fate_component is None):
            explicit = Explicit(value, ctx.doc, task.provider_path)
    for alias in ctx.aliases:
        if not alias.parties.intersection(task.running):
            continue
        layers: list[tuple[Mapping[str, Any], FieldPath]] = [
            (alias.conf, ("dag", "party_tasks", alias.name, "conf"))
        ]
        if task.name in alias.tasks:
            layers.append((alias.tasks[task.name].conf, (*alias.tasks[task.name].path, "conf")))
        for layer, lpath in layers:
            if layer.get("provider") is not None and layer["provider"] != value:
                ctx.problems.add(
                    ctx.doc,
                    (*lpath, "provider"),
                    f"one provider runs task {task.name} at every party: set it in "
                    f"dag.tasks.{task.name}.conf.provider (or dag.conf.task.provider), not per party",
                )
    inputs = {(slot.kind, slot.key) for slot in task.slots}
    for alias in ctx.aliases:
        if task.name in alias.tasks and alias.parties.intersection(task.running):
            inputs.update((slot.kind, slot.key) for slot in alias.tasks[task.name].slots)
    gap = native_gap(entry.implementation, task.stage, inputs, task.parameters) if entry.native else None
    want = Want(
        task.name,
        task.ref,
        entry.native,
        entry.fate_component,
        ctx.doc,
        (*task.path, "component_ref"),
        native_gap=gap,
    )
    return select_provider(ctx.problems, want, explicit, providers)


def _fate_roles_only(
    ctx: _Context, task: _Task, shares: list[PartyTask], inputs: list[InputRef], provider: str
) -> tuple[list[PartyTask], list[InputRef]]:
    """Shares and inputs without the roles FATE's component does not run at (e.g. evaluation at the arbiter).

    Parties listed explicitly at such a role are a problem (an explicit party is never dropped silently).
    """
    entry = task.entry
    if entry is None or entry.fate_roles is None:
        return shares, inputs
    roles = entry.fate_roles
    if task.explicit is not None:
        for role in sorted({p.role for p in task.explicit if p.role not in roles}, key=ROLE_ORDER.index):
            ctx.problems.add(
                ctx.doc,
                (*task.path, "parties"),
                f"component {task.ref!r} on provider {provider} does not run at role {role} "
                f"(FATE 2.2's runs at {', '.join(roles)})",
            )
    kept = [s for s in shares if s.party.role in roles]
    trimmed: list[InputRef] = []
    for ref in inputs:
        if ref.parties is not None:
            parties = tuple(p for p in ref.parties if p.role in roles)
            if not parties:
                continue
            ref = replace(ref, parties=parties)
        trimmed.append(ref)
    return kept, trimmed


def _supported(
    ctx: _Context, entry: CatalogueEntry, ref: str, raw: object, explicit: list[Party], path: FieldPath
) -> list[Party]:
    """``explicit`` without the parties at roles the component does not support.

    Each such role is recorded as a problem: unlike an implicit party, an explicit one is never dropped
    silently.
    """
    reported: set[str] = set()
    for i, item in enumerate(raw if isinstance(raw, list) else []):
        role = item.get("role") if isinstance(item, Mapping) else None
        if role in ROLE_ORDER and role not in entry.roles_v2 and role not in reported:
            reported.add(role)
            ctx.problems.add(
                ctx.doc,
                (*path, i, "role"),
                f"component {ref!r} does not run at role {role} (it runs at {', '.join(entry.roles_v2)})",
            )
    return [p for p in explicit if p.role in entry.roles_v2]


def _check_table_params(ctx: _Context, parameters: Mapping[str, Any], path: FieldPath) -> None:
    for part in ("namespace", "name"):
        if parameters.get(part) is not None:
            check_table_part(ctx.problems, ctx.doc, parameters[part], (*path, part), part)


def _parse_aliases(ctx: _Context, dag: Mapping[str, Any]) -> None:
    doc, problems = ctx.doc, ctx.problems
    section = get_mapping(problems, doc, dag, "party_tasks", ("dag", "party_tasks"))
    for alias, body in (section or {}).items():
        path: FieldPath = ("dag", "party_tasks", alias)
        if not isinstance(body, Mapping):
            problems.add(doc, path, f"expected a mapping, got {type_name(body)}")
            continue
        if body.get("parties") is None:
            problems.add(doc, (*path, "parties"), "missing (required)")
            members: list[Party] = []
        else:
            members = _party_list(doc, problems, body["parties"], (*path, "parties"), known=ctx.known) or []
        conf = get_mapping(problems, doc, body, "conf", (*path, "conf")) or {}
        tasks: dict[str, _AliasTask] = {}
        for name, tbody in (get_mapping(problems, doc, body, "tasks", (*path, "tasks")) or {}).items():
            tpath: FieldPath = (*path, "tasks", name)
            if name not in ctx.tasks:
                problems.add(
                    doc, tpath, f"no task {name!r} in dag.tasks{did_you_mean(name, list(ctx.tasks))}"
                )
                continue
            if not isinstance(tbody, Mapping):
                problems.add(doc, tpath, f"expected a mapping, got {type_name(tbody)}")
                continue
            parameters = get_mapping(problems, doc, tbody, "parameters", (*tpath, "parameters")) or {}
            entry = ctx.tasks[name].entry
            if entry is not None and entry.implementation == READER:
                _check_table_params(ctx, parameters, (*tpath, "parameters"))
            tasks[name] = _AliasTask(
                parameters,
                get_mapping(problems, doc, tbody, "conf", (*tpath, "conf")) or {},
                _parse_slots(doc, problems, tbody, (*tpath, "inputs"), alias),
                tpath,
            )
        ctx.aliases.append(_Alias(alias, frozenset(members), conf, tasks))


def _running(ctx: _Context, task: _Task) -> list[Party]:
    if task.entry is None:
        return []
    if task.explicit is not None:
        wanted = set(task.explicit)
        return [p for p in ctx.parties if p in wanted]
    return [p for p in ctx.parties if p.role in task.entry.roles_v2]


def _spec_filter(ctx: _Context, task: _Task, spec: _Spec) -> frozenset[Party] | None:
    """The parties named by the spec's ``parties`` (or older ``roles``) key; None if it has neither."""
    doc, problems = ctx.doc, ctx.problems
    if spec.body.get("parties") is not None:
        listed = _party_list(doc, problems, spec.body["parties"], (*spec.path, "parties"), known=ctx.known)
        for party in listed or []:
            if task.entry is not None and party not in task.running:
                problems.add(
                    doc,
                    (*spec.path, "parties"),
                    f"task {task.name!r} does not run at {party.role} {party.party_id}",
                )
        return frozenset(listed or [])
    roles = spec.body.get("roles")
    if roles is None:
        return None
    if not isinstance(roles, list):
        problems.add(doc, (*spec.path, "roles"), f"expected a list of roles, got {type_name(roles)}")
        return frozenset()
    chosen: set[Party] = set()
    for i, role in enumerate(roles):
        if check_role(problems, doc, role, (*spec.path, "roles", i)) is None:
            continue
        at_role = [p for p in task.running if p.role == role]
        if not at_role and task.entry is not None:
            problems.add(doc, (*spec.path, "roles", i), f"task {task.name!r} does not run at any {role}")
        chosen.update(at_role)
    return frozenset(chosen)


def _spec_ref(ctx: _Context, slot: _Slot, spec: _Spec) -> InputRef | None:
    """The InputRef of one spec without ``parties``; records problems in the spec."""
    doc, problems, body, path = ctx.doc, ctx.problems, spec.body, spec.path
    kind: InputKind = slot.kind  # type: ignore[assignment]
    if spec.source == "data_warehouse":
        if body.get("name") is None and body.get("namespace") is None:
            if body.get("job_id") is not None or body.get("producer_task") is not None:
                problems.add(doc, path, "only stored tables named by name and namespace are supported")
            else:
                problems.add(doc, path, "missing name and namespace of the stored table")
            return None
        ok = True
        for part in ("namespace", "name"):
            if body.get(part) is None:
                problems.add(doc, (*path, part), "missing (required)")
                ok = False
            elif not check_table_part(problems, doc, body[part], (*path, part), part):
                ok = False
        if not ok:
            return None
        return InputRef(
            kind=kind, key=slot.key, source="data_warehouse", namespace=body["namespace"], name=body["name"]
        )
    producer = get_str(problems, doc, body, "producer_task", (*path, "producer_task"), required=True)
    output = get_str(
        problems, doc, body, "output_artifact_key", (*path, "output_artifact_key"), required=True
    )
    if producer is None or output is None:
        return None
    if spec.source == "model_warehouse":
        model_id = body.get("model_id", ctx.model_warehouse.get("model_id"))
        model_version = body.get("model_version", ctx.model_warehouse.get("model_version"))
        return InputRef(
            kind=kind,
            key=slot.key,
            source="model_warehouse",
            producer_task=producer,
            output_key=output,
            model_id=None if model_id is None else str(model_id),
            model_version=None if model_version is None else str(model_version),
        )
    upstream = ctx.tasks.get(producer)
    if upstream is None:
        problems.add(
            doc,
            (*path, "producer_task"),
            f"unknown task {producer!r}{did_you_mean(producer, list(ctx.tasks))}",
        )
        return None
    if upstream.entry is not None:
        declared = upstream.entry.outputs_v2
        found = upstream.entry.output_kind_v2(output)
        if found != slot.kind:
            listed = ", ".join(declared.get(slot.kind, ())) or "none"
            problems.add(
                doc,
                (*path, "output_artifact_key"),
                f"task {producer!r} ({upstream.ref}) has no {slot.kind} output {output!r} "
                f"(its {slot.kind} outputs: {listed})",
            )
            return None
    return InputRef(kind=kind, key=slot.key, source="task", producer_task=producer, output_key=output)


def _aliases_of(ctx: _Context, party: Party) -> list[_Alias]:
    return [a for a in ctx.aliases if party in a.parties]


def _resolve_inputs(ctx: _Context, task: _Task) -> list[InputRef]:
    """Task inputs in file order (task-level slots, then party_tasks slots by alias order)."""
    slots = list(task.slots)
    for alias in ctx.aliases:
        if task.name in alias.tasks:
            slots.extend(alias.tasks[task.name].slots)
    # Which slot each party actually uses for each (kind, key): the last alias wins over the task.
    effective: dict[tuple[str, str], dict[Party, str | None]] = {}
    for party in task.running:
        for slot in task.slots:
            effective.setdefault((slot.kind, slot.key), {})[party] = None
        for alias in _aliases_of(ctx, party):
            for slot in alias.tasks[task.name].slots if task.name in alias.tasks else []:
                effective.setdefault((slot.kind, slot.key), {})[party] = alias.name
    refs: list[InputRef] = []
    for slot in slots:
        users = effective.get((slot.kind, slot.key), {})
        receivers = [p for p in task.running if p in users and users[p] == slot.origin]
        for spec in slot.specs:
            ref = _spec_ref(ctx, slot, spec)
            chosen = _spec_filter(ctx, task, spec)
            if ref is None or not receivers:
                continue
            if chosen is not None:
                _check_producer_runs(ctx, spec, ref, chosen)
                parties: tuple[Party, ...] | None = tuple(p for p in receivers if p in chosen)
            elif slot.origin is None and receivers == task.running:
                parties = None
            else:
                parties = tuple(receivers)
            if parties == ():
                continue
            refs.append(
                InputRef(
                    kind=ref.kind,
                    key=ref.key,
                    source=ref.source,
                    producer_task=ref.producer_task,
                    output_key=ref.output_key,
                    parties=parties,
                    model_id=ref.model_id,
                    model_version=ref.model_version,
                    namespace=ref.namespace,
                    name=ref.name,
                )
            )
    return refs


def _check_producer_runs(ctx: _Context, spec: _Spec, ref: InputRef, chosen: frozenset[Party]) -> None:
    if ref.source != "task" or ref.producer_task is None:
        return
    producer = ctx.tasks[ref.producer_task]
    for party in sorted(chosen, key=ctx.parties.index):
        if party not in producer.running and producer.entry is not None:
            ctx.problems.add(
                ctx.doc,
                spec.path,
                f"producer task {producer.name!r} does not run at {party.role} {party.party_id}",
            )


def _shares(ctx: _Context, task: _Task) -> list[PartyTask]:
    shares: list[PartyTask] = []
    for party in task.running:
        layers = [a.tasks[task.name] for a in _aliases_of(ctx, party) if task.name in a.tasks]
        parameters = merge_all(task.parameters, *(t.parameters for t in layers))
        conf_layers: list[Mapping[str, Any]] = []
        for alias in _aliases_of(ctx, party):
            conf_layers.append(alias.conf)
            if task.name in alias.tasks:
                conf_layers.append(alias.tasks[task.name].conf)
        if task.entry is not None and task.entry.implementation == READER:
            for part in ("namespace", "name"):
                if parameters.get(part) is None:
                    ctx.problems.add(
                        ctx.doc,
                        (*task.path, "parameters", part),
                        f"missing (required): the table {task.name} reads at {party.role} {party.party_id} "
                        f"(set it here or in dag.party_tasks.<alias>.tasks.{task.name}.parameters)",
                    )
        shares.append(PartyTask(party, parameters, merge_all(*conf_layers)))
    return shares


__all__ = ["FORMAT", "SUPPORTED_SCHEMAS", "plan_v2"]
