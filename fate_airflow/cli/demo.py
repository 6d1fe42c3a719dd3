"""``fate-airflow demo``: the main job (``make demo``), and ``make up`` / ``make down``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from fate_airflow.deploy.demo import JOBS, bring_down, bring_up, run_demo


def _demo(args: argparse.Namespace) -> int:
    home = Path(args.home).resolve()
    if args.down:
        return bring_down(home)
    if args.up_only:
        return bring_up(home, job_name=args.job)
    return run_demo(home, job_name=args.job, keep_running=args.keep_running)


def register(subparsers: Any) -> None:
    """Add the ``demo`` command."""
    p = subparsers.add_parser("demo", help="run a federated job across two local parties (make demo)")
    p.add_argument(
        "--home", default=".fate/demo", help="folder holding every party (delete it to start over)"
    )
    p.add_argument("--job", choices=sorted(JOBS), default="hetero_lr", help="bundled job to run")
    p.add_argument("--keep-running", action="store_true", help="leave the parties running afterwards")
    p.add_argument("--up-only", action="store_true", help="start the parties with data and job files; no run")
    p.add_argument("--down", action="store_true", help="stop the demo parties")
    p.set_defaults(func=_demo)
