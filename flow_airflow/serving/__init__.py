"""Model endpoints (deploy tasks): the serving app and its command line.

- ``app``: the Flask app around the user's predict function (standard library and Flask only: it is
  bind-mounted into the endpoint's image and served by gunicorn);
- ``command``: ``EndpointConfig`` (the app's JSON configuration) and ``gunicorn_argv``.

Each compute kind runs the app as its replicas (``computes/<kind>/replicas.py``; on Kubernetes from
the manifests of ``computes.kubernetes.manifests``).
"""
