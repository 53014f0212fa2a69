"""The driver script for `ray submit`: runs a `farm` command on the cluster's head.

    ray submit cluster.yaml farm/ray_driver.py -- autotune median3x3 --out ~/runs/m3

On the head, the farm joins the running cluster (RAY_ADDRESS=auto) instead of
starting an embedded one.
"""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("RAY_ADDRESS", "auto")
    from farm.cli import main

    sys.exit(main(sys.argv[1:]))
