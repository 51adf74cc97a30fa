"""Route n=0 ends at once with a tag; every other route runs for ten minutes (until it is stopped)."""
import sys
import time

n = sys.argv[sys.argv.index("--n") + 1] if "--n" in sys.argv else "0"
print("cnvrg_tag_n:", n)
if n != "0":
    time.sleep(600)
