"""Print requirement specifiers of an optional-dependency group of pyproject.toml, one a line, so `make install`
installs the quality gate's tools with the versions pyproject.toml pins, and `make test` the rest.

Usage: python environment_setup/requirements.py GROUP [--only NAME ...] [--except NAME ...]
"""
from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path


def name_of(requirement: str) -> str:
    """The normalized distribution name of a requirement specifier (PEP 503)."""
    return re.sub(r"[-_.]+", "-", re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement).group(1)).lower()


def main(argv: list[str] | None = None) -> int:
    """Print the selected requirements of the group."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("group")
    parser.add_argument("--only", nargs="*", default=None, help="only these distributions")
    parser.add_argument("--except", dest="without", nargs="*", default=[], help="all but these distributions")
    args = parser.parse_args(argv)
    pyproject = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())
    group = pyproject["project"]["optional-dependencies"][args.group]
    only = None if args.only is None else {name_of(n) for n in args.only}
    chosen = [r for r in group if (only is None or name_of(r) in only) and name_of(r) not in
              {name_of(n) for n in args.without}]
    if only is not None and len(chosen) != len(only):
        missing = only - {name_of(r) for r in chosen}
        print(f"requirements.py: {', '.join(sorted(missing))} not in [{args.group}] of pyproject.toml", file=sys.stderr)
        return 1
    print("\n".join(chosen))
    return 0


if __name__ == "__main__":
    sys.exit(main())
