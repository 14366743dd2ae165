"""Read and compile pipeline YAML: loading, schema, templates, expressions, variables, triggers, schedules and the
typed pipeline (stages, jobs, steps). Pure: imports nothing of the runner or the server."""
