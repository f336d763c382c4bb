"""Instructions per outbound message, counted by valgrind: what Veil itself does with each
message the listener receives (the smuggling check, `prepare_outbound`, the next hop's DATA
transparency), without aiosmtpd's and aiosmtplib's own work.

Steady on a busy machine, unlike wall-clock figures (bench/callgrind.py); needs valgrind, not
part of `make bench`.

    python -m bench.outbound_instructions [ROOT]

ROOT is a checkout whose `gateway/` is measured (default: this one), on the ~20 KB messages of
`bench/bench_outbound.py` with the shipped agent directory and a fresh RSA-2048 key.
Collection starts after every message has been prepared once, so only the steady state is
counted. OpenSSL's RSA step is counted too (about 5.8 M instructions a message).
"""

from __future__ import annotations

import inspect
import os
import sys
import tempfile
from pathlib import Path

from bench.callgrind import HERE, count_steady_state, instructions, measuring

MESSAGES = 16


def _measured(root: Path, key: Path) -> None:
    """Runs under valgrind: prepare every message, counting the second pass."""
    sys.path.insert(0, str(root))  # the measured checkout's gateway package comes first
    from bench.messages import corpus
    from gateway.auth.dkim import Signer
    from gateway.config import OutboundConfig, load_directory
    from gateway.envelope import Envelope
    from gateway.outbound import Send, prepare_outbound
    from gateway.protocol import smuggling_attempt
    from gateway.relay import transparent_pieces

    directory = load_directory(HERE / "agents.toml")
    signer = Signer("support.example", "veil", key.read_bytes())
    policy = OutboundConfig(internal_domains=("corp.example",))
    # Checkouts before the message-id key took the Message-ID secret from the signer.
    keyed: tuple[object, ...] = ()
    if "id_key" in inspect.signature(prepare_outbound).parameters:
        from gateway.identity.message_ids import MessageIdKey
        keyed = (MessageIdKey.random(),)
    # As they arrive over SMTP: the load generator sends every line end as CRLF.
    messages = [(sender, message.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
                for sender, message in corpus(MESSAGES)]

    def run() -> None:
        for sender, message in messages:
            assert not smuggling_attempt(message)
            plan = prepare_outbound(message, Envelope(sender, ("customer@example.net",)),
                                    directory, signer, policy, "support.example", *keyed)
            assert isinstance(plan, Send), plan
            for _ in transparent_pieces(plan.message):
                pass

    count_steady_state(run)


def main() -> None:
    root = Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else HERE
    if measuring():
        _measured(root, Path(os.environ["VEIL_KEY"]))
        return
    with tempfile.TemporaryDirectory() as folder:
        key = Path(folder) / "dkim.key"
        from gateway.auth.dkim import generate_key
        generate_key(key)
        total = instructions("bench.outbound_instructions", root, {"VEIL_KEY": str(key)})
    print(f"{root}: {total / MESSAGES / 1e6:.2f} M instructions per outbound "
          f"message ({MESSAGES} messages of ~20 KB)")


if __name__ == "__main__":
    main()
