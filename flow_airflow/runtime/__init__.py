"""What runs inside a task instance: one experiment, from workspace to stored outputs.

Never imported while a DAG file is parsed.
"""
