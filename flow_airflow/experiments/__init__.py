"""The experiments page: every experiment of a DAG run (params, tags, state, artifacts), compared.

``views`` (the router: the pages and the JSON API), ``api`` (what a run's page shows, built on
``flow_airflow.run_experiments``), ``compare`` (a flow's page: the experiments of its chosen recent runs),
``templates/`` (the pages), ``flow_airflow/web/static/experiments.js`` (the table and the charts,
drawn with the vendored Apache ECharts).
"""
