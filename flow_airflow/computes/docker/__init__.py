"""The Docker compute kind: each command of an experiment in a container of the task's image
(``compute``); an endpoint's replicas as containers of that image with a restart policy (``replicas``)."""
