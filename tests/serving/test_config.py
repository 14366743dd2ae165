"""Settings of the scoring process (serving/config.py): the documented default of every limit, each variable
read into its own setting, and the bounds of each on both sides (the minimum taken, one below refused)."""
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ml_service.config import PACKAGE_ROOT
from ml_service.serving.config import ServingConfigError, cpu_count, load_serving_settings

# variable: (setting, smallest value taken); the seconds are taken from 0 to 86400
WHOLE = {"MLOPS_MAX_BODY_BYTES": ("max_body_bytes", 1), "MLOPS_MAX_ROWS": ("max_rows", 1),
         "MLOPS_MAX_HEADER_BYTES": ("max_header_bytes", 1024), "MLOPS_MAX_CONNECTIONS": ("max_connections", 1),
         "MLOPS_OFFLOAD_BYTES": ("offload_bytes", 0), "MLOPS_SCORING_THREADS": ("scoring_threads", 1),
         "MLOPS_WORKERS": ("workers", 1), "MLOPS_COLLECT_MAX_BYTES": ("collect_max_bytes", 1),
         "MLOPS_COLLECT_KEEP_FILES": ("collect_keep_files", 1)}
SECONDS = {"MLOPS_HEADER_TIMEOUT_SECONDS": "header_timeout_s", "MLOPS_BODY_TIMEOUT_SECONDS": "body_timeout_s",
           "MLOPS_KEEP_ALIVE_SECONDS": "keep_alive_s", "MLOPS_DRAIN_SECONDS": "drain_s",
           "MLOPS_GRACEFUL_TIMEOUT_SECONDS": "graceful_timeout_s", "MLOPS_COLLECT_FLUSH_SECONDS": "collect_flush_s"}


def documented_defaults() -> dict[str, str]:
    """variable: default, from the table of docs/serving.md ("Serving limits")."""
    text = (PACKAGE_ROOT / "docs" / "serving.md").read_text()
    return dict(re.findall(r"^\| `(MLOPS_[A-Z_]+)` \| ([^|]+?) \|", text, flags=re.MULTILINE))


def test_every_limit_has_the_default_the_documentation_gives():
    documented = documented_defaults()
    assert set(documented) == set(WHOLE) | set(SECONDS)  # the table lists every limit, and only limits
    loaded = load_serving_settings({})
    for variable, default in documented.items():
        field = WHOLE[variable][0] if variable in WHOLE else SECONDS[variable]
        expected = 1 if variable == "MLOPS_WORKERS" else float(default)  # "1 (`auto` in the image)"
        assert getattr(loaded, field) == expected, (variable, default)


@pytest.mark.parametrize("variable", sorted(WHOLE))
def test_each_whole_number_limit_takes_its_minimum_and_refuses_one_less(variable):
    field, minimum = WHOLE[variable]
    assert getattr(load_serving_settings({variable: str(minimum)}), field) == minimum
    assert getattr(load_serving_settings({variable: str(minimum + 7)}), field) == minimum + 7
    with pytest.raises(ServingConfigError) as low:
        load_serving_settings({variable: str(minimum - 1)})
    assert str(low.value) == f"{variable} must be at least {minimum}, got {minimum - 1}"
    with pytest.raises(ServingConfigError) as text:
        load_serving_settings({variable: "12kb"})
    assert str(text.value) == f"{variable} must be a whole number, got '12kb'"


@pytest.mark.parametrize("variable", sorted(SECONDS))
def test_each_time_limit_takes_0_to_86400_seconds(variable):
    field = SECONDS[variable]
    for value in ("0", "0.25", "86400"):
        assert getattr(load_serving_settings({variable: value}), field) == float(value)
    for value in ("-0.001", "86400.001", "inf", "nan"):
        with pytest.raises(ServingConfigError, match=f"{variable} must be between 0 and 86400 seconds"):
            load_serving_settings({variable: value})
    with pytest.raises(ServingConfigError, match=f"{variable} must be a number of seconds, got '5s'"):
        load_serving_settings({variable: "5s"})


@settings(max_examples=100, deadline=None)
@given(value=st.integers(-10, 10 ** 7))
def test_the_row_limit_is_any_whole_number_from_1(value):
    if value >= 1:
        assert load_serving_settings({"MLOPS_MAX_ROWS": str(value)}).max_rows == value
    else:
        with pytest.raises(ServingConfigError, match="MLOPS_MAX_ROWS must be at least 1"):
            load_serving_settings({"MLOPS_MAX_ROWS": str(value)})


def test_each_variable_sets_its_own_setting_and_no_other():
    defaults = load_serving_settings({})
    for variable, (field, minimum) in WHOLE.items():
        changed = load_serving_settings({variable: str(minimum + 12_345)})
        differ = {f for f in WHOLE.values() if getattr(changed, f[0]) != getattr(defaults, f[0])}
        assert {f[0] for f in differ} == {field}, variable
    for variable, field in SECONDS.items():
        changed = load_serving_settings({variable: "1234.5"})
        assert [f for f in SECONDS.values() if getattr(changed, f) != getattr(defaults, f)] == [field], variable


def test_workers_auto_is_one_a_cpu_of_this_process():
    assert load_serving_settings({"MLOPS_WORKERS": "auto"}).workers == cpu_count() >= 1


def test_request_logging_is_on_unless_set_to_false():
    assert load_serving_settings({}).log_requests is True
    for value in ("false", "FALSE", "False"):
        assert load_serving_settings({"MLOPS_LOG_REQUESTS": value}).log_requests is False
    for value in ("true", "1", "no", ""):
        assert load_serving_settings({"MLOPS_LOG_REQUESTS": value}).log_requests is True


def test_the_model_and_its_identity_come_from_the_environment():
    loaded = load_serving_settings({"MODEL_DIR": "/models/m", "MLOPS_MODEL_NAME": "m", "MLOPS_MODEL_VERSION": "12",
                                    "MLOPS_COLLECT_DIR": "/collect"})
    assert (loaded.model_dir, loaded.model_name, loaded.model_version, loaded.collect_dir) == (
        "/models/m", "m", "12", "/collect")
    assert (load_serving_settings({}).model_name, load_serving_settings({}).model_version) == ("model", "0")
