"""What compile time and run time share: the experiment record and its status, routes, lineage,
labels, ids, the flow's graph and conditions' pure functions. Imports neither ``spec`` nor ``plan`` (nor Airflow)."""
