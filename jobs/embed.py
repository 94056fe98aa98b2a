"""Bulk embedding inference as a scheduled or Ray job; the options of `pinsage embed`.

    ray job submit --working-dir . -- python jobs/embed.py \
        --run RUN --graph GRAPH --out EMB [--contexts] [--overwrite]

Inside `ray job submit` the job's cluster (RAY_ADDRESS) runs the map / join / reduce;
run directly, it starts a local Ray, like the CLI. Exit codes as the CLI's.
"""

from __future__ import annotations

import os
import sys

from pinsage.cli import main

if __name__ == "__main__":
    args = sys.argv[1:]
    if os.environ.get("RAY_ADDRESS") and "--ray-address" not in args:
        args += ["--ray-address", os.environ["RAY_ADDRESS"]]
    sys.argv = ["pinsage", "embed", *args]
    main()
