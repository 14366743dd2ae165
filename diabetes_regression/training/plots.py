"""Diagnostic plots saved as PNG files: predicted vs actual, and residuals."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def save_plots(y_true: np.ndarray, y_pred: np.ndarray, out_dir: Path) -> list[Path]:
    """Write predicted_vs_actual.png and residuals.png into out_dir; return their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []

    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(y_true, y_pred, s=12, alpha=0.7)
    low, high = float(min(y_true.min(), y_pred.min())), float(max(y_true.max(), y_pred.max()))
    ax.plot([low, high], [low, high], color="grey", linestyle="--", linewidth=1)
    ax.set(xlabel="actual Y", ylabel="predicted Y", title="Predicted vs actual (test split)")
    paths.append(out_dir / "predicted_vs_actual.png")
    fig.savefig(paths[-1], dpi=80, bbox_inches="tight")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.scatter(y_pred, y_true - y_pred, s=12, alpha=0.7)
    ax.axhline(0, color="grey", linestyle="--", linewidth=1)
    ax.set(xlabel="predicted Y", ylabel="residual (actual - predicted)", title="Residuals (test split)")
    paths.append(out_dir / "residuals.png")
    fig.savefig(paths[-1], dpi=80, bbox_inches="tight")
    plt.close(fig)
    return paths
