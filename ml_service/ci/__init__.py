"""Local Azure Pipelines engine, split by phase as nektos/act is: the model package reads and compiles the YAML,
the runner package runs it, the server package keeps the run store, approvals, identity, hooks and scheduler;
scaffold.py writes a model project's pipelines."""
