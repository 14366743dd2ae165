"""Local Azure Pipelines engine: templates, expressions, triggers, run store, approvals, git hooks."""
