"""DKIM signatures per second on one core for 20 KB messages: dkimpy's own pure-Python RSA,
Veil's OpenSSL RSA step (dkimpy still builds and checks the signature), and ed25519."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import dkim
import dkim.crypto

from bench.messages import corpus
from gateway.auth.dkim import Signer, generate_key


def rate(signer: Signer, messages: list[bytes], seconds: float = 3.0) -> float:
    done = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        for message in messages:
            signer.sign(message)
        done += len(messages)
    return done / (time.perf_counter() - started)


def main() -> None:
    messages = [message for _, message in corpus(16)]
    with tempfile.TemporaryDirectory() as folder:
        rsa_key, ed_key = Path(folder) / "rsa.key", Path(folder) / "ed.key"
        generate_key(rsa_key, "rsa")
        generate_key(ed_key, "ed25519")
        rsa = Signer("support.example", "veil", rsa_key.read_bytes())
        fast = rate(rsa, messages)
        hooked = dkim.RSASSA_PKCS1_v1_5_sign
        dkim.RSASSA_PKCS1_v1_5_sign = dkim.crypto.RSASSA_PKCS1_v1_5_sign
        try:
            slow = rate(rsa, messages, seconds=2.0)
        finally:
            dkim.RSASSA_PKCS1_v1_5_sign = hooked
        ed = rate(Signer("support.example", "veil", ed_key.read_bytes()), messages)
    print(f"rsa-sha256 2048, dkimpy pure-Python RSA: {slow:.0f} signatures/s")
    print(f"rsa-sha256 2048, OpenSSL RSA step:       {fast:.0f} signatures/s "
          f"({fast / slow:.1f}x)")
    print(f"ed25519-sha256:                          {ed:.0f} signatures/s")


if __name__ == "__main__":
    main()
