"""Airflow DAGs compiled from the cnvrg flow files (*.yaml, *.yml) in this folder and below:
the share of them this file's name says (see flow_airflow/loader.py)."""

from flow_airflow.loader import load_dags

globals().update(load_dags(__file__))
