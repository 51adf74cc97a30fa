"""A blueprint project of our own in the layout cnvrg publishes (issue 25, section 1): the flow file with its AI
Library components beside it, each a folder with a ``library.yaml`` and its code, named by the slug of its
title (never by the folder's name).

- ``connector/``: ``Tiny Connector``, as cnvrg's S3 connector: an argument whose value carries a subcommand
  (``'http://127.0.0.1:9 download'``), one left unset (``values: []``) that the task gives, and a flag
  followed by a positional; its script writes the argv it got and a data file;
- ``prep_v1/``, ``prep_v2/``: two versions of ``Churn Prep``; the second has a ``prerun.sh`` and a
  ``requirements.txt`` naming only cnvrg's SDKs (left out), and calls both SDKs;
- ``serve/``: ``Tiny Inference``, a deploy component (``kind: webservice``, its deploy keys as its
  ``arguments``), whose predict module needs what its ``prerun.sh`` made.
"""

from __future__ import annotations

from pathlib import Path

FLOW = """\
title: Tiny Churn
version: 1.0.0
tasks:
  - title: Tiny Connector
    type: exec
    library: tiny-connector
    library_version: 1.0.0
    params:
      - key: endpoint
        type: 'categorical'
        values:
          - 'http://127.0.0.1:9 download'
      - key: bucketname
        type: 'categorical'
        values:
          - 'libhub-readme'
      - key: prefix
        type: 'categorical'
        values: []
  - title: Data-Prep
    type: exec
    library: churn-prep
    params:
      - key: rows
        type: 'categorical'
        values:
          - '/input/tiny_connector/rows.csv'
      - key: label
        type: 'categorical'
        values:
          - 'churn flag'
  - title: Old Prep
    type: exec
    library: churn-prep
    library_version: 1.0.0
  - title: Inference
    type: deploy
    library: tiny-inference
    library_version: 1.0.0
relations:
  - {from: Tiny Connector, to: Data-Prep}
  - {from: Tiny Connector, to: Old Prep}
  - {from: Data-Prep, to: Inference}
"""

CONNECTOR_YAML = """\
title: Tiny Connector
version: 1.0.0
description: "Read data from s3"
icon: python
author: "cnvrg"
tags:
  - connector
command: python3 connector.py
requirements:
  cpu: 1
  memory: 1
image: python:3.11-slim
language: python3
arguments:
  - key: endpoint
    type: 'categorical'
    values:
      - 'https://s3.amazonaws.com download'
  - key: bucketname
    type: 'categorical'
    values: []
  - key: prefix
    type: 'categorical'
    values: []
"""
CONNECTOR = """\
import json, os, sys
os.makedirs("output", exist_ok=True)
json.dump(sys.argv[1:], open("output/argv.json", "w"))
open("rows.csv", "w").write("id,churn\\n1,0\\n2,1\\n3,1\\n")
print("cnvrg_tag_connected: yes")
print("cnvrg_tag_region:", os.environ.get("REGION", "unset"))
"""

PREP_YAML = """\
title: Churn Prep
version: {version}
command: python3 prep.py
image: python:3.11-slim
arguments:
  - key: rows
    type: 'categorical'
    values:
      - '/input/tiny_connector/rows.csv'
"""
PREP = """\
import argparse, os
from cnvrg import Experiment
from cnvrgv2 import Experiment as ExperimentV2

parser = argparse.ArgumentParser()
parser.add_argument("--rows", default=None)
parser.add_argument("--label", nargs="*", default=[])
args = parser.parse_args()
print("cnvrg_tag_prep_version: {version}")
print("cnvrg_tag_label:", "+".join(args.label) or "none")
if args.rows:
    rows = open(args.rows).read().splitlines()[1:]
    Experiment().log_param("rows", len(rows))
    ExperimentV2().log_metric("churned", sum(r.endswith(",1") for r in rows))
print("cnvrg_tag_prerun_ran:", os.path.exists("prerun.done"))
open("model.txt", "w").write("threshold=0.5\\n")
"""
PRERUN = "#!/bin/sh\ntouch prerun.done\n"
SDK_REQUIREMENTS = "cnvrg==0.7.54\ncnvrgv2==1.0.17\n"

SERVE_YAML = """\
title: Tiny Inference
version: 1.0.0
kind: webservice
command: python3 predict.py
image: python:3.11-slim
arguments:
  accept_files: false
  file_name: predict.py
  function_name: predict
  prep_file: ''
  prep_function: ''
  input_example:
    x: 1
"""
PREDICT = """\
import os

assert os.path.exists("prerun.done"), "the component's prerun.sh did not run for the endpoint"


def predict(data):
    model = open(os.path.join(os.environ.get("INPUT_DATA_PREP", "/input/data_prep"), "model.txt")).read()
    threshold = float(model.split("=")[1])
    return "churn" if float(data["x"]) > threshold else "stay"
"""


def write(root: Path, files: dict[str, str]) -> Path:
    """``files`` (relative path -> text) under ``root``; ``root``."""
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def blueprint(root: Path) -> Path:
    """The project at ``root``: its flow file."""
    write(root, {
        "flow.yaml": FLOW,
        "connector/library.yaml": CONNECTOR_YAML, "connector/connector.py": CONNECTOR,
        "prep_v1/library.yaml": PREP_YAML.format(version="1.0.0"), "prep_v1/prep.py": PREP.format(version="1.0.0"),
        "prep_v2/library.yaml": PREP_YAML.format(version="1.2.0"), "prep_v2/prep.py": PREP.format(version="1.2.0"),
        "prep_v2/prerun.sh": PRERUN, "prep_v2/requirements.txt": SDK_REQUIREMENTS,
        "serve/library.yaml": SERVE_YAML, "serve/predict.py": PREDICT, "serve/prerun.sh": PRERUN,
    })
    return root / "flow.yaml"
