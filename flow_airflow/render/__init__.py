"""Building Airflow DAGs from flow plans."""
