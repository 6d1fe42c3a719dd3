"""Provider installation: recipe, completion marker, failure clean-up, registration, CLI.

Nothing here stands in for pyfate: the failure tests build a real virtual environment with a real pip
that fails on a requirement that does not exist (offline, ``--no-index``); the one test of a complete
environment uses the real FATE 2.2 environment built by ``make provider-env``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from fate_airflow.cli import main
from fate_airflow.core.errors import ConfigError
from fate_airflow.core.providers import ProviderInfo, ProviderRegistry
from fate_airflow.deploy import party
from fate_airflow.deploy.providers import (
    MARKER,
    RECIPES,
    EnvRecipe,
    ProviderInstallError,
    install_provider,
    parse_component_list,
    read_marker,
    recipe_for,
    remove_provider,
)

FATE_RECIPE = RECIPES[("fate", "2.2.0")]
#: FATE's `component list` prints a Python dict literal (after a pkg_resources warning on stderr).
COMPONENT_LIST_OUTPUT = (
    "{'buildin': ['feature_scale', 'reader', 'psi', 'hetero_secureboost'], 'thirdparty': [['my_cpn']]}\n"
)


def test_recipe_lookup() -> None:
    assert recipe_for("fate==2.2.0") is FATE_RECIPE
    assert recipe_for("fate:2.2.0@local") is FATE_RECIPE
    assert recipe_for("fate") is FATE_RECIPE
    with pytest.raises(
        ConfigError, match=r"no installable provider 'fate==1\.11\.4'; supported: fate==2\.2\.0"
    ):
        recipe_for("fate==1.11.4")
    with pytest.raises(ConfigError, match="built in"):
        recipe_for("native")


def test_constraints_pin_every_package() -> None:
    lines = [
        line.strip()
        for line in FATE_RECIPE.constraints.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert all("==" in line for line in lines), [line for line in lines if "==" not in line]
    pins = dict(line.split("==", 1) for line in lines)
    assert pins["pyfate"] == "2.2.0"
    assert pins["pandas"] == "2.0.3"  # pandas 3 breaks FATE 2.2
    assert pins["torch"].endswith("+cpu")  # never the multi-GB CUDA build
    assert pins["numpy"].startswith("1.")
    assert int(pins["setuptools"].split(".")[0]) < 81  # pyfate imports pkg_resources
    assert "pyarrow" in pins
    assert set(FATE_RECIPE.first) | set(FATE_RECIPE.packages) <= set(pins)


def test_env_name_follows_the_constraints(tmp_path: Path) -> None:
    constraints = tmp_path / "c.txt"
    constraints.write_text("a==1\n")
    recipe = EnvRecipe("fate", "2.2.0", constraints)
    first = recipe.env_name
    assert first.startswith("fate-2.2.0-") and len(first) == len("fate-2.2.0-") + 12
    constraints.write_text("a==2\n")
    assert recipe.env_name != first


def test_parse_component_list() -> None:
    assert parse_component_list("noise\n" + COMPONENT_LIST_OUTPUT) == (
        "feature_scale",
        "reader",
        "psi",
        "hetero_secureboost",
        "my_cpn",
    )
    with pytest.raises(ValueError, match="no component list"):
        parse_component_list("Traceback ...\nModuleNotFoundError: No module named 'pkg_resources'\n")


def test_marker_must_match_the_recipe(tmp_path: Path) -> None:
    env = tmp_path / "env"
    env.mkdir()
    assert read_marker(env, FATE_RECIPE) is None  # no marker: incomplete
    (env / MARKER).write_text("{half a file")
    assert read_marker(env, FATE_RECIPE) is None
    (env / MARKER).write_text(json.dumps({"digest": "0" * 12, "components": ["psi"]}))
    assert read_marker(env, FATE_RECIPE) is None  # built from another recipe


def _failing_recipe(tmp_path: Path) -> EnvRecipe:
    constraints = tmp_path / "constraints.txt"
    constraints.write_text("fate-airflow-no-such-package==0.0.1\n")
    return EnvRecipe(
        "fate",
        "2.2.0",
        constraints,
        packages=("fate-airflow-no-such-package",),
        python=Path(sys.executable).name,
    )


@pytest.mark.timeout(180)
def test_a_failed_install_removes_the_env_and_registers_nothing(tmp_path: Path) -> None:
    registry = ProviderRegistry(tmp_path / "providers")
    registry.register(ProviderInfo("other", "1.0.0"))
    before = registry.path.read_bytes()
    recipe = _failing_recipe(tmp_path)
    cache = tmp_path / "envs"
    # An interrupted earlier build: a folder without the completion marker.
    stale = cache / recipe.env_name
    (stale / "lib").mkdir(parents=True)
    (stale / "lib" / "half.py").write_text("x")
    lines: list[str] = []
    with pytest.raises(ProviderInstallError) as excinfo:
        install_provider(
            "fate==2.2.0",
            registry.root,
            env_cache=cache,
            python=sys.executable,
            pip_args=("--no-index",),  # offline: pip really looks, and really finds nothing
            recipe=recipe,
            log=lines.append,
        )
    message = str(excinfo.value)
    assert "pip install fate-airflow-no-such-package failed" in message
    assert "fate-airflow-no-such-package" in message.split("the end of", 1)[1]  # pip's own words follow
    assert any("removing the incomplete environment" in line for line in lines)
    assert not stale.exists()  # the failed build is gone too
    assert registry.path.read_bytes() == before  # nothing registered, nothing half-written
    assert (cache / f"{recipe.env_name}.log").exists()  # the build log stays for diagnosis


def test_missing_interpreter(tmp_path: Path) -> None:
    recipe = replace(_failing_recipe(tmp_path), python="python-fate-airflow-nope")
    with pytest.raises(ProviderInstallError, match="python-fate-airflow-nope not found"):
        install_provider("fate==2.2.0", tmp_path / "p", recipe=recipe, log=lambda _: None)
    assert not (tmp_path / "p" / "registry.json").exists()


def test_remove_provider(tmp_path: Path) -> None:
    registry = ProviderRegistry(tmp_path)
    registry.register(ProviderInfo("fate", "2.2.0", env_dir="/envs/x"))
    removed = remove_provider("fate==2.2.0", tmp_path)
    assert removed is not None and removed.ref == "fate:2.2.0"
    assert remove_provider("fate==2.2.0", tmp_path) is None
    with pytest.raises(ConfigError, match="built in"):
        remove_provider("native", tmp_path)


def test_party_publishes_its_provider_dir(tmp_path: Path) -> None:
    cfg = party.PartyConfig.from_dict({"party_id": "9999", "home": str(tmp_path / "home")}, tmp_path)
    assert cfg.provider_dir == cfg.home / "providers"
    assert party.airflow_env(cfg)["AIRFLOW__FATE__PROVIDER_DIR"] == str(cfg.provider_dir)


# ---------------------------------------------------------------------------- CLI


def test_cli_list_and_remove(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["provider", "list", "--provider-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out.split()[0] == "native"
    ProviderRegistry(tmp_path).register(
        ProviderInfo("fate", "2.2.0", python="/e/bin/python", env_dir="/e", components=("psi",))
    )
    assert main(["provider", "list", "--provider-dir", str(tmp_path), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(p["name"], p["version"]) for p in listed] == [("native", "0.1.0"), ("fate", "2.2.0")]
    assert main(["provider", "remove", "fate==2.2.0", "--provider-dir", str(tmp_path)]) == 0
    assert "fate:2.2.0 removed" in capsys.readouterr().out
    assert main(["provider", "remove", "fate==2.2.0", "--provider-dir", str(tmp_path)]) == 1
    assert "is not registered" in capsys.readouterr().err


def test_cli_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AIRFLOW__FATE__PROVIDER_DIR", raising=False)
    monkeypatch.delenv("FATE_AIRFLOW_PARTY_CONFIG", raising=False)
    assert main(["provider", "list"]) == 1
    assert "give --provider-dir DIR or --config PARTY_CONFIG" in capsys.readouterr().err
    assert main(["provider", "install", "fate==9.9.9", "--provider-dir", str(tmp_path)]) == 1
    assert "supported: fate==2.2.0" in capsys.readouterr().err


def test_cli_finds_the_party_provider_dir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "party.yaml"
    config.write_text(f"party_id: '9999'\nhome: {tmp_path / 'home'}\n")
    ProviderRegistry(tmp_path / "home" / "providers").register(ProviderInfo("fate", "2.2.0"))
    assert main(["provider", "list", "--config", str(config)]) == 0
    assert "fate:2.2.0" in capsys.readouterr().out
    monkeypatch.setenv("AIRFLOW__FATE__PROVIDER_DIR", str(tmp_path / "home" / "providers"))
    assert main(["provider", "list"]) == 0
    assert "fate:2.2.0" in capsys.readouterr().out


# ---------------------------------------------------------------------------- the real environment

ENV_CACHE = "FATE_AIRFLOW_FATE_ENV_CACHE"


def _real_env_cache() -> Path:
    raw = os.environ.get(ENV_CACHE)
    cache = Path(raw) if raw else None
    if cache is None or read_marker(cache / FATE_RECIPE.env_name, FATE_RECIPE) is None:
        reason = (
            f"{ENV_CACHE} is not set" if cache is None else f"no complete {FATE_RECIPE.env_name} in {cache}"
        )
        if os.environ.get("CI", "").lower() in ("true", "1"):
            pytest.fail(f"the FATE 2.2 environment must be built in CI (make provider-env): {reason}")
        pytest.skip(f"{reason}; run `make provider-env`")
    return cache


@pytest.mark.slow
def test_registers_the_real_fate_environment_in_seconds(tmp_path: Path) -> None:
    cache = _real_env_cache()
    lines: list[str] = []
    started = time.monotonic()
    info = install_provider("fate==2.2.0", tmp_path / "providers", env_cache=cache, log=lines.append)
    assert time.monotonic() - started < 30  # reused, not rebuilt
    assert any("reusing the complete environment" in line for line in lines)
    assert info.ref == "fate:2.2.0"
    assert Path(info.python).exists()
    assert {"hetero_secureboost", "psi", "coordinated_lr", "sample", "data_split"} <= set(info.components)
    # Idempotent: installing again changes nothing but the registration time.
    again = install_provider("fate==2.2.0", tmp_path / "providers", env_cache=cache, log=lambda _: None)
    assert replace(again, installed_at="") == replace(info, installed_at="")
    assert ProviderRegistry(tmp_path / "providers").list()[1:] == [again]
