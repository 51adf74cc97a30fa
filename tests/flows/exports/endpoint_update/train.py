"""The model: the greeting param and the words of the mounted dataset."""
import json, os, sys

assert sys.argv[1] == "--greeting", sys.argv
with open(os.path.join(os.environ.get("CNVRG_DATASET_WORDS", "/data/words"), "words.txt")) as f:
    words = f.read().split()
os.makedirs("output", exist_ok=True)
with open(os.path.join("output", "model.json"), "w") as f:
    json.dump({"greeting": sys.argv[2], "words": words}, f)
print("cnvrg_tag_words:", len(words))
