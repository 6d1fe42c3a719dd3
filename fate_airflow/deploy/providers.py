"""Installing component providers: FATE 2.2's library in its own virtual environment.

pyfate 2.2 cannot share an environment with Airflow 3 (it pins numpy<2, protobuf 4, pydantic 1), so
``fate-airflow provider install fate==2.2.0`` builds one:

1. ``python3.11 -m venv <env>`` (FATE's ``fate_utils`` wheel is for CPython 3.11);
2. ``pip install -c <constraints> torch`` first, so pip settles on the pinned CPU build before anything
   else can pull a CUDA one (several GB);
3. ``pip install -c <constraints> pyfate pandas pyarrow setuptools``;
4. check it: ``python -m fate.components component list`` (whose output becomes the provider's
   component list) and ``import pyarrow, pandas`` (the component bridge reads parquet there);
5. write the completion marker — last, so a folder without it is an interrupted build;
6. register the provider in the party's registry (``<provider dir>/registry.json``).

The constraints file (``provider_envs/fate-2.2.0.txt``, shipped in the package) pins every package, so
environments are reproducible; its hash names the environment folder
(``<env cache>/fate-2.2.0-<hash>``), so a changed recipe never reuses an old environment. The env
cache defaults to ``<provider dir>/envs``; pointing several party homes at one cache (as CI does)
builds the environment once and registers it everywhere in seconds. A complete environment is reused
(installing again only registers it again); an incomplete one is wiped and rebuilt; a failed build is
removed and registers nothing. pip's own download/wheel cache is used as usual (``PIP_CACHE_DIR``).
Concurrent installs of one environment wait for each other (a lock file in the env cache).
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fate_airflow.core.errors import ConfigError, FateAirflowError
from fate_airflow.core.files import atomic_write_bytes, file_lock
from fate_airflow.core.providers import NATIVE, ProviderInfo, ProviderRegistry, parse_provider_ref

#: Where the pinned requirement sets live (package data).
RECIPE_DIR = Path(__file__).resolve().parent / "provider_envs"
#: Written into a finished environment, last.
MARKER = ".fate-airflow-complete.json"
#: Lines of the build log quoted when a step fails.
_LOG_TAIL = 25


class ProviderInstallError(FateAirflowError):
    """Building or checking a provider environment failed; nothing was registered."""


@dataclass(frozen=True)
class EnvRecipe:
    """How to build one provider's environment.

    :param name: provider name (``fate``).
    :param version: provider version (``2.2.0``).
    :param constraints: the complete pinned requirement set, used with ``pip install -c``.
    :param first: packages installed in a step of their own, before :attr:`packages` (torch).
    :param packages: the top-level packages (versions come from :attr:`constraints`).
    :param python: the interpreter to create the environment with, unless the caller gives one.
    :param list_components: arguments to the environment's python printing its component list.
    :param imports: modules that must import in the finished environment.
    """

    name: str
    version: str
    constraints: Path
    first: tuple[str, ...] = ()
    packages: tuple[str, ...] = ()
    python: str = "python3.11"
    list_components: tuple[str, ...] = ("-m", "fate.components", "component", "list")
    imports: tuple[str, ...] = ("fate", "pandas", "pyarrow")

    @property
    def digest(self) -> str:
        """Short hash of the constraints file: a changed recipe gets a new environment folder."""
        try:
            return hashlib.sha256(self.constraints.read_bytes()).hexdigest()[:12]
        except OSError as exc:
            raise ProviderInstallError(f"cannot read {self.constraints}: {exc.strerror or exc}") from None

    @property
    def env_name(self) -> str:
        """The environment's folder name inside the env cache."""
        return f"{self.name}-{self.version}-{self.digest}"


#: Installable providers.
RECIPES: dict[tuple[str, str], EnvRecipe] = {
    ("fate", "2.2.0"): EnvRecipe(
        "fate",
        "2.2.0",
        RECIPE_DIR / "fate-2.2.0.txt",
        first=("torch",),
        packages=("pyfate", "pandas", "pyarrow", "setuptools"),
    ),
}


