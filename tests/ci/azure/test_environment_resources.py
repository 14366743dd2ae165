"""A deployment job that targets a resource of an environment (hidden-probe sweep, issue 23).

Azure: docs/pipelines/process/deployment-jobs.md and yaml-schema jobs-deployment-environment (`environment:
'smarthotel-dev.bookings'` is environment smarthotel-dev, resource bookings; {name, resourceName, resourceType});
the environment's approvals and checks apply to a deployment to any of its resources; $(Environment.Name),
$(Environment.ResourceName) (deployment-jobs.md "Environment variables"). resourceType VirtualMachine runs the job
on the environment's virtual machines, which a local run has none of: refused before the run, naming where.
"""
from __future__ import annotations

import pytest
import yaml

pytestmark = pytest.mark.integration


def test_the_environment_of_a_resource_asks_for_its_approval(project):
    config = yaml.safe_load((project.root / "mlops.yml").read_text())
    config["environments"] = {"staging": {"approval": {"timeout_minutes": 60}}}
    (project.root / "mlops.yml").write_text(yaml.safe_dump(config))
    project.add("environment_resource.yml")
    run = project.run("environment_resource.yml")
    assert run.run.status == "waiting" and "env" not in run.out  # before: deployed to 'staging.web', no approval
    assert [a["environment"] for a in project.store().approvals(run.run.id, "pending")] == ["staging"]


def test_environment_name_and_resource_name(project):
    project.add("environment_resource.yml")
    run = project.run("environment_resource.yml")
    assert run.out.get("env") == "staging resource=web"  # before: staging.web resource=$(Environment.ResourceName)


def test_a_virtual_machine_resource_is_refused_before_the_run(project):
    project.write(".pipelines/vm.yml", "jobs:\n- deployment: D\n  environment:\n    name: qa\n    resourceType: "
                  "VirtualMachine\n  strategy:\n    runOnce:\n      deploy:\n        steps:\n        - bash: echo "
                  "\"OUT:ran=yes\"\n")
    run = project.run("vm.yml")
    assert run.result == "failed" and "ran" not in run.out  # before: ran once, here
    assert "vm.yml:3" in run.error and "VirtualMachine" in run.error
