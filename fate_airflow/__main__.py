"""``python -m fate_airflow`` = the ``fate-airflow`` command."""

from __future__ import annotations

import sys

from fate_airflow.cli import main

if __name__ == "__main__":
    sys.exit(main())
