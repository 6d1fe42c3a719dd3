"""FATE 1.x DSL v2: a ``dsl`` JSON (components and their inputs) plus a runtime ``conf`` JSON.

Semantics follow FATE-Flow 1.11 (see ``fate-flow.md`` §2.2):

* parties come from ``conf.role`` (``{role: [party ids]}``); a party's *index* is its position there;
* a component's parameters at a party are ``component_parameters.common.<cpn>`` with the matching
  ``component_parameters.role.<role>.<key>.<cpn>`` entries deep-merged over it, where ``<key>`` is
  ``"all"``, an index ``"0"`` or several ``"0|1"``. When several keys match, the more specific wins:
  ``"all"`` first, then multi-index keys, then the single index (each group in file order);
* ``need_run: false`` removes the party from the task (FATE marks it PASS there);
* a component never runs at a role it does not support (FATE drops it silently, e.g. no Reader at the
  arbiter);
* edges are ``<cpn>.<output>`` references in ``input.{data,model,isometric_model,cache}``;
  ``pipeline.<cpn>.<model>`` references (predict jobs) name a stored model and are not edges;
* the provider running a component is the conf's ``provider.common.<cpn>``, else the DSL's
  ``components.<cpn>.provider``, else chosen by :mod:`fate_airflow.dsl.selection`; a module this
  project does not implement runs on the FATE provider when :mod:`fate_airflow.dsl.v1_to_v2` maps it
  onto a FATE 2.2 component, with its parameters translated by that module's table.

DSL v1 (FATE ≤ 1.6: ``args.*`` inputs, ``role_parameters``, ``algorithm_parameters``) is recognised
and rejected with conversion advice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
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
    plural,
    type_name,
)
from fate_airflow.dsl.catalogue import BY_COMPONENT_REF, BY_MODULE, CatalogueEntry, lookup_module
from fate_airflow.dsl.graph import topological_order
from fate_airflow.dsl.merge import deep_merge
from fate_airflow.dsl.plan import JobPlan, PartyTask, PlanFormat, TaskPlan
from fate_airflow.dsl.selection import Explicit, Want, native_gap, select_provider
from fate_airflow.dsl.v1_to_v2 import MODULES, translate

FORMAT: PlanFormat = "fate-1.x-dsl-v2"
INPUT_KINDS: tuple[str, ...] = ("data", "model", "isometric_model", "cache")
OUTPUT_KINDS: tuple[str, ...] = ("data", "model", "cache")
#: Which kind of upstream output each input kind consumes.
_PRODUCER_KIND = {"data": "data", "model": "model", "isometric_model": "model", "cache": "cache"}
JOB_TYPES: tuple[str, ...] = ("train", "predict")
READER = "reader@1.0.0"

V1_ADVICE = (
    "this is a FATE DSL v1 job (FATE <= 1.6), which is not supported; convert it to DSL v2: "
    'read tables with a Reader component instead of "args.*" data inputs (its table goes in '
    "component_parameters.role.<role>.<idx>.<reader>.table), move "
    "role_parameters.<role>.<cpn>.<param>: [one value per party] to "
    "component_parameters.role.<role>.<idx>.<cpn>.<param>, move algorithm_parameters to "
    'component_parameters.common, and set "dsl_version": 2 in the conf'
)


@dataclass
class _Ref:
    kind: str
    key: str
    text: object
    path: FieldPath


@dataclass
class _Component:
    name: str
    module: str | None
    entry: CatalogueEntry | None
    refs: list[_Ref] = field(default_factory=list)
    outputs: dict[str, tuple[str, ...]] = field(default_factory=dict)
    provider: object = None  # components.<c>.provider as written


@dataclass
class _RoleKey:
    """One ``component_parameters.role.<role>.<key>`` entry."""

    role: str
    key: str
    indices: frozenset[int]
    rank: int  # 0 = "all", 1 = several indices, 2 = one index: higher wins
    by_component: Mapping[str, Any]


# --------------------------------------------------------------------------- DSL v1 detection


def _v1_evidence(dsl: Doc, conf: Doc | None) -> tuple[Doc, FieldPath, str] | None:
    components = dsl.data.get("components")
    if isinstance(components, Mapping):
        for name, body in components.items():
            inputs = body.get("input") if isinstance(body, Mapping) else None
            data = inputs.get("data") if isinstance(inputs, Mapping) else None
            if not isinstance(data, Mapping):
                continue
            for key, refs in data.items():
                for i, ref in enumerate(refs if isinstance(refs, list) else []):
                    if isinstance(ref, str) and ref.startswith("args."):
                        path = ("components", name, "input", "data", key, i)
                        return dsl, path, f'"{ref}" is a DSL v1 data input'
    if conf is not None:
        for key in ("role_parameters", "algorithm_parameters"):
            if key in conf.data:
                return conf, (key,), f"{key} is a DSL v1 section"
        version = conf.data.get("dsl_version")
        if version in (1, "1"):
            return conf, ("dsl_version",), "dsl_version 1"
    return None


# --------------------------------------------------------------------------- dsl file


def _parse_components(dsl: Doc, problems: Problems) -> dict[str, _Component]:
    section = get_mapping(problems, dsl, dsl.data, "components", ("components",), required=True)
    if section is None:
        return {}
    if not section:
        problems.add(dsl, ("components",), "no components")
    components: dict[str, _Component] = {}
    for name, body in section.items():
        path: FieldPath = ("components", name)
        check_component_name(problems, dsl, name, path, "component")
        if not isinstance(body, Mapping):
            problems.add(dsl, path, f"expected a mapping, got {type_name(body)}")
            components[name] = _Component(name, None, None)
            continue
        module = get_str(problems, dsl, body, "module", (*path, "module"), required=True)
        entry = lookup_module(module) if module else None
        if module and entry is None:
            hits = close_names(module, BY_MODULE)
            hint = f"; close known names: {', '.join(hits)}" if hits else ""
            other = BY_COMPONENT_REF.get(module)
            if other is not None:
                modules = " or ".join(other.modules) or "none"
                hint = f"; {module!r} is a FATE 2.x component_ref (its 1.x module: {modules})"
            problems.add(
                dsl, (*path, "module"), f"unknown component module {module!r}: not in the catalogue{hint}"
            )
        component = _Component(name, module, entry, provider=body.get("provider"))
        _parse_outputs(dsl, problems, body, path, component)
        _parse_inputs(dsl, problems, body, path, component)
        components[name] = component
    return components


def _parse_outputs(
    dsl: Doc, problems: Problems, body: Mapping[str, Any], path: FieldPath, component: _Component
) -> None:
    outputs = get_mapping(problems, dsl, body, "output", (*path, "output"))
    for kind, names in (outputs or {}).items():
        kpath = (*path, "output", kind)
        if kind not in OUTPUT_KINDS:
            problems.add(
                dsl, kpath, f"unknown output kind {kind!r}; expected one of {', '.join(OUTPUT_KINDS)}"
            )
            continue
        if not isinstance(names, list):
            problems.add(dsl, kpath, f"expected a list of output names, got {type_name(names)}")
            continue
        good: list[str] = []
        for i, out in enumerate(names):
            if isinstance(out, str) and out and "." not in out:
                good.append(out)
            else:
                problems.add(dsl, (*kpath, i), f"invalid output name {out!r}: a non-empty string without '.'")
        component.outputs[kind] = tuple(good)


def _parse_inputs(
    dsl: Doc, problems: Problems, body: Mapping[str, Any], path: FieldPath, component: _Component
) -> None:
    inputs = get_mapping(problems, dsl, body, "input", (*path, "input"))
    for kind, value in (inputs or {}).items():
        kpath = (*path, "input", kind)
        if kind not in INPUT_KINDS:
            problems.add(dsl, kpath, f"unknown input kind {kind!r}; expected one of {', '.join(INPUT_KINDS)}")
            continue
        if kind == "data":
            if not isinstance(value, Mapping):
                problems.add(dsl, kpath, f"expected a mapping of data inputs, got {type_name(value)}")
                continue
            for key, refs in value.items():
                _collect_refs(dsl, problems, component, kind, key, refs, (*kpath, key))
        else:
            _collect_refs(dsl, problems, component, kind, kind, value, kpath)


def _collect_refs(
    dsl: Doc, problems: Problems, component: _Component, kind: str, key: str, refs: object, path: FieldPath
) -> None:
    if not isinstance(refs, list):
        problems.add(
            dsl, path, f'expected a list of "<component>.<output>" references, got {type_name(refs)}'
        )
        return
    for i, ref in enumerate(refs):
        component.refs.append(_Ref(kind, key, ref, (*path, i)))


def _resolve_refs(
    dsl: Doc,
    problems: Problems,
    components: Mapping[str, _Component],
    component: _Component,
    model_id: str | None,
    model_version: str | None,
) -> list[InputRef]:
    """The component's inputs; records unknown components/outputs and malformed references."""
    resolved: list[InputRef] = []
    for ref in component.refs:
        kind: InputKind = ref.kind  # type: ignore[assignment]
        if not isinstance(ref.text, str):
            problems.add(
                dsl, ref.path, f'expected a "<component>.<output>" string, got {type_name(ref.text)}'
            )
            continue
        if ref.text.startswith("pipeline."):
            parts = ref.text.split(".")
            if len(parts) != 3 or not all(parts):
                problems.add(
                    dsl, ref.path, f'invalid reference {ref.text!r}: expected "pipeline.<component>.<model>"'
                )
            elif kind not in ("model", "isometric_model"):
                problems.add(
                    dsl,
                    ref.path,
                    f"{ref.text!r} names a stored model; use it in input.model, not input.{kind}",
                )
            else:
                resolved.append(
                    InputRef(
                        kind=kind,
                        key=ref.key,
                        source="model_warehouse",
                        producer_task=parts[1],
                        output_key=parts[2],
                        model_id=model_id,
                        model_version=model_version,
                    )
                )
            continue
        producer, _, output = ref.text.partition(".")
        if not producer or not output:
            problems.add(dsl, ref.path, f'invalid reference {ref.text!r}: expected "<component>.<output>"')
            continue
        upstream = components.get(producer)
        if upstream is None:
            problems.add(
                dsl,
                ref.path,
                f"unknown component {producer!r} in {ref.text!r}{did_you_mean(producer, list(components))}",
            )
            continue
        wanted = _PRODUCER_KIND[kind]
        declared = upstream.outputs.get(wanted, ())
        if output not in declared:
            listed = ", ".join(declared) if declared else "none"
            problems.add(
                dsl,
                ref.path,
                f"component {producer!r} has no {wanted} output {output!r} (its {wanted} outputs: {listed})",
            )
            continue
        resolved.append(
            InputRef(kind=kind, key=ref.key, source="task", producer_task=producer, output_key=output)
        )
    return resolved


