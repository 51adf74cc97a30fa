"""Endpoint function: the model's greeting, and whether the word is one of its words."""
import json, os


def predict(data):
    with open(os.path.join(os.environ.get("INPUT_TRAIN", "/input/train"), "output", "model.json")) as f:
        model = json.load(f)
    return {"greeting": model["greeting"], "known": data["word"] in model["words"]}
