"""Fits y = a*x + b to the data of Make Data by gradient descent."""
import argparse
import json
import os

from cnvrg import Experiment

parser = argparse.ArgumentParser()
parser.add_argument("--learning_rate", type=float)
parser.add_argument("--epochs", type=int)
args = parser.parse_args()
points = [tuple(map(float, line.split(","))) for line in open(os.path.join(os.environ["INPUT_MAKE_DATA"], "output", "data.csv"))]
a = b = 0.0
for _ in range(args.epochs):
    da = sum(2 * (a * x + b - y) * x for x, y in points) / len(points)
    db = sum(2 * (a * x + b - y) for x, y in points) / len(points)
    a, b = a - args.learning_rate * da, b - args.learning_rate * db
mse = sum((a * x + b - y) ** 2 for x, y in points) / len(points)
out = os.environ.get("CNVRG_OUTPUT_DIR", "output")
os.makedirs(out, exist_ok=True)
json.dump({"a": a, "b": b}, open(os.path.join(out, "model.json"), "w"))
Experiment().log_metric("mse", Ys=[round(mse, 6)])
