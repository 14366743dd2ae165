"""Issue 23 item 4: pipeline definitions have names. mlops.yml ci.pipelines maps an Azure definition name
to a file (default: the file stem); a completion trigger names the definition (MLOpsPython:
`source: Model-Train-Register-CI`), and the resource's variables are defined.

Azure: yaml-schema resources-pipelines-pipeline.md (source: "Name of the pipeline that produces the
artifact"; resources.pipeline.<Alias>.pipelineName, pipelineID, projectID, runID, runName, runURI,
sourceBranch, sourceCommit, sourceProvider, requestedFor, requestedForID at run time);
Build.DefinitionName is the definition's name (docs/pipelines/build/variables.md).
"""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration


def test_a_completion_trigger_on_a_definition_name_fires(project):
    project.configure(pipelines={"Model-Train-Register-CI": "train"})
    project.add("train.yml", "deploy.yml")
    run = project.run("train.yml")
    assert run.out.get("definition") == "Model-Train-Register-CI"
    assert len(run.triggered) == 1  # today: the chain silently never fires
    deployed = project.result(project.store(), run.triggered[0])
    assert deployed.out.get("pipelineName") == "Model-Train-Register-CI"
    assert deployed.out.get("runID") == str(run.run.id)
    assert deployed.out.get("model") == f"model-of-{run.run.id}"


def test_the_resources_ids_are_defined(project):
    project.configure(pipelines={"Model-Train-Register-CI": "train"})
    project.add("train.yml", "deploy.yml")
    run = project.run("train.yml")
    deployed = project.result(project.store(), run.triggered[0]) if run.triggered else run
    for name in ("pipelineID", "projectID"):
        value = deployed.out.get(name, "$(")
        assert value and "$(" not in value, name  # today: left as written


def test_the_file_stem_is_the_default_definition_name(project):
    """Regression guard (passes today)."""
    project.add("stem_producer.yml", "stem_consumer.yml")
    run = project.run("stem_producer.yml")
    assert len(run.triggered) == 1
    assert project.result(project.store(), run.triggered[0]).out.get("consumer") == "stem_producer"


def test_a_definition_id_is_the_same_positive_number_in_every_release():
    """A pipeline names another by its id literally (`pipeline: 1250`, as a run showed it): the number of a name
    never changes between releases, and is one of 1..100000 like Azure's."""
    from ml_service.ci.model.pipeline import definition_id

    assert [definition_id(n) for n in ("Model-Train-Register-CI", "build", "release")] == ["1250", "41756", "53982"]
    assert all(1 <= int(definition_id(f"pipeline-{n}")) <= 100000 for n in range(2000))
