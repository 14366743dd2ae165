"""Trigger filters of the local CI engine: Azure's path wildcards and pipeline completion triggers."""
from __future__ import annotations

import pytest

from ml_service.ci import triggers


@pytest.mark.parametrize("pattern, path, matches", [
    ("src", "src/app.py", True),                    # no wildcard: the folder and everything under it
    ("src", "src", True),
    ("src", "srcs/app.py", False),
    ("data/a.csv", "data/a.csv", True),
    ("data/a.csv", "data/a.csv.bak", False),
    (".pipelines/a-*.yml", ".pipelines/a-build.yml", True),   # * stays within one path segment
    (".pipelines/a-*.yml", ".pipelines/a_b-build.yml", False),
    (".pipelines/a-*.yml", ".pipelines/a-x/build.yml", False),
    ("docs/*", "docs/index.md", True),
    ("docs/*", "docs/notes/index.md", False),
    ("docs/**", "docs/notes/index.md", True),       # ** crosses segments
    ("**/*.md", "README.md", True),                 # at the root too
    ("**/*.md", "a/b/notes.md", True),
    ("**/*.md", "a/b/notes.mdx", False),
    ("src/?.py", "src/a.py", True),
    ("src/[ab].py", "src/c.py", False),
])
def test_path_patterns_match_like_azure(pattern, path, matches):
    assert triggers.paths_filter_matches({"paths": {"include": [pattern]}}, [path]) is matches


def test_excluded_paths_do_not_count_and_unknown_changes_run():
    spec = {"branches": {"include": ["main"]}, "paths": {"include": ["a", "ml_service"], "exclude": ["**/*.md"]}}
    assert triggers.trigger_matches(spec, "main", ["a/model.py"])
    assert not triggers.trigger_matches(spec, "main", ["a/README.md", "b/model.py"])
    assert triggers.trigger_matches(spec, "main", ["a/README.md", "ml_service/x.py"])
    assert not triggers.trigger_matches(spec, "dev", ["a/model.py"])
    assert triggers.trigger_matches(spec, "main", None)  # a new branch: the change set is unknown


@pytest.mark.parametrize("trigger, result, stages, fires", [
    (None, "Succeeded", {}, False),
    ("none", "Succeeded", {}, False),
    (True, "Succeeded", {}, True),
    ("true", "SucceededWithIssues", {}, True),
    (True, "Failed", {}, False),
    ({"branches": {"include": ["main"]}}, "Succeeded", {}, True),
    ({"branches": {"include": ["release/*"]}}, "Succeeded", {}, False),
    ({"enabled": "false"}, "Succeeded", {}, False),
    ({"enabled": False}, "Succeeded", {}, False),
    ({"stages": ["Registered"]}, "Succeeded", {"Retrain": "Succeeded", "Registered": "Succeeded"}, True),
    ({"stages": ["Registered"]}, "Succeeded", {"Retrain": "Succeeded", "Registered": "Skipped"}, False),
    ({"stages": ["Registered"]}, "Failed", {"Registered": "Succeeded", "Later": "Failed"}, True),
    ({"stages": ["A", "B"]}, "Succeeded", {"A": "Succeeded"}, False),
    ({"tags": ["production"]}, "Succeeded", {}, False),   # local runs carry no tags
])
def test_completion_triggers(trigger, result, stages, fires):
    resource = {"pipeline": "up", "source": "upstream"}
    if trigger is not None:
        resource["trigger"] = trigger
    assert triggers.resource_trigger_matches(resource, "main", result, stages) is fires


@pytest.mark.parametrize("resource, connection, payload, fires", [
    ({"webhook": "data", "connection": "mlops-data", "filters": [{"path": "project", "value": "alpha"}]},
     "mlops-data", {"project": "alpha", "version": 3}, True),
    ({"webhook": "data", "connection": "mlops-data", "filters": [{"path": "project", "value": "alpha"}]},
     "mlops-data", {"project": "beta"}, False),                      # another project's data set
    ({"webhook": "data", "connection": "mlops-data", "filters": [{"path": "project", "value": "alpha"}]},
     "other-hook", {"project": "alpha"}, False),                    # another connection
    ({"webhook": "data", "connection": "mlops-data"}, "mlops-data", {"anything": 1}, True),  # no filters
    ({"webhook": "d", "connection": "c", "filters": [{"path": "resource.version", "value": "3"}]},
     "c", {"resource": {"version": 3}}, True),                      # a JSON path, compared as strings
    ({"webhook": "d", "connection": "c", "filters": [{"path": "resource.version", "value": "3"}]},
     "c", {"resource": {}}, False),
])
def test_webhook_resources_fire_on_their_connection_when_every_filter_matches(resource, connection, payload, fires):
    assert triggers.webhook_trigger_matches(resource, connection, payload) is fires
