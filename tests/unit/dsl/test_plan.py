from __future__ import annotations

import json

from fate_airflow.core.types import InputRef, Party
from fate_airflow.dsl import JobPlan, PartyTask, TaskPlan


def _plan() -> JobPlan:
    guest, host = Party("guest", "9999"), Party("host", "10000")
    task = TaskPlan(
        name="lr_0",
        component="coordinated_lr",
        implementation="hetero_lr@1.0.0",
        upstream=("psi_0",),
        parties=(
            PartyTask(guest, {"epochs": 3, "nested": {"a": [1, 2]}}, {"engine_run": {"cores": 4}}),
            PartyTask(host, {"epochs": 3}),
        ),
        inputs=(
            InputRef(
                "data",
                "train_data",
                "task",
                producer_task="psi_0",
                output_key="output_data",
                parties=(guest,),
            ),
            InputRef(
                "model",
                "input_model",
                "model_warehouse",
                producer_task="lr_0",
                output_key="output_model",
                model_id="m",
                model_version="0",
            ),
        ),
        outputs={"data": ("train_output_data",), "model": ("output_model",)},
        stage="train",
        conf={"timeout": 60, "engine_run": {"cores": 2, "memory": "1g"}},
    )
    return JobPlan(
        "fate-2.x-dag", "train", guest, (guest, host), (task,), {"task": {"timeout": 60}}, "x.yaml"
    )


def test_round_trip_through_json() -> None:
    plan = _plan()
    assert JobPlan.from_dict(json.loads(json.dumps(plan.to_dict()))) == plan


def test_party_conf_only_serialised_when_set() -> None:
    parties = _plan().to_dict()["tasks"][0]["parties"]
    assert list(parties[0]) == ["role", "party_id", "parameters", "conf"]
    assert list(parties[1]) == ["role", "party_id", "parameters"]


def test_conf_for_layers_party_conf() -> None:
    task = _plan().tasks[0]
    assert task.conf_for(Party("guest", "9999")) == {
        "timeout": 60,
        "engine_run": {"cores": 4, "memory": "1g"},
    }
    assert task.conf_for(Party("host", "10000")) == {
        "timeout": 60,
        "engine_run": {"cores": 2, "memory": "1g"},
    }
