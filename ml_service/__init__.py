"""The platform: workspace, ML pipelines, local CI engine, serving and deployment. Model-agnostic."""