# --------------------------------------------------------------------------- conf file


@dataclass
class _Conf:
    roles: dict[str, list[str | None]] = field(default_factory=dict)
    initiator: Party | None = None
    job_common: dict[str, Any] = field(default_factory=dict)
    common: Mapping[str, Any] = field(default_factory=dict)
    role_keys: list[_RoleKey] = field(default_factory=list)


def _parse_conf(conf: Doc, problems: Problems, components: Mapping[str, _Component]) -> _Conf:
    out = _Conf()
    data = conf.data
    version = data.get("dsl_version")
    if version is None:
        problems.add(
            conf, ("dsl_version",), 'missing; FATE reads a conf without it as DSL v1: add "dsl_version": 2'
        )
    elif isinstance(version, bool) or version not in (2, "2"):
        problems.add(conf, ("dsl_version",), f'unsupported dsl_version {version!r}; set "dsl_version": 2')

    role_section = get_mapping(problems, conf, data, "role", ("role",), required=True)
    seen: set[tuple[str, str]] = set()
    for role, ids in (role_section or {}).items():
        path: FieldPath = ("role", role)
        if check_role(problems, conf, role, path) is None:
            continue
        if not isinstance(ids, list):
            problems.add(conf, path, f"expected a list of party ids, got {type_name(ids)}")
            continue
        if not ids:
            problems.add(conf, path, "empty list: give at least one party id or leave the role out")
        valid: list[str | None] = []
        for i, raw in enumerate(ids):
            pid = check_party_id(problems, conf, raw, (*path, i))
            if pid is None:
                valid.append(None)  # keep positions so later indices stay right
                continue
            if (role, pid) in seen:
                problems.add(conf, (*path, i), f"{role} {pid} listed twice")
                valid.append(None)
                continue
            seen.add((role, pid))
            valid.append(pid)
        out.roles[role] = valid
    if role_section is not None and not any(out.roles.values()):
        problems.add(conf, ("role",), "no parties")

    init = get_mapping(problems, conf, data, "initiator", ("initiator",), required=True)
    if init is not None:
        init_role = check_role(problems, conf, init.get("role"), ("initiator", "role"))
        init_pid: str | None = None
        if "party_id" in init:
            init_pid = check_party_id(problems, conf, init["party_id"], ("initiator", "party_id"))
        else:
            problems.add(conf, ("initiator", "party_id"), "missing (required)")
        if init_role is not None and init_pid is not None:
            if init_pid in out.roles.get(init_role, []):
                out.initiator = Party(init_role, init_pid)
            elif role_section is not None:
                problems.add(
                    conf,
                    ("initiator",),
                    f"{init_role} {init_pid} is not a party of the job (see role.{init_role})",
                )

    job_parameters = get_mapping(problems, conf, data, "job_parameters", ("job_parameters",))
    if job_parameters is not None:
        common = get_mapping(problems, conf, job_parameters, "common", ("job_parameters", "common"))
        get_mapping(problems, conf, job_parameters, "role", ("job_parameters", "role"))
        out.job_common = dict(common or {})

    _parse_component_parameters(conf, problems, components, out)
    return out


