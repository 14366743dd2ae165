"""How `make test` splits the tests between its processes (tests/conftest.py, MLOPS_TEST_GROUP): every test runs in
exactly one process, a module never spans two, docker tests stay in one process, and the shares are balanced."""
from __future__ import annotations

import pytest

from tests import conftest


class Item:
    """A collected test as the split sees it: its node id and its markers."""

    def __init__(self, nodeid: str, *marks: str):
        self.nodeid, self.marks = nodeid, set(marks)

    def get_closest_marker(self, name):
        return name if name in self.marks else None


ITEMS = [Item("tests/a/test_big.py::test_1"), Item("tests/a/test_big.py::test_2"),
         Item("tests/b/test_mid.py::test_1"), Item("tests/b/test_small.py::test_1"),
         Item("tests/c/test_unknown.py::test_1"), Item("tests/d/test_dock.py::test_1", "docker"),
         Item("tests/d/test_dock.py::test_2", "docker", "slow"), Item("tests/e/test_server.py::test_1", "slow")]
SECONDS = {"tests/a/test_big.py": 100.0, "tests/b/test_mid.py": 60.0, "tests/b/test_small.py": 30.0}


@pytest.fixture(autouse=True)
def durations(tmp_path, monkeypatch):
    import json

    path = tmp_path / "durations.json"
    path.write_text(json.dumps(SECONDS))
    monkeypatch.setattr(conftest, "DURATIONS", path)


def test_each_test_runs_in_exactly_one_process_of_make_test():
    groups = ["docker", "slow", "foreground/1/3", "foreground/2/3", "foreground/3/3"]
    seen = [item.nodeid for group in groups for item in conftest.selected(group, ITEMS)]
    assert sorted(seen) == sorted(item.nodeid for item in ITEMS)


def test_docker_tests_slow_or_not_stay_together_and_slow_servers_have_their_own_process():
    assert [i.nodeid for i in conftest.selected("docker", ITEMS)] == ["tests/d/test_dock.py::test_1",
                                                                      "tests/d/test_dock.py::test_2"]
    assert [i.nodeid for i in conftest.selected("slow", ITEMS)] == ["tests/e/test_server.py::test_1"]
    assert len(conftest.selected("background", ITEMS)) == 3
    assert len(conftest.selected("foreground", ITEMS)) == 5


def test_a_share_holds_whole_modules_the_longest_first_to_the_lightest_share():
    first = {i.nodeid for i in conftest.selected("foreground/1/2", ITEMS)}
    second = {i.nodeid for i in conftest.selected("foreground/2/2", ITEMS)}
    assert first == {"tests/a/test_big.py::test_1", "tests/a/test_big.py::test_2"}  # 100 s
    # 60 + 30 + the unknown module's default 10 s
    assert second == {"tests/b/test_mid.py::test_1", "tests/b/test_small.py::test_1", "tests/c/test_unknown.py::test_1"}


def test_the_split_is_balanced_within_one_module():
    seconds = {f"m{i}": float(s) for i, s in enumerate([90, 70, 50, 40, 40, 30, 20, 5, 5, 1])}
    chosen = conftest.shares(list(seconds), 3, seconds)
    loads = [sum(v for m, v in seconds.items() if chosen[m] == share) for share in (1, 2, 3)]
    assert max(loads) - min(loads) <= max(seconds.values())
    assert max(loads) <= sum(seconds.values()) / 3 + max(seconds.values())


def test_all_shares_split_every_test_with_docker_modules_whole_in_the_first():
    first = [i.nodeid for i in conftest.selected("all/1/2", ITEMS)]
    second = [i.nodeid for i in conftest.selected("all/2/2", ITEMS)]
    assert sorted(first + second) == sorted(item.nodeid for item in ITEMS)
    # the docker module (not in durations: 10 s) starts share 1; then the longest first to the lighter share:
    # big 100 -> 2 (10 | 100), mid 60 -> 1 (70 | 100), small 30 -> 1 (100 | 100), unknown 10 -> 1 on the tie,
    # server 10 -> 2
    assert first == ["tests/b/test_mid.py::test_1", "tests/b/test_small.py::test_1", "tests/c/test_unknown.py::test_1",
                     "tests/d/test_dock.py::test_1", "tests/d/test_dock.py::test_2"]
    assert second == ["tests/a/test_big.py::test_1", "tests/a/test_big.py::test_2", "tests/e/test_server.py::test_1"]


def test_a_module_with_one_docker_test_goes_whole_to_the_first_share():
    items = [Item("tests/a/test_big.py::test_1"), Item("tests/b/test_small.py::test_plain"),
             Item("tests/b/test_small.py::test_image", "docker")]
    # unpinned, the longest module (big, 100 s) would take share 1 and small (30 s) share 2
    first = [i.nodeid for i in conftest.selected("all/1/2", items)]
    assert first == ["tests/b/test_small.py::test_plain", "tests/b/test_small.py::test_image"]
    assert [i.nodeid for i in conftest.selected("all/2/2", items)] == ["tests/a/test_big.py::test_1"]
    assert conftest.shares(["tests/n/test_other.py"], 2, {}, first=5.0) == {"tests/n/test_other.py": 2}
