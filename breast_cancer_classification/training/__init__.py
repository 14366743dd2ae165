"""Pure scikit-learn training core: no MLflow, no platform imports."""
