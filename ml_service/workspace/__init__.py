"""The workspace on MLflow: tracking wiring, datasets, snapshots, git info, registry helpers."""
