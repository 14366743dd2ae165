"""Issue 24, findings 1 and 3, as a hostile teammate plays them against a real team workspace (`mlops workspace up`:
PostgreSQL 15 and MLflow's server with basic auth), with the admin and a second account `reader` holding the
default READ permission.

1. A reader registers the project's model before the team does, with a version whose model.pkl is a malicious
   pickle and alias champion; the admin's evaluate loads the champion. The pickle must never run: up creates the
   project's registered model as the admin, and a champion that cannot be traced to a writer of the project's
   experiment is refused before its files are unpickled.
3. A reader creates the registration lock `mlops-lock.<model>` with `mlops.lock.since=1e12`: later registrations
   must not wait for it; a ticket is stale on the server's clock, whatever a client wrote.
Also: a run's user is the user who created it, as the server authenticated them, whatever a client sends
(`run.info.user_id`, the `mlflow.user` tag), so the provenance check reads a name the server vouches for.
"""
from __future__ import annotations

import base64
import json
import os
import urllib.error
import urllib.request
import pickle
from contextlib import contextmanager
from pathlib import Path

import pytest

from ml_service.config import load_settings
from tests.team.test_workspace import run_mlops, start_team

pytestmark = [pytest.mark.integration, pytest.mark.slow]
MODEL, EXPERIMENT = "breast_cancer_classifier", "breast_cancer_classification"  # a project of mlops.yml


@pytest.fixture(scope="module")
def team(tmp_path_factory):
    """A team workspace and the password of a user `reader` (default READ)."""
    state_dir = tmp_path_factory.mktemp("team-trust")
    env = start_team(state_dir)
    added = run_mlops(env, "workspace", "user", "add", "reader")
    assert added.returncode == 0, added.stderr
    settings = load_settings(env)
    yield {"env": env, "uri": settings.tracking_uri, "admin": settings.tracking_password,
           "reader": (state_dir / "secrets" / "users" / "reader").read_text().strip(), "state_dir": state_dir}
    run_mlops(env, "workspace", "down")


@contextmanager
def acting_as(team, user: str):
    """MLflow's client (and the platform's code in this process) acting as user."""
    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")}
    os.environ.update(MLFLOW_TRACKING_USERNAME=user, MLFLOW_TRACKING_PASSWORD=team[user])
    try:
        yield client_of(team)
    finally:
        for key, value in saved.items():
            os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)


def client_of(team):
    import mlflow

    return mlflow.MlflowClient(team["uri"], team["uri"])


