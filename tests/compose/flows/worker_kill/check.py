"""Fails unless Train's end state arrived whole from the bucket."""
import json
import os

with open(os.path.join(os.environ["INPUT_TRAIN"], "output", "model.json")) as f:
    model = json.load(f)
assert model["weights"] == list(range(100)), model
print("cnvrg_tag_trained_on:", model["host"])
