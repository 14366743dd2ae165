"""The README and docs/ name only tests, files and pages that exist: a renamed or folded test file, a moved
module or a removed page makes this fail instead of leaving a promise pointing at nothing."""
from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# a test file (not a pattern such as */tests/x.py or <project>/tests/x.py), with ::names after it
TEST_REF = re.compile(r"(?<![\w*>/.-])((?:tests|[a-z_]+/tests)/[\w/]+\.py)((?:::\w+)*)")
LINK = re.compile(r"\]\(((?!https?:|#)[^)#\s]+)(?:#[^)\s]*)?\)")  # [text](relative/target#anchor)


def _functions(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {node.name for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}


def test_every_test_a_page_names_exists():
    missing = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        named = sorted([(m.start(), m.group(1), m.group(2)) for m in TEST_REF.finditer(text)]
                       + [(m.start(), None, m.group(1)) for m in re.finditer(r"`(::\w+)`", text)])
        last_file = None
        for _, rel, names in named:
            if rel is not None:
                if not (ROOT / rel).is_file():
                    missing.append(f"{page.name}: {rel}")
                    last_file = None
                    continue
                last_file = ROOT / rel
            if last_file is not None:  # `::name` alone continues the file named last
                missing += [f"{page.name}: {last_file.relative_to(ROOT)}::{n}" for n in names.split("::")
                            if n and n not in _functions(last_file)]
    assert not missing, "pages name tests that do not exist:\n" + "\n".join(missing)


def test_every_relative_link_of_a_page_leads_to_a_file():
    broken = [f"{page.relative_to(ROOT)}: {target}" for page in PAGES
              for target in LINK.findall(page.read_text(encoding="utf-8"))
              if not (page.parent / target).exists()]
    assert not broken, "links to nothing:\n" + "\n".join(broken)
