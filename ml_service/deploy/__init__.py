"""Deployment: scoring images, QA on Docker, production on Kubernetes, smoke tests."""
