"""Published pipelines (pipelines/publish.py) in-process against a real MLflow store: versions numbered 1, 2, ...
as numbers, an identical definition publishes nothing new, the first version is the default even when published
with --no-default, later ones only when asked, and a version is chosen under the registration lock."""
from __future__ import annotations

import pytest

from ml_service.pipelines import publish
from ml_service.pipelines.definition import PipelineError, parse_pipeline
from tests.workspace.test_promotion import lock_files_held

pytestmark = pytest.mark.integration


def definition(number: int, name: str = "pub"):
    return parse_pipeline(f"name: {name}\ndescription: version {number}\nsteps: {{a: {{function: 'm:f'}}}}\n")


def test_versions_count_up_as_numbers_and_the_same_definition_is_not_published_twice(workspace):
    made = [publish.publish(workspace, definition(n)) for n in range(1, 12)]
    assert [(p.version, p.new, p.default) for p in made] == [(n, True, True) for n in range(1, 12)]
    again = publish.publish(workspace, definition(11))
    assert (again.version, again.new, again.id) == (11, False, made[-1].id)
    listed = publish.list_published(workspace)
    assert [p.version for p in listed] == list(range(1, 12))
    assert [p.version for p in listed if p.default] == [11]
    assert {p.project for p in listed} == {workspace.project}
    pipeline, chosen = publish.load_published(workspace, "pub", 10)
    assert chosen.version == 10 and pipeline.description == "version 10"
    with pytest.raises(PipelineError) as missing:
        publish.load_published(workspace, "pub", 12)
    assert str(missing.value) == f"pipeline 'pub' has no version 12 (published: {', '.join(map(str, range(1, 12)))})"
    with pytest.raises(PipelineError, match="no published pipeline named 'other'"):
        publish.load_published(workspace, "other")


def test_the_first_version_is_the_default_and_later_ones_only_when_asked(workspace):
    first = publish.publish(workspace, definition(1), make_default=False)
    assert (first.version, first.default) == (1, True)
    second = publish.publish(workspace, definition(2), make_default=False)
    assert (second.version, second.default) == (2, False)
    assert publish.load_published(workspace, "pub")[1].version == 1  # the default, not the latest
    kept = publish.publish(workspace, definition(2), make_default=False)  # unchanged, --no-default: nothing moves
    assert (kept.version, kept.new, kept.default) == (2, False, False)
    assert publish.load_published(workspace, "pub")[1].version == 1
    same = publish.publish(workspace, definition(2))  # unchanged, but now made the default
    assert (same.version, same.new, same.default) == (2, False, True)
    assert publish.load_published(workspace, "pub")[1].version == 2
    other = publish.publish(workspace, definition(1, name="other"), make_default=False)
    assert (other.version, other.default) == (1, True)  # each name has its own versions and default
    assert [(p.name, p.version, p.default) for p in publish.list_published(workspace)] == [
        ("other", 1, True), ("pub", 1, False), ("pub", 2, True)]


def test_a_version_is_chosen_and_recorded_under_the_registration_lock(workspace, monkeypatch):
    seen = []
    real = publish._publish

    def recording(settings, pipeline, make_default):
        seen.append(lock_files_held(settings.state_dir))
        return real(settings, pipeline, make_default)

    monkeypatch.setattr(publish, "_publish", recording)
    assert publish.publish(workspace, definition(1)).version == 1
    assert seen == [[True]] and lock_files_held(workspace.state_dir) == [False]