def recipe_for(spec: str) -> EnvRecipe:
    """The recipe for a provider reference (``fate==2.2.0``, ``fate:2.2.0``, ``fate``: newest).

    :raises ConfigError: unparsable, native, or no recipe for that provider.
    """
    name, version = parse_provider_ref(spec)
    if name == NATIVE:
        raise ConfigError("the native provider is built in; nothing to install")
    known = sorted(RECIPES)
    matches = [key for key in known if key[0] == name and version in (None, key[1])]
    if not matches:
        supported = ", ".join(f"{n}=={v}" for n, v in known)
        raise ConfigError(f"no installable provider {spec!r}; supported: {supported}")
    return RECIPES[matches[-1]]


def env_python(env_dir: Path) -> Path:
    """The interpreter of the virtual environment ``env_dir``."""
    return env_dir / "bin" / "python"


def read_marker(env_dir: Path, recipe: EnvRecipe) -> dict[str, Any] | None:
    """The completion marker of ``env_dir`` if the environment is complete for ``recipe``, else None."""
    try:
        data = json.loads((env_dir / MARKER).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("digest") != recipe.digest:
        return None
    components = data.get("components")
    if not isinstance(components, list) or not components or not all(isinstance(c, str) for c in components):
        return None
    if not env_python(env_dir).exists():
        return None
    return data


def parse_component_list(output: str) -> tuple[str, ...]:
    """Component names from pyfate's ``component list`` output (it prints a Python dict literal).

    :raises ValueError: no such dict in ``output``.
    """
    for line in reversed(output.strip().splitlines()):
        line = line.strip()
        if not line.startswith("{"):
            continue
        data = ast.literal_eval(line)
        if not isinstance(data, dict):
            break
        names = [str(n) for n in data.get("buildin") or []]
        names += [str(entry[0]) for entry in data.get("thirdparty") or [] if entry]
        if names:
            return tuple(names)
    raise ValueError("no component list in the output")


def _tail(log_path: Path) -> str:
    try:
        lines = log_path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-_LOG_TAIL:])


def _run(argv: Sequence[str], log_path: Path, what: str, *, capture: bool = False) -> str:
    """Run one build step, appending its output to ``log_path``; its stdout when ``capture``.

    :raises ProviderInstallError: the step failed (with the end of its output).
    """
    env = dict(os.environ)
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["PYTHONNOUSERSITE"] = "1"  # user site-packages must not leak into the provider's environment
    with open(log_path, "ab") as log:
        log.write(f"\n$ {' '.join(argv)}\n".encode())
        log.flush()
        proc = subprocess.run(
            list(argv),
            stdout=subprocess.PIPE if capture else log,
            stderr=log,
            env=env,
            check=False,
        )
    out = proc.stdout.decode(errors="replace") if capture and proc.stdout else ""
    if capture:
        with open(log_path, "a") as log_text:
            log_text.write(out)
    if proc.returncode != 0:
        raise ProviderInstallError(
            f"{what} failed (exit {proc.returncode}); the end of {log_path}:\n{_tail(log_path)}"
        )
    return out


