"""The register step: log the promoted model in MLflow and register it."""
