"""Identity: rewriting real identities to aliases, and the fail-closed leak check."""
