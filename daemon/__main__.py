"""`python -m daemon` is the same as the `assetd` console script."""

import sys

from daemon.cli import program

# Guarded, as multiprocessing asks of a main module: a spawned worker must not run the CLI
# again. (Python's spawn skips a `-m pkg.__main__` module; the `assetd` console script's own
# entry, daemon/entry.py, imports the CLI only when called: see there why.)
if __name__ == "__main__":
    sys.exit(program())
