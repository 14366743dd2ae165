"""What goes into every image: the pinned package closure (only what applies here, a missing package named) and
the wheelhouse cache (one folder per set of requirements, trusted only when complete). The wheels come from a
local folder (pip --no-index --find-links), never from the network."""
import base64
import hashlib
import importlib.metadata
import zipfile
from pathlib import Path

import pytest

from ml_service.containers import ImageError, ensure_wheelhouse, pinned_closure, wheelhouse_cache


def pins(text: str) -> dict[str, str]:
    return dict(line.split("==") for line in text.splitlines())


def test_the_closure_pins_installed_versions_of_a_package_and_what_it_needs():
    closure = pins(pinned_closure(["requests"]))
    for name in ("requests", "urllib3", "idna", "certifi", "charset-normalizer"):
        assert closure[name] == importlib.metadata.version(name), name


def test_dependencies_of_extras_and_of_other_platforms_are_left_out():
    """python-dotenv needs click only for its `cli` extra; mistune needs typing-extensions only before 3.11:
    both are installed here, neither belongs in the image."""
    assert pins(pinned_closure(["python-dotenv"])) == {"python-dotenv": importlib.metadata.version("python-dotenv")}
    assert "typing-extensions" not in pins(pinned_closure(["mistune"]))


def test_a_package_that_is_not_installed_is_named():
    with pytest.raises(ImageError, match="package surely-not-installed-t29 is not installed"):
        pinned_closure(["requests", "surely-not-installed-t29"])


def wheel(folder: Path, name: str, version: str) -> Path:
    """A minimal pure-Python wheel of name==version in folder."""
    path = folder / f"{name}-{version}-py3-none-any.whl"
    info = f"{name}-{version}.dist-info"
    files = {f"{name}/__init__.py": b"",
             f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
             f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}

    def record(data: bytes) -> str:
        return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    files[f"{info}/RECORD"] = ("".join(f"{n},{record(d)},{len(d)}\n" for n, d in files.items())
                               + f"{info}/RECORD,,\n").encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name_in_zip, data in files.items():
            archive.writestr(name_in_zip, data)
    return path


@pytest.fixture
def index(tmp_path, monkeypatch):
    """A local package index (a folder of wheels) for pip, and a cache of this test's own."""
    folder = tmp_path / "index"
    folder.mkdir()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(folder))
    return folder


def wheels_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.whl"))


@pytest.mark.integration
def test_wheels_are_downloaded_once_per_set_of_requirements(index):
    wheel(index, "tinyone", "1.0")
    wheel(index, "tinytwo", "2.0")
    one = ensure_wheelhouse(None, "tinyone==1.0\n")
    assert one.parent == wheelhouse_cache() and wheels_in(one) == ["tinyone-1.0-py3-none-any.whl"]
    assert (one / "requirements.txt").read_text() == "tinyone==1.0\n"
    both = ensure_wheelhouse(None, "tinyone==1.0\ntinytwo==2.0\n")  # the same beginning: a folder of its own
    assert both != one
    assert wheels_in(both) == ["tinyone-1.0-py3-none-any.whl", "tinytwo-2.0-py3-none-any.whl"]
    for path in index.iterdir():
        path.unlink()  # the index is gone: only the cache can answer now
    assert ensure_wheelhouse(None, "tinyone==1.0\n") == one and wheels_in(one) == ["tinyone-1.0-py3-none-any.whl"]
    assert ensure_wheelhouse(None, "tinyone==1.0\ntinytwo==2.0\n") == both


@pytest.mark.integration
def test_a_cache_folder_is_trusted_only_when_complete(index):
    """A failed download leaves nothing a later call would trust; a folder emptied since (a cleaner, a copy cut
    short) is filled again rather than handed out."""
    with pytest.raises(ImageError, match="pip download"):
        ensure_wheelhouse(None, "tinyone==1.0\n")
    assert not [p for p in wheelhouse_cache().iterdir() if not p.name.endswith(".partial")]
    wheel(index, "tinyone", "1.0")
    ready = ensure_wheelhouse(None, "tinyone==1.0\n")  # now it can be had: downloaded, not a stale folder
    assert wheels_in(ready) == ["tinyone-1.0-py3-none-any.whl"]
    for path in ready.iterdir():
        path.unlink()
    again = ensure_wheelhouse(None, "tinyone==1.0\n")
    assert wheels_in(again) == ["tinyone-1.0-py3-none-any.whl"] and (again / "requirements.txt").is_file()
