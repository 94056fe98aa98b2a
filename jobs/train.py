"""The training job, for schedulers and `ray job submit`.

    python jobs/train.py --config FILE --root DIR [--workers N] [--overwrite]
    ray job submit -- python jobs/train.py --config FILE --root DIR

`pinsage pipeline --only data --only graph --only train --only eval` under the run
root DIR: the data and graph when missing, training (resumed exactly when it was
interrupted) and the evaluation on the held-out interactions. `--workers N` trains
data-parallel under Ray Train (on the job's cluster under `ray job submit`). Complete
stages are skipped; `--overwrite` redoes them. Exit codes as the CLI's.
"""

import sys

from pinsage.cli import main

STAGES = ("data", "graph", "train", "eval")

if __name__ == "__main__":
    only = [arg for stage in STAGES for arg in ("--only", stage)]
    sys.argv = ["pinsage", "pipeline", *sys.argv[1:], *only]
    main()
