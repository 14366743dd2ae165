"""The evaluate step: the candidate against the champion, on the same test split."""
