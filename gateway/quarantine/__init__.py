"""The quarantine: the store, release, retention, reviewers and the audit trail."""
