"""tools/ci_corpus.py, the census of public Azure Pipelines files: what it gives the engine for a file."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def load_tool():
    spec = importlib.util.spec_from_file_location("ci_corpus", ROOT / "tools" / "ci_corpus.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_variable_group_named_in_an_included_variables_template_is_given_to_the_compile(tmp_path):
    # MLOpsPython's pipelines take their group from a variables template: the census must treat it as
    # defined (empty), as it does for a group the pipeline names itself
    repo = tmp_path / "corpus" / "owner+repo"
    repo.mkdir(parents=True)
    (repo / "SOURCE.json").write_text(json.dumps({"repo": "owner/repo", "variants": {"": {}}}))
    (repo / "vars.yml").write_text("variables:\n- group: shared-settings\n- name: A\n  value: '1'\n")
    (repo / "azure-pipelines.yml").write_text("trigger: none\nvariables:\n- template: vars.yml\n"
                                              "steps:\n- script: echo $(A)\n")
    results = load_tool().check(tmp_path / "corpus", run=False)
    entry = results["files"]["owner/repo:azure-pipelines.yml"]
    assert entry["compile"]["status"] == "compiled", entry["compile"].get("message")
    assert entry["category"] == "compiled"


def test_a_refusal_in_a_file_named_functionapp_is_not_taken_for_a_missing_expression_function():
    tool = load_tool()
    assert tool._unclear("templates/node.js-functionapp-to-linux-on-azure.yml:33: task NodeTool@0 is not supported "
                         "locally") == ""
    assert tool._unclear("a.yml:3: function foo() is not supported") != ""
