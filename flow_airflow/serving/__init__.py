"""Model endpoints (deploy tasks): the serving app, its command line and its Kubernetes manifests.

- ``app``: the Flask app around the user's predict function (standard library and Flask only: it is
  bind-mounted into the endpoint's image and served by gunicorn);
- ``command``: ``EndpointConfig`` (the app's JSON configuration) and ``gunicorn_argv``;
- ``kubernetes``: ``endpoint_manifests``, the Deployment, Service, HorizontalPodAutoscaler and
  Secret of an endpoint on the Kubernetes compute.
"""
