"""``fate-airflow dsl``: inspect job files without running them.

``fate-airflow dsl plan DSL_FILE [--conf CONF_FILE]`` prints the plan (``JobPlan.to_dict()``) as JSON
on stdout and exits 0; an invalid job prints one problem per line on stderr and exits 2 (the
:class:`~fate_airflow.core.errors.DslError` is turned into that by :func:`fate_airflow.cli.main`).
The JSON shape is a stable contract other tools read.

``--provider-dir DIR`` plans against the providers installed there (as the party's DAG factory does):
each task's ``provider`` is then checked, and a job needing a provider that is not installed is
invalid. Without it providers are not checked (components this project does not implement plan as
``native``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from fate_airflow.core.providers import ProviderRegistry
from fate_airflow.dsl import load_job


def _plan(args: argparse.Namespace) -> int:
    providers = ProviderRegistry(args.provider_dir).list() if args.provider_dir else None
    plan = load_job(args.dsl_file, args.conf, providers=providers)
    text = json.dumps(plan.to_dict(), indent=2, ensure_ascii=False)
    try:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        # `fate-airflow dsl plan ... | head` closed the pipe early: not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add the ``dsl`` command group to the top-level parser.

    :param subparsers: the top-level ``add_subparsers()`` object.
    """
    group = subparsers.add_parser("dsl", help="inspect FATE job files (1.x DSL v2, 2.x DAG)")
    commands = group.add_subparsers(dest="dsl_command")
    commands.required = True
    plan = commands.add_parser(
        "plan",
        help="validate a job and print its execution plan as JSON",
        description="Validate a FATE job and print its plan as JSON. Exit 0 if valid, 2 with one "
        "problem per line on stderr if not.",
    )
    plan.add_argument("dsl_file", metavar="DSL_FILE", help="1.x dsl JSON or 2.x DAG YAML/JSON")
    plan.add_argument("--conf", metavar="CONF_FILE", help="1.x runtime conf JSON (required for 1.x)")
    plan.add_argument(
        "--provider-dir",
        metavar="DIR",
        help="a party's provider folder: choose and check each task's provider against it",
    )
    plan.set_defaults(func=_plan)


__all__ = ["register"]
