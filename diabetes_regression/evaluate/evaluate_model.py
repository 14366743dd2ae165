"""Promotion decision. Pure: numbers in, decision out; plus the pipeline step that applies it."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import yaml


@dataclass(frozen=True)
class Decision:
    """Whether to register the candidate, and why, in one line."""

    promote: bool
    reason: str


def decide(metric: str, candidate: float, champion: float | None, lower_is_better: bool = True,
           champion_version: str | None = None) -> Decision:
    """Promote only if the candidate is strictly better than the champion (or there is no champion)."""
    if not math.isfinite(candidate):
        return Decision(False, f"not promoted: candidate {metric} is {candidate}")
    if champion is None:
        return Decision(True, f"promoted: no champion yet (candidate {metric} {candidate:.4f})")
    better = candidate < champion if lower_is_better else candidate > champion
    versus = f"candidate {metric} {candidate:.4f} vs champion v{champion_version} {metric} {champion:.4f}"
    if better:
        return Decision(True, f"promoted: {versus}")
    return Decision(False, f"not promoted: {versus} (not strictly better)")


def run(inputs: dict[str, Path], params: dict, output_dir: Path, context: dict) -> dict:
    """Pipeline step: compare the trained candidate with the champion from the registry."""
    config = yaml.safe_load(inputs["parameters"].read_text())["evaluation"]
    metric = config["metric"]
    candidate = json.loads((inputs["train"] / "metrics.json").read_text())[metric]
    champion = json.loads(inputs["champion"].read_text())
    champion_value = None
    if champion.get("version") is not None:
        raw = champion.get("tags", {}).get(metric)
        champion_value = float(raw) if raw not in (None, "") else None
        if champion_value is None:
            raise ValueError(f"champion version {champion['version']} has no '{metric}' tag to compare with")
    decision = decide(metric, candidate, champion_value, bool(config.get("lower_is_better", True)),
                      champion.get("version"))
    (output_dir / "decision.json").write_text(json.dumps(decision.__dict__))
    return {"values": {"promote": decision.promote}, "outcome": decision.reason,
            "metrics": {f"candidate_{metric}": candidate}}
