"""Model endpoints: what deploy tasks publish, where they run, and how they are updated without downtime.

- ``store``: the endpoint store (``[flow_airflow] endpoints_folder``): each endpoint's stable URL,
  versions and history;
- ``keys``: each endpoint's API key, an Airflow Variable masked in logs (unless it is open);
- ``prepare``: a new version's files and configuration, prepared like an experiment;
- ``front``: the endpoint's stable URL, a reverse proxy to the serving version's replicas;
- ``rollout``: start, check, switch, stop the old; stop; roll back;
- ``api``, ``views``: the endpoints page; ``cli``: ``flow-airflow endpoints list|stop|logs``.

Where its replicas run is the deploy task's compute kind's (``computes/<kind>/replicas.py``, through
``computes.replicas_on``); the front runs under ``computes.local.supervise``. The serving app itself
(Flask under gunicorn) is ``flow_airflow.serving``.
"""