class Payload:
    """A pickle that, when loaded, writes a marker file: the reader's code running in the loader's process."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').write('the reader ran code here')",)


def unpickle(model_dir: Path) -> float:
    """The project's rescore: it loads the model's pickle (as joblib/sklearn projects do)."""
    pickle.loads((model_dir / "model.pkl").read_bytes())
    return 1.0


def reader_registers(team, tmp_path: Path, name: str, marker: Path, run_id: str = "") -> None:
    """The attack: the reader's own experiment and run holding a malicious model.pkl, a version of name from it
    (or naming run_id as its source run), alias champion. Each refusal by the server is part of the defence."""
    from mlflow.exceptions import MlflowException

    folder = tmp_path / "model"
    folder.mkdir(exist_ok=True)
    (folder / "model.pkl").write_bytes(pickle.dumps(Payload(marker)))
    with acting_as(team, "reader") as reader:
        experiment = reader.get_experiment_by_name("reader-lab") or reader.create_experiment("reader-lab")
        experiment_id = experiment if isinstance(experiment, str) else experiment.experiment_id
        run = reader.create_run(experiment_id)
        reader.log_artifacts(run.info.run_id, str(folder), "model")
        try:
            reader.create_registered_model(name)
        except MlflowException:
            pass
        try:
            version = reader.create_model_version(name, f"{run.info.artifact_uri}/model",
                                                  run_id=run_id or run.info.run_id)
            reader.set_registered_model_alias(name, "champion", version.version)
        except MlflowException:
            pass


def admin_evaluates(team, name: str):
    """The admin's retrain evaluating its candidate against name's champion (the real evaluate code path)."""
    from ml_service.workspace import promotion, registry

    with acting_as(team, "admin") as admin:
        champion = registry.get_alias(admin, name, "champion")
        if champion is None:
            return None
        context = {"tracking_uri": team["uri"], "model_name": name, "experiment_name": EXPERIMENT}
        return promotion.evaluate_candidate(context, {"version": str(champion.version)}, "auc", 0.9, unpickle,
                                            higher_is_better=True)


def test_a_reader_cannot_plant_the_projects_champion_and_no_planted_pickle_runs(team, tmp_path):
    marker = tmp_path / "pwned"
    reader_registers(team, tmp_path, MODEL, marker)
    try:
        admin_evaluates(team, MODEL)
    except Exception:  # a refusal is fine; the pickle running is not
        pass
    assert not marker.exists(), "the reader's pickle ran in the admin's evaluate"
    with acting_as(team, "admin") as admin:
        assert admin.search_model_versions(f"name='{MODEL}'") == []  # the reader registered nothing
        from mlflow.server import get_app_client

        permissions = get_app_client("basic-auth", tracking_uri=team["uri"])
        assert permissions.get_user_permission("reader", "registered_model", MODEL).permission == "READ"
        assert permissions.get_user_permission("reader", "registered_model", f"mlops-lock.{MODEL}").permission \
            == "READ"
        experiment = admin.get_experiment_by_name(EXPERIMENT)
        assert permissions.get_user_permission("reader", "experiment", experiment.experiment_id).permission \
            == "READ"


def test_a_champion_from_outside_the_projects_experiment_is_refused_before_it_is_unpickled(team, tmp_path):
    """A model up did not create (a project added later): the reader owns it; the load is refused by name."""
    from ml_service.workspace.provenance import UntrustedModelError

    marker = tmp_path / "pwned"
    reader_registers(team, tmp_path, "added_later_model", marker)
    with pytest.raises(UntrustedModelError) as refused:
        admin_evaluates(team, "added_later_model")
    assert not marker.exists(), "the reader's pickle ran in the admin's evaluate"
    assert "added_later_model version 1" in str(refused.value)


def test_a_version_naming_a_writers_run_but_holding_other_files_is_refused(team, tmp_path):
    """The reader names a real run of the project's experiment as the source, with their own files."""
    from ml_service.workspace.provenance import UntrustedModelError

    marker = tmp_path / "pwned"
    folder = tmp_path / "good"
    folder.mkdir()
    (folder / "model.pkl").write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    with acting_as(team, "admin") as admin:
        experiment_id = admin.get_experiment_by_name(EXPERIMENT).experiment_id
        run = admin.create_run(experiment_id)
        admin.log_artifacts(run.info.run_id, str(folder), "model")
        admin.create_registered_model("writers_model")
        good = admin.create_model_version("writers_model", f"{run.info.artifact_uri}/model", run_id=run.info.run_id)
        admin.set_registered_model_alias("writers_model", "champion", good.version)
    assert admin_evaluates(team, "writers_model")["values"]["champion_version"] == str(good.version)  # loads
    reader_registers(team, tmp_path, "borrowed_run_model", marker, run_id=run.info.run_id)
    try:
        evaluated = admin_evaluates(team, "borrowed_run_model")
    except UntrustedModelError as refused:
        assert "are not those of its source run" in str(refused)
    else:
        assert evaluated is None  # MLflow's server refused such a version already: nothing to load
    assert not marker.exists()


def test_a_reader_cannot_hold_the_registration_lock_and_a_since_tag_cannot_make_it_eternal(team):
    from mlflow.exceptions import MlflowException

    from ml_service.workspace import server_lock

    lock = server_lock.lock_name(MODEL)
    with acting_as(team, "reader") as reader:
        for attempt in (lambda: reader.create_registered_model(lock, tags={"mlops.lock.since": "1e12"}),
                        lambda: reader.set_registered_model_tag(lock, "mlops.lock.since", "1e12"),
                        lambda: reader.create_model_version(lock, "mlops:/registration-lock",
                                                            tags={"mlops.lock.state": "held"})):
            try:
                attempt()
            except MlflowException:
                pass
    with acting_as(team, "admin") as admin:
        with server_lock.hold(admin, MODEL, wait=10):  # not blocked by anything the reader did
            held = admin.search_model_versions(f"name='{lock}' and tags.`{server_lock.STATE_TAG}` = 'held'")
            assert len(held) == 1 and held[0].tags["mlops.owner"].split("|")[2] == str(os.getpid())


