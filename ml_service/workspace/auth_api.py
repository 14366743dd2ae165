"""MLflow's basic-auth REST API (users and grants) as its client calls it, for the team workspace's users
(team/users.py), run users (team/run_user.py) and the provenance check's writer lookup."""
from __future__ import annotations


class AuthApi:
    """MLflow's basic-auth REST API (users and grants), as MLflow's AuthServiceClient calls it, without importing
    mlflow.server (the server's Flask and FastAPI apps: seconds of imports and warnings on stderr)."""

    def __init__(self, tracking_uri: str):
        self.tracking_uri = tracking_uri

    def request(self, path: str, method: str, **kwargs) -> dict:
        """One call as the user in MLflow's environment variables; MlflowException when refused."""
        from mlflow.utils.credentials import get_default_host_creds
        from mlflow.utils.rest_utils import http_request, verify_rest_response

        response = verify_rest_response(http_request(get_default_host_creds(self.tracking_uri), path, method,
                                                     **kwargs), path)
        return response.json() if response.content else {}

    def create_user(self, username: str, password: str) -> None:
        """Create a user (an admin's call)."""
        self.request("/api/2.0/mlflow/users/create", "POST", json={"username": username, "password": password})

    def delete_user(self, username: str) -> None:
        """Delete a user and its grants (an admin's call)."""
        self.request("/api/2.0/mlflow/users/delete", "DELETE", json={"username": username})

    def list_usernames(self) -> list[str]:
        """Every user's name."""
        return [str(u.get("username", "")) for u in self.request("/api/2.0/mlflow/users/list", "GET").get("users", [])]

    def grant_user_permission(self, username: str, resource_type: str, resource_id: str, permission: str) -> None:
        """Give username permission on a resource (MANAGE on it, or admin)."""
        self.request("/api/3.0/mlflow/users/permissions/grant", "POST", json={
            "username": username, "resource_type": resource_type, "resource_id": resource_id,
            "permission": permission})

    def revoke_user_permission(self, username: str, resource_type: str, resource_id: str) -> None:
        """Take username's own grant on a resource away."""
        self.request("/api/3.0/mlflow/users/permissions/revoke", "POST", json={
            "username": username, "resource_type": resource_type, "resource_id": resource_id})
