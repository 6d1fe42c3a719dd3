"""The ``fate-airflow`` command line: the composition root for everything outside Airflow.

Each sub-command group lives in its own module exposing ``register(subparsers)``; this module only
wires them together and turns project errors into one-line messages (never a traceback for a user
error).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from fate_airflow import __version__
from fate_airflow.core.errors import DslError, FateAirflowError

#: Sub-command modules, in help order. Each defines ``register(subparsers) -> None``.
_GROUPS: tuple[str, ...] = (
    "fate_airflow.cli.dsl",
    "fate_airflow.cli.data",
    "fate_airflow.cli.model",
    "fate_airflow.cli.pki",
    "fate_airflow.cli.gateway",
    "fate_airflow.cli.federation",
    "fate_airflow.cli.party",
    "fate_airflow.cli.provider",
    "fate_airflow.cli.job",
    "fate_airflow.cli.demo",
)

#: Exit status for invalid user input (bad job file, bad arguments).
EXIT_INVALID = 2
#: Exit status for any other project error (unreachable party, failed job, ...).
EXIT_FAILED = 1


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every available sub-command group."""
    parser = argparse.ArgumentParser(
        prog="fate-airflow", description="FATE federated-learning jobs on Apache Airflow 3."
    )
    parser.add_argument("--version", action="version", version=f"fate-airflow {__version__}")
    sub = parser.add_subparsers(dest="group", metavar="COMMAND")
    sub.required = True
    for name in _GROUPS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # group not built yet
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except DslError as exc:
        for line in exc.problems or [str(exc)]:
            print(line, file=sys.stderr)
        return EXIT_INVALID
    except FateAirflowError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130


__all__ = ["EXIT_FAILED", "EXIT_INVALID", "build_parser", "main"]
