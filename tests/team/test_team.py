"""The team workspace's files and commands in-process, without a server (ml_service/team/: server.py, postgres.py,
users.py, backup.py; the commands in ml_service/cli/workspace.py): every secret file is 0600 in a 0700 folder,
also when it existed with a looser mode (issue 29: a secret file written 0644), secrets are masked,
`mlops workspace use` points this checkout at a server as a user, and the refusals that come before any server is
asked. The PostgreSQL and MLflow server side is test_workspace.py's and test_migrate.py's."""
from __future__ import annotations

import io
import json
import stat

import pytest
import yaml

from ml_service.config import load_settings
from ml_service.errors import UsageError
from ml_service.team import backup, postgres, users
from ml_service.team import server as team


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def settings(workspace):
    """A fresh embedded workspace (tests/conftest.py), this checkout's root."""
    return workspace


def test_a_secret_file_is_0600_in_a_0700_folder_and_holds_the_value(tmp_path):
    path = tmp_path / "secrets" / "deep" / "admin_password"
    team.write_secret(path, "s3cret-value")
    assert mode(path) == 0o600 and mode(path.parent) == 0o700
    assert path.read_text() == "s3cret-value\n"


def test_rewriting_a_secret_that_was_readable_by_others_makes_it_0600(tmp_path):
    path = tmp_path / "secrets" / "tracking_password"
    path.parent.mkdir(mode=0o755)
    path.write_text("old\n")
    path.chmod(0o644)
    team.write_secret(path, "new-value")
    assert mode(path) == 0o600 and mode(path.parent) == 0o700 and path.read_text() == "new-value\n"


def test_a_passfile_is_0600_even_when_it_existed_with_a_looser_mode(tmp_path):
    passfile = tmp_path / "secrets" / "pgpass"
    postgres.write_passfile(passfile, 5433, "db-pass")
    assert mode(passfile) == 0o600
    assert passfile.read_text() == f"127.0.0.1:5433:*:{postgres.SUPERUSER}:db-pass\n"
    passfile.chmod(0o644)
    postgres.write_passfile(passfile, 5434, "db-pass")
    assert mode(passfile) == 0o600 and ":5434:" in passfile.read_text()


def test_a_secret_is_generated_once_then_read_back(tmp_path):
    paths = team.TeamPaths(tmp_path / "team")
    first = team.secret(paths, "db_password")
    assert len(first) >= 32 and mode(paths.secret("db_password")) == 0o600
    assert team.secret(paths, "db_password") == first
    assert team.secret(paths, "admin_password") != first


def test_every_stored_secret_is_masked_but_not_the_passfile_line(tmp_path):
    paths = team.TeamPaths(tmp_path / "team")
    admin, database = team.secret(paths, "admin_password"), team.secret(paths, "db_password")
    team.write_secret(paths.secret("users/alice"), "alice-pass-123")
    postgres.write_passfile(paths.passfile, 5432, database)
    log = f"login admin:{admin} db={database} alice=alice-pass-123 port 5432"
    masked = team.mask(log, paths)
    assert admin not in masked and database not in masked and "alice-pass-123" not in masked
    assert masked == "login admin:*** db=*** alice=*** port 5432"
    assert team.mask("nothing stored", team.TeamPaths(tmp_path / "none")) == "nothing stored"


def test_use_a_server_as_a_user_writes_the_override_and_a_0600_password(settings, monkeypatch, capsys):
    from ml_service.cli import main

    secret = settings.state_dir / "secrets" / "tracking_password"
    secret.parent.mkdir(parents=True)
    secret.write_text("left by hand\n")
    secret.chmod(0o644)
    monkeypatch.setattr("sys.stdin", io.StringIO("bobs-password\n"))
    assert main(["workspace", "use", "http://127.0.0.1:9", "--username", "bob", "--password-file", "-"]) == 0
    assert mode(secret) == 0o600 and secret.read_text() == "bobs-password\n"
    override = yaml.safe_load((settings.state_dir / "local.yml").read_text())
    assert override == {"tracking_uri": "http://127.0.0.1:9", "username": "bob", "password_file": str(secret)}
    assert "bobs-password" not in capsys.readouterr().out
    used = load_settings()  # what every later command of this checkout uses
    assert (used.tracking_uri, used.tracking_username, used.tracking_password) == (
        "http://127.0.0.1:9", "bob", "bobs-password")
    assert main(["workspace", "use", "embedded"]) == 0
    assert not (settings.state_dir / "local.yml").exists() and load_settings().tracking_uri.startswith("sqlite:")


