"""Seconds per test module from `make test`'s JUnit files, for tests/durations.json (how make test splits the tests).

    python tools/durations.py .mlops/test-results/junit*.xml > tests/durations.json
"""
from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def module_of(classname: str) -> str:
    """'tests.init.test_init.TestQa' -> 'tests/init/test_init.py' (the longest prefix that is a file here)."""
    parts = classname.split(".")
    for end in range(len(parts), 0, -1):
        path = "/".join(parts[:end]) + ".py"
        if (ROOT / path).is_file():
            return path
    return "/".join(parts) + ".py"


def durations(files: list[str]) -> dict[str, float]:
    """module -> seconds its tests took (setup and teardown included, as JUnit reports them)."""
    seconds: Counter = Counter()
    for file in files:
        for case in ET.parse(file).iter("testcase"):
            seconds[module_of(case.get("classname", ""))] += float(case.get("time") or 0)
    return {module: round(value, 1) for module, value in sorted(seconds.items())}


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    print(json.dumps(durations(sys.argv[1:]), indent=1))
