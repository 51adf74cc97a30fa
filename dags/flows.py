"""Airflow DAGs compiled from the cnvrg flow files (*.yaml, *.yml) in this folder and below."""

from flow_airflow.loader import load_dags

globals().update(load_dags(__file__))
