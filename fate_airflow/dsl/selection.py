"""Plan-time provider selection: which provider runs each task.

A task is run by exactly one provider at every party (:attr:`TaskPlan.provider`, a
:attr:`~fate_airflow.core.providers.ProviderInfo.ref` such as ``native`` or ``fate:2.2.0``). The rule,
per task:

1. the provider the job file names for it, if any — FATE-Flow 2.2 reads ``provider`` from the task conf
   (``dag.conf.task.provider``, overridden by ``dag.tasks.<t>.conf.provider``; FATE 1.x: the DSL's
   ``components.<c>.provider`` or the conf's ``provider.common.<c>``), in any spelling of
   :func:`~fate_airflow.core.providers.parse_provider_ref` (``fate:2.2.0@local``, ``fate==2.2.0``,
   ``native``, ...). A named provider that is not installed, or that lacks the component, is an error
   naming the field. FATE-Flow's own provider, ``fate_flow`` (its reader and upload), is this
   project's native one;
2. else ``native`` where this project implements the component and the task asks for nothing the
   native implementation lacks (:func:`native_gap`: e.g. coordinated LR's warm start, validation data
   or cross validation, SecureBoost's other ciphers, homo LR's one-vs-rest — FATE's component runs
   those tasks, or the plan fails naming the gap);
3. else the installed provider offering the component (FATE 2.2's name for it, see
   :attr:`~fate_airflow.dsl.catalogue.CatalogueEntry.fate_component`);
4. else a plan error naming the task, the component and the provider to install.

So a job fails before it starts, never halfway, and may mix providers (native reader, PSI and
SecureBoost with FATE's feature binning, or FATE's SecureBoost named by ``conf.provider``).

``providers=None`` (callers that do not know the party's installed providers, e.g. ``dsl plan``
without ``--provider-dir``) keeps the behaviour from before providers existed: components this
project does not implement plan as ``native`` and fail when they run, and an explicitly named provider
is taken as written (with its version) without checking that it is installed.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fate_airflow.core.errors import ConfigError
from fate_airflow.core.providers import NATIVE, ProviderInfo, parse_provider_ref, version_key
from fate_airflow.dsl._common import Doc, FieldPath, Problems
from fate_airflow.dsl.catalogue import BY_IMPLEMENTATION
from fate_airflow.dsl.plan import JobPlan, TaskPlan
from fate_airflow.dsl.v1_to_v2 import MODULES

#: The provider users are told to install for FATE components.
FATE_INSTALL = "fate-airflow provider install fate==2.2.0"
#: FATE-Flow's own provider (reader, upload, ...): here those components are native.
FATE_FLOW = "fate_flow"


@dataclass(frozen=True)
class Explicit:
    """A provider named in a job file.

    :param value: the value as written.
    :param doc: the document it is in.
    :param path: its field path (for problems).
    """

    value: object
    doc: Doc
    path: FieldPath


@dataclass(frozen=True)
class Want:
    """What a task needs from a provider.

    :param task: the task (component) name.
    :param component: the module / component_ref as written.
    :param native: whether the native provider implements it.
    :param fate_component: FATE 2.2's component for it, or None.
    :param doc: where to report a problem of implicit selection.
    :param path: field path of that problem (the task's ``component_ref`` / ``module``).
    :param native_gap: what the task asks for that the native implementation does not do, if anything.
    """

    task: str
    component: str
    native: bool
    fate_component: str | None
    doc: Doc
    path: FieldPath
    native_gap: str | None = None


def _truthy(parameters: Mapping[str, Any], dotted: str) -> bool:
    value: Any = parameters
    for part in dotted.split("."):
        if not isinstance(value, Mapping):
            return False
        value = value.get(part)
    return bool(value)


def native_gap(
    implementation: str, stage: str, inputs: Collection[tuple[str, str]], parameters: Mapping[str, Any]
) -> str | None:
    """What a task asks of a native implementation that it does not do, or None.

    Decided from the job file alone, before the job starts: such a task runs FATE's component of the
    same name (when installed) rather than a native one that would do less than the job asks.

    :param implementation: the catalogue implementation id (``hetero_lr@1.0.0``).
    :param stage: the task's stage.
    :param inputs: its ``(kind, key)`` inputs, e.g. ``("model", "input_model")``.
    :param parameters: its common parameters.
    """
    if implementation == "hetero_secureboost@1.0.0":
        return _secureboost_gap(stage, inputs, parameters)
    if implementation not in ("hetero_lr@1.0.0", "homo_lr@1.0.0"):
        return None
    if (
        stage == "cross_validation"
        or ("data", "cv_data") in inputs
        or _truthy(parameters, "cv_param.need_cv")
    ):
        return "cross validation"
    if ("model", "warm_start_model") in inputs or (
        stage != "predict" and ("model", "input_model") in inputs and ("data", "train_data") in inputs
    ):
        return "warm start (warm_start_model)"
    if ("data", "validate_data") in inputs:
        return "validation data during training (validate_data)"
    if implementation == "homo_lr@1.0.0":
        if _truthy(parameters, "ovr"):
            return "multi-class one-vs-rest (ovr)"
        optimizer = parameters.get("optimizer")
        method = str(optimizer.get("method") or "sgd").lower() if isinstance(optimizer, Mapping) else "sgd"
        if method not in ("sgd", "adam", "adamw", "rmsprop", "adagrad"):
            return f"optimizer method {method!r}"
    return None


def _secureboost_gap(
    stage: str, inputs: Collection[tuple[str, str]], parameters: Mapping[str, Any]
) -> str | None:
    # FATE 2.2's SecureBoost ignores validate_data too, so that is no gap. HeteroFastSecureBoost
    # (1.x) maps to the same id: only its parameters tell it apart.
    if (
        stage == "cross_validation"
        or ("data", "cv_data") in inputs
        or _truthy(parameters, "cv_param.need_cv")
    ):
        return "cross validation"
    if ("model", "warm_start_model") in inputs:
        return "warm start (warm_start_model)"
    he_param = parameters.get("he_param")
    kind = str((he_param.get("kind") if isinstance(he_param, Mapping) else None) or "paillier").lower()
    if kind not in ("paillier", "mock", "plaintext_debug", "plaintext"):
        return f"he_param.kind {kind!r}"
    if any(
        parameters.get(k) is not None
        for k in ("work_mode", "guest_depth", "host_depth", "tree_num_per_party")
    ):
        return "fast SecureBoost (HeteroFastSecureBoost mix/layered trees)"
    return None


def _installed(providers: Sequence[ProviderInfo]) -> str:
    return ", ".join(p.ref for p in providers) or "none"


def _best(candidates: Sequence[ProviderInfo]) -> ProviderInfo:
    # Prefer FATE's own library, then the newest version.
    return max(candidates, key=lambda p: (p.name == "fate", p.name, version_key(p.version)))


def select_provider(
    problems: Problems,
    want: Want,
    explicit: Explicit | None,
    providers: Sequence[ProviderInfo] | None,
) -> str | None:
    """The provider ref that runs the task (see the module docstring), or None after recording why not."""
    label = f"component {want.component} (task {want.task})"
    if explicit is not None:
        return _explicit(problems, want, explicit, providers, label)
    if want.native and want.native_gap is None:
        return NATIVE
    if providers is None:
        return NATIVE  # planned-only, as before providers existed: fails when it runs
    if want.fate_component is not None:
        offering = [p for p in providers if not p.is_native and p.offers(want.fate_component)]
        if offering:
            return _best(offering).ref
        if want.native:
            problems.add(
                want.doc,
                want.path,
                f"{label} uses {want.native_gap}, which the native provider does not implement; "
                f"FATE's {want.fate_component} does: run `{FATE_INSTALL}`",
            )
            return None
        problems.add(want.doc, want.path, f"{label} needs the FATE provider: run `{FATE_INSTALL}`")
        return None
    if want.native:
        problems.add(
            want.doc, want.path, f"{label} uses {want.native_gap}, which no installed provider offers"
        )
        return None
    problems.add(
        want.doc,
        want.path,
        f"{label} is not implemented: neither the native provider nor FATE 2.2 has it",
    )
    return None


def _explicit(
    problems: Problems,
    want: Want,
    explicit: Explicit,
    providers: Sequence[ProviderInfo] | None,
    label: str,
) -> str | None:
    doc, path = explicit.doc, explicit.path
    try:
        name, version = parse_provider_ref(explicit.value)  # type: ignore[arg-type]
    except ConfigError as exc:
        problems.add(doc, path, str(exc))
        return None
    if name == NATIVE or (name == FATE_FLOW and want.native and want.fate_component is None):
        if want.native:
            return NATIVE
        hint = f"; it needs the FATE provider (`{FATE_INSTALL}`)" if want.fate_component else ""
        problems.add(doc, path, f"{label} is not implemented by the native provider{hint}")
        return None
    if want.fate_component is None:
        problems.add(
            doc,
            path,
            f"{label} cannot run on provider {explicit.value}: FATE 2.2 has no such component"
            + (" (native only)" if want.native else ""),
        )
        return None
    if providers is None:
        if version is None:
            problems.add(doc, path, f"provider {explicit.value!r}: name its version (e.g. {name}:2.2.0)")
            return None
        return f"{name}:{version}"
    found = [p for p in providers if p.name == name and version in (None, p.version)]
    if not found:
        wanted = f"{name}=={version}" if version else f"{name}==2.2.0" if name == "fate" else name
        problems.add(
            doc,
            path,
            f"provider {explicit.value} is not installed at this party (installed: {_installed(providers)}); "
            f"run `fate-airflow provider install {wanted}`",
        )
        return None
    chosen = max(found, key=lambda p: version_key(p.version))
    if not chosen.offers(want.fate_component):
        problems.add(doc, path, f"{label}: provider {chosen.ref} has no component {want.fate_component!r}")
        return None
    return chosen.ref


def fate_component(plan: JobPlan, task: TaskPlan) -> str | None:
    """FATE 2.2's component name for ``task`` when an installed provider runs it, else None.

    2.x tasks name it themselves (``component_ref``); 1.x modules map through
    :data:`fate_airflow.dsl.v1_to_v2.MODULES` (their parameters in the plan are already translated).
    """
    if task.provider == NATIVE:
        return None
    if plan.format == "fate-1.x-dsl-v2":
        return MODULES.get(task.component)
    entry = BY_IMPLEMENTATION.get(task.implementation)
    return entry.fate_component if entry is not None else task.component


__all__ = ["FATE_INSTALL", "Explicit", "Want", "fate_component", "select_provider"]
