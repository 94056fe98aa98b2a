"""The bulk-inference job, for schedulers and `ray job submit`.

    python jobs/embed.py --config FILE --root DIR [--overwrite]
    ray job submit -- python jobs/embed.py --config FILE --root DIR

`pinsage pipeline --only embed` under the run root DIR: every item (and user) of
DIR/graph embedded once with the latest checkpoint of DIR/run. Under `ray job submit`
the map / join / reduce runs on the job's cluster (`RAY_ADDRESS`); run directly, on a
local Ray. A complete output is skipped; `--overwrite` redoes it. Exit codes as the
CLI's.
"""

import sys

from pinsage.cli import main

if __name__ == "__main__":
    sys.argv = ["pinsage", "pipeline", *sys.argv[1:], "--only", "embed"]
    main()
