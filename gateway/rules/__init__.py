"""Harassment rules: text extraction, normalisation, matching, scoring, explanations."""
