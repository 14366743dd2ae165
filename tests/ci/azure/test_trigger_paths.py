"""Path filters of a push trigger (hidden-probe sweep, issue 23): the most specific filter decides.

Azure: docs/pipelines/repos/azure-repos-git.md "Paths": "If you exclude a path, you can't also include it unless
you qualify it to a deeper folder. For example if you exclude /tools then you could include
/tools/trigger-runs-on-these." What a push to main triggers is what `git push mlops` queues
(server/hooks.matching_pipelines).
"""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration


def test_a_deeper_include_wins_over_an_excluded_folder(project):
    from ml_service.ci.server import hooks

    project.add("paths_deeper.yml")
    deeper = hooks.matching_pipelines(project.root, "main", ["tools/trigger-runs-on-these/run.sh"])
    other = hooks.matching_pipelines(project.root, "main", ["tools/other.sh"])
    assert [path.name for path, _ in deeper] == ["paths_deeper.yml"]  # before: none (the exclude won)
    assert other == []
