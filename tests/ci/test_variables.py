"""Pipeline variables, exactly: the coerced values of both declaration forms, which variables a group makes
visible and which it marks secret (masked), where a secret is read from (the environment first, then .env),
and the error naming the group, the secret and the file when one is missing (written while mutation-testing
variables.py, issue 19); and which value a step sees: job over stage over pipeline, the later declaration over
the earlier, read-only ones kept (issue 29)."""
from pathlib import Path

import pytest

from ml_service.ci.model.pipeline import Var
from ml_service.ci.model.variables import Groups, VariableError, parse_variables, read_dotenv, variable_groups
from ml_service.ci.server import service
from tests.ci.helpers import all_logs, every_stored_byte, make_project, run_text


def test_map_form_coerces_values_to_azure_strings():
    assert parse_variables({"a": 1, "b": 2.0, "c": 2.5, "d": True, "e": None, "f": "x", 7: "seven"}) == {
        "a": Var("1"), "b": Var("2"), "c": Var("2.5"), "d": Var("True"), "e": Var(""), "f": Var("x"),
        "7": Var("seven")}
    assert parse_variables(None) == {} and parse_variables([]) == {} and parse_variables({}) == {}


def test_list_form_names_values_readonly_and_groups_in_order():
    groups = {"g": {"from_group": Var("s3cret", secret=True, literal=True), "n": Var("group")}}
    declared = [{"name": "n", "value": 1.0}, {"group": "g"}, {"name": "after", "value": False, "readonly": "yes"},
                {"name": "empty"}, {"name": 5, "value": "v", "readonly": True}, {"name": "rw", "readonly": "no"}]
    got = parse_variables(declared, groups)
    assert got == {"n": Var("group"), "from_group": Var("s3cret", secret=True, literal=True),
                   "after": Var("False", readonly=True), "empty": Var(""), "5": Var("v", readonly=True),
                   "rw": Var("", readonly=False)}
    assert list(got) == ["n", "from_group", "after", "empty", "5", "rw"]
    assert parse_variables([{"group": "g"}, {"name": "n", "value": "mine"}], groups)["n"] == Var("mine")


@pytest.mark.parametrize("declared, groups, message", [
    ("text", None, "'variables' must be a mapping or a list"),
    (["a"], None, "unexpected variables entry 'a'"),
    ([{"template": "t.yml"}], None, "unexpected variables entry {'template': 't.yml'} (templates are expanded "
                                    "before this)"),
    ([{"group": "g"}], None, "variable group 'g' is not defined (mlops.yml: ci.variable_groups): a variable group "
                             "is Azure DevOps library data; define it there as g: {variables: {NAME: value}, "
                             "secrets: [NAME]} (secrets are read from the environment or .env)"),
    ([{"group": "h"}], {"g": {}}, "variable group 'h' is not defined (mlops.yml: ci.variable_groups): a variable group "
                                  "is Azure DevOps library data; define it there as h: {variables: {NAME: value}, "
                                  "secrets: [NAME]} (secrets are read from the environment or .env)"),
])
def test_bad_declarations_are_refused_naming_what(declared, groups, message):
    with pytest.raises(VariableError) as caught:
        parse_variables(declared, groups)
    assert str(caught.value) == message


def test_read_dotenv(tmp_path):
    assert read_dotenv(tmp_path / ".env") == {}
    (tmp_path / "dir").mkdir()
    assert read_dotenv(tmp_path / "dir") == {}
    env = tmp_path / ".env"
    env.write_text("# comment\n\n  A = 1 \nexport B='two words'\nC=\"q\"\nNOEQUALS\nD=x=y\n  # E=no\nF=\n"
                   "export  G = \"'mixed'\" \n"
                   "H=XsecretX\n")
    assert read_dotenv(env) == {"A": "1", "B": "two words", "C": "q", "D": "x=y", "F": "", "G": "mixed",
                                "H": "XsecretX"}


def test_a_group_is_resolved_when_first_used_with_its_secrets_masked(tmp_path):
    (tmp_path / ".env").write_text("FROM_FILE=file-value\nBOTH=file-loses\n")
    config = {"g": {"variables": {"plain": 1, "flag": True}, "secrets": ["FROM_ENV", "FROM_FILE", "BOTH"]},
              "unused": {"secrets": ["NOWHERE"]}, "empty": None}
    groups = variable_groups(config, tmp_path, {"FROM_ENV": "env-value", "BOTH": "env-wins"})
    assert isinstance(groups, Groups) and bool(groups) and groups.used == []
    assert "g" in groups and "unused" in groups and "nope" not in groups
    assert groups["g"] == {"plain": Var("1"), "flag": Var("True"),
                           "FROM_ENV": Var("env-value", secret=True, literal=True),
                           "FROM_FILE": Var("file-value", secret=True, literal=True),
                           "BOTH": Var("env-wins", secret=True, literal=True)}
    assert groups["g"] is groups["g"] and groups.used == ["g"]
    assert groups["empty"] == {} and groups.used == ["g", "empty"]
    with pytest.raises(KeyError) as unknown:
        groups["nope"]
    assert unknown.value.args == ("nope",)
    assert groups.used == ["g", "empty"]
    with pytest.raises(VariableError) as missing:
        groups["unused"]
    assert str(missing.value) == (f"variable group 'unused': secret NOWHERE is not set in the environment "
                                  f"or in {tmp_path / '.env'}")
    assert groups.used == ["g", "empty"]


