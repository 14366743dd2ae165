"""A model project (classification), created by `mlops init`: see docs/model-projects.md."""