def _index_key(
    conf: Doc, problems: Problems, role: str, key: str, count: int, path: FieldPath
) -> tuple[frozenset[int], int] | None:
    """Indices named by ``key`` (``all``, ``0``, ``0|1``) and its rank, or None if invalid."""
    if key == "all":
        return frozenset(range(count)), 0
    parts = key.split("|")
    if not all(p.isdigit() for p in parts):
        problems.add(conf, path, f'invalid party index key {key!r}: use "0", "0|1" or "all"')
        return None
    indices = [int(p) for p in parts]
    ok = True
    for index in indices:
        if index >= count:
            problems.add(conf, path, f"{role} index {index} out of range ({plural(count, role)})")
            ok = False
    if not ok:
        return None
    return frozenset(indices), 1 if len(parts) > 1 else 2


def _check_component_params(
    conf: Doc,
    problems: Problems,
    components: Mapping[str, _Component],
    by_component: Mapping[str, Any],
    path: FieldPath,
) -> None:
    for cpn, params in by_component.items():
        cpath = (*path, cpn)
        if cpn not in components:
            problems.add(conf, cpath, f"no component {cpn!r} in the dsl{did_you_mean(cpn, list(components))}")
            continue
        if not isinstance(params, Mapping):
            problems.add(conf, cpath, f"expected a mapping of parameters, got {type_name(params)}")
            continue
        if "need_run" in params and not isinstance(params["need_run"], bool):
            problems.add(
                conf, (*cpath, "need_run"), f"expected true or false, got {type_name(params['need_run'])}"
            )
        entry = components[cpn].entry
        if entry is not None and entry.implementation == READER and "table" in params:
            table = params["table"]
            if not isinstance(table, Mapping):
                problems.add(
                    conf, (*cpath, "table"), f"expected a mapping {{name, namespace}}, got {type_name(table)}"
                )
            else:
                for part in ("namespace", "name"):
                    if part in table:
                        check_table_part(problems, conf, table[part], (*cpath, "table", part), part)


