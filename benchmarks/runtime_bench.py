"""`python benchmarks/runtime_bench.py [--layers] [OUT_DIR]`: the runtime benchmark, which lives in tinykd.bench."""

import sys

from tinykd.bench.runtime import main

sys.exit(main(sys.argv))
