"""Instruction counts under valgrind's callgrind, for the `*_instructions` benchmarks.

Wall-clock figures on a shared machine move by 30% from one run to the next; an instruction
count does not, whatever else the machine is doing, so two versions of the code can be
compared from runs made hours apart. Needs valgrind (Debian's package).

A benchmark module runs itself under valgrind (`instructions`); inside, with VEIL_MEASURED
set, it hands its work to `count_steady_state`, which collects only the second pass.
"""

from __future__ import annotations

import gc
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent


def measuring() -> bool:
    """Whether this process is the one valgrind runs."""
    return bool(os.environ.get("VEIL_MEASURED"))


def count_steady_state(run: Callable[[], None]) -> None:
    """Run once to warm every cache, freeze start-up state out of the collector (as `veil
    serve` and `veil check` do; it also keeps the count steady), then collect one more run."""
    run()
    gc.collect()
    gc.freeze()
    subprocess.run(["callgrind_control", "--instr=on", str(os.getpid())],
                   capture_output=True, check=True)
    run()
    subprocess.run(["callgrind_control", "--instr=off", str(os.getpid())],
                   capture_output=True, check=True)


def instructions(module: str, root: Path, env: dict[str, str] | None = None) -> int:
    """Instructions `python -m module ROOT` collected under callgrind; exits with valgrind's
    own output if it failed."""
    with tempfile.TemporaryDirectory() as folder:
        result = subprocess.run(
            ["valgrind", "--tool=callgrind", "--instr-atstart=no",
             f"--callgrind-out-file={folder}/out", sys.executable, "-m", module, str(root)],
            cwd=HERE, env={**os.environ, **(env or {}), "VEIL_MEASURED": "1"},
            capture_output=True, text=True, check=False)
    found = re.search(r"Collected : (\d+)", result.stderr)
    if result.returncode or not found:
        sys.exit(f"valgrind failed ({result.returncode}):\n{result.stderr[-2000:]}")
    return int(found.group(1))