def _parse_component_parameters(
    conf: Doc, problems: Problems, components: Mapping[str, _Component], out: _Conf
) -> None:
    section = get_mapping(problems, conf, conf.data, "component_parameters", ("component_parameters",))
    if section is None:
        return
    common = get_mapping(problems, conf, section, "common", ("component_parameters", "common"))
    if common is not None:
        _check_component_params(conf, problems, components, common, ("component_parameters", "common"))
        out.common = {k: v for k, v in common.items() if isinstance(v, Mapping)}
    by_role = get_mapping(problems, conf, section, "role", ("component_parameters", "role"))
    for role, by_key in (by_role or {}).items():
        rpath: FieldPath = ("component_parameters", "role", role)
        if check_role(problems, conf, role, rpath) is None:
            continue
        if not isinstance(by_key, Mapping):
            problems.add(conf, rpath, f"expected a mapping of party index keys, got {type_name(by_key)}")
            continue
        count = len(out.roles.get(role, []))
        for key, by_component in by_key.items():
            kpath = (*rpath, key)
            parsed = _index_key(conf, problems, role, key, count, kpath)
            if not isinstance(by_component, Mapping):
                problems.add(
                    conf, kpath, f"expected a mapping of component parameters, got {type_name(by_component)}"
                )
                continue
            _check_component_params(conf, problems, components, by_component, kpath)
            if parsed is not None:
                indices, rank = parsed
                params = {k: v for k, v in by_component.items() if isinstance(v, Mapping)}
                out.role_keys.append(_RoleKey(role, key, indices, rank, params))
    out.role_keys.sort(key=lambda rk: rk.rank)  # stable: file order within each rank


