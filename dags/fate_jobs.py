"""Airflow DAG loader: one DAG per FATE job file in this party's drop folder (``dags/jobs/`` by default).

Drop a FATE 1.x dsl+conf pair (``<name>_dsl.json`` + ``<name>_conf.json``) or a FATE 2.x DAG file
(``<name>.yaml``) into the drop folder; a DAG named ``<name>`` appears within seconds.
"""

from fate_airflow.provider.dag_factory import load_party_dags

globals().update(load_party_dags(__file__))
