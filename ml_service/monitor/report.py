"""The drift report: one figure per column (reference vs collected) and a self-contained HTML page."""
from __future__ import annotations

import base64
import html
import re
from pathlib import Path

from ml_service.monitor.drift import ColumnDrift, DriftResult, is_numeric


def safe_name(name: str) -> str:
    """A column name usable in file and MLflow metric names."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", str(name)) or "column"


def figure(column: ColumnDrift, reference: list, current: list, path: Path) -> Path:
    """Overlaid histograms (numbers) or side-by-side bars (categories) of the two samples, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.2, 2.6), dpi=90)
    if is_numeric(reference):
        ref, cur = [float(v) for v in reference], [float(v) for v in current if v is not None]
        low, high = min(ref + cur), max(ref + cur)
        bins = [low + (high - low) * i / 20 for i in range(21)] if high > low else 10
        ax.hist(ref, bins=bins, alpha=0.55, density=True, label="training")
        ax.hist(cur, bins=bins, alpha=0.55, density=True, label="collected")
    else:
        from collections import Counter

        ref, cur = Counter(map(str, reference)), Counter(map(str, current))
        categories = sorted(set(ref) | set(cur))
        positions = range(len(categories))
        ax.bar([p - 0.2 for p in positions], [ref[c] / max(sum(ref.values()), 1) for c in categories], 0.4,
               label="training")
        ax.bar([p + 0.2 for p in positions], [cur[c] / max(sum(cur.values()), 1) for c in categories], 0.4,
               label="collected")
        ax.set_xticks(list(positions), categories, rotation=30, fontsize=7)
    verdict = "DRIFT" if column.drifted else "ok"
    ax.set_title(f"{column.name}: PSI {column.psi:.3f}, p {column.p_value:.2g} ({verdict})", fontsize=8)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def write_html(result: DriftResult, facts: dict, figures: dict[str, Path], path: Path) -> Path:
    """A self-contained page (figures inlined) with the verdict, the thresholds and every column."""
    columns = list(result.features) + ([result.prediction] if result.prediction else [])
    rows = "\n".join(
        f"<tr class='{'bad' if c.drifted else 'ok'}'><td>{html.escape(c.name)}</td><td>{c.kind}</td>"
        f"<td>{c.psi:.4f}</td><td>{c.test}</td><td>{c.statistic:.4f}</td><td>{c.p_value:.3g}</td>"
        f"<td>{'' if c.reference_mean is None else f'{c.reference_mean:.4g}'}</td>"
        f"<td>{'' if c.current_mean is None else f'{c.current_mean:.4g}'}</td>"
        f"<td>{'DRIFT' if c.drifted else 'ok'}</td></tr>" for c in columns)
    images = "\n".join(
        f"<img alt='{html.escape(name)}' src='data:image/png;base64,"
        f"{base64.b64encode(Path(png).read_bytes()).decode()}'>" for name, png in figures.items())
    facts_html = "<br>".join(f"{html.escape(str(k))}: <code>{html.escape(str(v))}</code>" for k, v in facts.items())
    verdict = "DRIFT DETECTED" if result.drifted else "no drift"
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Drift: {html.escape(str(facts.get('model', '')))}</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}} tr.bad{{background:#fdd}} tr.ok{{background:#efe}}
img{{margin:4px;border:1px solid #eee}}</style></head><body>
<h1>{verdict}</h1><p>{facts_html}</p>
<table><tr><th>column</th><th>kind</th><th>PSI</th><th>test</th><th>statistic</th><th>p-value</th>
<th>training mean</th><th>collected mean</th><th>verdict</th></tr>
{rows}
</table>
<h2>Distributions</h2>
{images}
</body></html>
"""
    path.write_text(page)
    return path
