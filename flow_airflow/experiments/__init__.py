"""The experiments page: every experiment of a DAG run (params, tags, state, artifacts), compared.

``views`` (the router: the pages and the JSON API), ``api`` (what they show, built on
``flow_airflow.records``), ``templates/`` (the pages), ``flow_airflow/web/static/experiments.js``
(the table and the charts, drawn with the vendored Apache ECharts).
"""
