"""Instructions per judged message (`judge`, as `veil check` runs it), counted by valgrind.

Steady on a busy machine, unlike wall-clock figures (bench/callgrind.py); needs valgrind, not
part of `make bench`.

    python -m bench.rules_instructions [ROOT]

ROOT is a checkout whose `gateway/` and `rules/` are measured (default: this one), on the
messages of `bench/bench_rules.py`. Collection starts after the rules are loaded and every
message has been judged once, so only the steady state is counted.
"""

from __future__ import annotations

import sys
from pathlib import Path

from bench.callgrind import HERE, count_steady_state, instructions, measuring

MESSAGES = 20


def _measured(root: Path) -> None:
    """Runs under valgrind: judge every message, counting the second pass."""
    sys.path.insert(0, str(root))  # the measured checkout's gateway package comes first
    from bench.bench_rules import inbound_message
    from gateway.rules.engine import judge, load_ruleset
    messages = [inbound_message(i) for i in range(MESSAGES)]
    ruleset = load_ruleset([root / "rules"])

    def run() -> None:
        for message in messages:
            judge(message, ruleset, 10)

    count_steady_state(run)


def main() -> None:
    root = Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else HERE
    if measuring():
        _measured(root)
        return
    total = instructions("bench.rules_instructions", root)
    print(f"{root}: {total / MESSAGES / 1e6:.2f} M instructions per judged "
          f"message ({MESSAGES} messages of ~10 KB)")


if __name__ == "__main__":
    main()