def build_env(
    recipe: EnvRecipe,
    env_dir: Path,
    *,
    python: str | None = None,
    pip_args: Sequence[str] = (),
    log: Callable[[str], None] = print,
) -> tuple[str, ...]:
    """Build ``recipe``'s environment in ``env_dir`` (which must not exist) and return its components.

    On any failure ``env_dir`` is removed again and :class:`ProviderInstallError` is raised.

    :param python: the interpreter creating the environment (default: the recipe's, from ``PATH``).
    :param pip_args: extra ``pip install`` arguments (e.g. ``--index-url``, ``--no-index``).
    """
    interpreter = python or shutil.which(recipe.python)
    if not interpreter:
        raise ProviderInstallError(
            f"{recipe.python} not found: provider {recipe.name}=={recipe.version} needs it "
            "(give another interpreter with --python)"
        )
    log_path = env_dir.parent / f"{env_dir.name}.log"
    log_path.write_text(f"building {env_dir} at {datetime.now(UTC).isoformat()}\n")
    try:
        log(f"creating the environment with {interpreter}")
        _run([interpreter, "-m", "venv", str(env_dir)], log_path, "creating the virtual environment")
        py = str(env_python(env_dir))
        pip = [py, "-m", "pip", "install", *pip_args, "-c", str(recipe.constraints)]
        if recipe.first:
            log(f"installing {', '.join(recipe.first)}")
            _run([*pip, *recipe.first], log_path, f"pip install {' '.join(recipe.first)}")
        log(f"installing {', '.join(recipe.packages)}")
        _run([*pip, *recipe.packages], log_path, f"pip install {' '.join(recipe.packages)}")
        log("checking the environment")
        _run(
            [py, "-c", "import " + ", ".join(recipe.imports)],
            log_path,
            "importing " + ", ".join(recipe.imports),
        )
        out = _run([py, *recipe.list_components], log_path, "listing the components", capture=True)
        try:
            components = parse_component_list(out)
        except (ValueError, SyntaxError) as exc:
            raise ProviderInstallError(f"cannot read the component list of {env_dir}: {exc}") from None
        marker = {
            "name": recipe.name,
            "version": recipe.version,
            "digest": recipe.digest,
            "python": py,
            "components": list(components),
            "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        # Last: its presence is what makes the folder a complete environment.
        atomic_write_bytes(env_dir / MARKER, json.dumps(marker, indent=2).encode())
        return components
    except BaseException:
        shutil.rmtree(env_dir, ignore_errors=True)
        raise


#: FATE's client (``pipeline`` SDK and ``flow`` CLI) matching the FATE provider, and what it needs
#: beyond the provider's environment. Two of FATE's example scripts (homo_nn multi and regression)
#: import ``fate_test.utils.parse_summary_result``: FATE 2.2's fate_test is not on PyPI, 1.6.1's module
#: has the same function (and needs only colorama and prettytable besides numpy).
CLIENT_PACKAGES = (
    "fate-client==2.2.0",
    "requests-toolbelt==1.0.0",
    "fate-test==1.6.1",
    "colorama==0.4.6",
    "prettytable==3.19.0",
    "wcwidth==0.9.4",
)


def build_client_env(provider: ProviderInfo, dest: Path, *, log: Callable[[str], None] = print) -> Path:
    """FATE's client in its own environment layered on the FATE provider's (it needs torch too).

    A virtual environment at ``dest`` whose ``.pth`` adds the provider environment's packages, with
    ``fate-client`` installed on top (its ``settings.yaml`` — what ``pipeline init`` and ``flow
    init`` write — then belongs to this environment only). Idempotent: a complete one is reused.
    Returns the environment's ``bin`` folder (``python``, ``pipeline``, ``flow``).

    :raises ProviderInstallError: the build failed (``dest`` is removed again).
    """
    marker = dest / MARKER
    bin_dir = dest / "bin"
    try:
        built = json.loads(marker.read_text())
    except (OSError, ValueError):
        built = None
    if isinstance(built, dict) and built.get("packages") == list(CLIENT_PACKAGES):
        return bin_dir
    if not provider.python:
        raise ProviderInstallError(f"provider {provider.ref} has no environment to build FATE's client on")
    base = Path(provider.python)
    site = subprocess.run(
        [str(base), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=False,
    )
    if site.returncode != 0:
        raise ProviderInstallError(f"cannot ask {base} for its site-packages: {site.stderr.strip()}")
    shutil.rmtree(dest, ignore_errors=True)
    dest.parent.mkdir(parents=True, exist_ok=True)
    log_path = dest.parent / f"{dest.name}.log"
    log_path.write_text(f"building {dest} at {datetime.now(UTC).isoformat()}\n")
    try:
        log(f"creating FATE's client environment on {provider.ref}")
        _run([str(base), "-m", "venv", str(dest)], log_path, "creating the virtual environment")
        py = str(env_python(dest))
        purelib = _run(
            [py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            log_path,
            "locating site-packages",
            capture=True,
        ).strip()
        (Path(purelib) / "fate_airflow_provider.pth").write_text(site.stdout.strip() + "\n")
        log(f"installing {', '.join(CLIENT_PACKAGES)}")
        _run([py, "-m", "pip", "install", "--no-deps", *CLIENT_PACKAGES], log_path, "pip install fate-client")
        _run(
            [py, "-c", "import fate_client.pipeline, fate_client.flow_sdk, torch, fate_test.utils"],
            log_path,
            "importing fate_client",
        )
        atomic_write_bytes(
            marker, json.dumps({"provider": provider.ref, "packages": CLIENT_PACKAGES}).encode()
        )
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    return bin_dir


def install_provider(
    spec: str,
    provider_dir: Path | str,
    *,
    env_cache: Path | str | None = None,
    python: str | None = None,
    pip_args: Sequence[str] = (),
    recipe: EnvRecipe | None = None,
    log: Callable[[str], None] = print,
) -> ProviderInfo:
    """Install (or re-register) a provider into a party's provider folder; idempotent.

    :param spec: e.g. ``fate==2.2.0``.
    :param provider_dir: the party's provider folder (``[fate] provider_dir``).
    :param env_cache: where environments are built (default ``<provider_dir>/envs``).
    :param python: interpreter creating a new environment (default: the recipe's from ``PATH``).
    :param pip_args: extra ``pip install`` arguments.
    :param recipe: build this recipe instead of the one ``spec`` names (tests).
    :param log: receives progress lines.
    :returns: the registered provider.
    :raises ConfigError: unknown provider.
    :raises ProviderInstallError: the build or its check failed (nothing registered).
    """
    recipe = recipe or recipe_for(spec)
    registry = ProviderRegistry(provider_dir)
    cache = Path(env_cache) if env_cache is not None else registry.root / "envs"
    env_dir = (cache / recipe.env_name).absolute()
    started = time.monotonic()
    with file_lock(cache / f".{recipe.env_name}.lock"):
        marker = read_marker(env_dir, recipe)
        if marker is not None:
            log(f"{recipe.name}=={recipe.version}: reusing the complete environment {env_dir}")
            components = tuple(marker["components"])
        else:
            if env_dir.exists() or env_dir.is_symlink():
                log(f"removing the incomplete environment {env_dir}")
                shutil.rmtree(env_dir, ignore_errors=True)
                if env_dir.exists():
                    raise ProviderInstallError(f"cannot remove the incomplete environment {env_dir}")
            log(f"{recipe.name}=={recipe.version}: building {env_dir} (a few minutes)")
            components = build_env(recipe, env_dir, python=python, pip_args=pip_args, log=log)
    info = ProviderInfo(
        name=recipe.name,
        version=recipe.version,
        python=str(env_python(env_dir)),
        env_dir=str(env_dir),
        components=components,
        installed_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    registry.register(info)
    log(
        f"registered {info.ref} in {registry.path} ({len(components)} components, "
        f"{time.monotonic() - started:.1f} s)"
    )
    return info


def remove_provider(spec: str, provider_dir: Path | str) -> ProviderInfo | None:
    """Unregister a provider (its environment stays: other party homes may share the env cache).

    :param spec: ``name==version`` (or ``name``: the newest registered one).
    :returns: the removed provider, or None if it was not registered.
    """
    name, version = parse_provider_ref(spec)
    if name == NATIVE:
        raise ConfigError("the native provider is built in and cannot be removed")
    registry = ProviderRegistry(provider_dir)
    found = registry.find(name, version)
    if found is None or not registry.remove(found.name, found.version):
        return None
    return found


__all__ = [
    "MARKER",
    "RECIPES",
    "EnvRecipe",
    "ProviderInstallError",
    "build_env",
    "env_python",
    "install_provider",
    "parse_component_list",
    "read_marker",
    "recipe_for",
    "remove_provider",
]
