"""The data set registry on a real MLflow store: versions by content, contract refusals, lineage, the
webhook trigger that retrains on a new version (the real retrain pipeline, run by the local engine)."""
from __future__ import annotations

import csv
import os
import subprocess
import sys

import pytest

from ml_service.ci.server import service
from ml_service.data import registry, trigger
from ml_service.workspace import tracking
from tests.conftest import ROOT
from tests.support.cli import mlops

pytestmark = pytest.mark.integration


def rows_of(path):
    with open(path, newline="") as handle:
        return list(csv.reader(handle))


def write(path, rows):
    with open(path, "w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    return path


@pytest.fixture
def files(workspace, tmp_path):
    """A valid new version of the default project's data (its rows but the last five) and a broken one
    (without the target column)."""
    rows = rows_of(workspace.model.data)
    target = rows[0].index(workspace.model.target)
    valid = write(tmp_path / "valid.csv", rows[:-5])
    broken = write(tmp_path / "broken.csv", [[v for i, v in enumerate(r) if i != target] for r in rows])
    return valid, broken


def dataset_runs(settings):
    client = tracking.connect(settings)
    experiment = client.get_experiment_by_name(registry.EXPERIMENT)
    return [] if experiment is None else client.search_runs([experiment.experiment_id], run_view_type=3)


def test_a_valid_file_becomes_a_version_once_and_a_broken_one_is_refused_with_nothing_stored(workspace, files):
    valid, broken = files
    name = workspace.model.dataset
    first = registry.add(workspace, name, valid)
    assert (first.version, first.new, first.rows) == (1, True, len(rows_of(valid)) - 1)
    assert first.sha256 == registry.sha256_of(valid)
    run = tracking.connect(workspace).get_run(first.run_id)
    assert [(d.dataset.name, d.dataset.digest) for d in run.inputs.dataset_inputs] == [(name, first.digest)]
    assert run.inputs.dataset_inputs[0].dataset.source.endswith(f'/dataset/{name}-v1.csv"}}')  # the stored copy
    local = registry.materialize(workspace, name)
    assert local.name == f"{name}-v1.csv" and registry.sha256_of(local) == first.sha256
    local.unlink()  # a clean machine of the team: downloaded again from the workspace's artifacts
    assert registry.sha256_of(registry.materialize(workspace, name, 1)) == first.sha256

    again = registry.add(workspace, name, valid)
    assert (again.version, again.new) == (1, False)          # same content: no second version

    with pytest.raises(registry.DataRejected, match=f"column '{workspace.model.target}'|expectations failed"):
        registry.add(workspace, name, broken)
    assert [v.version for v in registry.versions(workspace, name)] == [1]
    assert len(dataset_runs(workspace)) == 1                  # nothing stored for the broken file

    refused = mlops("data", "add", name, str(broken))
    assert refused.returncode != 0 and "refused:" in refused.stdout and "nothing was stored" in refused.stdout
    assert "Traceback" not in refused.stderr
    unknown = mlops("data", "add", "no_such_dataset", str(valid))
    assert unknown.returncode != 0 and "no model project" in unknown.stderr and "Traceback" not in unknown.stderr
    assert len(dataset_runs(workspace)) == 1


def test_a_new_version_triggers_the_retrain_that_trains_on_it_and_lineage_names_it(workspace, files):
    valid, _ = files
    name, model = workspace.model.dataset, workspace.model
    assert mlops("pipeline", "publish").returncode == 0
    added = mlops("data", "add", name, str(valid), "--no-triggers")
    assert added.returncode == 0, added.stdout + added.stderr
    assert f"data set {name} v1" in added.stdout
    store = service.open_store(workspace)
    [run] = store.list_runs()
    assert (run.pipeline, run.reason) == (f"{model.project}-retrain", "ResourceTrigger")

    service.execute(workspace, store, run.id, chain=False)
    assert store.get_run(run.id).result == "succeeded", mlops("ci", "logs", str(run.id)).stdout[-3000:]
    client = tracking.connect(workspace)
    [version] = client.search_model_versions(f"name = '{model.name}'")
    version_one = registry.get(workspace, name, 1)
    assert version.tags["dataset_digest"] == version_one.digest
    assert version.tags["dataset_source"].endswith(f"/{name}/v1/{name}-v1.csv")
    shown = mlops("data", "show", name).stdout
    assert f"trained on it: {model.name}:{version.version}" in shown


def test_the_webhook_filter_selects_the_pipelines_of_the_projects_that_use_the_data_set(workspace):
    version = registry.Version(name=workspace.model.dataset, version=3, sha256="ab" * 32, rows=1, run_id="r",
                               created=0)
    found = trigger.matching_pipelines(ROOT, trigger.payloads(workspace, version))
    users = {m.project for m in registry.projects_using(workspace, version.name)}
    assert {p.stem for p in found} == {f"{project}-retrain" for project in users}
    other = registry.Version(name="not_used_by_anyone", version=1, sha256="cd" * 32, rows=1, run_id="r", created=0)
    assert trigger.matching_pipelines(ROOT, trigger.payloads(workspace, other)) == []


def test_collected_inputs_with_labels_become_a_new_version_on_top_of_the_newest(workspace, files, tmp_path):
    from ml_service.serving.collector import Collector

    valid, _ = files
    name, target = workspace.model.dataset, workspace.model.target
    registry.add(workspace, name, valid)
    rows = rows_of(valid)
    header, body = rows[0], rows[1:]
    features = [c for c in header if c != target]
    collect = tmp_path / "collected"
    writer = Collector(str(collect), flush_s=0.05)  # the scoring service's own writer
    for number, start in enumerate(range(0, 40, 4)):  # ten requests of four rows
        inputs = [[r[header.index(c)] for c in features] for r in body[start:start + 4]]
        writer.collect({"time": 1.0, "request_id": f"req-{number}", "model_version": "1", "inputs": inputs,
                        "predictions": [0] * len(inputs)})
    writer.close()
    labels = write(tmp_path / "labels.csv", [["request_id", "row", target]] + [
        [f"req-{number}", row, body[number * 4 + row][header.index(target)]] for number in range(8) for row in range(4)
    ] + [["req-unknown", 0, body[0][header.index(target)]]])

    added = mlops("data", "add", name, "--from-collected", str(collect), "--labels", str(labels), "--no-triggers")
    assert added.returncode == 0, added.stdout + added.stderr
    assert f"{len(body)} rows of {name}-v1.csv + 32 labelled collected rows (8 collected rows without a label, " \
           "1 labels without a collected row)" in added.stdout
    second = registry.get(workspace, name)
    assert (second.version, second.rows) == (2, len(body) + 32)
    stored = rows_of(registry.materialize(workspace, name, 2))
    assert stored[0] == header and stored[1:len(body) + 1] == body
    assert stored[-1] == body[31]  # request 7, row 3, with its label, in the data set's column order

    no_labels = mlops("data", "add", name, "--from-collected", str(collect))
    assert no_labels.returncode == 2 and "--labels" in no_labels.stderr
    bad_labels = write(tmp_path / "bad_labels.csv", [["request", target], ["req-1", "1"]])
    refused = mlops("data", "add", name, "--from-collected", str(collect), "--labels", str(bad_labels))
    assert refused.returncode == 2 and "needs the column(s) request_id" in refused.stderr
    from ml_service.cli import main

    # rows that would make a new version, given with a FILE too: a usage error (cli/data.py), nothing stored
    assert main(["data", "add", name, str(valid), "--from-collected", str(collect), "--labels", str(labels),
                 "--no-triggers"]) == 2
    assert [v.version for v in registry.versions(workspace, name)] == [1, 2]


def test_data_path_is_the_newest_version_and_read_without_mlflow_once_it_is_here(workspace, files):
    valid, _ = files
    model = workspace.model
    assert registry.data_path(workspace, model) == model.data          # no version yet: mlops.yml's file
    registry.add(workspace, model.dataset, valid)
    first = registry.data_path(workspace, model)                        # downloaded once
    assert first.name == f"{model.dataset}-v1.csv"
    probe = subprocess.run([sys.executable, "-c", "import sys; from ml_service.config import load_settings; "
                            "from ml_service.data import registry; s = load_settings(); "
                            "print(registry.data_path(s, s.model)); print('mlflow' in sys.modules)"],
                           capture_output=True, text=True, cwd=ROOT, env=dict(os.environ), timeout=120)
    assert probe.stdout.split() == [str(first), "False"], probe.stderr
    first.write_text("tampered")                                        # a changed cache is not trusted
    assert registry.sha256_of(registry.data_path(workspace, model)) == registry.sha256_of(valid)


def register_runs(settings, name: str, numbers, status: str = "FINISHED") -> dict[int, str]:
    """Runs of the data set registry with the tags `registry.add` writes (no file stored), as versions
    `numbers`; returns each version's sha256."""
    import hashlib

    client = tracking.connect(settings)
    experiment = tracking.ensure_experiment(client, settings, registry.EXPERIMENT)
    shas = {}
    for number in numbers:
        shas[number] = hashlib.sha256(f"{name} v{number}".encode()).hexdigest()
        run = client.create_run(experiment, tags={
            registry.KIND_TAG: "dataset", registry.NAME_TAG: name, registry.VERSION_TAG: str(number),
            registry.DIGEST_TAG: shas[number], registry.ROWS_TAG: str(number)})
        client.set_terminated(run.info.run_id, status)
    return shas


def cached(settings, name: str, number: int, sha_text: str):
    """The local copy of version `number` as `materialize` leaves it (its content hashes to the version's sha)."""
    path = settings.state_dir / "datasets" / name / f"v{number}" / f"{name}-v{number}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(sha_text)
    return path


def test_versions_are_numbers_the_newest_is_the_highest_and_only_finished_runs_count(workspace):
    name = workspace.model.dataset
    shas = register_runs(workspace, name, range(1, 12))
    register_runs(workspace, name, [12], status="FAILED")  # an add that failed half-way
    register_runs(workspace, name, [13], status="RUNNING")  # ... or is still writing
    register_runs(workspace, "another_dataset", [14])
    assert [v.version for v in registry.versions(workspace, name)] == list(range(1, 12))
    assert registry.get(workspace, name).version == 11 and registry.get(workspace, name, 9).sha256 == shas[9]
    with pytest.raises(registry.DataSetError) as missing:
        registry.get(workspace, name, 12)
    assert str(missing.value) == f"data set '{name}' has no version 12 (versions: {', '.join(map(str, range(1, 12)))})"
    # $data: the highest version (11 > 9, as numbers), read from the local copies without MLflow
    for number in (9, 11):
        cached(workspace, name, number, f"{name} v{number}")
    assert registry.data_path(workspace, workspace.model) == cached(workspace, name, 11, f"{name} v11")
    from ml_service.cli import main

    assert main(["data", "path"]) == 0 and main(["data", "path", name, "--version", "9"]) == 0
    assert main(["data", "path", "--version", "9"]) == 2  # a version needs a data set name


def test_a_stored_file_that_does_not_match_its_sha256_is_never_handed_to_training(workspace, files, capsys):
    """`mlops data path` downloads the file and checks its sha256: a tampered data set never trains silently."""
    from ml_service.cli import main
    from ml_service.workspace.light_store import local_path

    valid, _ = files
    name = workspace.model.dataset
    first = registry.add(workspace, name, valid)
    stored = local_path(tracking.connect(workspace).get_run(first.run_id).info.artifact_uri) / "dataset" / \
        f"{name}-v1.csv"
    assert registry.sha256_of(stored) == first.sha256
    stored.write_text(stored.read_text().replace("\n", "\n9,", 1))  # tampered where the team's copy lives
    local = workspace.state_dir / "datasets" / name / "v1" / f"{name}-v1.csv"
    assert not local.exists()
    with pytest.raises(registry.DataSetError) as refused:
        registry.materialize(workspace, name)
    assert str(refused.value) == f"data set '{name}' v1: the stored file does not match its sha256"
    assert not local.exists() and list(local.parent.iterdir()) == []  # nothing left to train on
    capsys.readouterr()
    assert main(["data", "path", name]) != 0 and main(["data", "path"]) != 0
    assert capsys.readouterr().out == "" and not local.exists()


def test_a_version_is_added_under_the_data_sets_lock(workspace, files, monkeypatch):
    """Two adds at once never both take version N+1: the number is chosen and the run created under a lock."""
    import fcntl

    valid, _ = files
    name = workspace.model.dataset
    seen = []
    real = tracking.ensure_experiment

    def creating(client, settings, experiment=None):
        for path in (workspace.state_dir / "locks").glob("dataset-*.lock"):
            with open(path) as other:
                try:
                    fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    seen.append(True)
                    continue
                fcntl.flock(other, fcntl.LOCK_UN)
                seen.append(False)
        return real(client, settings, experiment)

    monkeypatch.setattr(tracking, "ensure_experiment", creating)
    assert registry.add(workspace, name, valid).version == 1
    assert seen == [True]


def test_add_refuses_what_cannot_be_a_version_with_nothing_stored(workspace, files, tmp_path):
    valid, broken = files
    name = workspace.model.dataset
    with pytest.raises(registry.DataSetError) as missing:
        registry.add(workspace, name, tmp_path / "nowhere.csv")
    assert str(missing.value) == f"{tmp_path / 'nowhere.csv'}: data file not found"
    with pytest.raises(registry.DataSetError) as unknown:
        registry.add(workspace, "no_such_dataset", valid)
    assert "uses a data set named 'no_such_dataset'" in str(unknown.value) and name in str(unknown.value)
    with pytest.raises(registry.DataRejected):
        registry.add(workspace, name, broken)
    assert registry.versions(workspace, name) == [] and dataset_runs(workspace) == []


def test_a_deleted_version_is_never_data_even_when_its_copy_is_on_this_machine(workspace):
    """The fast path of `$data` (read from sqlite, without MLflow) skips versions whose run was deleted, as
    `versions()` does: deleting the newest version makes training go back to the one before it."""
    name = workspace.model.dataset
    register_runs(workspace, name, [1, 2])
    kept, deleted = cached(workspace, name, 1, f"{name} v1"), cached(workspace, name, 2, f"{name} v2")
    assert registry.data_path(workspace, workspace.model) == deleted      # both live: the newest
    newest = registry.get(workspace, name, 2)
    tracking.connect(workspace).delete_run(newest.run_id)
    assert [v.version for v in registry.versions(workspace, name)] == [1]
    assert registry.data_path(workspace, workspace.model) == kept


def test_data_add_without_a_file_or_collected_rows_is_a_usage_error(workspace, files):
    """`mlops data add` (cli/data.py), in-process: neither a FILE nor --from-collected is a usage error (exit 2) and
    nothing is stored; the FILE alone is a version."""
    from ml_service.cli import main

    valid, _ = files
    name = workspace.model.dataset
    assert main(["data", "add", name, "--no-triggers"]) == 2  # both: see the test of collected rows above
    assert registry.versions(workspace, name) == [] and dataset_runs(workspace) == []
    assert main(["data", "add", name, str(valid), "--no-triggers"]) == 0
    assert [v.version for v in registry.versions(workspace, name)] == [1]


def test_a_semicolon_export_of_a_file_is_the_same_version_kept_as_a_standard_csv(workspace, files, tmp_path):
    """A version saved as spreadsheets save it in decimal-comma locales (';' between fields) is checked, stored and
    hashed as the standard CSV file the pipelines read: the comma file of the same table is that version again. A
    ';' file that breaks the contract is still refused."""
    valid, broken = files
    name = workspace.model.dataset
    excel, standard = tmp_path / "excel.csv", tmp_path / "standard.csv"
    excel.write_text("".join(";".join(v.replace(".", ",") for v in row) + "\n" for row in rows_of(valid)))
    standard.write_text("".join(",".join(row) + "\n" for row in rows_of(valid)))
    before = excel.read_bytes()
    first = registry.add(workspace, name, excel)
    assert (first.version, first.new, first.sha256) == (1, True, registry.sha256_of(standard))
    assert first.origin == str(excel.resolve()) and excel.read_bytes() == before
    assert registry.materialize(workspace, name).read_bytes() == standard.read_bytes()
    assert registry.add(workspace, name, standard).new is False
    semicolon_broken = tmp_path / "broken.csv"
    semicolon_broken.write_text("".join(";".join(row) + "\n" for row in rows_of(broken)))
    with pytest.raises(registry.DataRejected):
        registry.add(workspace, name, semicolon_broken)
    assert [v.version for v in registry.versions(workspace, name)] == [1]


def test_adding_content_that_is_already_a_version_queues_no_pipeline(workspace, files):
    """`mlops data add` (cli/data.py), in-process: a new version queues its retrain (ResourceTrigger); the same
    content again is that version (exit 0) and queues nothing: a scheduled `data add` of unchanged data never
    retrains."""
    from ml_service.cli import main

    valid, _ = files
    name = workspace.model.dataset
    store = service.open_store(workspace)
    assert main(["data", "add", name, str(valid), "--no-triggers"]) == 0
    assert [r.reason for r in store.list_runs()] == ["ResourceTrigger"]
    assert main(["data", "add", name, str(valid), "--no-triggers"]) == 0
    assert [r.reason for r in store.list_runs()] == ["ResourceTrigger"]
    assert [v.version for v in registry.versions(workspace, name)] == [1]
