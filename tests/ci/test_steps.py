"""One step as the agent runs it (steps.py, process.py): timeoutInMinutes of the step and of its job (minutes,
0 = no limit, on both sides of each limit), retryCountOnTaskFailure (exactly that many retries),
continueOnError, and the ##vso logging commands: setvariable (secret in any spelling, output, read-only),
task.complete, task.logissue, task.prependpath. Real bash steps run in-process through the service."""
from __future__ import annotations

import pytest

from ml_service.ci.runner import process
from tests.ci.helpers import all_logs, every_stored_byte, log_of, make_project, records, run_text

SECRET = "set-at-run-time-0042"


@pytest.fixture
def project(tmp_path, monkeypatch):
    return make_project(tmp_path, monkeypatch)


def step_result(project, text):
    store, run = run_text(project, text)
    return store, run, records(store, run.id)


# --- timeouts: minutes, both sides of each limit -----------------------------------------------------------------

@pytest.mark.parametrize("level", ["step", "job"])
def test_a_step_within_its_timeout_in_minutes_succeeds(project, level):
    """0.2 minutes is 12 seconds: a one-second step ends well within it (read as seconds, it would be killed)."""
    limit = "    timeoutInMinutes: '0.2'\n"
    text = ("jobs:\n  - job: A\n" + (limit if level == "job" else "") + "    steps:\n"
            "      - bash: sleep 1; echo finished\n        displayName: work\n" +
            (limit.replace("    ", "        ", 1) if level == "step" else ""))
    store, run, found = step_result(project, text)
    assert found["work"]["result"] == "Succeeded" and "finished" in log_of(store, run.id, "work")


@pytest.mark.parametrize("level", ["step", "job"])
def test_a_step_over_its_timeout_in_minutes_is_killed(project, level):
    """0.01 minutes is 0.6 seconds: a fifteen-second step is killed long before it ends (read as hours, it
    would finish and succeed)."""
    limit = "    timeoutInMinutes: 0.01\n"
    text = ("jobs:\n  - job: A\n" + (limit if level == "job" else "") + "    steps:\n"
            "      - bash: sleep 15; echo finished\n        displayName: work\n" +
            (limit.replace("    ", "        ", 1) if level == "step" else "") +
            "      - bash: echo after\n        displayName: after\n        condition: always()\n")
    store, run, found = step_result(project, text)
    assert "timed out" in found["work"]["detail"]
    assert "finished" not in log_of(store, run.id, "work")
    if level == "step":  # only the step's limit was spent: the step fails, the job goes on
        assert found["work"]["result"] == "Failed" and run.result == "failed"
        assert found["after"]["result"] == "Succeeded"
    else:  # the job's limit cancels the job and its running step (the agent's StepsRunner.cs); an always() step
        # still runs, within cancelTimeoutInMinutes (phases.md "Timeouts")
        assert found["work"]["result"] == "Canceled" and run.result == "canceled"
        assert found["after"]["result"] == "Succeeded" and "after" in log_of(store, run.id, "after")


def test_the_shorter_of_the_step_and_job_limits_applies(project):
    text = ("jobs:\n  - job: A\n    timeoutInMinutes: 60\n    steps:\n"
            "      - bash: sleep 15; echo finished\n        displayName: step limit\n        timeoutInMinutes: 0.01\n"
            "  - job: B\n    timeoutInMinutes: 0.01\n    steps:\n"
            "      - bash: sleep 15; echo finished\n        displayName: job limit\n        timeoutInMinutes: 60\n")
    store, run, found = step_result(project, text)
    assert found["step limit"]["result"] == "Failed" and found["job limit"]["result"] == "Canceled"
    assert "finished" not in all_logs(store, run.id)
    assert "the job's timeoutInMinutes" in log_of(store, run.id, "job limit")
    assert "the job's timeoutInMinutes" not in log_of(store, run.id, "step limit")


