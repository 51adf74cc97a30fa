"""Model endpoints: what deploy tasks publish, where they run, and how they are updated without downtime.

- ``store``: the endpoint store (``[flow_airflow] endpoints_folder``): each endpoint's stable URL,
  versions and history;
- ``keys``: each endpoint's API key, an Airflow Variable masked in logs (unless it is open);
- ``prepare``: a new version's files and configuration, prepared like an experiment;
- ``replicas`` (local), ``docker_replicas``, ``kubernetes_replicas``: where its replicas run;
- ``supervise``: a supervised process that outlives the Airflow task (local replicas, the front);
- ``front``: the endpoint's stable URL, a reverse proxy to the serving version's replicas;
- ``rollout``: start, check, switch, stop the old; stop; roll back;
- ``api``, ``views``: the endpoints page; ``cli``: ``flow-airflow endpoints list|stop|logs``.

The serving app itself (Flask under gunicorn) is ``flow_airflow.serving``.
"""
