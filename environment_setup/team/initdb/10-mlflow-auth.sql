-- MLflow's basic-auth app keeps users and permissions in their own database (backed up with the rest).
CREATE DATABASE mlflow_auth;