@pytest.mark.parametrize("where", ["job", "step"])
def test_a_timeout_of_zero_minutes_means_no_limit(project, where):
    """Azure: timeoutInMinutes 0 is an infinite timeout (on a self-hosted agent, which this one is). Before
    issue 29 a job with 0 killed every step at once."""
    text = ("jobs:\n  - job: A\n" + ("    timeoutInMinutes: 0\n" if where == "job" else "") + "    steps:\n"
            "      - bash: sleep 0.3; echo finished\n        displayName: work\n" +
            ("        timeoutInMinutes: 0\n" if where == "step" else ""))
    store, run, found = step_result(project, text)
    assert found["work"]["result"] == "Succeeded" and "finished" in log_of(store, run.id, "work")
    assert run.result == "succeeded"


# --- retries -----------------------------------------------------------------------------------------------------

COUNTING = ("steps:\n  - bash: |\n      n=$(cat \"$(Agent.TempDirectory)/count\" 2>/dev/null || echo 0); n=$((n+1))\n"
            "      echo $n > \"$(Agent.TempDirectory)/count\"; echo \"attempt $n\"; [ $n -ge {succeeds_at} ]\n"
            "    displayName: flaky\n{extra}")


def attempts(store, run) -> int:
    return log_of(store, run.id, "flaky").count("attempt ")


@pytest.mark.parametrize("retries, succeeds_at, result, tries", [
    (None, 1, "Succeeded", 1),     # no retry after a success
    (None, 2, "Failed", 1),        # no retries by default
    ("0", 2, "Failed", 1),
    ("2", 3, "Succeeded", 3),      # two retries: a third attempt
    ("1", 3, "Failed", 2),         # one retry is not enough: exactly two attempts
    ("2", 99, "Failed", 3),
    (10, 11, "Succeeded", 11),     # the largest count Azure allows
])
def test_retry_count_on_task_failure_retries_exactly_that_many_times(project, retries, succeeds_at, result, tries):
    extra = f"    retryCountOnTaskFailure: {retries}\n" if retries is not None else ""
    store, run, found = step_result(project, COUNTING.format(succeeds_at=succeeds_at, extra=extra))
    assert found["flaky"]["result"] == result
    assert attempts(store, run) == tries


def test_a_step_that_keeps_failing_after_its_retries_can_still_continue_on_error(project):
    extra = "    retryCountOnTaskFailure: 1\n    continueOnError: true\n  - bash: echo next\n    displayName: next\n"
    store, run, found = step_result(project, COUNTING.format(succeeds_at=99, extra=extra))
    assert found["flaky"]["result"] == "SucceededWithIssues" and attempts(store, run) == 2
    assert found["next"]["result"] == "Succeeded" and run.result == "succeededWithIssues"


# --- continueOnError ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("value, step, job, later, run_result", [
    ("true", "SucceededWithIssues", "SucceededWithIssues", "Succeeded", "succeededWithIssues"),
    ("'True'", "SucceededWithIssues", "SucceededWithIssues", "Succeeded", "succeededWithIssues"),
    ("false", "Failed", "Failed", "Skipped", "failed"),
    ("'false'", "Failed", "Failed", "Skipped", "failed"),
])
def test_continue_on_error_of_a_step(project, value, step, job, later, run_result):
    text = (f"jobs:\n  - job: A\n    steps:\n      - bash: exit 4\n        displayName: fails\n"
            f"        continueOnError: {value}\n      - bash: echo later\n        displayName: later\n")
    store, run, found = step_result(project, text)
    assert (found["fails"]["result"], found["A"]["result"], found["later"]["result"]) == (step, job, later)
    assert run.result == run_result


@pytest.mark.parametrize("value, job, dependant, run_result", [
    ("true", "SucceededWithIssues", "Succeeded", "succeededWithIssues"),
    ("false", "Failed", "Skipped", "failed"),
])
def test_continue_on_error_of_a_job_lets_its_dependants_run(project, value, job, dependant, run_result):
    """A failed job with continueOnError is SucceededWithIssues, which succeeded() accepts for the jobs after."""
    text = (f"jobs:\n  - job: A\n    continueOnError: {value}\n    steps:\n      - bash: exit 3\n"
            "  - job: B\n    dependsOn: A\n    steps:\n      - bash: echo B ran\n        displayName: b step\n")
    store, run, found = step_result(project, text)
    assert (found["A"]["result"], found["B"]["result"], run.result) == (job, dependant, run_result)


