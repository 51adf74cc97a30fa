"""Writes the file its --out_path names; checks the params cnvrg passes (--partition 1 --out_path ...)."""
import os, sys

args = sys.argv[1:]
assert args == ["--partition", "1", "--out_path", "./output/prepared.txt"], args
os.makedirs("output", exist_ok=True)
with open(args[3], "w") as f:
    f.write("prepared\n")
print("cnvrg_tag_rows: 10")
