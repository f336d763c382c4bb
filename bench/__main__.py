"""Run every benchmark in one go and print their figures; BENCHMARKS.md records them."""

from __future__ import annotations

import importlib
import platform
import os
import sys
import time

MODULES = ["bench.bench_outbound", "bench.bench_dkim", "bench.bench_rewrite",
           "bench.bench_rules", "bench.bench_postfix"]


def main() -> int:
    selected = sys.argv[1:] or MODULES
    print(f"# machine: {platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, {platform.platform()}")
    print(f"# started {time.strftime('%Y-%m-%d %H:%M:%S')}")
    failures = 0
    for name in selected:
        name = name if name.startswith("bench.") else f"bench.{name}"
        print(f"\n## {name}", flush=True)
        try:
            module = importlib.import_module(name)
            sys.argv = [name]  # each benchmark reads its own options, not this runner's
            module.main()
        except ModuleNotFoundError as error:
            print(f"skipped: {error}")
        except Exception as error:  # one broken benchmark must not hide the others
            failures += 1
            print(f"FAILED: {type(error).__name__}: {error}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
