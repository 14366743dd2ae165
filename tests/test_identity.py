"""One rule for who a user is (ml_service/identity.py): names compared NFKC-casefolded everywhere, and a run records
the team server's user, never a claimed name, as its user."""
from __future__ import annotations

from pathlib import Path

import pytest

from ml_service import identity
from ml_service.config import Settings


@pytest.mark.parametrize("a, b", [("Alice@Example.com", "alice@example.com"), ("STRASSE", "straße"),
                                  ("ａｌｉｃｅ", "alice"), ("alice ", "alice")])
def test_names_that_differ_by_case_width_or_a_folded_letter_are_one_user(a, b):
    assert identity.same(a, b) and identity.find(["bob", b], a) == b and identity.among(a, [b])


def test_different_names_are_different_users_and_an_exact_match_wins():
    assert not identity.same("alice", "alicia")
    assert identity.find(["Alice", "alice"], "alice") == "alice"
    assert identity.find(["bob"], "alice") is None


def settings(uri: str, username: str = "", user: str = "") -> Settings:
    root = Path("/nonexistent")
    return Settings(root=root, state_dir=root, tracking_uri=uri, artifact_root=root, tracking_username=username,
                    user=user)


def test_a_run_on_a_team_server_records_the_server_user_and_keeps_a_claim_beside_it():
    team = settings("http://127.0.0.1:5000", username="trainer", user="admin@example.com")
    assert identity.run_user_tags(team) == {"mlflow.user": "trainer", "mlops.claimed_user": "admin@example.com"}
    assert identity.run_user_tags(settings("http://127.0.0.1:5000", "trainer", "TRAINER")) == {"mlflow.user": "trainer"}
    assert identity.run_user_tags(settings("sqlite:///x.db", user="alice")) == {"mlflow.user": "alice"}
    assert identity.run_user_tags(settings("sqlite:///x.db")) == {}
