"""Message authentication: DKIM signing and verification, Authentication-Results."""