def test_a_job_after_one_that_succeeded_with_issues_runs_by_default(project):
    text = ("stages:\n  - stage: One\n    jobs:\n      - job: A\n        steps:\n"
            "          - bash: echo '##vso[task.complete result=SucceededWithIssues;]'\n"
            "  - stage: Two\n    jobs:\n      - job: B\n        steps:\n          - bash: echo two\n")
    store, run, found = step_result(project, text)
    assert (found["One"]["result"], found["Two"]["result"], found["B"]["result"]) == \
        ("SucceededWithIssues", "Succeeded", "Succeeded")
    assert run.result == "succeededWithIssues"


# --- logging commands --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fields", ["issecret=true", "issecret=True", "isSecret=TRUE", "isSecret=true;isOutput=false",
                                    " issecret = true "])
def test_a_secret_set_by_a_logging_command_is_masked_from_that_line_on(project, fields):
    """The line that sets the secret is itself masked (the command is read before the line is logged), and so
    is every later use, in any spelling of issecret Azure accepts."""
    text = (f"steps:\n  - bash: |\n      echo \"##vso[task.setvariable variable=tok;{fields}]{SECRET}\"\n"
            f"      echo \"same step: {SECRET}\"\n    displayName: sets\n"
            f"  - bash: echo \"macro $(tok) env $TOK\"\n    env: {{TOK: $(tok)}}\n    displayName: uses\n")
    store, run, found = step_result(project, text)
    assert run.result == "succeeded"
    assert "same step: ***" in log_of(store, run.id, "sets")
    assert "macro *** env ***" in log_of(store, run.id, "uses")
    assert SECRET not in every_stored_byte(project.state_dir)


def test_a_value_holding_a_known_secret_stays_secret_whatever_the_command_says(project):
    text = (f"steps:\n  - bash: |\n      echo \"##vso[task.setvariable variable=tok;issecret=true]{SECRET}\"\n"
            f"      echo \"##vso[task.setvariable variable=copy;issecret=false]prefix-{SECRET}\"\n"
            f"  - bash: echo \"copy $(copy)\"\n    displayName: uses\n")
    store, run, _ = step_result(project, text)
    assert "copy ***" in log_of(store, run.id, "uses")
    assert SECRET not in every_stored_byte(project.state_dir)


def test_a_plain_variable_set_at_run_time_is_visible_to_later_steps_only(project):
    text = ("steps:\n  - bash: |\n      echo 'before [$(late)]'\n"
            "      echo '##vso[task.setvariable variable=late]plain-value'\n    displayName: sets\n"
            "  - bash: echo \"after [$(late)] env [$LATE]\"\n    displayName: reads\n")
    store, run, _ = step_result(project, text)
    assert "before [$(late)]" in log_of(store, run.id, "sets")
    assert "after [plain-value] env [plain-value]" in log_of(store, run.id, "reads")


def test_a_read_only_variable_keeps_its_value(project):
    text = ("steps:\n  - bash: |\n      echo '##vso[task.setvariable variable=fixed;isreadonly=true]first'\n"
            "  - bash: echo '##vso[task.setvariable variable=fixed]second'\n    displayName: overwrite\n"
            "  - bash: echo '##vso[task.setvariable variable=Build.BuildId]999'\n    displayName: predefined\n"
            "  - bash: echo \"fixed=$(fixed) id=$(Build.BuildId)\"\n    displayName: reads\n")
    store, run, found = step_result(project, text)
    assert f"fixed=first id={run.id}" in log_of(store, run.id, "reads")
    assert "variable fixed is read-only" in found["overwrite"]["detail"]
    assert "variable Build.BuildId is read-only" in found["predefined"]["detail"]


