"""The local compute kind: the command as a subprocess of the task, on the worker (``compute``); an
endpoint's replicas as gunicorn processes there (``replicas``), each under ``supervise`` (a process
that outlives the Airflow task; the endpoint's front runs under it too)."""
