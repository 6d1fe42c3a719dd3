"""Shared value types: parties and input references."""

from __future__ import annotations

import pytest

from fate_airflow.core.types import InputRef, Party, validate_party_id


@pytest.mark.parametrize("value", ["9999", 9999, "host_a-1"])
def test_valid_party_ids(value: object) -> None:
    assert validate_party_id(value) == str(value)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("99/99", "invalid party id '99/99': only letters, digits, '_' and '-' are allowed"),
        ("", "invalid party id ''"),
        (True, "party id True must be a string or an integer"),
        (1.5, "party id 1.5 must be a string or an integer"),
    ],
)
def test_invalid_party_ids_are_named(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        validate_party_id(value)


def test_party_parse_and_order() -> None:
    assert Party.parse("host:10000") == Party("host", "10000")
    assert str(Party("arbiter", "10000")) == "arbiter:10000"
    with pytest.raises(ValueError, match="unknown role 'boss'"):
        Party("boss", "1")


def test_input_ref_round_trip_leaves_out_unset_fields() -> None:
    ref = InputRef(
        "model", "model", "model_warehouse", producer_task="lr_0", output_key="model", model_id="m"
    )
    data = ref.to_dict()
    assert data == {
        "kind": "model",
        "key": "model",
        "source": "model_warehouse",
        "producer_task": "lr_0",
        "output_key": "model",
        "model_id": "m",
    }
    assert InputRef.from_dict(data) == ref
