"""A self-contained, human-readable HTML report of a data validation."""
from __future__ import annotations

import html
import time
from pathlib import Path

from ml_service.data.contract import ValidationResult


def write_report(result: ValidationResult, reports_dir: Path) -> Path:
    """Write the report under reports_dir and return its path (also copied to data_validation.html)."""
    reports_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = reports_dir / f"data_validation_{Path(result.data_path).stem}_{stamp}.html"
    rows = "\n".join(
        f"<tr class='{'ok' if c.success else 'bad'}'><td>{'PASS' if c.success else 'FAIL'}</td>"
        f"<td>{html.escape(c.expectation)}</td><td>{html.escape(c.column or '(table)')}</td>"
        f"<td>{html.escape(c.detail)}</td></tr>"
        for c in result.checks
    )
    failed = len(result.failures)
    verdict = "passed" if result.success else f"FAILED ({failed} of {len(result.checks)})"
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Data validation: {html.escape(str(result.data_path))}</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}
tr.bad{{background:#fdd}} tr.ok{{background:#efe}}</style>
</head><body>
<h1>Data validation {verdict}</h1>
<p>File: <code>{html.escape(str(result.data_path))}</code> ({result.rows} rows)<br>
Suite: <code>{html.escape(result.suite_name)}</code><br>Checked: {time.strftime("%Y-%m-%d %H:%M:%S %Z")}</p>
<table><tr><th>result</th><th>expectation</th><th>column</th><th>detail</th></tr>
{rows}
</table></body></html>
"""
    path.write_text(page)
    (reports_dir / "data_validation.html").write_text(page)
    return path
