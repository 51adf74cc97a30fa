"""flow-airflow: run cnvrg flow YAML files as Apache Airflow DAGs.

The package is a compiler in plain stages (spec -> plan -> build), the runtime that runs
inside a task instance (runtime, computes), and the Airflow plugin and CLI around them.
Nothing heavy is imported here: the DAG processor pays for every import on every parse.
"""

__version__ = "0.1.0"
