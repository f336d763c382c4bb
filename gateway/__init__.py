"""Veil: an SMTP gateway that keeps support agents' real identities out of customer mail."""
