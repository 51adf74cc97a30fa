"""standalone_mode: true runs once, on its own grid, with no upstream artifacts."""
import os, sys

assert sys.argv[1:] == [], sys.argv
assert not os.path.exists("input"), os.listdir("input")
print("cnvrg_tag_standalone: yes")
