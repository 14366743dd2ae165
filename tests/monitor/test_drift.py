"""Drift statistics: shifted samples are flagged, samples of the same distribution are not."""
from __future__ import annotations

import random

import pytest

from ml_service.monitor import drift


def gaussian(n, mean=0.0, sd=1.0, seed=0):
    rng = random.Random(seed)
    return [rng.gauss(mean, sd) for _ in range(n)]


def test_a_sample_of_the_same_distribution_does_not_drift():
    column = drift.numeric_drift("x", gaussian(2000), gaussian(300, seed=1), psi_threshold=0.2, p_value=0.01)
    assert column.psi < 0.1 and column.p_value > 0.01 and not column.drifted


def test_a_shifted_sample_drifts():
    column = drift.numeric_drift("x", gaussian(2000), gaussian(300, mean=1.0, seed=1), 0.2, 0.01)
    assert column.psi > 0.2 and column.p_value < 1e-6 and column.drifted
    assert column.current_mean - column.reference_mean == pytest.approx(1.0, abs=0.2)


def test_a_small_shift_on_a_large_sample_is_not_drift_because_psi_stays_low():
    column = drift.numeric_drift("x", gaussian(20000), gaussian(20000, mean=0.08, seed=1), 0.2, 0.01)
    assert column.p_value < 0.01 and column.psi < 0.2 and not column.drifted  # the test alone would flag it


def test_categories_drift_by_their_frequencies():
    reference = ["a"] * 500 + ["b"] * 500
    same = drift.categorical_drift("c", reference, ["a"] * 52 + ["b"] * 48, 0.2, 0.01)
    moved = drift.categorical_drift("c", reference, ["a"] * 90 + ["b"] * 5 + ["new"] * 5, 0.2, 0.01)
    assert not same.drifted and moved.drifted and moved.test == "chi2"


def test_psi_of_known_shares():
    assert drift.psi([0.5, 0.5], [0.5, 0.5]) == 0
    assert drift.psi([0.5, 0.5], [0.9, 0.1]) == pytest.approx(0.4 * 0.5878 + 0.4 * 1.6094, abs=1e-3)


def test_compare_flags_only_the_shifted_feature_and_the_predictions():
    reference = {"a": gaussian(1000), "b": gaussian(1000, seed=2)}
    current_a, current_b = gaussian(200, mean=2.0, seed=3), gaussian(200, seed=4)
    rows = [[a, b] for a, b in zip(current_a, current_b)]
    result = drift.compare(["a", "b"], reference, rows, reference["a"], current_a, 0.2, 0.01)
    assert result.drifted_features == ["a"] and result.prediction.drifted and result.drifted
    steady = drift.compare(["a", "b"], reference, [[a, b] for a, b in zip(gaussian(200, seed=5), current_b)],
                           [], [], 0.2, 0.01)
    assert not steady.drifted and steady.prediction is None


def test_drift_queues_the_retrain_pipeline_of_the_models_project(workspace):
    from ml_service.ci import service
    from ml_service.monitor import check

    [run_id] = check.trigger_retrain(workspace, workspace.model.name)
    run = service.open_store(workspace).get_run(run_id)
    assert (run.pipeline, run.reason, run.status) == (f"{workspace.model.project}-retrain", "ResourceTrigger", "queued")


def test_monitor_settings_come_from_mlops_yml_and_a_bad_key_names_the_file(tmp_path, monkeypatch):
    from ml_service.config import ConfigError, load_settings
    from ml_service.monitor import config

    (tmp_path / "mlops.yml").write_text("monitor: {psi: 0.3, window: 90m}\nmodels:\n"
                                        "  - {project: alpha, name: alpha_model, monitor: {p_value: 0.05}}\n")
    monkeypatch.setenv("MLOPS_ROOT", str(tmp_path))
    monkeypatch.delenv("MLOPS_MODEL", raising=False)
    loaded = config.load(load_settings())
    assert (loaded.psi, loaded.p_value, loaded.window, loaded.min_rows) == (0.3, 0.05, "90m", 50)
    assert config.window_seconds(loaded.window) == 5400 and config.window_seconds("all") is None
    (tmp_path / "mlops.yml").write_text("monitor: {psi_max: 0.3}\nmodels:\n  - {project: alpha, name: alpha_model}\n")
    with pytest.raises(ConfigError, match=r"mlops.yml: monitor: unknown key\(s\) psi_max"):
        config.load(load_settings())
