"""Regenerate the committed protobuf/gRPC Python code from ``proto/`` (``make proto``).

The ``.proto`` tree mirrors the import path (``proto/fate_airflow/proto/...`` generates
``fate_airflow/proto/...``), so the generated imports need no rewriting. Outputs: ``*_pb2.py``,
``*_pb2_grpc.py`` and typed stubs ``*_pb2.pyi`` / ``*_pb2_grpc.pyi`` (mypy-protobuf), plus an
``__init__.py`` in every generated package.

``--check`` regenerates into a temporary folder and exits 1, listing the files that differ, when the
committed code has drifted from the sources (``make proto-check``, part of ``make test``).
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
import sysconfig
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PROTO_ROOT = REPO / "proto"
#: The generated package; everything under it except the hand-written top ``__init__.py`` is ours.
GENERATED_PACKAGE = Path("fate_airflow") / "proto"
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi")
INIT_TEXT = '"""Generated protobuf/gRPC code (do not edit; regenerate with ``make proto``)."""\n'


def _plugin(name: str) -> str:
    """Path of a protoc plugin installed next to this interpreter (mypy-protobuf)."""
    candidates = [Path(sys.executable).parent / name, Path(sysconfig.get_path("scripts")) / name]
    for candidate in candidates:
        if candidate.exists():
            return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise SystemExit(f"gen_protos: {name} not found; install the dev extras (mypy-protobuf)")
    return found


def generate(out_root: Path) -> list[Path]:
    """Compile every ``.proto`` under ``proto/`` into ``out_root``; returns the generated files."""
    import grpc_tools
    from grpc_tools import protoc  # dev-only dependency, imported lazily

    sources = sorted(PROTO_ROOT.rglob("*.proto"))
    if not sources:
        raise SystemExit("gen_protos: no .proto files under proto/")
    well_known = Path(grpc_tools.__file__).parent / "_proto"
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{well_known}",
        f"--plugin=protoc-gen-mypy={_plugin('protoc-gen-mypy')}",
        f"--plugin=protoc-gen-mypy_grpc={_plugin('protoc-gen-mypy_grpc')}",
        f"--python_out={out_root}",
        f"--grpc_python_out={out_root}",
        f"--mypy_out={out_root}",
        f"--mypy_grpc_out={out_root}",
        *(str(s.relative_to(PROTO_ROOT)) for s in sources),
    ]
    status = protoc.main(args)
    if status != 0:
        raise SystemExit(f"gen_protos: protoc failed with status {status}")
    # Every folder between fate_airflow/proto and the generated modules must be a package.
    generated = _generated_files(out_root)
    for folder in sorted({p.parent for p in generated}):
        while folder != out_root / GENERATED_PACKAGE and out_root / GENERATED_PACKAGE in folder.parents:
            (folder / "__init__.py").write_text(INIT_TEXT)
            folder = folder.parent
    return _generated_files(out_root)


def _generated_files(root: Path) -> list[Path]:
    """Generated files under ``root/fate_airflow/proto`` (sub-package ``__init__`` files included)."""
    base = root / GENERATED_PACKAGE
    if not base.exists():
        return []
    files = [p for p in base.rglob("*") if p.is_file() and p.name.endswith(GENERATED_SUFFIXES)]
    files += [p for p in base.rglob("__init__.py") if p.parent != base]
    return sorted(files)


def check() -> int:
    """Regenerate into a temp folder and compare with the committed files."""
    with tempfile.TemporaryDirectory(prefix="gen-protos-") as tmp:
        fresh_root = Path(tmp)
        fresh = {p.relative_to(fresh_root) for p in generate(fresh_root)}
        committed = {p.relative_to(REPO) for p in _generated_files(REPO)}
        problems: list[str] = []
        for rel in sorted(fresh - committed):
            problems.append(f"missing: {rel}")
        for rel in sorted(committed - fresh):
            problems.append(f"stale (no .proto source): {rel}")
        for rel in sorted(fresh & committed):
            if not filecmp.cmp(fresh_root / rel, REPO / rel, shallow=False):
                problems.append(f"differs: {rel}")
    if problems:
        print("generated protobuf code is out of date; run `make proto`:", file=sys.stderr)
        for line in problems:
            print(f"  {line}", file=sys.stderr)
        return 1
    print(f"generated protobuf code is up to date ({len(fresh)} files)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the committed code is stale")
    args = parser.parse_args(argv)
    if args.check:
        return check()
    for stale in _generated_files(REPO):
        stale.unlink()
    written = generate(REPO)
    for path in written:
        print(path.relative_to(REPO))
    return 0


if __name__ == "__main__":
    sys.exit(main())
