"""Write a project's files as one change: if anything fails, what was created is removed and what was
changed is restored, so a failed `mlops init` leaves the repository as it found it."""
from __future__ import annotations

import shutil
from pathlib import Path

from ml_service.init import InitError


class FileTransaction:
    """Files and folders created or changed under root, undone together by rollback()."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.created: list[Path] = []
        self._originals: dict[Path, bytes] = {}

    def _target(self, rel: str) -> Path:
        path = self.root / rel
        if path.exists():
            raise InitError(f"{path} already exists")
        self.mkdirs(path.parent)
        return path

    def mkdirs(self, folder: Path) -> None:
        """Create folder and its missing parents, remembering each one created."""
        missing = []
        while not folder.exists():
            missing.append(folder)
            folder = folder.parent
        for path in reversed(missing):
            path.mkdir()
            self.created.append(path)

    def write(self, rel: str, text: str) -> Path:
        """Create the file rel with text (it must not exist)."""
        path = self._target(rel)
        self.created.append(path)
        path.write_text(text, encoding="utf-8")
        return path

    def copy(self, source: Path, rel: str) -> Path:
        """Copy source byte for byte to the new file rel."""
        path = self._target(rel)
        self.created.append(path)
        shutil.copyfile(source, path)
        return path

    def replace(self, rel: str, text: str) -> Path:
        """Overwrite the existing file rel with text (its old content is restored on rollback)."""
        path = self.root / rel
        self._originals.setdefault(path, path.read_bytes())
        path.write_text(text, encoding="utf-8")
        return path

    def adopt(self, paths: list[Path]) -> None:
        """Count files another function is about to create as created here (removed on rollback)."""
        self.created.extend(Path(p) for p in paths)

    def rollback(self) -> None:
        """Restore changed files; remove created files and folders, newest first."""
        for path, content in self._originals.items():
            path.write_bytes(content)
        for path in reversed(self.created):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        self.created.clear()
        self._originals.clear()

    def __enter__(self) -> "FileTransaction":
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is not None:
            self.rollback()