def test_a_missing_secret_fails_only_the_pipeline_that_uses_its_group(tmp_path):
    config = {"needs": {"secrets": ["ABSENT"]}, "fine": {"variables": {"x": "y"}}}
    groups = variable_groups(config, str(tmp_path), {})
    assert parse_variables([{"group": "fine"}], groups) == {"x": Var("y")}
    with pytest.raises(VariableError, match="secret ABSENT"):
        parse_variables([{"group": "needs"}], groups)


def test_env_defaults_to_the_process_environment_and_the_dotenv_is_read_once(tmp_path, monkeypatch):
    monkeypatch.setenv("MUTATION_TEST_SECRET", "from-os")
    groups = variable_groups({"g": {"secrets": ["MUTATION_TEST_SECRET"]}}, tmp_path)
    assert groups["g"]["MUTATION_TEST_SECRET"] == Var("from-os", secret=True, literal=True)
    env = tmp_path / ".env"
    env.write_text("ONE=1\nTWO=2\n")
    groups = variable_groups({"a": {"secrets": ["ONE"]}, "b": {"secrets": ["TWO"]}}, tmp_path, {})
    assert groups["a"]["ONE"].value == "1"
    env.write_text("ONE=changed\n")
    assert groups["b"]["TWO"].value == "2"  # the file as first read
    assert not variable_groups({}, tmp_path, {}) and not variable_groups(None, tmp_path, {})
    assert "x" not in variable_groups(None, tmp_path, {})


# --- precedence when a pipeline runs (issue 29): job over stage over pipeline, later over earlier ------------------

PRECEDENCE = """
variables:
  level: pipeline
  onlyPipeline: p
stages:
  - stage: S
    variables:
      level: stage
      onlyStage: s
    jobs:
      - job: WithOwn
        variables:
          - name: level
            value: job
          - name: late
            value: first
          - name: late
            value: second
        steps:
          - bash: echo "WithOwn level=$(level) p=$(onlyPipeline) s=$(onlyStage) env=$LEVEL late=$(late)"
      - job: Inherits
        steps:
          - bash: echo "Inherits level=$(level) env=$LEVEL"
  - stage: Other
    jobs:
      - job: Plain
        steps:
          - bash: echo "Plain level=$(level)"; echo 'stage var elsewhere=[$(onlyStage)]'
"""


@pytest.fixture
def project(tmp_path, monkeypatch):
    return make_project(tmp_path, monkeypatch, """
models:
  - {project: p, name: m}
ci:
  variable_groups:
    vault:
      variables: {REGION: local-region}
      secrets: [GROUP_SECRET]
""")


def test_a_job_variable_beats_the_stages_which_beats_the_pipelines(project):
    store, run = run_text(project, PRECEDENCE)
    logs = all_logs(store, run.id)
    assert run.result == "succeeded"
    assert "WithOwn level=job p=p s=s env=job late=second" in logs  # and the later of two declarations
    assert "Inherits level=stage env=stage" in logs
    assert "Plain level=pipeline" in logs and "stage var elsewhere=[$(onlyStage)]" in logs


def test_a_read_only_variable_cannot_be_declared_again_lower_down(project):
    text = ("variables:\n  - {name: pinned, value: one, readonly: true}\nstages:\n  - stage: S\n    variables:\n"
            "      pinned: two\n    jobs:\n      - job: A\n        steps:\n          - bash: echo $(pinned)\n")
    with pytest.raises(service.CIError, match="variable pinned is read-only"):
        run_text(project, text)


def test_variable_groups_read_secrets_from_dotenv_and_the_environment_wins(project, monkeypatch):
    """A group's secret comes from the process environment, else from the project's .env (issue 19)."""
    monkeypatch.delenv("GROUP_SECRET", raising=False)
    (project.root / ".env").write_text("# local secrets\nexport GROUP_SECRET='from-dotenv-789'\n")
    text = ("variables:\n  - group: vault\nsteps:\n  - bash: |\n      echo \"length ${#S} region $(REGION)\"\n"
            "      [ \"$S\" = from-dotenv-789 ] && echo 'came from .env'\n      echo \"value $S\"\n"
            "    env: {S: $(GROUP_SECRET)}\n    displayName: uses\n")
    store, run = run_text(project, text)
    log = Path(next(r for r in store.records(run.id) if r["display"] == "uses")["log"]).read_text()
    assert run.result == "succeeded" and "length 15 region local-region" in log and "came from .env" in log
    assert "value ***" in log and "from-dotenv-789" not in every_stored_byte(project.state_dir)
    monkeypatch.setenv("GROUP_SECRET", "from-environment")
    store, run = run_text(project, text)
    log = Path(next(r for r in store.records(run.id) if r["display"] == "uses")["log"]).read_text()
    assert "length 16" in log and "came from .env" not in log
