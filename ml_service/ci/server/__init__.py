"""Around the runs: the run store, queueing and chaining (service), approvals, identity, git hooks, the
scheduler, `make run`'s converge and `mlops ci expand`."""
