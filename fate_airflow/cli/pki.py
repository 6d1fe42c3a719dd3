"""``fate-airflow pki``: create a party CA and issue certificates bound to party ids.

``pki init-ca --party-id 9999 --out pki/9999/ca`` creates the party's CA (give ``ca.crt`` to your
peers; keep ``ca.key`` secret). ``pki issue --ca pki/9999/ca --party-id 9999 --kind gateway --host
gw.example.org --out pki/9999/gateway`` issues the gateway's certificate; ``--kind client`` issues
one for the party's workers and scheduler. ``pki show FILE`` prints what a certificate binds.
"""

from __future__ import annotations

import argparse
from typing import Any

from fate_airflow.federation.pki import describe_certificate, init_ca, issue_certificate


def _init_ca(args: argparse.Namespace) -> int:
    cert = init_ca(args.party_id, args.out, days=args.days, overwrite=args.force)
    print(f"created the CA of party {args.party_id}: {cert} (key {cert.parent / 'ca.key'}, mode 0600)")
    print("give ca.crt to every peer party (their gateways list it in tls.peer_ca_certs)")
    return 0


def _issue(args: argparse.Namespace) -> int:
    issued = issue_certificate(
        args.ca,
        args.party_id,
        args.kind,
        args.out,
        hosts=args.host or (),
        days=args.days,
        allow_other_party=args.allow_other_party,
        name=args.name,
    )
    print(f"issued a {args.kind} certificate for party {args.party_id}: {issued.cert} (key {issued.key})")
    return 0


def _show(args: argparse.Namespace) -> int:
    print(describe_certificate(args.cert))
    return 0


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add the ``pki`` command group.

    :param subparsers: the top-level ``add_subparsers()`` object.
    """
    group = subparsers.add_parser("pki", help="party CA and certificates for the federation gateways")
    commands = group.add_subparsers(dest="pki_command", metavar="COMMAND")
    commands.required = True

    init = commands.add_parser("init-ca", help="create this party's CA (ECDSA P-256)")
    init.add_argument("--party-id", required=True, help="the party id the CA belongs to")
    init.add_argument("--out", required=True, help="folder for ca.crt and ca.key")
    init.add_argument("--days", type=int, default=3650, help="validity in days (default 3650)")
    init.add_argument("--force", action="store_true", help="replace an existing CA in --out")
    init.set_defaults(func=_init_ca)

    issue = commands.add_parser("issue", help="issue a gateway or client certificate")
    issue.add_argument("--ca", required=True, help="the party CA folder (from init-ca)")
    issue.add_argument("--party-id", required=True, help="the party id bound into the certificate")
    issue.add_argument("--kind", required=True, choices=["gateway", "client"])
    issue.add_argument(
        "--host", action="append", help="DNS name or IP the gateway is reached at (repeatable; gateways only)"
    )
    issue.add_argument("--out", required=True, help="output folder (<kind>.crt, <kind>.key, ca.crt)")
    issue.add_argument("--name", help="file stem instead of the kind")
    issue.add_argument("--days", type=int, default=825, help="validity in days (default 825)")
    issue.add_argument(
        "--allow-other-party",
        action="store_true",
        help="issue for a party id other than the CA's (clients of extra party ids a gateway serves)",
    )
    issue.set_defaults(func=_issue)

    show = commands.add_parser("show", help="print the identity and validity of a certificate")
    show.add_argument("cert", help="PEM certificate file")
    show.set_defaults(func=_show)


__all__ = ["register"]
