"""The `monitor:` settings (monitor/config.py): defaults, then mlops.yml's `monitor:`, then the model project's own
section, each key on its own; windows in their units; every threshold's bounds on both sides; the folder a
QA container collects into."""
from __future__ import annotations

import os
import stat

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ml_service.config import ConfigError, load_settings
from ml_service.monitor import config


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setenv("MLOPS_ROOT", str(tmp_path))
    monkeypatch.setenv("MLOPS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("MLOPS_MODEL", raising=False)
    return tmp_path


def loaded(root, text: str, project: str = "") -> config.MonitorConfig:
    (root / "mlops.yml").write_text(text)
    settings = load_settings()
    return config.load(settings.select(project) if project else settings)


def test_monitor_settings_come_from_mlops_yml_and_a_bad_key_names_the_file(root):
    """Folded from test_drift.py."""
    first = loaded(root, "monitor: {psi: 0.3, window: 90m}\nmodels:\n"
                         "  - {project: alpha, name: alpha_model, monitor: {p_value: 0.05}}\n")
    assert (first.psi, first.p_value, first.window, first.min_rows) == (0.3, 0.05, "90m", 50)
    assert config.window_seconds(first.window) == 5400 and config.window_seconds("all") is None
    with pytest.raises(ConfigError, match=r"mlops.yml: monitor: unknown key\(s\) psi_max"):
        loaded(root, "monitor: {psi_max: 0.3}\nmodels:\n  - {project: alpha, name: alpha_model}\n")


MODELS = ("models:\n  - {project: alpha, name: alpha_model%s}\n"
          "  - {project: beta, name: beta_model%s}\n")


def test_a_projects_own_setting_wins_over_the_global_one_which_wins_over_the_default(root):
    text = "monitor: {psi: 0.3, min_rows: 70, retrain: true}\n" + MODELS % (
        ", monitor: {psi: 0.5, window: 7d, retrain: false}", "")
    alpha, beta = loaded(root, text, "alpha"), loaded(root, text, "beta")
    assert (alpha.psi, alpha.window, alpha.min_rows, alpha.retrain, alpha.p_value) == (0.5, "7d", 70, False, 0.01)
    assert (beta.psi, beta.window, beta.min_rows, beta.retrain, beta.p_value) == (0.3, "24h", 70, True, 0.01)
    assert loaded(root, MODELS % ("", ""), "beta") == config.MonitorConfig(**config.DEFAULTS)


@given(key=st.sampled_from(["psi", "p_value", "min_rows"]), use_global=st.booleans(), use_project=st.booleans())
def test_each_key_is_taken_from_the_most_specific_place_that_sets_it(key, use_global, use_project):
    import tempfile
    from pathlib import Path

    values = {"psi": (0.31, 0.47), "p_value": (0.02, 0.04), "min_rows": (60, 80)}[key]
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        own = f", monitor: {{{key}: {values[1]}}}" if use_project else ""
        text = (f"monitor: {{{key}: {values[0]}}}\n" if use_global else "") + MODELS % (own, "")
        (root / "mlops.yml").write_text(text)
        settings = load_settings({"MLOPS_ROOT": str(root), "MLOPS_STATE_DIR": str(root / "state")})
        got = getattr(config.load(settings.select("alpha")), key)
        other = getattr(config.load(settings.select("beta")), key)
    expected = values[1] if use_project else values[0] if use_global else config.DEFAULTS[key]
    assert got == expected
    assert other == (values[0] if use_global else config.DEFAULTS[key])  # a project's section is its own


@pytest.mark.parametrize("text, value", [("90m", 5400), ("24h", 86_400), ("7d", 604_800), ("30s", 30),
                                         ("1.5h", 5400), (" 2D ", 172_800), ("all", None), ("ALL", None)])
def test_windows_in_each_unit(text, value):
    assert config.window_seconds(text) == value


@given(number=st.integers(0, 10 ** 6), unit=st.sampled_from("smhd"))
def test_a_window_is_its_number_of_units_in_seconds(number, unit):
    assert config.window_seconds(f"{number}{unit}") == number * {"s": 1, "m": 60, "h": 3600, "d": 86_400}[unit]


@pytest.mark.parametrize("text", ["24", "h", "1w", "-1h", "1 hour", ""])
def test_a_window_without_a_known_unit_is_refused(text):
    with pytest.raises(ConfigError, match="expected a number and a unit"):
        config.window_seconds(text)


@pytest.mark.parametrize("key, value, accepted", [
    ("p_value", 0.999, True), ("p_value", 1, False), ("p_value", 0.0001, True), ("p_value", 0, False),
    ("psi", 0.0001, True), ("psi", 0, False), ("psi", -0.1, False), ("psi", 5, True),
    ("min_rows", 1, True), ("min_rows", 0, False), ("retrain", "true", True), ("retrain", "maybe", False),
    ("window", "3d", True), ("window", "3 days", False),
])
def test_each_threshold_takes_its_bounds(root, key, value, accepted):
    text = f"monitor: {{{key}: {value!r}}}\nmodels:\n  - {{project: alpha, name: alpha_model}}\n".replace("'", '"')
    if accepted:
        got = getattr(loaded(root, text), key)
        assert got == (value if key != "retrain" else True)
    else:
        with pytest.raises(ConfigError):
            loaded(root, text)


def test_the_collected_folder_is_under_the_state_dir_unless_absolute(root):
    (root / "mlops.yml").write_text("models:\n  - {project: alpha, name: alpha_model}\n")
    settings = load_settings()
    default = config.load(settings)
    assert default.collected(settings, "qa", "m") == settings.state_dir / "collected" / "qa" / "m"
    absolute = config.MonitorConfig(**{**config.DEFAULTS, "collect_dir": str(root / "c" / "{model}-{environment}")})
    assert absolute.collected(settings, "production", "m") == root / "c" / "m-production"


def test_a_qa_container_collects_into_a_folder_only_its_user_and_group_can_read(root):
    (root / "mlops.yml").write_text("models:\n  - {project: alpha, name: alpha_model}\n")
    settings = load_settings()
    volumes, env = config.collection_mount(settings, "qa", "alpha_model")
    host = settings.state_dir / "collected" / "qa" / "alpha_model"
    assert volumes == {str(host): {"bind": config.CONTAINER_COLLECT_DIR, "mode": "rw"}}
    assert env == {"MLOPS_COLLECT_DIR": config.CONTAINER_COLLECT_DIR}
    mode = stat.S_IMODE(host.stat().st_mode)
    if os.geteuid() == 0:  # owned by the scoring image's user, closed to others
        assert (host.stat().st_uid, mode) == (config.SCORING_UID, 0o750)
    else:  # the container's user cannot be given the folder: it may write to it
        assert mode == 0o777
