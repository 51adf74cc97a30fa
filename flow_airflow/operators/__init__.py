"""Operators of compiled flows. Light to import: the work happens in :mod:`flow_airflow.runtime`."""
