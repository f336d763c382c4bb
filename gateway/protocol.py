"""Veil's SMTP protocol engine: aiosmtpd's, with the limits a relay exposed to clients needs."""

from __future__ import annotations

from aiosmtpd.smtp import SMTP


class VeilSMTP(SMTP):
    """aiosmtpd's SMTP server; limits and abuse checks are added here, policy stays in handlers."""
