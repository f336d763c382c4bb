"""DKIM: signing outbound mail, verifying inbound mail, key generation.

dkimpy builds every signature (canonicalisation, header selection, the DKIM-Signature
header). Its RSA private-key step is pure Python (~90 signatures/s per core); Veil hands that
one step to OpenSSL through the `cryptography` package and has dkimpy's own code check the
result, so signatures are byte-identical to dkimpy's and many times faster.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable

import dkim
import dkim.canonicalization
import dkim.crypto
import gmpy2
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from gateway.config import ConfigError, DkimConfig
from gateway.lineends import crlf

# Header fields signed when present; From is listed twice so no second From can be added.
SIGNED_HEADERS = (b"from", b"to", b"cc", b"subject", b"date", b"message-id", b"reply-to",
                  b"in-reply-to", b"references", b"mime-version", b"content-type",
                  b"content-transfer-encoding")

DnsTxtLookup = Callable[[str], Awaitable[str | None]]

# --- fast RSA -----------------------------------------------------------------------------
# dkim/__init__.py calls the module-level name RSASSA_PKCS1_v1_5_sign(hash, private_key) while
# building a signature. That call is the narrowest seam dkimpy offers; refuse to start if an
# upgrade moves it rather than silently signing slowly or not at all.
if not callable(getattr(dkim, "RSASSA_PKCS1_v1_5_sign", None)):
    raise ImportError("dkimpy no longer exposes RSASSA_PKCS1_v1_5_sign; update gateway/auth/dkim.py")

_pure_python_sign = dkim.crypto.RSASSA_PKCS1_v1_5_sign
_openssl_keys: dict[int, rsa.RSAPrivateKey] = {}
_HASHES = {"sha256": hashes.SHA256(), "sha1": hashes.SHA1()}


def _openssl_key(private_key: dict[str, int]) -> rsa.RSAPrivateKey:
    modulus = private_key["modulus"]
    key = _openssl_keys.get(modulus)
    if key is None:
        public = rsa.RSAPublicNumbers(private_key["publicExponent"], modulus)
        key = rsa.RSAPrivateNumbers(
            p=private_key["prime1"], q=private_key["prime2"],
            d=private_key["privateExponent"], dmp1=private_key["exponent1"],
            dmq1=private_key["exponent2"], iqmp=private_key["coefficient"],
            public_numbers=public).private_key()
        _openssl_keys[modulus] = key
    return key


def _fast_rsassa_sign(hash_object: Any, private_key: dict[str, int]) -> bytes:
    """RSASSA-PKCS1-v1_5 with OpenSSL, checked by dkimpy's own verification before use."""
    algorithm = _HASHES.get(hash_object.name.lower())
    if algorithm is None:
        return bytes(_pure_python_sign(hash_object, private_key))
    signature = _openssl_key(private_key).sign(hash_object.digest(), padding.PKCS1v15(),
                                               Prehashed(algorithm))
    public = {"modulus": private_key["modulus"],
              "publicExponent": private_key["publicExponent"]}
    if not dkim.crypto.RSASSA_PKCS1_v1_5_verify(hash_object, signature, public):
        raise dkim.ParameterError("RSA signature failed dkimpy's check")
    return signature


dkim.RSASSA_PKCS1_v1_5_sign = _fast_rsassa_sign

# dkimpy's own check of every signature converts between integers and bytes one byte per loop
# iteration: slower than the OpenSSL signature itself. The same conversions in C; its RSA
# arithmetic (pow) and its comparison of the digests stay its own.
if not (callable(getattr(dkim.crypto, "int2str", None)) and
        callable(getattr(dkim.crypto, "str2int", None))):
    raise ImportError("dkimpy no longer has crypto.int2str/str2int; update gateway/auth/dkim.py")
dkimpy_int2str = dkim.crypto.int2str
dkimpy_str2int = dkim.crypto.str2int