def _parameters(conf: _Conf, component: str, role: str, index: int) -> dict[str, Any]:
    params = deep_merge({}, conf.common.get(component) or {})
    for rk in conf.role_keys:
        if rk.role == role and index in rk.indices and component in rk.by_component:
            params = deep_merge(params, rk.by_component[component])
    return params


# --------------------------------------------------------------------------- plan


def plan_v1(
    dsl: Doc,
    conf: Doc | None,
    problems: Problems,
    *,
    source: str,
    providers: Sequence[ProviderInfo] | None = None,
) -> JobPlan | None:
    """Validate a 1.x DSL v2 job and build its plan.

    :param dsl: the parsed ``dsl`` file.
    :param conf: the parsed runtime conf (with trigger overrides merged in), None if not given.
    :param problems: receives every problem found.
    :param source: the plan's ``source`` text.
    :param providers: the providers installed at this party (None: not known, see
        :mod:`fate_airflow.dsl.selection`).
    :returns: the plan, or None if any problem was found.
    """
    evidence = _v1_evidence(dsl, conf)
    if evidence is not None:
        doc, path, what = evidence
        problems.add(doc, path, f"{what}: {V1_ADVICE}")
        return None
    components = _parse_components(dsl, problems)
    if conf is None:
        problems.add(dsl, (), "a FATE 1.x DSL needs its runtime conf: pass --conf CONF_FILE")
        parsed = _Conf()
    else:
        parsed = _parse_conf(conf, problems, components)

    stage = _stage(dsl, conf, problems, components, parsed)
    model_id = _optional_text(parsed.job_common.get("model_id"))
    model_version = _optional_text(parsed.job_common.get("model_version"))
    inputs = {
        c.name: _resolve_refs(dsl, problems, components, c, model_id, model_version)
        for c in components.values()
    }
    upstream = {
        name: sorted({i.producer_task for i in refs if i.source == "task" and i.producer_task})
        for name, refs in inputs.items()
    }
    order, cycles = topological_order(list(components), upstream)
    for cycle in cycles:
        problems.add(dsl, ("components",), f"cycle: {' -> '.join(cycle)}")
    if conf is not None:
        _check_reader_tables(conf, problems, components, parsed)
        _check_roles_present(dsl, problems, components, parsed)
    chosen = {
        name: _provider(dsl, conf, problems, c, providers, _native_gap(c, stage, parsed))
        for name, c in components.items()
    }
    if conf is not None:
        for name, component in components.items():
            if chosen[name] not in (None, NATIVE):
                _check_translation(conf, problems, component, parsed)
    if problems or parsed.initiator is None:
        return None

    parties = [
        Party(role, pid) for role in ROLE_ORDER for pid in parsed.roles.get(role, []) if pid is not None
    ]
    task_conf: dict[str, Any] = {}
    if "timeout" in parsed.job_common:
        task_conf["timeout"] = parsed.job_common["timeout"]
    tasks: list[TaskPlan] = []
    for name in order:
        component = components[name]
        assert component.entry is not None and component.module is not None  # no problems recorded
        provider = chosen[name] or NATIVE
        shares: list[PartyTask] = []
        for role in ROLE_ORDER:
            if role not in component.entry.roles_v1:
                continue
            for index, pid in enumerate(parsed.roles.get(role, [])):
                params = _parameters(parsed, name, role, index)
                if params.pop("need_run", True) is False or pid is None:
                    continue
                if provider != NATIVE:
                    params, errors = translate(component.module, params)
                    for _, message in errors:  # only checks spanning several fields get here
                        assert conf is not None
                        problems.add(conf, ("component_parameters", "common", name), message)
                shares.append(PartyTask(Party(role, pid), params))
        tasks.append(
            TaskPlan(
                name=name,
                component=component.module,
                implementation=component.entry.implementation,
                upstream=tuple(upstream[name]),
                parties=tuple(shares),
                inputs=tuple(inputs[name]),
                outputs=dict(component.outputs),
                stage=stage,
                conf=dict(task_conf),
                provider=provider,
            )
        )
    if problems:
        return None
    return JobPlan(
        format=FORMAT,
        stage=stage,
        initiator=parsed.initiator,
        parties=tuple(parties),
        tasks=tuple(tasks),
        job_parameters=dict(parsed.job_common),
        source=source,
    )


