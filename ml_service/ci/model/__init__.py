"""Read and compile pipeline YAML: loading, schema, templates, expressions, variables, triggers, schedules and the
typed pipeline (stages and jobs, results). Pure: imports nothing of the runner or the server."""
