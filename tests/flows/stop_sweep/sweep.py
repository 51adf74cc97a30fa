"""Route n=0 ends at once with a tag; every other route runs for ten minutes (until it is stopped)."""
import sys
import time

n = next((a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--n=")), "0")
print("cnvrg_tag_n:", n)
if n != "0":
    time.sleep(600)