def _native_gap(component: _Component, stage: str, parsed: _Conf) -> str | None:
    """What a 1.x component asks of its native implementation that it does not do (see native_gap).

    Decided from its common parameters (cross validation, ciphers, fast SecureBoost's modes);
    HeteroFastSecureBoost itself (FATE 1.x defaults it to ``work_mode: mix``) is never a plain
    SecureBoost.
    """
    if component.entry is None or not component.entry.native:
        return None
    if component.module == "HeteroFastSecureBoost":
        return "fast SecureBoost (HeteroFastSecureBoost mix/layered trees)"
    params = parsed.common.get(component.name)
    return native_gap(
        component.entry.implementation, stage, (), params if isinstance(params, Mapping) else {}
    )


def _provider(
    dsl: Doc,
    conf: Doc | None,
    problems: Problems,
    component: _Component,
    providers: Sequence[ProviderInfo] | None,
    gap: str | None = None,
) -> str | None:
    """The provider running ``component`` (:mod:`fate_airflow.dsl.selection`); None after a problem."""
    if component.entry is None or component.module is None:
        return None
    name = component.name
    explicit: Explicit | None = None
    if component.provider is not None:
        explicit = Explicit(component.provider, dsl, ("components", name, "provider"))
    section = conf.data.get("provider") if conf is not None else None
    if conf is not None and section is not None:
        if not isinstance(section, Mapping):
            problems.add(conf, ("provider",), f"expected a mapping, got {type_name(section)}")
        else:
            common = section.get("common")
            if isinstance(common, Mapping) and common.get(name) is not None:
                # FATE-Flow 1.x: the conf's provider wins over the DSL's.
                explicit = Explicit(common[name], conf, ("provider", "common", name))
            by_role = section.get("role")
            if isinstance(by_role, Mapping) and by_role:
                problems.add(
                    conf,
                    ("provider", "role"),
                    "one provider runs a component at every party: use provider.common.<component>",
                )
    want = Want(
        name,
        component.module,
        component.entry.native,
        MODULES.get(component.module),
        dsl,
        ("components", name, "module"),
        native_gap=gap,
    )
    return select_provider(problems, want, explicit, providers)


