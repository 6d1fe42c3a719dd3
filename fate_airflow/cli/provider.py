"""``fate-airflow provider``: a party's component providers (FATE-Flow's ``provider register/list``).

* ``provider install fate==2.2.0`` builds FATE 2.2's isolated environment (or reuses a complete one
  from ``--env-cache``) and registers it (:mod:`fate_airflow.deploy.providers`);
* ``provider list`` shows native and the installed providers (``--json`` for tools);
* ``provider remove fate==2.2.0`` unregisters one (its environment stays in the env cache).

The party's provider folder comes from ``--provider-dir``, else ``--config PARTY_CONFIG`` (its
``<home>/providers``), else ``$AIRFLOW__FATE__PROVIDER_DIR`` (set in a party's ``party.env``), else
``$FATE_AIRFLOW_PARTY_CONFIG``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from fate_airflow.core.errors import ConfigError
from fate_airflow.core.providers import ProviderRegistry
from fate_airflow.deploy.party import load_party_config
from fate_airflow.deploy.providers import build_client_env, install_provider, remove_provider

PROVIDER_DIR_ENV = "AIRFLOW__FATE__PROVIDER_DIR"
PARTY_CONFIG_ENV = "FATE_AIRFLOW_PARTY_CONFIG"


def provider_dir(args: argparse.Namespace) -> Path:
    """The party's provider folder named on the command line or in the environment."""
    if args.provider_dir:
        return Path(args.provider_dir)
    if args.config:
        return load_party_config(args.config).provider_dir
    if os.environ.get(PROVIDER_DIR_ENV):
        return Path(os.environ[PROVIDER_DIR_ENV])
    if os.environ.get(PARTY_CONFIG_ENV):
        return load_party_config(os.environ[PARTY_CONFIG_ENV]).provider_dir
    raise ConfigError(
        f"give --provider-dir DIR or --config PARTY_CONFIG (or set {PROVIDER_DIR_ENV} / {PARTY_CONFIG_ENV})"
    )


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _install(args: argparse.Namespace) -> int:
    pip_args: list[str] = []
    for url in args.extra_index_url or ():
        pip_args += ["--extra-index-url", url]
    info = install_provider(
        args.spec,
        provider_dir(args),
        env_cache=args.env_cache,
        python=args.python,
        pip_args=pip_args,
        log=_progress,
    )
    print(json.dumps(info.to_dict(), indent=2) if args.json else f"{info.ref} installed: {info.python}")
    return 0


def _list(args: argparse.Namespace) -> int:
    providers = ProviderRegistry(provider_dir(args)).list()
    if args.json:
        print(json.dumps([p.to_dict() for p in providers], indent=2))
        return 0
    for p in providers:
        where = p.env_dir or "(this installation)"
        count = f"{len(p.components)} components" if p.components else "built-in components"
        print(f"{p.ref:<16} {count:<22} {where}")
    return 0


def _remove(args: argparse.Namespace) -> int:
    removed = remove_provider(args.spec, provider_dir(args))
    if removed is None:
        raise ConfigError(f"provider {args.spec} is not registered in {provider_dir(args)}")
    print(f"{removed.ref} removed (its environment {removed.env_dir} was left in place)")
    return 0


def _client_env(args: argparse.Namespace) -> int:
    name, _, version = args.spec.partition("==")
    provider = ProviderRegistry(provider_dir(args)).find(name, version or None)
    if provider is None:
        raise ConfigError(f"provider {args.spec} is not registered in {provider_dir(args)}")
    print(build_client_env(provider, Path(args.dest), log=_progress))
    return 0


def _where(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--provider-dir", metavar="DIR", help="the party's provider folder")
    parser.add_argument("--config", metavar="PARTY_CONFIG", help="party config (its home's providers/)")


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add the ``provider`` command group to the top-level parser.

    :param subparsers: the top-level ``add_subparsers()`` object.
    """
    group = subparsers.add_parser("provider", help="component providers: install, list, remove")
    commands = group.add_subparsers(dest="provider_command")
    commands.required = True

    install = commands.add_parser(
        "install",
        help="build and register a provider's environment (idempotent)",
        description="Build FATE 2.2's isolated environment (or reuse a complete one) and register it.",
    )
    install.add_argument("spec", metavar="PROVIDER", help="e.g. fate==2.2.0")
    _where(install)
    install.add_argument(
        "--env-cache", metavar="DIR", help="where environments are built (default: <provider dir>/envs)"
    )
    install.add_argument("--python", metavar="PYTHON", help="interpreter for a new environment (python3.11)")
    install.add_argument(
        "--extra-index-url", metavar="URL", action="append", help="extra package index for pip (repeatable)"
    )
    install.add_argument("--json", action="store_true", help="print the registered provider as JSON")
    install.set_defaults(func=_install)

    listing = commands.add_parser("list", help="list native and the installed providers")
    _where(listing)
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(func=_list)

    remove = commands.add_parser("remove", help="unregister a provider (its environment is kept)")
    remove.add_argument("spec", metavar="PROVIDER", help="e.g. fate==2.2.0")
    _where(remove)
    remove.set_defaults(func=_remove)

    client = commands.add_parser(
        "client-env",
        help="FATE's client (pipeline SDK, flow CLI) in an environment on a provider's (idempotent)",
    )
    client.add_argument(
        "spec", metavar="PROVIDER", nargs="?", default="fate==2.2.0", help="default fate==2.2.0"
    )
    client.add_argument("--dest", required=True, metavar="DIR", help="where to build the environment")
    _where(client)
    client.set_defaults(func=_client_env)


__all__ = ["provider_dir", "register"]
