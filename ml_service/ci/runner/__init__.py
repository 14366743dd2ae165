"""Run a compiled pipeline: the plan, stages and jobs, steps and built-in tasks, step processes, secret masking,
the run's checkout and its console progress. Imports the model, never the server."""
