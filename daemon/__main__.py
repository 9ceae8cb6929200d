"""`python -m daemon` is the same as the `assetd` console script."""

import sys

from daemon.cli import main

# Guarded: a worker process the scanner spawns (daemon/scan/hashpool.py) imports this module
# as `__mp_main__`, and must not run the CLI again.
if __name__ == "__main__":
    sys.exit(main())
