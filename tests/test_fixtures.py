"""The vendored FATE examples stay identical to the project's reference copy (../shared)."""

from __future__ import annotations

import pytest

from tests.conftest import FATE_EXAMPLES, SHARED


def test_vendored_examples_match_the_shared_reference() -> None:
    reference = SHARED / "fate-examples"
    if not reference.is_dir():
        pytest.skip("../shared/fate-examples is not next to this clone")
    ours = {p.relative_to(FATE_EXAMPLES) for p in FATE_EXAMPLES.rglob("*") if p.is_file()}
    theirs = {p.relative_to(reference) for p in reference.rglob("*") if p.is_file()}
    assert ours == theirs
    changed = [
        str(rel)
        for rel in sorted(ours)
        if (FATE_EXAMPLES / rel).read_bytes() != (reference / rel).read_bytes()
    ]
    assert changed == []