def int_to_bytes(number: int, length: int = -1) -> bytearray:
    """dkimpy's int2str: big-endian, at least one byte; exactly `length` bytes when given
    (the low ones, as dkimpy keeps them)."""
    assert number >= 0
    if length < 0:
        length = max(1, (number.bit_length() + 7) // 8)
    else:
        number &= (1 << (8 * length)) - 1
    return bytearray(number.to_bytes(length, "big"))


def bytes_to_int(data: bytes | bytearray) -> int:
    """dkimpy's str2int: a big-endian unsigned integer."""
    return int.from_bytes(data, "big")


dkim.crypto.int2str = int_to_bytes
dkim.crypto.str2int = bytes_to_int

# The check's one modular exponentiation (signature ** e mod n) in Python's pow costs a
# quarter of OpenSSL's whole signature for a 2048-bit key; GMP computes the same number about
# six times quicker. The check stays dkimpy's: its encoding of the digest, compared with this.
if not callable(getattr(dkim.crypto, "rsa_encrypt", None)):
    raise ImportError("dkimpy no longer has crypto.rsa_encrypt; update gateway/auth/dkim.py")
dkimpy_rsa_encrypt = dkim.crypto.rsa_encrypt


def rsa_public_step(message: bytes | bytearray, public_key: dict[str, int],
                    length: int) -> bytearray:
    """dkimpy's rsa_encrypt: the message as a number, raised to e modulo n, as `length`
    bytes."""
    number = gmpy2.powmod(bytes_to_int(message), public_key["publicExponent"],
                          public_key["modulus"])
    return int_to_bytes(int(number), length)


dkim.crypto.rsa_encrypt = rsa_public_step

# dkimpy parses the PEM key (pure-Python ASN.1) on every signature, about as slow as the RSA
# step itself; the parsed key is a plain dict of numbers, so parse each key once.
if not callable(getattr(dkim, "parse_pem_private_key", None)):
    raise ImportError("dkimpy no longer exposes parse_pem_private_key; update gateway/auth/dkim.py")
dkim.parse_pem_private_key = functools.lru_cache(maxsize=16)(dkim.parse_pem_private_key)


# dkimpy's relaxed body canonicalisation rewrites every single space (one regex match per word)
# and its message parser splits the whole message into lines: several copies of a large body and
# a third of the signing time. This equivalent version touches only what relaxed changes and
# leaves a body that is already canonical uncopied. tests/test_dkim.py checks it against
# dkimpy's own on generated bodies.
if not hasattr(dkim.canonicalization.Relaxed, "canonicalize_body"):
    raise ImportError("dkimpy no longer has Relaxed.canonicalize_body; update gateway/auth/dkim.py")
dkimpy_relaxed_body = dkim.canonicalization.Relaxed.canonicalize_body

_TRAILING_WSP = re.compile(rb"[\t ]+\r\n")
_WSP_TO_COMPRESS = re.compile(rb"\t[\t ]*| [\t ]+")  # a lone space is already canonical
# Single literals, which re scans for at C speed (a class like [\t ] is tried at every space).
_NEEDS_TRAILING_STRIP = tuple(re.compile(literal) for literal in (b" \r\n", b"\t\r\n"))
_NEEDS_COMPRESSING = tuple(re.compile(literal) for literal in (b"\t", b"  "))


_PROBE_LIMIT = 1 << 20  # bodies up to 1 MiB are probed on a temporary copy
TRAILING_WHITESPACE, WHITESPACE_TO_COMPRESS = 1, 2  # what relaxed_changes reports


def _any(literals: tuple[re.Pattern[bytes], ...], data: bytes | memoryview) -> bool:
    if isinstance(data, bytes):
        # A tab is found at memchr speed; without one, no literal holding a tab is looked for.
        has_tab = b"\t" in data
        return any(literal.pattern in data for literal in literals
                   if has_tab or b"\t" not in literal.pattern)
    return any(literal.search(data) for literal in literals)


def relaxed_changes_in_python(body: bytes | memoryview) -> int:
    """TRAILING_WHITESPACE when a space or tab stands before a CRLF, | WHITESPACE_TO_COMPRESS
    when a tab or two spaces together do: what relaxed canonicalisation would change."""
    # bytes' own substring search is many times quicker than re's; a view of a body up to
    # _PROBE_LIMIT is copied for it (a large body keeps re, so it is never held twice).
    probe = body.tobytes() if isinstance(body, memoryview) and body.nbytes <= _PROBE_LIMIT \
        else body
    return (TRAILING_WHITESPACE * _any(_NEEDS_TRAILING_STRIP, probe) |
            WHITESPACE_TO_COMPRESS * _any(_NEEDS_COMPRESSING, probe))


try:
    from gateway._wire import relaxed_changes  # the same in one compiled pass, no copy
except ImportError:  # no C compiler at install time
    relaxed_changes = relaxed_changes_in_python


def relaxed_body(body: bytes | memoryview) -> bytes | memoryview:
    """RFC 6376 3.4.4: no whitespace before line ends, runs of whitespace as one space, no
    empty lines at the end, an empty body as nothing."""
    changes = relaxed_changes(body)
    if changes & TRAILING_WHITESPACE:
        body = _TRAILING_WSP.sub(b"\r\n", body)
        changes = relaxed_changes(body)  # the stripped whitespace may have been all of it
    if changes & WHITESPACE_TO_COMPRESS:
        body = _WSP_TO_COMPRESS.sub(b" ", body)
    end = len(body)
    while end >= 2 and body[end - 2:end] == b"\r\n":
        end -= 2
    if end == 0:
        return b""
    if end == len(body):  # the last line has no line end: relaxed adds one
        return bytes(body) + b"\r\n"
    return body[:end + 2]


dkim.canonicalization.Relaxed.canonicalize_body = staticmethod(relaxed_body)

# Its relaxed header canonicalisation runs two regular expressions (each through re's cache)
# over every signed field, twice a signature; most values need neither.
if not hasattr(dkim.canonicalization.Relaxed, "canonicalize_headers"):
    raise ImportError("dkimpy no longer has Relaxed.canonicalize_headers; update gateway/auth/dkim.py")
dkimpy_relaxed_headers = dkim.canonicalization.Relaxed.canonicalize_headers
_LINE_BREAK = re.compile(rb"\r?\n")
_WSP_RUN = re.compile(rb"[\t ]+")


def relaxed_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """RFC 6376 3.4.2: names in lower case, values unfolded, runs of whitespace as one space,
    none at either end."""
    canonical = []
    for name, value in headers:
        if b"\n" in value:
            value = _LINE_BREAK.sub(b"", value)
        if b"\t" in value or b"  " in value:
            value = _WSP_RUN.sub(b" ", value)
        canonical.append((name.lower().rstrip(), value.strip() + b"\r\n"))
    return canonical


dkim.canonicalization.Relaxed.canonicalize_headers = staticmethod(relaxed_headers)


# --- signing -------------------------------------------------------------------------------

class Signer:
    """Signs with one key; rsa-sha256 or ed25519-sha256 chosen from the key itself."""

    def __init__(self, domain: str, selector: str, private_key_pem: bytes) -> None:
        self.domain = domain.encode()
        self.selector = selector.encode()
        key = serialization.load_pem_private_key(private_key_pem, password=None)
        if isinstance(key, rsa.RSAPrivateKey):
            self.algorithm = b"rsa-sha256"
            # dkimpy reads PKCS#1 ("RSA PRIVATE KEY") PEM with LF line endings.
            self.key_for_dkimpy = key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption()).replace(b"\r\n", b"\n")
        elif isinstance(key, ed25519.Ed25519PrivateKey):
            self.algorithm = b"ed25519-sha256"
            seed = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                     serialization.NoEncryption())
            self.key_for_dkimpy = base64.b64encode(seed)
        else:
            raise ValueError("DKIM keys must be RSA or Ed25519")

    def sign(self, message: bytes) -> bytes:
        """The message with a DKIM-Signature header prepended; nothing else changes."""
        message = crlf(message)  # dkimpy signs what it is given; the wire is CRLF
        # dkimpy parses only the header block; the body goes in as a view, not a copy.
        head_end = message.find(b"\r\n\r\n")
        head_end = len(message) if head_end < 0 else head_end + 4
        head = message[:head_end]
        present = {line.split(b":", 1)[0].strip().lower() for line in head.split(b"\r\n")
                   if line and line[:1] not in (b" ", b"\t") and b":" in line}
        include = [h for h in SIGNED_HEADERS if h in present or h == b"from"] + [b"from"]
        signer = dkim.DKIM(head, linesep=b"\r\n")
        signer.body = memoryview(message)[head_end:]
        header = signer.sign(self.selector, self.domain, self.key_for_dkimpy,
                             signature_algorithm=self.algorithm,
                             canonicalize=(b"relaxed", b"relaxed"), include_headers=include)
        return header + message


