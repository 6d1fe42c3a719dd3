"""The single task of a placeholder DAG that stands for a broken job file."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

if TYPE_CHECKING:
    from airflow.sdk import Context


class InvalidJobFileOperator(BaseOperator):
    """Fail with the job file's problems: a broken file must never look like a runnable job.

    :param problems: one line per problem, the same text ``fate-airflow dsl plan`` prints.
    """

    ui_color = "#f7c6c6"

    def __init__(self, *, problems: list[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.problems = list(problems)

    def execute(self, context: Context) -> None:
        """Always fails, listing the problems."""
        raise AirflowFailException("invalid job file:\n" + "\n".join(self.problems))
