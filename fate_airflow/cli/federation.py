"""``fate-airflow federation check``: the connectivity doctor.

With ``--config PARTY_GATEWAY_CONFIG`` it checks every route of a gateway: DNS, TCP, TLS, the party
id in the peer's certificate, and a ping through the real stack. With ``--client-config`` it checks
a worker's path to its own gateway (and, with ``--peer``, pings peers through it). One line per
target says OK (with latency) or exactly what is wrong; the exit status is 1 if anything is wrong.
"""

from __future__ import annotations

import argparse
from typing import Any

from fate_airflow.federation.config import GatewayClientConfig, load_gateway_config
from fate_airflow.federation.grpc.doctor import check_client, check_gateway


def _check(args: argparse.Namespace) -> int:
    if args.config:
        config = load_gateway_config(args.config)
        print(f"checking the routes of party {config.party_id}'s gateway ({args.config})")
        results = check_gateway(config, timeout=args.timeout)
    else:
        client = GatewayClientConfig.load(args.client_config)
        print(f"checking party {client.party_id}'s client path to {client.address}")
        results = check_client(client, args.peer or (), timeout=args.timeout)
    for result in results:
        print(result.line())
    failed = sum(not r.ok for r in results)
    print(f"{len(results) - failed} ok, {failed} failed")
    return 1 if failed else 0


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add the ``federation`` command group.

    :param subparsers: the top-level ``add_subparsers()`` object.
    """
    group = subparsers.add_parser("federation", help="federation diagnostics")
    commands = group.add_subparsers(dest="federation_command", metavar="COMMAND")
    commands.required = True
    check = commands.add_parser(
        "check",
        help="check connectivity, certificates and party ids of every peer",
        description="Reach each peer, verify TLS and party ids, report latency; exit 1 if anything is wrong.",
    )
    source = check.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", metavar="PARTY_GATEWAY_CONFIG", help="a gateway config: check its routes")
    source.add_argument(
        "--client-config", metavar="CLIENT_CONFIG", help="a gateway client config (YAML/JSON)"
    )
    check.add_argument(
        "--peer", action="append", help="with --client-config: also ping this party (repeatable)"
    )
    check.add_argument("--timeout", type=float, default=5.0, help="seconds per step (default 5)")
    check.set_defaults(func=_check)


__all__ = ["register"]