def load_signer(config: DkimConfig) -> Signer:
    path = config.private_key
    try:
        pem = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(path, "dkim.private_key", "DKIM key file not found",
                          "run `veil dkim keygen` (or `make run`) to create it, or point "
                          "private_key at your key")
    except OSError as error:
        raise ConfigError(path, "dkim.private_key", f"cannot read the key ({error.strerror})",
                          "make the file readable by the user running veil")
    try:
        return Signer(config.domain, config.selector, pem)
    except (ValueError, TypeError) as error:
        raise ConfigError(path, "dkim.private_key", f"not a usable PEM private key ({error})",
                          "use an unencrypted RSA or Ed25519 PEM key, e.g. from `veil dkim keygen`")


# --- keys ----------------------------------------------------------------------------------

def generate_key(path: Path, algorithm: str = "rsa", bits: int = 2048,
                 overwrite: bool = False) -> None:
    """Write a new private key (PEM, LF line endings, mode 0600)."""
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass --force to replace it")
    key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
    if algorithm == "rsa":
        key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
        pem = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption())
    elif algorithm == "ed25519":
        key = ed25519.Ed25519PrivateKey.generate()
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    else:
        raise ValueError(f"unknown algorithm {algorithm!r}: use rsa or ed25519")
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(pem.replace(b"\r\n", b"\n"))
    os.replace(temporary, path)


