"""Realistic helpdesk messages of a given size for benchmarks: multipart/alternative with a
plain and an HTML part, the agent's name, phone and signature, a quoted customer reply."""

from __future__ import annotations

import random

AGENTS = [("Jane Doe", "jane.doe@corp.example", "+1 555 010 7788"),
          ("José Álvarez", "jose.alvarez@corp.example", "+34 612 345 678")]

WORDS = ("thanks for reaching out about your order we have looked into the invoice and the "
         "shipment should arrive within three business days please let us know if the tracking "
         "number does not update by friday our team reviewed the logs and found the sync error "
         "was caused by an expired token which has now been renewed").split()


def paragraph(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words)).capitalize() + "."


def helpdesk_message(index: int, size: int = 20_000, seed: int = 7) -> tuple[str, bytes]:
    """(envelope sender, message bytes) of about `size` bytes."""
    rng = random.Random(seed + index)
    name, address, phone = AGENTS[index % len(AGENTS)]
    paragraphs: list[str] = []
    while sum(len(p) for p in paragraphs) * 2.05 < size:
        paragraphs.append(paragraph(rng, 40))
    plain = "\n\n".join(paragraphs)
    html = "\r\n".join(f"<p>{p}</p>" for p in paragraphs)
    boundary = f"=_bench_{index}"
    text = (
        f'From: "{name} via Acme Support" <{address}>\r\n'
        f"To: Customer <customer@example.net>\r\n"
        f"Subject: Re: Order {1000 + index} [#{index}]\r\n"
        f"Date: Tue, 24 Nov 2026 10:00:00 +0000\r\n"
        f"Message-ID: <{index}.bench@helpdesk.corp.example>\r\n"
        f"X-Mailer: Helpdesk 5.2\r\n"
        f"MIME-Version: 1.0\r\n"
        f'Content-Type: multipart/alternative; boundary="{boundary}"\r\n\r\n'
        f"--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Transfer-Encoding: 8bit\r\n\r\n"
        f"Hi,\r\n\r\n{plain}\r\n\r\nCall me at {phone}.\r\n\r\n-- \r\n{name}\r\nAcme Support\r\n\r\n"
        f"--{boundary}\r\nContent-Type: text/html; charset=utf-8\r\n"
        f"Content-Transfer-Encoding: 8bit\r\n\r\n"
        f"<html><body><p>Hi,</p>{html}<p>Call me at {phone}.</p>"
        f"<p>{name}<br>Acme Support</p></body></html>\r\n"
        f"--{boundary}--\r\n"
    )
    return address, text.encode("utf-8")


def corpus(count: int = 64, size: int = 20_000) -> list[tuple[str, bytes]]:
    return [helpdesk_message(i, size) for i in range(count)]
