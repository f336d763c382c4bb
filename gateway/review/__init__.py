"""The web review desk."""
