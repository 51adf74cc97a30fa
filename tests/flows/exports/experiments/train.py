"""One experiment of the grid: reads Prepare's output, takes a while (concurrency is measured on it)."""
import os, sys, time

args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
assert set(args) == {"--epochs", "--lr"}, sys.argv
with open(os.path.join(os.environ["INPUT_PREPARE"], "output", "prepared.txt")) as f:
    assert f.read() == "prepared\n"
print("START", time.time(), flush=True)
time.sleep(1.5)
print("END", time.time(), flush=True)
print("cnvrg_tag_accuracy:", round(int(args["--epochs"]) * float(args["--lr"]), 3))
