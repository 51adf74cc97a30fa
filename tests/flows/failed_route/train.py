import argparse
import sys

p = argparse.ArgumentParser()
p.add_argument("--lr")
a = p.parse_args()
if a.lr == "0.2":
    print("cnvrg_tag_accuracy: 0.99")  # logged, then the experiment fails: it must not win
    sys.exit("diverged")
print("cnvrg_tag_accuracy:", round(1 - float(a.lr), 2))
