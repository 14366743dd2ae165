"""The project's scoring/smoke.json is what smoke tests send; a malformed one is a clear error."""
import dataclasses

import pytest

from ml_service.config import ConfigError, load_settings
from ml_service.deploy.payload import smoke_payload
from tests.conftest import ROOT


def with_payload(tmp_path, text):
    settings = load_settings({"MLOPS_ROOT": str(ROOT)})
    path = tmp_path / "smoke.json"
    path.write_text(text)
    model = dataclasses.replace(settings.model, smoke_payload=path)
    return dataclasses.replace(settings, models=(model,), selected="")


def test_the_projects_payload_is_read_as_it_is(tmp_path):
    assert smoke_payload(with_payload(tmp_path, '{"data": [{"a": 1, "b": null}]}')) == {"data": [{"a": 1, "b": None}]}


@pytest.mark.parametrize("text, message", [("{not json", "malformed JSON"), ('{"data": []}', "at least one row"),
                                           ('[1, 2]', "expected")])
def test_a_malformed_payload_names_the_file(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message) as error:
        smoke_payload(with_payload(tmp_path, text))
    assert "smoke.json" in str(error.value)


def test_without_a_payload_file_the_service_example_is_used(tmp_path):
    settings = with_payload(tmp_path, "{}")
    (tmp_path / "smoke.json").unlink()
    assert smoke_payload(settings) is None


def test_mlops_smoke_test_sends_the_selected_projects_payload_not_the_advertised_example(workspace, monkeypatch):
    """`mlops smoke-test URL` (cli/serve.py), in-process against a stand-in service: what reaches /score is the
    selected project's scoring/smoke.json; the example the service advertises only without one."""
    import json

    from ml_service.cli import main
    from tests.deploy.test_smoke import _Service

    monkeypatch.setenv("MLOPS_MODEL", "diabetes_regression")
    expected = json.loads((ROOT / "diabetes_regression" / "scoring" / "smoke.json").read_text())
    service = _Service(score=None, v2=None, inputs=[f"x{i}" for i in range(len(expected["data"][0]))])
    with service as url:
        assert main(["smoke-test", url, "--timeout", "10"]) == 0
    assert service.received[0] == expected != {"data": [[1.0, 2.0], [3.0, 4.0]]}