def _check_translation(conf: Doc, problems: Problems, component: _Component, parsed: _Conf) -> None:
    """Every parameter block of a component running on the FATE provider must translate to FATE 2.2's.

    Blocks are checked where they are written (common, then each role key), so problems name the field.
    """
    assert component.module is not None
    name = component.name
    blocks: list[tuple[FieldPath, Mapping[str, Any]]] = []
    if name in parsed.common:
        blocks.append((("component_parameters", "common", name), parsed.common[name]))
    for rk in parsed.role_keys:
        if name in rk.by_component:
            blocks.append((("component_parameters", "role", rk.role, rk.key, name), rk.by_component[name]))
    for path, block in blocks:
        params = {k: v for k, v in block.items() if k != "need_run"}
        _, errors = translate(component.module, params)
        for rel, message in errors:
            if rel:  # a field of this block; cross-field checks run on the merged parameters later
                problems.add(conf, (*path, *rel), message)


def _optional_text(value: object) -> str | None:
    """Model ids are strings in plans; an empty string (as in FATE's predict examples) means unset."""
    if value is None or value == "" or isinstance(value, (bool, Mapping, list)):
        return None
    return str(value)


def _stage(
    dsl: Doc, conf: Doc | None, problems: Problems, components: Mapping[str, _Component], parsed: _Conf
) -> str:
    pipeline_refs = [
        ref
        for c in components.values()
        for ref in c.refs
        if isinstance(ref.text, str) and ref.text.startswith("pipeline.")
    ]
    job_type = parsed.job_common.get("job_type")
    if job_type is None:
        return "predict" if pipeline_refs else "train"
    if job_type not in JOB_TYPES:
        assert conf is not None
        problems.add(
            conf,
            ("job_parameters", "common", "job_type"),
            f"unknown job_type {job_type!r}; expected one of {', '.join(JOB_TYPES)}",
        )
        return "train"
    if job_type == "train" and pipeline_refs:
        ref = pipeline_refs[0]
        problems.add(
            dsl,
            ref.path,
            f"{ref.text!r} refers to a stored model, which only a predict job can use "
            '(job_parameters.common.job_type is "train")',
        )
    return str(job_type)


def _check_roles_present(
    dsl: Doc, problems: Problems, components: Mapping[str, _Component], parsed: _Conf
) -> None:
    """A component whose roles the job has no party for would silently run nowhere."""
    if not any(parsed.roles.values()):
        return  # reported as "role: no parties"
    for name, component in components.items():
        entry = component.entry
        if entry is not None and not any(parsed.roles.get(role) for role in entry.roles_v1):
            problems.add(
                dsl,
                ("components", name, "module"),
                f"{component.module} runs at none of the job's parties (it runs at {', '.join(entry.roles_v1)})",
            )


def _check_reader_tables(
    conf: Doc, problems: Problems, components: Mapping[str, _Component], parsed: _Conf
) -> None:
    """Every party a Reader runs at must name its table (formats were checked where they are written)."""
    for name, component in components.items():
        if component.entry is None or component.entry.implementation != READER:
            continue
        for role in component.entry.roles_v1:
            for index, pid in enumerate(parsed.roles.get(role, [])):
                params = _parameters(parsed, name, role, index)
                if pid is None or params.get("need_run", True) is False:
                    continue
                table = params.get("table")
                where: FieldPath = ("component_parameters", "role", role, str(index), name, "table")
                if not isinstance(table, Mapping):
                    if table is None:
                        problems.add(
                            conf, where, f"missing (required): the table {name} reads at {role} {pid}"
                        )
                    continue
                for part in ("namespace", "name"):
                    if table.get(part) is None:
                        problems.add(
                            conf,
                            (*where, part),
                            f"missing (required): the table {name} reads at {role} {pid}",
                        )


__all__ = ["FORMAT", "V1_ADVICE", "plan_v1"]
