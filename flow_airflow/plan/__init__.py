"""Planning: the task graph of a flow and the routes each task runs."""
