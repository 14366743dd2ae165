"""The team workspace: an MLflow server on PostgreSQL on this machine, its users, backups and migration."""
