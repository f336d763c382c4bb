"""A private Postfix instance around Veil, on loopback ports, for end-to-end tests.

Postfix is deployed as in deploy/: a submission listener whose mail goes through Veil's
outbound filter, an MX listener whose mail goes through Veil's inbound filter, and the
reinjection listener Veil hands filtered mail back to (content_filter empty). Everything that
leaves is relayed to a sink on loopback; no DNS, nothing leaves the machine.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

POSTFIX = shutil.which("postfix") or "/usr/sbin/postfix"
SMTP_SINK = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"


def missing_programs() -> str | None:
    """Why the Postfix tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "Postfix tests start a private instance and need root"
    for program in (POSTFIX, "/usr/lib/postfix/sbin/master"):
        if not os.path.exists(program):
            return f"{program} is not installed (Debian package postfix)"
    if not shutil.which("swaks"):
        return "swaks is not installed (Debian package swaks)"
    return None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


MASTER_CF = """\
{submission} inet n - n - - smtpd
  -o content_filter=scan:[127.0.0.1]:{veil_out}
  -o smtpd_relay_restrictions=permit_mynetworks,reject
{mx} inet n - n - - smtpd
  -o content_filter=scan:[127.0.0.1]:{veil_in}
  -o smtpd_relay_restrictions=permit_mynetworks,reject_unauth_destination
{reinject} inet n - n - 10 smtpd
  -o content_filter=
  -o receive_override_options=no_unknown_recipient_checks,no_header_body_checks,no_milters,no_address_mappings
  -o smtpd_relay_restrictions=permit_mynetworks,reject
  -o smtpd_client_restrictions=
  -o smtpd_helo_restrictions=
  -o smtpd_sender_restrictions=
  -o mynetworks=127.0.0.0/8
scan      unix  -       -       n       -       4       smtp
  -o smtp_send_xforward_command=yes
  -o disable_mime_output_conversion=yes
  -o smtp_data_done_timeout=600s
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""

MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {root}/spool
data_directory = {root}/data
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = mx.test.example
mydomain = test.example
myorigin = test.example
mydestination =
mynetworks = 127.0.0.0/8
relay_domains = support.example
relayhost = [127.0.0.1]:{sink}
transport_maps =
smtp_dns_support_level = disabled
smtp_host_lookup = native
smtpd_banner = $myhostname ESMTP
maillog_file = {root}/maillog
maillog_file_prefixes = {root}
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
smtp_connect_timeout = 5s
biff = no
message_size_limit = 33554432
"""


@dataclass
class PostfixInstance:
    root: Path
    submission: int
    mx: int
    reinject: int

    @property
    def config_directory(self) -> Path:
        return self.root / "etc"

    def log(self) -> str:
        path = self.root / "maillog"
        return path.read_text(errors="replace") if path.exists() else ""

    def queue_size(self) -> int:
        count = 0
        for folder in ("incoming", "active", "deferred", "maildrop"):
            path = self.root / "spool" / folder
            if path.exists():
                count += sum(len(files) for _, _, files in os.walk(path))
        return count

    def flush(self) -> None:
        subprocess.run([POSTFIX, "-c", str(self.config_directory), "flush"],
                       capture_output=True, timeout=30)

    def stop(self) -> None:
        subprocess.run([POSTFIX, "-c", str(self.config_directory), "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(self.root, ignore_errors=True)


def start_postfix(*, veil_out: int, veil_in: int, sink: int) -> PostfixInstance:
    # Postfix's daemons run as the postfix user: its folders must be reachable by that user,
    # which pytest's private temporary folders are not.
    root = Path(tempfile.mkdtemp(prefix="veil-postfix-"))
    root.chmod(0o755)
    instance = PostfixInstance(root, free_port(), free_port(), free_port())
    etc = instance.config_directory
    etc.mkdir(parents=True)
    for folder in ("spool", "data"):
        (root / folder).mkdir()
    (root / "data").chmod(0o755)
    shutil.chown(root / "data", "postfix")
    (etc / "main.cf").write_text(MAIN_CF.format(root=root, sink=sink))
    (etc / "master.cf").write_text(MASTER_CF.format(
        submission=f"127.0.0.1:{instance.submission}", mx=f"127.0.0.1:{instance.mx}",
        reinject=f"127.0.0.1:{instance.reinject}", veil_out=veil_out, veil_in=veil_in))
    for name in ("dynamicmaps.cf", "postfix-files"):
        if Path("/etc/postfix", name).exists():
            shutil.copy(Path("/etc/postfix", name), etc / name)
    for name in ("dynamicmaps.cf.d", "postfix-files.d"):
        if Path("/etc/postfix", name).is_dir():
            shutil.copytree(Path("/etc/postfix", name), etc / name)
    with open(etc / "main.cf", "a") as main:
        main.write(f"meta_directory = {etc}\n")
    environment = {**os.environ, "MAIL_CONFIG": str(etc)}
    subprocess.run([POSTFIX, "-c", str(etc), "check"], env=environment, capture_output=True,
                   timeout=60)
    result = subprocess.run([POSTFIX, "-c", str(etc), "start"], env=environment,
                            capture_output=True, timeout=60)
    if result.returncode != 0:
        log = instance.log()
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"postfix did not start: {result.stderr.decode(errors='replace')}"
                           f"{log}")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", instance.submission), timeout=1).close()
            return instance
        except OSError:
            time.sleep(0.2)
    instance.stop()
    raise RuntimeError("postfix did not open its ports:\n" + instance.log())
