"""Scoring: score.py is what the scoring service hosts (this package is copied into the image)."""
