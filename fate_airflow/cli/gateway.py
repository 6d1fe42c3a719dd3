"""``fate-airflow gateway --config PARTY_GATEWAY_CONFIG``: run one party's federation gateway.

This plain gateway has no scheduler attached: it moves data-plane messages and forwards control
commands, and answers commands addressed to its own party UNIMPLEMENTED (``fate-airflow party
serve`` runs the gateway together with the party's scheduler service). SIGTERM/SIGINT stop it
gracefully: new calls are refused, running ones get a few seconds to finish.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
from pathlib import Path
from typing import Any

from fate_airflow.federation.config import load_gateway_config
from fate_airflow.federation.grpc.server import GatewayServer


def _write_port_file(path: Path, port: int) -> None:
    # Written atomically: a test or supervisor polling for the file never reads half a number.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(f"{port}\n")
    tmp.replace(path)


def _run(args: argparse.Namespace) -> int:
    config = load_gateway_config(args.config)
    logging.basicConfig(
        level=args.log_level or config.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    server = GatewayServer(config, handler=None)
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        logging.getLogger(__name__).info("received %s, stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    port = server.start()
    if args.port_file:
        _write_port_file(Path(args.port_file), port)
    try:
        while not stop.wait(1.0):
            pass
    finally:
        server.stop(args.grace)
    return 0


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add the ``gateway`` command.

    :param subparsers: the top-level ``add_subparsers()`` object.
    """
    parser = subparsers.add_parser(
        "gateway",
        help="run a party's federation gateway (no scheduler attached)",
        description="Run one party's federation gateway until SIGTERM/SIGINT.",
    )
    parser.add_argument("--config", required=True, metavar="PARTY_GATEWAY_CONFIG", help="YAML or JSON config")
    parser.add_argument("--port-file", help="write the bound port here once listening (for listen port 0)")
    parser.add_argument("--grace", type=float, default=5.0, help="seconds running calls get on shutdown")
    parser.add_argument(
        "--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="override the config"
    )
    parser.set_defaults(func=_run)


__all__ = ["register"]
