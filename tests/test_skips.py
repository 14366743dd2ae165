"""`make test` never passes by skipping (tests/conftest.py): a skip is an error unless the test carries one of
the named "cannot exist here" marks; an expected failure (xfail) stays what it is."""
import subprocess
import sys

from tests.conftest import ROOT, SKIP_ALLOWED

TESTS = '''
import pytest

def test_skips_for_a_missing_tool():
    pytest.skip("tool X is not installed")

@pytest.mark.skip(reason="not today")
def test_marked_skip():
    pass

@pytest.mark.needs_cluster
def test_needs_a_real_cluster():
    pytest.skip("no Kubernetes API server here")

@pytest.mark.xfail(strict=True, reason="a known bug")
def test_known_bug():
    assert False

def test_passes():
    pass
'''


def test_a_skip_is_an_error_unless_marked_as_impossible_here(tmp_path):
    (tmp_path / "test_policy.py").write_text(TESTS)
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "tests.conftest", "-c", "/dev/null", "--rootdir",
                           str(tmp_path), "-rA", "-q", "-p", "no:cacheprovider", str(tmp_path / "test_policy.py")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    out = done.stdout
    assert done.returncode == 1, out
    assert "1 failed, 1 passed, 1 skipped, 1 xfailed, 1 error" in out, out  # a marked skip errs in its setup
    assert "FAILED" in out and "test_skips_for_a_missing_tool" in out and "tool X is not installed" in out
    assert "test_marked_skip" in out and "a skip is an error here" in out
    assert "SKIPPED" in out and "no Kubernetes API server here" in out  # the allowed one


def test_the_allowed_marks_are_few_and_say_why():
    assert sorted(SKIP_ALLOWED) == ["needs_azure_devops", "needs_cluster"]
    assert all("these machines" in why for why in SKIP_ALLOWED.values())
