"""Monitoring of served models: drift of the collected inputs and predictions against the training data."""
