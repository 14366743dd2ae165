"""Trigger filters of the local CI engine (triggers.py): branch includes and excludes, Azure's path
wildcards, `trigger:`/`pr:` forms, pipeline completion triggers and webhook filters. Hypothesis checks the
glob rules over generated paths and branch names."""
from __future__ import annotations

import fnmatch

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ml_service.ci.model import triggers

SEGMENT = st.text(alphabet="abcxyz.-_", min_size=1, max_size=5).filter(lambda s: s not in (".", ".."))
PATHS = st.lists(SEGMENT, min_size=1, max_size=4).map("/".join)
BRANCHES = st.lists(st.text(alphabet="abmain-", min_size=1, max_size=5), min_size=1, max_size=3).map("/".join)


def test_branch_and_path_filters():
    spec = {"branches": {"include": ["main", "release/*"], "exclude": ["release/old"]},
            "paths": {"include": ["src"], "exclude": ["src/docs"]}}
    assert triggers.trigger_matches(spec, "main", ["src/a.py"])
    assert triggers.trigger_matches(spec, "release/1.0", ["src/a.py"])
    assert not triggers.trigger_matches(spec, "release/old", ["src/a.py"])
    assert not triggers.trigger_matches(spec, "feature", ["src/a.py"])
    assert not triggers.trigger_matches(spec, "main", ["README.md"])  # a path filter prevents the trigger
    assert not triggers.trigger_matches(spec, "main", ["src/docs/x.md"])
    assert triggers.trigger_matches(None, "any", [])
    assert not triggers.trigger_matches("none", "main", ["src/a.py"])
    assert triggers.trigger_matches({"branches": {"include": ["main"]}}, "main", None)
    assert triggers.resource_trigger_matches({"trigger": {"branches": {"include": ["main"]}}}, "main")
    assert not triggers.resource_trigger_matches({}, "main")


@pytest.mark.parametrize("spec, branch, runs", [
    (["main", "release/*"], "release/2", True),               # a list names the branches
    (["main"], "feature", False),
    ([], "main", False),
    (False, "main", False),
    ({"branches": {"exclude": ["wip/*"]}}, "main", True),     # no includes: every branch but the excluded
    ({"branches": {"exclude": ["wip/*"]}}, "wip/x", False),
    ({"branches": {"include": ["*"], "exclude": ["main"]}}, "main", False),  # an exclude wins over an include
    ({"branches": {"include": ["main"]}}, "refs/heads/main", True),          # refs/heads/ is the same branch
    ({"branches": {"include": ["refs/heads/main"]}}, "main", True),
    ({"paths": {"include": ["src"]}}, "any", True),           # a paths-only filter: every branch
])
def test_trigger_forms_and_branch_filters(spec, branch, runs):
    assert triggers.trigger_matches(spec, branch, ["src/x.py"]) is runs


@given(branch=BRANCHES, include=st.lists(BRANCHES, max_size=3), exclude=st.lists(BRANCHES, max_size=3))
def test_a_branch_runs_when_some_include_matches_and_no_exclude_does(branch, include, exclude):
    spec = {"branches": {"include": include, "exclude": exclude}}
    included = not include or any(fnmatch.fnmatchcase(branch, p) for p in include)
    excluded = any(fnmatch.fnmatchcase(branch, p) for p in exclude)
    assert triggers.branch_filter_matches(spec, branch) is (included and not excluded)
    assert triggers.branch_filter_matches(spec, "refs/heads/" + branch) is (included and not excluded)


@given(folder=PATHS, path=PATHS)
def test_a_pattern_without_wildcards_is_that_file_or_folder(folder, path):
    expected = path == folder or path.startswith(folder + "/")
    assert triggers.paths_filter_matches({"paths": {"include": [folder]}}, [path]) is expected
    assert triggers.paths_filter_matches({"paths": {"include": ["/" + folder + "/"]}}, [path]) is expected


@given(folder=PATHS, rest=st.lists(SEGMENT, min_size=1, max_size=3))
def test_a_star_stays_in_one_segment_and_two_stars_cross_them(folder, rest):
    path = folder + "/" + "/".join(rest)
    one = triggers.paths_filter_matches({"paths": {"include": [folder + "/*"]}}, [path])
    two = triggers.paths_filter_matches({"paths": {"include": [folder + "/**"]}}, [path])
    assert one is (len(rest) == 1)
    assert two is True


@given(path=PATHS)
def test_every_markdown_file_at_any_depth(path):
    assert triggers.paths_filter_matches({"paths": {"include": ["**/*.md"]}}, [path + ".md"])
    assert triggers.paths_filter_matches({"paths": {"include": ["**/*.md"]}}, [path]) is path.endswith(".md")


@given(changed=st.lists(PATHS, min_size=1, max_size=4))
def test_a_push_runs_when_some_changed_path_is_included_and_not_excluded(changed):
    spec = {"paths": {"include": ["a", "b"], "exclude": ["a/x"]}}

    def counts(path):
        inside = any(path == p or path.startswith(p + "/") for p in ("a", "b"))
        return inside and not (path == "a/x" or path.startswith("a/x/"))
    assert triggers.paths_filter_matches(spec, changed) is any(counts(p) for p in changed)
    assert triggers.paths_filter_matches({"paths": {"exclude": ["a"]}}, changed) is \
        any(not (p == "a" or p.startswith("a/")) for p in changed)


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
    ("notes][draft*", "notes][draft-1.md", True),   # a [ that nothing closes is itself, also right after a ]
    ("notes][draft*", "notes]d-1.md", False),
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
    ({"tags": ["production"]}, "Succeeded", {}, False),   # the run carries no tag (see the tags test below)
    ({"branches": {"exclude": ["main"]}}, "Succeeded", {}, False),   # the source run's branch is excluded
    ({"branches": {"include": ["*"], "exclude": ["ma*"]}}, "Succeeded", {}, False),
    ({"branches": {"include": ["main"]}, "stages": ["A"]}, "Failed", {"A": "Succeeded"}, True),
    ({"branches": {"include": ["dev"]}, "stages": ["A"]}, "Succeeded", {"A": "Succeeded"}, False),
    ({"stages": "A"}, "Succeeded", {"A": "SucceededWithIssues"}, True),  # one stage named without a list
    ({"stages": ["A"]}, "Succeeded", {"A": "Canceled"}, False),
    ({"enabled": "true"}, "SucceededWithIssues", {}, True),
    ("false", "Succeeded", {}, False),
])
def test_completion_triggers(trigger, result, stages, fires):
    resource = {"pipeline": "up", "source": "upstream"}
    if trigger is not None:
        resource["trigger"] = trigger
    assert triggers.resource_trigger_matches(resource, "main", result, stages) is fires


@pytest.mark.parametrize("wanted, carried, fires", [
    (["production"], ["Production"], True),
    (["production", "signed"], ["production"], False),  # tags are AND'ed
    (["production", "signed"], ["signed", "production", "x"], True),
    (["production"], [], False),
])
def test_completion_trigger_tags(wanted, carried, fires):
    resource = {"pipeline": "up", "source": "upstream", "trigger": {"tags": wanted}}
    assert triggers.resource_trigger_matches(resource, "main", "Succeeded", {}, carried) is fires


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