def test_an_output_variable_is_read_by_the_named_step_and_by_dependent_jobs(project):
    text = ("jobs:\n  - job: A\n    steps:\n      - bash: echo '##vso[task.setvariable variable=v;isOutput=true]42'\n"
            "        name: setter\n      - bash: echo \"same job $(setter.v)\"\n        displayName: same\n"
            "  - job: B\n    dependsOn: A\n    variables:\n      got: $[ dependencies.A.outputs['setter.v'] ]\n"
            "    steps:\n      - bash: echo \"other job $(got)\"\n        displayName: other\n")
    store, run, _ = step_result(project, text)
    assert "same job 42" in log_of(store, run.id, "same") and "other job 42" in log_of(store, run.id, "other")
    assert store.get_run(run.id).state["outputs"] == {"__default/A.setter.v": "42"}


@pytest.mark.parametrize("command, result", [
    ("##vso[task.complete result=Succeeded;]done", "Succeeded"),
    ("##vso[task.complete result=SucceededWithIssues;]done", "SucceededWithIssues"),
    ("##vso[task.complete result=Failed;]done", "Failed"),
    ("##vso[task.complete result=failed;]done", "Failed"),
])
def test_task_complete_sets_the_result_and_a_failing_exit_code_still_fails(project, command, result):
    """The agent merges task.complete's result with the script's end, the worse winning
    (TaskCommandExtension.cs: TaskResultUtil.MergeTaskResults); `failed` is no TaskResult name (Enum.TryParse is
    case-sensitive): the command fails the step."""
    text = f"steps:\n  - bash: |\n      echo '{command}'\n      exit 0\n    displayName: step\n"
    _, _, found = step_result(project, text)
    assert found["step"]["result"] == result
    text = f"steps:\n  - bash: |\n      echo '{command}'\n      exit 5\n    displayName: step\n"
    _, _, found = step_result(project, text)
    assert found["step"]["result"] == "Failed"


def test_log_issues_are_kept_in_the_detail_and_prepend_path_lasts_for_the_job(project, tmp_path):
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "mytool").write_text("#!/bin/sh\necho tool ran\n")
    (tools / "mytool").chmod(0o755)
    text = ("jobs:\n  - job: A\n    steps:\n      - bash: |\n"
            "          echo '##vso[task.logissue type=error]broken thing'\n"
            "          echo '##vso[task.logissue]plain issue'\n"
            f"          echo '##vso[task.prependpath]{tools}'\n        displayName: issues\n"
            "      - bash: mytool\n        displayName: uses tool\n"
            "  - job: B\n    dependsOn: A\n    steps:\n      - bash: mytool\n        displayName: other job\n")
    store, run, found = step_result(project, text)
    assert "error: broken thing" in found["issues"]["detail"] and "warning: plain issue" in found["issues"]["detail"]
    assert "tool ran" in log_of(store, run.id, "uses tool")
    assert found["other job"]["result"] == "Failed"  # a new job starts with the PATH it had


@pytest.mark.parametrize("line, area, fields, message", [
    ("##vso[task.setvariable variable=a;isSecret=true]v\n", "task.setvariable", {"variable": "a", "issecret": "true"},
     "v"),
    ("text before ##vso[task.complete result=Failed;]done\n", "task.complete", {"result": "Failed"}, "done"),
    ("##vso[task.prependpath]/opt/x\n", "task.prependpath", {}, "/opt/x"),
    ("##VSO[task.complete]x\n", None, None, None),
    ("no command\n", None, None, None),
])
def test_logging_commands_are_parsed_with_lowercased_keys(line, area, fields, message):
    command = process.parse_command(line)
    if area is None:
        assert command is None
    else:
        assert (command.area, command.fields, command.message) == (area, fields, message)


# --- a job's result is the worst of its steps, a stage's the worst of its jobs ----------------------------------------