def public_key_value(private_key_pem: bytes) -> str:
    """The TXT record value: v=DKIM1; k=...; p=..."""
    key = serialization.load_pem_private_key(private_key_pem, password=None)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        raw = key.public_key().public_bytes(serialization.Encoding.Raw,
                                            serialization.PublicFormat.Raw)
        return f"v=DKIM1; k=ed25519; p={base64.b64encode(raw).decode()}"
    if isinstance(key, rsa.RSAPrivateKey):
        der = key.public_key().public_bytes(serialization.Encoding.DER,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
        return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode()}"
    raise ValueError("DKIM keys must be RSA or Ed25519")


def dns_txt_record(domain: str, selector: str, private_key_pem: bytes) -> str:
    """The zone-file line to publish, the value split in strings of at most 255 characters."""
    value = public_key_value(private_key_pem)
    chunks = " ".join(f'"{value[i:i + 255]}"' for i in range(0, len(value), 255))
    return f"{selector}._domainkey.{domain}. IN TXT ( {chunks} )"


# --- verification --------------------------------------------------------------------------

@dataclass(frozen=True)
class DkimResult:
    result: str  # pass | fail | neutral | temperror | permerror | none
    domain: str
    selector: str
    reason: str = ""


def dns_txt_resolver(timeout: float = 5.0) -> DnsTxtLookup:
    """TXT look-ups with dnspython's asyncio resolver (the production lookup)."""
    import dns.asyncresolver
    import dns.exception
    import dns.resolver

    resolver = dns.asyncresolver.Resolver()
    resolver.lifetime = timeout

    async def lookup(name: str) -> str | None:
        try:
            answer = await resolver.resolve(name, "TXT")
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return None
        except dns.exception.DNSException as error:
            raise LookupError(str(error)) from error
        for record in answer:
            return b"".join(record.strings).decode("ascii", "replace")
        return None

    return lookup


def _signature_tags(header_value: bytes) -> dict[bytes, bytes]:
    tags: dict[bytes, bytes] = {}
    for part in header_value.split(b";"):
        name, _, value = part.partition(b"=")
        tags[name.strip().lower()] = b"".join(value.split())
    return tags


async def verify_dkim(message: bytes, lookup: DnsTxtLookup) -> tuple[DkimResult, ...]:
    """Every DKIM signature's result. DNS is fetched first, asynchronously; dkimpy then
    verifies from those answers. Never raises on hostile input."""
    message = crlf(message)  # dkimpy signs what it is given; the wire is CRLF
    try:
        parsed = dkim.DKIM(message, linesep=b"\r\n")
        signatures = [value for name, value in parsed.headers
                      if name.lower() == b"dkim-signature"]
    except Exception as error:  # dkimpy raises many types on garbage
        return (DkimResult("permerror", "", "", f"unparseable message: {type(error).__name__}"),)
    results: list[DkimResult] = []
    for index, value in enumerate(signatures[:10]):
        tags = _signature_tags(value)
        domain = tags.get(b"d", b"").decode("ascii", "replace")
        selector = tags.get(b"s", b"").decode("ascii", "replace")
        if not domain or not selector:
            results.append(DkimResult("permerror", domain, selector, "missing d= or s="))
            continue
        name = f"{selector}._domainkey.{domain}"
        try:
            record = await lookup(name)
        except (LookupError, OSError, asyncio.TimeoutError) as error:
            results.append(DkimResult("temperror", domain, selector, f"DNS: {error}"))
            continue
        if not record:
            results.append(DkimResult("permerror", domain, selector, "no key in DNS"))
            continue
        answer = record.encode()

        def dnsfunc(queried: bytes, timeout: int = 5, _answer: bytes = answer) -> bytes:
            return _answer

        try:
            ok = dkim.DKIM(message, linesep=b"\r\n").verify(idx=index, dnsfunc=dnsfunc)
        except dkim.ValidationError as error:
            # A body that no longer matches its hash was changed in transit: that is a fail.
            verdict = "fail" if "body hash mismatch" in str(error) else "permerror"
            results.append(DkimResult(verdict, domain, selector, str(error)[:200]))
            continue
        except Exception as error:
            results.append(DkimResult("permerror", domain, selector, type(error).__name__))
            continue
        results.append(DkimResult("pass" if ok else "fail", domain, selector,
                                  "" if ok else "signature did not verify"))
    return tuple(results)
