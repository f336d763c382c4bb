"""Rewrite + leak check throughput on generated 20 KB messages with a 50-agent directory.

Run: .venv/bin/python -m bench.bench_rewrite [--seconds 2]
Prints messages/s and ms per message for each message shape, on one core.
"""

from __future__ import annotations

import argparse
import base64
import quopri
import random
import time

from gateway.config import Agent, Directory
from gateway.identity.leaks import leaks_in
from gateway.identity.rewrite import rewrite

FIRST = ["Jane", "José", "Zoë", "Mark", "Aisha", "Liam", "Mei", "Olga", "Pierre", "Sven",
         "Fatima", "Ravi", "Chloé", "Tomás", "Ingrid", "Kenji", "Amara", "Noah", "Léa", "Yusuf",
         "Hana", "Mateo", "Nadia", "Oscar", "Priya"]
LAST = ["Doe", "Álvarez", "Müller", "Young", "Khan", "Murphy", "Chen", "Ivanova", "Dubois",
        "Larsson", "Haddad", "Patel", "Lefèvre", "García", "Berg", "Tanaka", "Okafor", "Smith",
        "Martin", "Demir", "Kim", "Rossi", "Nowak", "Silva", "Sharma"]
WORDS = ["thanks", "for", "your", "patience", "we", "have", "looked", "into", "your", "account", "and", "the", "order", "was", "shipped", "yesterday", "please", "let", "us", "know", "if", "the", "parcel", "does", "not", "arrive", "within", "three", "days", "the", "tracking", "number", "is", "in", "the", "attached", "document", "and", "our", "team", "is", "happy", "to", "help"]


def directory(size: int = 50) -> Directory:
    agents = []
    for index in range(size):
        first, last = FIRST[index % len(FIRST)], LAST[(index * 7) % len(LAST)]
        slug = f"{first}.{last}{index}".lower().encode("ascii", "ignore").decode()
        agents.append(Agent(
            name=f"{first} {last}", addresses=(f"{slug}@corp.example",),
            also_known_as=(f"{first}{index}",), phones=(f"+1 555 {index:03d} {7000 + index}",),
            alias_name=f"Alias{index} Person", alias_address=f"alias{index}@support.example",
            alias_signature=f"Alias{index} Person\nAcme Support"))
    return Directory(tuple(agents))


def prose(size: int, rng: random.Random) -> str:
    lines, line, length = [], [], 0
    while length < size:
        word = rng.choice(WORDS)
        line.append(word)
        length += len(word) + 1
        if len(line) == 12:
            lines.append(" ".join(line))
            line = []
    return "\n".join(lines + [" ".join(line)])


def headers(agent: Agent, content_type: str) -> str:
    address = agent.addresses[0]
    return (f"Received: from helpdesk.corp.example ([10.0.0.7]) by mx.corp.example; "
            f"Tue, 24 Nov 2026 09:15:02 +0000\r\nFrom: {agent.name} <{address}>\r\n"
            "To: Peter Customer <peter@customer.example>\r\nSubject: Re: your order\r\n"
            "Date: Tue, 24 Nov 2026 09:15:02 +0000\r\n"
            "Message-ID: <1234.5678@helpdesk.corp.example>\r\nX-Mailer: Helpdesk 5\r\n"
            f"MIME-Version: 1.0\r\nContent-Type: {content_type}\r\n")


def qp(text: str) -> str:
    return quopri.encodestring(text.encode("utf-8")).decode().replace("\n", "\r\n")


def messages(dir_: Directory, rng: random.Random) -> dict[str, bytes]:
    agent, colleague = dir_.agents[3], dir_.agents[17]
    signature = f"\n\nBest regards,\n{agent.name}\n{agent.phones[0]}\n"
    body = prose(19_000, rng) + f"\nmy colleague {colleague.name} will call you." + signature
    plain = (headers(agent, "text/plain; charset=utf-8")
             + "Content-Transfer-Encoding: quoted-printable\r\n\r\n" + qp(body))
    html_body = "<html><body>" + "".join(
        f"<p>{line}</p>" for line in prose(11_000, rng).splitlines()) + \
        f"<p>Best regards,<br><b>{agent.name}</b></p></body></html>"
    alternative = (headers(agent, 'multipart/alternative; boundary="alt"') + "\r\n--alt\r\n"
                   "Content-Type: text/plain; charset=utf-8\r\n"
                   "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
                   + qp(prose(7_000, rng) + signature) + "\r\n--alt\r\n"
                   "Content-Type: text/html; charset=utf-8\r\n"
                   "Content-Transfer-Encoding: quoted-printable\r\n\r\n" + qp(html_body)
                   + "\r\n--alt--\r\n")
    pdf = base64.b64encode(rng.randbytes(9_000)).decode()
    pdf = "\r\n".join(pdf[i:i + 76] for i in range(0, len(pdf), 76))
    attachment = (headers(agent, 'multipart/mixed; boundary="mix"') + "\r\n--mix\r\n"
                  "Content-Type: text/plain; charset=utf-8\r\n"
                  "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
                  + qp(prose(7_000, rng) + signature) + "\r\n--mix\r\n"
                  'Content-Type: application/pdf; name="invoice.pdf"\r\n'
                  'Content-Disposition: attachment; filename="invoice.pdf"\r\n'
                  "Content-Transfer-Encoding: base64\r\n\r\n" + pdf + "\r\n--mix--\r\n")
    return {name: text.encode("utf-8") for name, text in
            (("plain", plain), ("html+plain alternative", alternative),
             ("with attachment", attachment))}


def measure(message: bytes, dir_: Directory, seconds: float) -> tuple[int, float]:
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        result = rewrite(message, "", dir_, internal_domains=("corp.example",),
                         id_domain="support.example")
        if leaks_in(result.message, dir_, result.mail_from):
            raise SystemExit("benchmark message still leaks after rewriting")
        count += 1
    return count, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=2.0, help="time per message shape")
    args = parser.parse_args()
    dir_ = directory(50)
    rng = random.Random(2026)
    samples = messages(dir_, rng)
    measure(samples["plain"], dir_, 0.2)  # compile the directory's patterns once
    print(f"rewrite + leaks_in, 50-agent directory, one core ({args.seconds:g} s per shape)")
    for name, message in samples.items():
        count, elapsed = measure(message, dir_, args.seconds)
        print(f"  {name:24} {len(message) / 1024:5.1f} KB  {count / elapsed:8.0f} msg/s  "
              f"{elapsed / count * 1000:6.2f} ms/msg")


if __name__ == "__main__":
    main()
