"""Airflow triggers: the deferred halves of flow-airflow's sensors."""