@pytest.mark.parametrize("steps, job", [
    (["exit 1", "echo ok"], "Failed"),              # the last step succeeded: the job still failed
    (["echo ok", "exit 1"], "Failed"),
    (["issues", "echo ok"], "SucceededWithIssues"),
    (["echo ok", "echo ok"], "Succeeded"),
])
def test_the_job_result_is_the_worst_step_result_not_the_last(project, steps, job):
    def step(script):
        if script == "issues":
            script = "echo '##vso[task.complete result=SucceededWithIssues;]'"
        return f"      - bash: {script}\n        condition: always()\n"
    text = ("stages:\n  - stage: S\n    jobs:\n      - job: A\n        steps:\n" +
            "".join("  " * 2 + line for line in "".join(step(s) for s in steps).splitlines(keepends=True)) +
            "      - job: B\n        dependsOn: []\n        steps:\n          - bash: echo ok\n")
    _, run, found = step_result(project, text)
    assert found["A"]["result"] == job and found["B"]["result"] == "Succeeded"
    assert found["S"]["result"] == job  # the stage: the worst of its jobs, whichever ran last


def test_the_path_prepended_last_is_searched_first(project, tmp_path):
    for name in ("first", "second"):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "which-one").write_text(f"#!/bin/sh\necho from-{name}\n")
        (folder / "which-one").chmod(0o755)
    text = (f"steps:\n  - bash: |\n      echo '##vso[task.prependpath]{tmp_path / 'first'}'\n"
            f"      echo '##vso[task.prependpath]{tmp_path / 'second'}'\n"
            "  - bash: which-one\n    displayName: uses\n")
    store, run, _ = step_result(project, text)
    assert "from-second" in log_of(store, run.id, "uses")


def test_a_disabled_step_is_skipped_and_the_job_goes_on(project):
    text = ("steps:\n  - bash: echo never\n    displayName: disabled\n    enabled: false\n"
            "  - bash: echo never either\n    displayName: disabled as text\n    enabled: 'False'\n"
            "  - bash: echo on\n    displayName: enabled\n    enabled: 'yes'\n")
    store, run, found = step_result(project, text)
    assert (found["disabled"]["result"], found["disabled as text"]["result"], found["enabled"]["result"]) == \
        ("Skipped", "Skipped", "Succeeded")
    assert "never" not in all_logs(store, run.id) and run.result == "succeeded"


def test_a_summary_is_kept_to_its_limit_and_masked(project, tmp_path):
    summary = tmp_path / "summary.md"
    summary.write_text(f"# Report {SECRET}\n" + "x" * 5000)
    text = (f"steps:\n  - bash: |\n      echo '##vso[task.setvariable variable=tok;issecret=true]{SECRET}'\n"
            f"      echo '##vso[task.uploadsummary]{summary}'\n"
            f"      echo '##vso[task.uploadsummary]{tmp_path / 'absent.md'}'\n    displayName: summary\n")
    store, run, found = step_result(project, text)
    summaries = store.get_run(run.id).state["summaries"]
    assert len(summaries) == 1 and summaries[0].startswith("# Report ***\n")
    assert len(summaries[0]) == 4000 - len(SECRET) + len("***")  # 4000 characters read, then masked
    assert "summary" in found["summary"]["detail"] and "cannot be read" in found["summary"]["detail"]


def test_a_deployment_jobs_output_is_read_with_and_without_its_job_name(project):
    text = ("stages:\n  - stage: Deploy\n    jobs:\n      - deployment: Ship\n        environment: open\n"
            "        strategy:\n          runOnce:\n            deploy:\n              steps:\n"
            "                - bash: echo '##vso[task.setvariable variable=v;isOutput=true]shipped-7'\n"
            "                  name: setter\n"
            "  - stage: After\n    condition: eq(dependencies.Deploy.outputs['Ship.Ship.setter.v'], 'shipped-7')\n"
            "    jobs:\n      - job: Read\n        variables:\n"
            "          short: $[ stageDependencies.Deploy.Ship.outputs['setter.v'] ]\n"
            "          long: $[ stageDependencies.Deploy.Ship.outputs['Ship.setter.v'] ]\n"
            "        steps:\n          - bash: echo \"short=$(short) long=$(long)\"\n            displayName: read\n")
    store, run, found = step_result(project, text)
    assert found["After"]["result"] == "Succeeded"
    assert "short=shipped-7 long=shipped-7" in log_of(store, run.id, "read")
