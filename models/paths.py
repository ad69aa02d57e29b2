"""Where generated files go: ``$BMN_EDGE_WORK`` if set, else ``models/work/`` in this
checkout (git-ignored). Data, checkpoints, the 148 MB standard exports and the benchmark
models all live below it; nothing in it is ever committed."""

import os

HERE = os.path.dirname(os.path.abspath(__file__))
WORK = os.environ.get("BMN_EDGE_WORK") or os.path.join(HERE, "work")
