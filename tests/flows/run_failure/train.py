import sys

lr = sys.argv[2]  # --lr <value>
if lr == "0.2":
    print("diverged: loss is nan", file=sys.stderr)
    sys.exit(3)
print(f"cnvrg_tag_accuracy: {1 - float(lr)}")