def test_an_edit_grant_on_a_model_lets_its_user_take_the_models_registration_lock(team):
    """`mlops workspace grant USER EDIT --model NAME` grants the lock object `mlops-lock.NAME` too (registering takes
    it): the user holds the lock as the admin does; the reader, with no grant, still cannot (the test above)."""
    from ml_service.workspace import server_lock

    added = run_mlops(team["env"], "workspace", "user", "add", "editor")
    assert added.returncode == 0, added.stderr
    granted = run_mlops(team["env"], "workspace", "grant", "editor", "EDIT", "--model", MODEL)
    assert granted.returncode == 0, granted.stderr
    team["editor"] = (team["state_dir"] / "secrets" / "users" / "editor").read_text().strip()
    lock = server_lock.lock_name(MODEL)
    with acting_as(team, "editor") as editor:
        with server_lock.hold(editor, MODEL, wait=10):
            held = editor.search_model_versions(f"name='{lock}' and tags.`{server_lock.STATE_TAG}` = 'held'")
            assert len(held) == 1 and held[0].tags["mlops.owner"].split("|")[2] == str(os.getpid())


def test_a_ticket_is_stale_on_the_servers_clock(team):
    """A ticket another host left (its owner cannot be checked from here) is broken once the server's own
    timestamp of it is older than stale_after, and not before."""
    import psycopg2

    from ml_service.team import server as team_server
    from ml_service.workspace import server_lock

    model = "stale_lock_model"
    lock = server_lock.lock_name(model)
    with acting_as(team, "admin") as admin:
        server_lock._ensure_lock_model(admin, lock)
        left = admin.create_model_version(lock, server_lock.SOURCE, tags={
            "mlops.owner": "another-host.example|boot|4242|1234", server_lock.STATE_TAG: "held",
            "mlops.lock.since": "1e12"})
        with pytest.raises(Exception):
            with server_lock.hold(admin, model, wait=0, stale_after=1800):
                pytest.fail("a fresh ticket of another host was broken")
        state = team_server.read_state(team_server.paths(load_settings(team["env"])))
        connection = psycopg2.connect(host="127.0.0.1", port=state["pg_port"], user="mlflow", dbname="mlflow",
                                      passfile=str(team["state_dir"] / "team" / "secrets" / "pgpass"))
        with connection, connection.cursor() as cursor:  # an hour passes on the server for that ticket
            cursor.execute("UPDATE model_versions SET last_updated_time = last_updated_time - 3600000 "
                           "WHERE name = %s AND version = %s", (lock, int(left.version)))
        connection.close()
        with server_lock.hold(admin, model, wait=0, stale_after=1800):
            pass
        assert admin.get_model_version(lock, left.version).tags[server_lock.STATE_TAG] == "broken"


def test_the_artifact_store_is_readable_by_its_owner_only(team):
    """Finding 7: models (pickles) and data the server stored, after the runs above logged files, are 0700/0600."""
    import stat

    artifacts = team["state_dir"] / "team" / "artifacts"
    files = [p for p in artifacts.rglob("*") if p.is_file()]
    assert files  # the tests above logged model files through the server
    for path in [artifacts, *artifacts.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))


