"""``fate-airflow data``: the party's table store (FATE's ``flow data upload`` / ``flow table``).

``upload`` reads a CSV (``--file`` with ``--namespace``/``--name``, or a FATE 1.x/2.x upload config
with ``--conf``) into ``<data-dir>/tables/<namespace>/<name>``; ``list``, ``info`` and ``delete`` manage
what is there. ``--data-dir`` defaults to ``$FATE_AIRFLOW_DATA_DIR``. Errors name the file, column or
field and exit 1.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from fate_airflow.core.errors import StorageError
from fate_airflow.storage import (
    DATA_DIR_ENV,
    TableStore,
    UploadSpec,
    load_upload_config,
    resolve_data_dir,
    upload,
)


def _store(args: argparse.Namespace) -> TableStore:
    return TableStore.local(resolve_data_dir(args.data_dir))


def _upload(args: argparse.Namespace) -> int:
    if args.conf:
        if args.file:
            raise StorageError("give either --file or --conf, not both")
        spec = load_upload_config(args.conf, base_dir=args.base_dir or Path(args.conf).resolve().parent)
        overrides: dict[str, Any] = {}
        for field, value in (
            ("namespace", args.namespace),
            ("name", args.name),
            ("id_column", args.id_col),
            ("label_column", args.label_col),
        ):
            if value:
                overrides[field] = value
        spec = replace(spec, **overrides)
    else:
        missing = [
            flag
            for flag, v in (("--file", args.file), ("--namespace", args.namespace), ("--name", args.name))
            if not v
        ]
        if missing:
            raise StorageError(f"missing {', '.join(missing)} (or use --conf upload.json)")
        path = Path(args.file)
        if not path.is_absolute() and args.base_dir:
            path = Path(args.base_dir) / path
        spec = UploadSpec(
            file=path,
            namespace=args.namespace,
            name=args.name,
            id_column=args.id_col,
            label_column=args.label_col,
            delimiter=args.delimiter,
            head=not args.no_head,
        )
    meta = upload(_store(args), spec, overwrite=args.overwrite)
    print(
        f"uploaded {spec.file} as {meta.namespace}.{meta.name}: {meta.row_count} rows, id {meta.id_column!r}, "
        f"label {meta.label_column!r}, {len(meta.feature_columns)} features"
    )
    return 0


def _list(args: argparse.Namespace) -> int:
    metas = _store(args).list(args.namespace)
    if args.json:
        print(json.dumps([m.to_dict() for m in metas], indent=2))
        return 0
    if not metas:
        print("no tables")
        return 0
    print(f"{'namespace':<16} {'name':<32} {'rows':>8} {'features':>8}  label  created")
    for m in metas:
        print(
            f"{m.namespace or '':<16} {m.name or '':<32} {m.row_count:>8} {len(m.feature_columns):>8}  "
            f"{m.label_column or '-':<6} {m.created}"
        )
    return 0


def _info(args: argparse.Namespace) -> int:
    print(json.dumps(_store(args).info(args.namespace, args.name).to_dict(), indent=2))
    return 0


def _delete(args: argparse.Namespace) -> int:
    if not _store(args).delete(args.namespace, args.name):
        raise StorageError(f"table {args.namespace}.{args.name} not found")
    print(f"deleted {args.namespace}.{args.name}")
    return 0


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add the ``data`` command group.

    :param subparsers: the top-level ``add_subparsers()`` object.
    """
    group = subparsers.add_parser("data", help="upload, list, inspect and delete this party's tables")
    commands = group.add_subparsers(dest="data_command")
    commands.required = True

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--data-dir", default=None, help=f"the party's data dir (default: ${DATA_DIR_ENV})")

    up = commands.add_parser(
        "upload",
        help="load a CSV file into a table",
        description="Load a CSV into <data-dir>/tables/<namespace>/<name>. Either --file with "
        "--namespace/--name, or --conf with a FATE 1.x or 2.x upload config.",
    )
    up.add_argument("--file", help="CSV file")
    up.add_argument(
        "--conf",
        help="FATE upload config, JSON or YAML (1.x: file, head, partition, namespace, table_name; "
        "2.x: ... meta, name; a testsuite data: entry)",
    )
    up.add_argument(
        "--base-dir", help="directory that relative 'file' paths resolve against (default: the config's)"
    )
    up.add_argument("--namespace", help="table namespace (overrides the config's)")
    up.add_argument("--name", help="table name (overrides the config's)")
    up.add_argument("--id-col", help="id column (default: the config's match_id_name, else the first column)")
    up.add_argument("--label-col", help="label column, if any")
    up.add_argument("--delimiter", default=",", help="field delimiter (default ',')")
    up.add_argument("--no-head", action="store_true", help="the file has no header line")
    up.add_argument("--overwrite", action="store_true", help="replace an existing table")
    common(up)
    up.set_defaults(func=_upload)

    ls = commands.add_parser("list", help="list tables")
    ls.add_argument("--namespace", help="only this namespace")
    ls.add_argument("--json", action="store_true", help="print JSON")
    common(ls)
    ls.set_defaults(func=_list)

    for name, func, text in (
        ("info", _info, "print a table's meta as JSON"),
        ("delete", _delete, "delete a table"),
    ):
        p = commands.add_parser(name, help=text)
        p.add_argument("--namespace", required=True)
        p.add_argument("--name", required=True)
        common(p)
        p.set_defaults(func=func)


__all__ = ["register"]
