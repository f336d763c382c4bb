"""Instructions per judged message (`judge`, as `veil check` runs it), counted by valgrind.

Wall-clock figures on a shared machine move by 30% from one run to the next; an instruction
count does not, whatever else the machine is doing, so two versions of the code can be
compared from runs made hours apart. Needs valgrind (Debian's package); not part of
`make bench`.

    python -m bench.rules_instructions [ROOT]

ROOT is a checkout whose `gateway/` and `rules/` are measured (default: this one), on the
messages of `bench/bench_rules.py`. Collection starts after the rules are loaded and every
message has been judged once, so only the steady state is counted.
"""

from __future__ import annotations

import gc
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
MESSAGES = 20


def _measured(root: Path) -> None:
    """Runs under valgrind: judge every message once, then turn collection on and again."""
    sys.path.insert(0, str(root))  # the measured checkout's gateway package comes first
    from bench.bench_rules import inbound_message
    from gateway.rules.engine import judge, load_ruleset
    messages = [inbound_message(i) for i in range(MESSAGES)]
    ruleset = load_ruleset([root / "rules"])
    for message in messages:
        judge(message, ruleset, 10)
    gc.collect()
    gc.freeze()  # as `veil check` does after loading; also keeps the count steady
    subprocess.run(["callgrind_control", "--instr=on", str(os.getpid())],
                   capture_output=True, check=True)
    for message in messages:
        judge(message, ruleset, 10)
    subprocess.run(["callgrind_control", "--instr=off", str(os.getpid())],
                   capture_output=True, check=True)


def main() -> None:
    root = Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else HERE
    if os.environ.get("VEIL_MEASURED"):
        _measured(root)
        return
    with tempfile.TemporaryDirectory() as folder:
        result = subprocess.run(
            ["valgrind", "--tool=callgrind", "--instr-atstart=no",
             f"--callgrind-out-file={folder}/out", sys.executable, "-m",
             "bench.rules_instructions", str(root)],
            cwd=HERE, env={**os.environ, "VEIL_MEASURED": "1"}, capture_output=True, text=True,
            check=False)
    found = re.search(r"Collected : (\d+)", result.stderr)
    if result.returncode or not found:
        sys.exit(f"valgrind failed ({result.returncode}):\n{result.stderr[-2000:]}")
    print(f"{root}: {int(found.group(1)) / MESSAGES / 1e6:.2f} M instructions per judged "
          f"message ({MESSAGES} messages of ~10 KB)")


if __name__ == "__main__":
    main()
