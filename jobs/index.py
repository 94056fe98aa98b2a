"""The index job, for schedulers and `ray job submit`.

    python jobs/index.py --config FILE --root DIR [--overwrite]
    ray job submit -- python jobs/index.py --config FILE --root DIR

`pinsage pipeline --only index` under the run root DIR: the FAISS index over
DIR/embeddings, its recall measured. A complete index of the same embeddings is
skipped; `--overwrite` redoes it. Exit codes as the CLI's.
"""

import sys

from pinsage.cli import main

if __name__ == "__main__":
    sys.argv = ["pinsage", "pipeline", *sys.argv[1:], "--only", "index"]
    main()
