"""Pure scikit-learn training core: no MLflow, no Docker, no config loader."""
