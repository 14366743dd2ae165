"""The mutation report: score per package, module and operator, and every mutant no test noticed, as a diff."""
from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

DETECTED = ("killed", "timeout")
COUNTED = ("killed", "timeout", "survived", "no tests")


def package(module: str) -> str:
    """ml_service/ci/runner/masking.py -> ml_service/ci; ml_service/config.py -> ml_service (top level)."""
    parts = Path(module).parts
    return "/".join(parts[:2]) if len(parts) > 2 else f"{parts[0]} (top level)"


def score(rows: list[dict]) -> float | None:
    """(killed + timed out) / (killed + timed out + survived + no tests), in percent; None without any."""
    counted = [r for r in rows if r["status"] in COUNTED]
    if not counted:
        return None
    return 100.0 * sum(r["status"] in DETECTED for r in counted) / len(counted)


def table(rows: list[dict], key, title: str) -> list[str]:
    """A markdown table of rows grouped by key(row)."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        groups[key(row)].append(row)
    out = [f"| {title} | mutants | killed | timeout | survived | no tests | error | score |",
           "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name in sorted(groups) + ["all"]:
        group = rows if name == "all" else groups[name]
        count = {s: sum(r["status"] == s for r in group) for s in (*COUNTED, "error")}
        value = score(group)
        shown = "-" if value is None else f"{value:.1f}%"
        label = f"**{name}**" if name == "all" else f"`{name}`"
        out.append(f"| {label} | {len(group)} | {count['killed']} | {count['timeout']} | {count['survived']} | "
                   f"{count['no tests']} | {count['error']} | {shown} |")
    return out


def survivors(rows: list[dict]) -> list[str]:
    """Every mutant that survived or that no test reaches, grouped by module, each with its diff."""
    out: list[str] = []
    alive = [r for r in rows if r["status"] in ("survived", "no tests", "error")]
    by_module: dict[str, list[dict]] = defaultdict(list)
    for row in alive:
        by_module[row["module"]].append(row)
    for module in sorted(by_module):
        out += ["", f"### {module} ({len(by_module[module])})"]
        for row in sorted(by_module[module], key=lambda r: (r["line"], r["id"])):
            how = f"{row['tests']} tests ({row['selection']})" if row["tests"] else "no test runs this line"
            extra = f", {row['detail']}" if row.get("detail") else ""
            out += ["", f"- `{row['id']}` **{row['status']}**: {how}{extra}", "", "```diff",
                    row["diff"].rstrip("\n"), "```"]
    return out


def render(rows: list[dict], header: list[str]) -> str:
    """The whole report as markdown."""
    lines = ["# Mutation testing report", "", *header, "",
             "Score = (killed + timeout) / (killed + timeout + survived + no tests). A mutant is killed when the "
             "tests chosen for its line fail; `no tests`: no test runs the line and the fallback found no test "
             "file either; `error`: the run itself broke (left out of the score, listed below).", "",
             "## Per package", "", *table(rows, lambda r: package(r["module"]), "package"), "",
             "## Per operator", "", *table(rows, lambda r: r["operator"], "operator"), "",
             "## Per module", "", *table(rows, lambda r: r["module"], "module"), "",
             "## Not detected (every survivor, `no tests` and `error`)", *survivors(rows), ""]
    return "\n".join(lines)


def printed(rows: list[dict], header: list[str]) -> str:
    """What the terminal shows: the package table and the survivors."""
    return "\n".join([*header, "", *table(rows, lambda r: package(r["module"]), "package"), "",
                      *survivors(rows)])


def main(argv: list[str] | None = None) -> int:
    """Render a report from a results file (a run still going, or one that was stopped)."""
    import argparse
    import json

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("results", nargs="?", default=".mlops/mutation/full/results.jsonl")
    parser.add_argument("--out", help="write the whole report here (default: print the package table and survivors)")
    args = parser.parse_args(argv)
    rows = [json.loads(line) for line in Path(args.results).read_text().splitlines() if line.strip()]
    rows = [r for r in rows if r["status"] != "not run"]
    header = [f"{len(rows)} mutants from {args.results}."]
    if args.out:
        Path(args.out).write_text(render(rows, header))
    else:
        print(printed(rows, header))
    return 0 if rows else 1


if __name__ == "__main__":
    sys.exit(main())