def test_use_refuses_a_user_without_a_password_and_a_url_that_is_no_server(settings, tmp_path, capsys):
    from ml_service.cli import main

    assert main(["workspace", "use", "http://127.0.0.1:9", "--username", "bob"]) == 2
    empty = tmp_path / "empty"
    empty.write_text("\n")
    assert main(["workspace", "use", "http://127.0.0.1:9", "--username", "bob", "--password-file", str(empty)]) == 2
    assert main(["workspace", "use", "ftp://nowhere"]) == 2
    assert main(["workspace", "use", "team"]) == 2  # no team workspace was started here
    assert not (settings.state_dir / "local.yml").exists()
    assert not (settings.state_dir / "secrets").exists()


def test_status_exits_3_when_the_server_does_not_answer_and_0_on_the_embedded_store(settings, capsys):
    from ml_service.cli import main

    assert main(["workspace", "status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["backend"] == "sqlite"
    team.point_at(settings, "http://127.0.0.1:9")
    assert main(["workspace", "status", "--json"]) == 3
    report = json.loads(capsys.readouterr().out)
    assert report["answers"] is False and report["tracking_uri"] == "http://127.0.0.1:9"


def test_the_backend_of_a_server_is_what_up_wrote_for_it_and_unknown_otherwise(settings):
    team.point_at(settings, "http://127.0.0.1:9", backend="postgresql")
    assert team.backend(load_settings()) == "postgresql"
    team.point_at(settings, "http://127.0.0.1:9")
    assert team.backend(load_settings()) == "unknown"
    assert team.backend(settings) == "sqlite"


def test_users_and_grants_are_refused_before_any_server_is_asked(settings):
    with pytest.raises(UsageError, match="permission 'OWNER' is not one of"):
        users.grant(settings, "bob", "owner", model="m")
    for model, experiment in (("m", "e"), ("", "")):
        with pytest.raises(UsageError, match="exactly one of --model NAME or --experiment NAME"):
            users.grant(settings, "bob", "READ", model=model, experiment=experiment)
    with pytest.raises(UsageError, match="embedded workspace has no users"):
        users.grant(settings, "bob", "read", model="m")
    with pytest.raises(UsageError, match="embedded workspace has no users"):
        users.add_user(settings, "bob")
    assert not users.password_file(settings, "bob").exists()


def test_a_backup_folder_is_checked_before_anything_is_restored(tmp_path):
    folder = tmp_path / "b"
    folder.mkdir()
    with pytest.raises(UsageError, match="not a workspace backup"):
        backup._check(folder)
    (folder / backup.MANIFEST).write_text(json.dumps({"databases": ["mlflow", "mlflow_auth"]}))
    (folder / "mlflow.dump").write_bytes(b"x")
    with pytest.raises(UsageError, match="incomplete backup, missing mlflow_auth.dump, artifacts/"):
        backup._check(folder)
    (folder / "mlflow_auth.dump").write_bytes(b"x")
    (folder / "artifacts").mkdir()
    assert backup._check(folder)["databases"] == ["mlflow", "mlflow_auth"]


def test_backup_and_restore_refuse_without_a_running_workspace_and_write_nothing(settings, tmp_path):
    with pytest.raises(backup.BackupError, match="no team workspace runs"):
        backup.backup(settings, tmp_path / "target")
    assert not (tmp_path / "target").exists()


def test_the_server_gives_a_worker_time_to_start_before_uvicorn_kills_it(tmp_path):
    """uvicorn kills a worker that does not answer its health check in time (5 s by default); a worker still
    importing MLflow on a busy machine cannot, and `mlops workspace up` restarted workers until it gave up."""
    command = team._server_command(team.TeamPaths(tmp_path), 5432, 5000, 2)
    options = command[command.index("--uvicorn-opts") + 1].split()
    assert int(options[options.index("--timeout-worker-healthcheck") + 1]) >= 60
    assert command[command.index("--workers") + 1] == "2" and "--host" in command
    assert command[command.index("--host") + 1] == "127.0.0.1"


def test_up_tightens_an_artifact_store_an_earlier_version_left_world_readable(tmp_path):
    store = tmp_path / "artifacts"
    (store / "1" / "run" / "artifacts").mkdir(parents=True)
    model = store / "1" / "run" / "artifacts" / "model.pkl"
    model.write_bytes(b"pickle")
    for path, old in ((store, 0o755), (store / "1", 0o755), (model, 0o644)):
        path.chmod(old)
    team.private_artifacts(store)
    assert mode(store) == mode(store / "1") == mode(store / "1" / "run" / "artifacts") == 0o700
    assert mode(model) == 0o600