def rest(team, user: str, path: str, body: dict, double_encoded: bool = False) -> tuple[int, dict]:
    """POST body to the server's REST API as user (a hand-made client: no MLflow code on this side); double_encoded:
    the JSON sent as a JSON string, which MLflow's handlers decode again (as they do for old clients)."""
    token = base64.b64encode(f"{user}:{team[user]}".encode()).decode()
    data = json.dumps(json.dumps(body) if double_encoded else body).encode()
    request = urllib.request.Request(f"{team['uri']}/api/2.0/mlflow/{path}", data=data,
                                     method="POST", headers={"Authorization": f"Basic {token}",
                                                             "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read() or b"{}")


def test_a_run_is_recorded_as_its_authenticated_creator_whatever_the_client_sends(team):
    with acting_as(team, "reader") as reader:
        experiment = reader.get_experiment_by_name("reader-lab") or reader.create_experiment("reader-lab")
    experiment_id = experiment if isinstance(experiment, str) else experiment.experiment_id
    status, created = rest(team, "reader", "runs/create", {
        "experiment_id": experiment_id, "user_id": "admin", "tags": [{"key": "mlflow.user", "value": "admin"}]})
    assert status == 200, created
    run_id = created["run"]["info"]["run_id"]
    assert created["run"]["info"]["user_id"] == "reader"  # the answer says who the server recorded

    def stored():
        run = client_of(team).get_run(run_id)  # read back through MLflow's own client, as the admin
        return run.info.user_id, run.data.tags.get("mlflow.user")

    with acting_as(team, "admin"):
        assert stored() == ("reader", "reader")
        assert client_of(team).get_run(run_id).data.tags["mlops.claimed_user"] == "admin"  # kept, as a claim
    for path, body in (("runs/set-tag", {"run_id": run_id, "key": "mlflow.user", "value": "admin"}),
                       ("runs/log-batch", {"run_id": run_id, "tags": [{"key": "mlflow.user", "value": "admin"}]}),
                       ("runs/delete-tag", {"run_id": run_id, "key": "mlflow.user"})):
        for double_encoded in (False, True):
            status, answer = rest(team, "reader", path, body, double_encoded)
            assert status == 403, (path, double_encoded, answer)
    status, _ = rest(team, "reader", "runs/set-tag", {"run_id": run_id, "key": "note", "value": "mine"})
    assert status == 200  # other tags of one's own run are still the owner's to write
    with acting_as(team, "admin"):
        assert stored() == ("reader", "reader")
        assert client_of(team).get_run(run_id).data.tags["note"] == "mine"


def as_if_the_reader_created(team, experiment: str) -> str:
    """The reader MANAGEs experiment, as its creator would: the state of a workspace where a reader created one of
    the platform's experiments before `up` did (an older workspace). Returns the experiment's id."""
    from ml_service.team.users import auth_api, set_permission

    with acting_as(team, "admin") as admin:
        found = admin.get_experiment_by_name(experiment)
        experiment_id = found.experiment_id if found else admin.create_experiment(experiment)
        set_permission(auth_api(load_settings(team["env"])), "reader", "experiment", experiment_id, "MANAGE")
    return experiment_id


def test_up_makes_the_platforms_own_experiments_the_admins_so_a_reader_writes_none(team):
    """Published pipelines (run by retrains), data set versions (trained on), deployment records (believed): a
    reader who could create these experiments would own them."""
    from mlflow.exceptions import MlflowException

    from ml_service.batch import record
    from ml_service.data import registry
    from ml_service.deploy import records
    from ml_service.monitor import check
    from ml_service.pipelines import publish
    from ml_service.workspace import champion

    platform = {m.EXPERIMENT for m in (record, registry, records, check, publish, champion)}
    with acting_as(team, "reader") as reader:
        for name in sorted(platform):
            experiment = reader.get_experiment_by_name(name)
            assert experiment is not None, f"up left {name} for anyone to create"
            with pytest.raises(MlflowException) as refused:
                reader.create_run(experiment.experiment_id)
            assert refused.value.get_http_status_code() == 403, name


def test_a_pipeline_a_reader_published_never_runs_in_a_writers_retrain(team, tmp_path):
    """The reader (MANAGE on mlops-published-pipelines, as if they had created it) publishes a definition that
    calls a function of their choice and makes it the default; the retrain pipeline runs `mlops pipeline run
    --published` as the admin. The function must not run."""
    from tests.team.test_workspace import run_mlops

    marker = tmp_path / "pwned"
    experiment_id = as_if_the_reader_created(team, "mlops-published-pipelines")
    definition = tmp_path / "pipeline.yml"
    definition.write_text("name: diabetes-retrain\nsteps:\n  train:\n    function: tests.team.hostile_step:mark\n"
                          f"    params: {{marker: {str(marker)!r}}}\n")
    with acting_as(team, "reader") as reader:
        run = reader.create_run(experiment_id, tags={
            "mlops.kind": "published_pipeline", "mlops.pipeline.name": "diabetes-retrain",
            "mlops.pipeline.version": "99", "mlops.pipeline.digest": "reader"})
        reader.log_artifact(run.info.run_id, str(definition))
        reader.set_terminated(run.info.run_id)
        reader.set_experiment_tag(experiment_id, "default.diabetes-retrain", "99")
    ran = run_mlops(team["env"], "pipeline", "run", "--published", "diabetes-retrain", timeout=600)
    assert not marker.exists(), "the reader's published pipeline ran in the admin's retrain"
    assert ran.returncode != 0
    assert "refusing published pipeline diabetes-retrain v99" in ran.stderr, ran.stderr


def test_a_data_set_version_a_reader_added_is_not_a_version(team, tmp_path):
    """The reader (MANAGE on mlops-datasets) adds a newer version of the diabetes data set: the next retrain would
    train on it. It must not count as a version."""
    from ml_service.data import registry

    experiment_id = as_if_the_reader_created(team, registry.EXPERIMENT)
    poisoned = tmp_path / "diabetes-v7.csv"
    poisoned.write_text("AGE,SEX,BMI,BP,S1,S2,S3,S4,S5,S6,Y\n" + "0,0,0,0,0,0,0,0,0,0,0\n" * 20)
    with acting_as(team, "reader") as reader:
        run = reader.create_run(experiment_id, tags={
            registry.KIND_TAG: "dataset", registry.NAME_TAG: "diabetes", registry.VERSION_TAG: "7",
            registry.DIGEST_TAG: registry.sha256_of(poisoned), registry.ROWS_TAG: "20"})
        reader.log_artifact(run.info.run_id, str(poisoned), registry.ARTIFACT_DIR)
        reader.set_terminated(run.info.run_id)
    settings = load_settings(team["env"])
    with acting_as(team, "admin"):
        assert [v.run_id for v in registry.versions(settings, "diabetes")] == []
        assert registry.data_path(settings, settings.model) == settings.model.data


def test_a_reader_cannot_block_publishing_the_projects_pipeline(team, monkeypatch):
    """The reader creates the lock a publish of `diabetes-retrain` would take and holds it with a ticket of another
    host (never stale while they touch it). The admin's publish must not wait for it."""
    from ml_service.pipelines import publish
    from ml_service.pipelines.definition import load_pipeline
    from ml_service.workspace import server_lock

    settings = load_settings(team["env"])
    pipeline = load_pipeline(settings.pipeline_file)
    lock = server_lock.lock_name(f"published-pipeline-{pipeline.name}")
    with acting_as(team, "reader") as reader:
        reader.create_registered_model(lock)
        reader.create_model_version(lock, server_lock.SOURCE, tags={
            "mlops.owner": "another-host.example|boot|4242|1234", server_lock.STATE_TAG: server_lock.HELD})
    held = server_lock.hold
    monkeypatch.setattr(server_lock, "hold", lambda client, name, wait=900, **kw: held(client, name, wait=20, **kw))
    with acting_as(team, "admin"):
        published = publish.publish(settings, pipeline)
    assert published.name == pipeline.name and published.user == "admin"


def test_up_again_takes_a_creators_manage_on_what_it_claims_away(team):
    """A reader who created the lock of the project's model and a platform experiment before `up` claimed them
    MANAGEs them (could hold the lock for ever, grant themselves EDIT): `up` again leaves them READ there."""
    from mlflow.server import get_app_client

    from ml_service.team.users import auth_api, set_permission
    from ml_service.workspace import server_lock
    from tests.team.test_workspace import run_mlops

    lock = server_lock.lock_name(MODEL)
    experiment_id = as_if_the_reader_created(team, "mlops-datasets")
    set_permission(auth_api(load_settings(team["env"])), "reader", "registered_model", lock, "MANAGE")
    again = run_mlops(team["env"], "workspace", "up")
    assert again.returncode == 0, again.stdout + again.stderr
    with acting_as(team, "admin"):
        permissions = get_app_client("basic-auth", tracking_uri=team["uri"])
        assert permissions.get_user_permission("reader", "registered_model", lock).permission == "READ"
        assert permissions.get_user_permission("reader", "experiment", experiment_id).permission == "READ"
