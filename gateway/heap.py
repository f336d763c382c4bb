"""Start-up state kept out of the garbage collector's way."""

from __future__ import annotations

import gc


def freeze_startup_state() -> None:
    """Objects loaded at start-up (the rules and their automaton, the classifier's vocabulary,
    the agent directory, the modules) live as long as the process: `veil check`, each worker.
    Moved to the collector's permanent generation, they are no longer walked by every full
    collection: judging a 10 KB message takes about 15% fewer instructions
    (`python -m bench.rules_instructions`), and a worker's full passes stop pausing it."""
    gc.collect()
    gc.freeze()
