"""Writes which worker ran it to output/model.json, then works for a while (the test kills the worker now)."""
import json
import os
import socket
import time

out = os.environ.get("CNVRG_OUTPUT_DIR", "output")
os.makedirs(out, exist_ok=True)
with open(os.path.join(out, "model.json"), "w") as f:
    json.dump({"host": socket.gethostname(), "weights": list(range(100))}, f)
print("cnvrg_tag_host:", socket.gethostname(), flush=True)
time.sleep(float(os.environ.get("TRAIN_SECONDS", "25")))
print("trained")
