"""STARTTLS on the listeners, SMTP AUTH on the outbound listener, TLS to the next hop."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
from pathlib import Path

import aiosmtplib
import pytest
from aiosmtpd.smtp import SMTP
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway.app import _smtp_tls
from gateway.config import ConfigError
from gateway.envelope import Envelope, Relayed, Retry
from gateway.quarantine.reviewers import hash_password
from gateway.relay import deliver
from gateway.server import OutboundHandler, smtp_factory
from gateway.smtpauth import load_users

from conftest import SinkHandler, start_sink
from harness import start_gateway

MESSAGE = (b"From: Jane Doe <jane.doe@corp.example>\r\nTo: c@example.net\r\nSubject: hi\r\n\r\n"
           b"Hello, Jane here.\r\n")
PASSWORD = "helpdesk password 42"


def self_signed(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(
                ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "tls.crt", folder / "tls.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def client_context(cert: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(cert))
    return context


async def test_starttls_and_auth_let_an_outside_client_send(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    users = tmp_path / "smtp-users.toml"
    users.write_text(f'[[user]]\nname = "helpdesk"\npassword_hash = "{hash_password(PASSWORD)}"\n')
    sink = await start_sink()
    gateway = await start_gateway(tmp_path, outbound={
        "next_hop": sink.url, "allow_from": ["192.0.2.0/24"], "tls_cert": str(cert),
        "tls_key": str(key), "auth_users": str(users)})
    loop = asyncio.get_running_loop()
    listener = await loop.create_server(
        smtp_factory(OutboundHandler(gateway.services), gateway.config,
                     **_smtp_tls(gateway.config, "outbound")), "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False,
                                 tls_context=client_context(cert))
        await client.connect()
        await client.ehlo()
        assert not client.supports_extension("auth")  # never offered before TLS
        with pytest.raises(aiosmtplib.SMTPSenderRefused) as refused:
            await client.sendmail("jane.doe@corp.example", ["c@example.net"], MESSAGE)
        assert refused.value.code == 550  # loopback is not in allow_from
        await client.starttls()
        assert client.get_transport_info("sslcontext") is not None
        with pytest.raises(aiosmtplib.SMTPAuthenticationError):
            await client.login("helpdesk", "wrong password")
        await client.login("helpdesk", PASSWORD)
        errors, _ = await client.sendmail("jane.doe@corp.example", ["c@example.net"], MESSAGE)
        assert errors == {}
        await client.quit()
        assert b"Jane" not in sink.messages[0].data
    finally:
        listener.close()
        await gateway.close()
        sink.server.close()


def test_users_file_errors_name_the_fix(tmp_path: Path) -> None:
    users = tmp_path / "users.toml"
    users.write_text('[[user]]\nname = "x"\npassword_hash = "plaintext"\n')
    with pytest.raises(ConfigError, match="veil smtp-user hash"):
        load_users(users)
    with pytest.raises(ConfigError, match="not found"):
        load_users(tmp_path / "none.toml")


async def test_next_hop_tls_required_and_opportunistic(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    cert, key = self_signed(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # trust the test certificate
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    handler = SinkHandler()
    loop = asyncio.get_running_loop()
    tls_sink = await loop.create_server(
        lambda: SMTP(handler, decode_data=False, tls_context=server_context,
                     require_starttls=True), "127.0.0.1", 0)
    plain = await start_sink()
    envelope = Envelope("a@support.example", ("c@example.net",))
    try:
        url = f"smtp://127.0.0.1:{tls_sink.sockets[0].getsockname()[1]}"
        assert isinstance(await deliver(url, envelope, MESSAGE, tls="required"), Relayed)
        assert isinstance(await deliver(url, envelope, MESSAGE, tls="opportunistic"), Relayed)
        assert len(handler.messages) == 2
        assert isinstance(await deliver(plain.url, envelope, MESSAGE, tls="opportunistic"),
                          Relayed)
        refused = await deliver(plain.url, envelope, MESSAGE, tls="required")
        assert isinstance(refused, Retry) and refused.status == "4.7.0"
        assert len(plain.messages) == 1
    finally:
        tls_sink.close()
        plain.server.close()


def test_unreadable_certificate_stops_start_up(tmp_path: Path) -> None:
    from gateway.app import validate_for_serving
    from gateway.auth.dkim import generate_key
    from gateway.config import load_config
    from conftest import write_config
    bad = tmp_path / "bad.crt"
    bad.write_text("not a certificate")
    config = load_config(write_config(tmp_path, outbound={"tls_cert": str(bad),
                                                          "tls_key": str(bad)}))
    generate_key(config.dkim.private_key)
    with pytest.raises(ConfigError, match="outbound.tls_cert"):
        validate_for_serving(config)
