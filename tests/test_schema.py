"""mlops.yml's JSON Schema (ml_service/mlops.schema.json) and the Python loader agree: both accept the
repository's mlops.yml, every mlops.yml example in the docs and what `mlops init` adds; both refuse a
value of a wrong type at every section (Hypothesis draws the value); `mlops doctor` names the key."""
from __future__ import annotations

import copy
import json
import re
import textwrap

import jsonschema
import pytest
import yaml
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st

from ml_service import doctor
from ml_service.config import PACKAGE_ROOT, SECTIONS, ConfigError, load_settings
from ml_service.init.config_entry import add_model

SCHEMA = json.loads((PACKAGE_ROOT / "ml_service" / "mlops.schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)

# A configuration that sets a value in every section (the base each wrong value is put into).
BASE = {
    "workspace": {"state_dir": "state", "tracking_uri": "", "artifact_root": ""},
    "models": [{"project": "p", "name": "m", "task": "regression", "data": "data/p.csv", "target": "y",
                "monitor": {"psi": 0.3}}],
    "deploy": {"base_image": "mlops-python:3.11-bookworm", "registry": ""},
    "environments": {"production": {"approval": {"approvers": ["lead@example.com"], "allow_self_approval": False,
                                                 "timeout_minutes": 60},
                                    "release": "scoring-{model}", "gitops": {"repo": "", "values_file": "v.yaml"},
                                    "values": {"route": {"enabled": True}}}},
    "ci": {"variable_groups": {"vault": {"variables": {"REGION": "local"}, "secrets": ["GROUP_SECRET"]}}},
    "monitor": {"collect_dir": "collected", "window": "24h", "min_rows": 50, "psi": 0.2, "p_value": 0.01,
                "retrain": False},
    "studio": {"trusted_header": "X-Forwarded-User", "login_max_failures": 5},
}
# Each place in BASE and the JSON types it takes: any other type must be refused by both sides.
PLACES = {
    ("workspace",): {"object", "null"}, ("workspace", "state_dir"): {"string", "null"},
    ("deploy", "registry"): {"string", "null"},
    ("models",): {"array", "null"}, ("models", 0): {"object"}, ("models", 0, "project"): {"string"},
    ("models", 0, "name"): {"string"}, ("models", 0, "data"): {"string", "null"},
    ("models", 0, "target"): {"string", "number", "integer", "boolean", "null"},
    ("models", 0, "monitor"): {"object", "null"}, ("models", 0, "monitor", "psi"): {"number", "integer", "null"},
    ("environments",): {"object", "null"}, ("environments", "production"): {"object", "null"},
    ("environments", "production", "approval"): {"object", "null"},
    ("environments", "production", "approval", "approvers"): {"array", "null"},
    ("environments", "production", "approval", "approvers", 0): {"string"},
    ("environments", "production", "approval", "allow_self_approval"): {"boolean", "null", "string"},
    ("environments", "production", "approval", "timeout_minutes"): {"number", "integer", "null"},
    ("environments", "production", "release"): {"string", "null"},
    ("environments", "production", "gitops"): {"object", "null"},
    ("environments", "production", "gitops", "values_file"): {"string", "null"},
    ("environments", "production", "values"): {"object", "null"},
    ("ci",): {"object", "null"}, ("ci", "variable_groups"): {"object", "null"},
    ("ci", "variable_groups", "vault"): {"object", "null"},
    ("ci", "variable_groups", "vault", "variables"): {"object", "null"},
    ("ci", "variable_groups", "vault", "variables", "REGION"): {"string", "number", "integer", "boolean", "null"},
    ("ci", "variable_groups", "vault", "secrets"): {"array", "null"},
    ("ci", "variable_groups", "vault", "secrets", 0): {"string"},
    ("monitor",): {"object", "null"}, ("monitor", "window"): {"string", "null"},
    ("monitor", "min_rows"): {"integer", "null"}, ("monitor", "p_value"): {"number", "integer", "null"},
    ("monitor", "retrain"): {"boolean", "null", "string"}, ("monitor", "collect_dir"): {"string", "null"},
    ("studio",): {"object", "null"}, ("studio", "trusted_header"): {"string", "null"},
    ("studio", "login_max_failures"): {"integer"},
}
VALUES = {
    "null": st.none(), "boolean": st.booleans(), "integer": st.integers(-5, 5),
    "number": st.floats(-10, 10).filter(lambda x: not x.is_integer()),
    "string": st.text("abc XY-_", min_size=0, max_size=4),
    "array": st.lists(st.integers(0, 3), max_size=2),
    "object": st.dictionaries(st.sampled_from(["zz_unknown"]), st.integers(0, 3), max_size=1),
}


def python_accepts(tmp_path, config: dict) -> bool:
    """Whether load_settings takes config as mlops.yml (ConfigError: it does not)."""
    (tmp_path / "mlops.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    try:
        load_settings({"MLOPS_ROOT": str(tmp_path)})
    except ConfigError:
        return False
    return True


def schema_accepts(config: dict) -> bool:
    """Whether the JSON Schema takes config."""
    return VALIDATOR.is_valid(config)


def put(config: dict, place: tuple, value) -> dict:
    """A copy of config with the value at place replaced."""
    changed = copy.deepcopy(config)
    target = changed
    for key in place[:-1]:
        target = target[key]
    target[place[-1]] = value
    return changed


def doc_examples() -> list[tuple[str, dict]]:
    """(where, mapping) of every ```yaml block in the docs and the README whose keys are mlops.yml sections."""
    found = []
    for path in [PACKAGE_ROOT / "README.md", *sorted((PACKAGE_ROOT / "docs").glob("*.md"))]:
        for match in re.finditer(r"^( *)```ya?ml\n(.*?)^\1```", path.read_text(), re.MULTILINE | re.DOTALL):
            try:
                data = yaml.safe_load(textwrap.dedent(match.group(2)))
            except yaml.YAMLError:
                continue
            if isinstance(data, dict) and data and set(data) <= set(SECTIONS):
                found.append((f"{path.name}:{match.start()}", data))
    return found


def test_the_schema_is_a_valid_json_schema_and_every_section_is_in_it():
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    assert set(SCHEMA["properties"]) == set(SECTIONS)
    assert schema_accepts(BASE)


def test_the_repositorys_mlops_yml_is_valid_on_both_sides_and_names_its_schema():
    text = (PACKAGE_ROOT / "mlops.yml").read_text()
    assert text.splitlines()[0] == "# yaml-language-server: $schema=ml_service/mlops.schema.json"
    assert schema_accepts(yaml.safe_load(text))
    assert load_settings({"MLOPS_ROOT": str(PACKAGE_ROOT)}).models


def test_every_mlops_yml_example_in_the_docs_is_valid_on_both_sides(tmp_path):
    examples = doc_examples()
    assert len(examples) >= 4  # models, monitor, environments, studio at least
    for where, data in examples:
        assert schema_accepts(data), (where, [e.message for e in VALIDATOR.iter_errors(data)])
        assert python_accepts(tmp_path, data), where


def test_what_mlops_init_adds_is_valid_on_both_sides(tmp_path):
    entry = {"project": "churn", "name": "churn_model", "task": "classification", "data": "data/churn.csv",
             "contract": "data/contract/churn_suite.json", "target": "monthly spend", "dataset": "churn"}
    text = add_model((PACKAGE_ROOT / "mlops.yml").read_text(), entry)
    assert text.startswith("# yaml-language-server: $schema=")  # the editor's schema line is kept
    assert schema_accepts(yaml.safe_load(text))
    (tmp_path / "mlops.yml").write_text(text)
    assert load_settings({"MLOPS_ROOT": str(tmp_path)}).select("churn").model.target == "monthly spend"


@pytest.mark.parametrize("place", sorted(PLACES, key=str), ids=lambda p: ".".join(map(str, p)))
@hypothesis_settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_wrong_type_is_refused_by_the_schema_and_the_loader_alike(tmp_path, place, data):
    wrong = sorted(set(VALUES) - PLACES[place] - ({"number"} if "integer" in PLACES[place] and
                                                  "number" in PLACES[place] else set()))
    kind = data.draw(st.sampled_from(wrong))
    config = put(BASE, place, data.draw(VALUES[kind]))
    assert not schema_accepts(config)
    assert not python_accepts(tmp_path, config)


@pytest.mark.parametrize("place, value", [
    (("top_level_typo",), {}), (("environments", "production", "aproval"), {}), (("monitor", "psi"), 0),
    (("monitor", "p_value"), 1), (("monitor", "window"), "3 days"), (("monitor", "min_rows"), 0),
    (("studio", "trusted_header"), "X User"), (("studio", "login_max_failures"), 0),
    (("models", 0, "project"), "Not-A-Package"), (("models", 0, "task"), "clustering"),
    (("ci", "variable_groups", "vault", "secrets", 0), "NOT A NAME"), (("models", 0, "colour"), "red"),
])
def test_an_unknown_key_or_a_value_out_of_range_is_refused_by_both(tmp_path, place, value):
    config = put(BASE, place, value)
    assert not schema_accepts(config)
    assert not python_accepts(tmp_path, config)


def test_doctor_reports_the_first_errors_with_their_key_path(tmp_path, monkeypatch):
    config = put(BASE, ("environments", "production", "approval", "approvers", 0), 7)
    assert doctor.schema_errors(config) == ["environments.production.approval.approvers[0]: 7 is not of type 'string'"]
    (tmp_path / "mlops.yml").write_text(yaml.safe_dump(put(BASE, ("environments", "production", "values"), None)))
    settings = load_settings({"MLOPS_ROOT": str(tmp_path)})
    assert doctor.config_check(settings).state == doctor.OK
    (tmp_path / "mlops.yml").write_text(yaml.safe_dump(put(BASE, ("deploy", "extra"), [1])) + "surprise: 1\n")
    check = doctor.config_check(settings)  # the loader refuses it too; doctor still says where
    assert check.state == doctor.FAIL and "surprise" in check.detail
