"""Writes a noisy line to output/data.csv."""
import argparse
import os
import random

args = argparse.ArgumentParser()
args.add_argument("--rows", type=int, default=100)
rows = args.parse_args().rows
random.seed(7)
out = os.environ.get("CNVRG_OUTPUT_DIR", "output")
os.makedirs(out, exist_ok=True)
with open(os.path.join(out, "data.csv"), "w") as f:
    for _ in range(rows):
        x = random.uniform(-1, 1)
        f.write(f"{x},{3 * x + 1 + random.gauss(0, 0.1)}\n")
print("cnvrg_tag_rows:", rows)
