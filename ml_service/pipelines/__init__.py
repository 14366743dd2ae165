"""ML pipelines: definitions as data, a runner with step reuse, compute targets, publishing."""
