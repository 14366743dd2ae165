"""The workspace on MLflow: tracking wiring, the run store (run_store: MLflow's client or the sqlite fast path,
chosen once), datasets, snapshots, git info, registry helpers."""
