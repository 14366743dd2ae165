"""The chart's shutdown settings match the server's: preStop, drain, graceful timeout within the grace period."""
from ml_service.deploy import chart
from tests.conftest import ROOT

CHART = ROOT / "charts" / "scoring"


def test_grace_period_covers_prestop_drain_and_graceful_timeout_for_every_values_file():
    for values_file in sorted(CHART.glob("values*.yaml")):
        values = chart.load_values(CHART, values_file)
        objects = {o["kind"]: o for o in chart.render(CHART, values)}
        pod = objects["Deployment"]["spec"]["template"]["spec"]
        container = pod["containers"][0]
        env = {e["name"]: e.get("value") for e in container["env"]}
        pre_stop = int(container["lifecycle"]["preStop"]["exec"]["command"][1])
        drain, graceful = float(env["MLOPS_DRAIN_SECONDS"]), float(env["MLOPS_GRACEFUL_TIMEOUT_SECONDS"])
        assert pod["terminationGracePeriodSeconds"] >= pre_stop + drain + graceful + 1, values_file.name
        assert env["MLOPS_WORKERS"] == "auto"
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
