"""The Studio: the project's own web pages for pipeline runs, ML runs, models, approvals and deployments."""
