"""``fate-airflow model``: this party's model store (FATE's ``flow model``).

``list`` shows every model version stored here (FATE's party model id
``<role>#<party_id>#<model_id>``, the version = the training job id, and its components);
``export`` zips one version; ``import`` restores a zip made by ``export``. ``--data-dir`` defaults to
``$FATE_AIRFLOW_DATA_DIR``.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from fate_airflow.core.errors import StorageError
from fate_airflow.storage import DATA_DIR_ENV, resolve_data_dir
from fate_airflow.tracking import ModelStore, party_model_id


def _models(args: argparse.Namespace) -> ModelStore:
    return ModelStore(resolve_data_dir(args.data_dir))


def _list(args: argparse.Namespace) -> int:
    infos = _models(args).list(args.model_id)
    if args.json:
        print(json.dumps([i.to_dict() for i in infos], indent=2))
        return 0
    if not infos:
        print("no models")
        return 0
    for i in infos:
        print(
            f"{i.party_model_id}  version {i.model_version}  components {', '.join(i.components)}  created {i.created}"
        )
    return 0


def _pmid(args: argparse.Namespace) -> str:
    if args.party_model_id:
        return str(args.party_model_id)
    if args.model_id and args.role and args.party_id:
        return party_model_id(args.role, str(args.party_id), args.model_id)
    raise StorageError("name the model with --party-model-id, or --model-id with --role and --party-id")


def _export(args: argparse.Namespace) -> int:
    path = _models(args).export(_pmid(args), args.model_version, args.output)
    print(f"exported {_pmid(args)} version {args.model_version} to {path}")
    return 0


def _import(args: argparse.Namespace) -> int:
    info = _models(args).import_zip(args.file, overwrite=args.overwrite)
    print(f"imported {info.party_model_id} version {info.model_version}: {', '.join(info.components)}")
    return 0


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add the ``model`` command group.

    :param subparsers: the top-level ``add_subparsers()`` object.
    """
    group = subparsers.add_parser("model", help="list, export and import this party's models")
    commands = group.add_subparsers(dest="model_command")
    commands.required = True

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--data-dir", default=None, help=f"the party's data dir (default: ${DATA_DIR_ENV})")

    ls = commands.add_parser("list", help="list stored model versions")
    ls.add_argument("--model-id", help="only this model id")
    ls.add_argument("--json", action="store_true", help="print JSON")
    common(ls)
    ls.set_defaults(func=_list)

    ex = commands.add_parser("export", help="zip one model version of this party")
    ex.add_argument("--party-model-id", help="<role>#<party_id>#<model_id>")
    ex.add_argument("--model-id", help="the job's model id (with --role and --party-id)")
    ex.add_argument("--role", help="role of this party's share")
    ex.add_argument("--party-id", help="party id of this party's share")
    ex.add_argument("--model-version", required=True, help="model version (the training job id)")
    ex.add_argument("--output", "-o", required=True, help="zip file, or a directory to write it in")
    common(ex)
    ex.set_defaults(func=_export)

    im = commands.add_parser("import", help="restore a model version from an export zip")
    im.add_argument("--file", "-f", required=True, help="zip made by 'fate-airflow model export'")
    im.add_argument("--overwrite", action="store_true", help="replace the version if it exists")
    common(im)
    im.set_defaults(func=_import)


__all__ = ["register"]
