"""What the engine checks before a run starts: what cannot run here is named with its file and line.

Two kinds (issue 23 items 1 and 8, decided with the conformance suite, /work/notes/ci-conformance-status.md):
- refused: the run does not start (an unmapped repository resource, a checkout of one, a job that would
  mean something else here): CIError naming the construct, `<file>:<line>` and what to do;
- stops: a step that has no local meaning (a cloud task such as AzureCLI@2, PowerShell without pwsh, a
  container job): listed in the run's `plan` record before any step runs; the run goes as far as the steps
  before it and that step (or job) fails with the same message.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from typing import Callable

from ml_service.ci.model import repositories
from ml_service.ci.model.pipeline import Stage
from ml_service.ci.runner import sources, tasks
from ml_service.ci.runner.macros import substitute
from ml_service.ci.runner.step_factory import kind_of


@dataclass
class Plan:
    """What preflight found: refusals (the run does not start) and stops (named, the run stops there)."""

    refused: list[str] = field(default_factory=list)
    stops: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what behaves differently here but does not stop the run
    step_stops: dict[int, str] = field(default_factory=dict)  # id(step) -> why it cannot run here
    job_stops: dict[str, str] = field(default_factory=dict)  # "<stage>/<job>" -> why it cannot run here


def where(node, key: str) -> str:
    """'file:line' of key in a mapping read from a file, else '?'."""
    locate = getattr(node, "where", None)
    return locate(key if key in node else None) if locate else "?"


def _mentions_access_token(node) -> bool:
    if isinstance(node, str):
        return "system.accesstoken" in node.lower()
    if isinstance(node, dict):
        return any(_mentions_access_token(v) for v in node.values())
    if isinstance(node, list):
        return any(_mentions_access_token(v) for v in node)
    return False


def _literal_variables(raw) -> dict[str, str]:
    """name -> value of a variables block (mapping or list form); groups and templates are left out."""
    if isinstance(raw, dict):
        return {str(k): str(v) for k, v in raw.items() if not isinstance(v, (dict, list))}
    found = {}
    for item in raw if isinstance(raw, list) else []:
        if isinstance(item, dict) and "name" in item and not isinstance(item.get("value"), (dict, list)):
            found[str(item["name"])] = str(item.get("value", ""))
    return found


def _connection_problem(step: dict, registries: dict, variables: dict[str, str]) -> str:
    """Why a task's service connection cannot be had here ('' when it can or the task needs none); the inputs'
    $(macros) of the pipeline's, stage's and job's own variables are expanded first, as the agent does."""
    module = tasks.module(str(step["task"]))
    given = {k: substitute(v, variables.get) if isinstance(v, str) else v
             for k, v in (step.get("inputs") or {}).items()}
    try:
        if module is tasks.helm_deploy and module.needs_cloud(given):
            return (f"{step['task']} as written needs a service connection (a Kubernetes/Azure connection), which "
                    "does not exist here: use connectionType: None (helm with this machine's kubeconfig)")
        if module is tasks.docker:
            return module.registry_problem(given, registries)
    except tasks.TaskError:
        return ""
    return ""


def _checkout_problems(step: dict, lfs_used: Callable[[str], bool]) -> tuple[list[str], list[str]]:
    """(refusals, notes) of a checkout step's options (yaml-schema steps-checkout.md). fetchDepth, submodules,
    lfs and the sparse checkout are done as the agent does them (sources.py); a value Azure does not take, or
    lfs: true without git-lfs here for a repository that tracks files with LFS (lfs_used(checkout value); a
    repository resource is looked at when cloned), refuses the run naming the option. `clean` and
    `persistCredentials` change nothing here (every job starts on a clean copy; there is no credential to keep);
    `fetchFilter` fetches a partial clone on Azure: here every object is there, the files are the same (a note)."""
    refused, notes, at = [], [], where(step, "checkout")
    head = f"{at}: checkout {step['checkout']}"

    def text(key: str, default: str = "") -> str:
        return str(step.get(key, default)).strip()

    for key in ("fetchDepth", "submodules", "lfs", "clean", "sparseCheckoutDirectories", "sparseCheckoutPatterns"):
        if any(mark in text(key) for mark in ("$(", "$[")):
            refused.append(f"{head}: {key}: {text(key)!r} holds a run-time macro, which the local checkout does not "
                           "expand: write the value, or a ${{ }} parameter")
    depth = text("fetchDepth", "0") or "0"
    if not depth.isdigit() and "$(" not in depth:
        refused.append(f"{head}: fetchDepth must be a whole number of commits (0: the whole history), got {depth!r}")
    if text("submodules", "false").lower() not in ("true", "false", "recursive") and "$(" not in text("submodules"):
        refused.append(f"{head}: submodules must be true, false or recursive, got {text('submodules')!r}")
    for key in ("lfs", "clean", "persistCredentials", "fetchTags"):
        if text(key, "false").lower() not in ("true", "false") and "$(" not in text(key):
            refused.append(f"{head}: {key} must be true or false, got {text(key)!r}")
    if text("lfs", "false").lower() == "true" and lfs_used(str(step["checkout"])) and not sources.has_git_lfs():
        refused.append(f"{head}: lfs: true: the repository tracks files with Git LFS and git-lfs is not installed "
                       "here (`git lfs version` fails): install git-lfs, or set lfs: false")
    if step.get("fetchFilter"):
        notes.append(f"{head}: fetchFilter {step['fetchFilter']!r}: Azure fetches a partial clone; here every object "
                     "is in the clone (the checked-out files are the same)")
    if text("fetchTags"):
        notes.append(f"{head}: fetchTags: the local clone holds the repository's tags (a full clone) or none "
                     "(fetchDepth): as Azure's default for a shallow fetch")
    return refused, notes


def _agentless_problems(job) -> tuple[list[str], dict[int, str]]:
    """(refusals, stops: id(step) -> why) of an agentless job (`pool: server`). Azure runs no scripts,
    checkouts or agent tasks there ("Server jobs", docs/pipelines/process/phases.md) and refuses such a pipeline
    when it compiles: refused here too, before the run. ManualValidation and Delay run (their inputs checked);
    the other server tasks (InvokeRESTAPI, AzureFunction ..., an extension's server task) need Azure: named in
    the plan, the job fails when it reaches them, as a cloud task in an agent job does."""
    refused, stops = [], {}
    head = f"job {job.name} is an agentless job (pool: server at {job.pool_where or '?'})"
    for step in job.steps:
        if not isinstance(step, dict) or step.get("__auto"):
            continue
        kind = kind_of(step)
        at = where(step, kind or "task")
        if kind != "task":
            refused.append(f"{at}: {head}: a {kind} step cannot run there (an agentless job runs no scripts and has "
                           "no sources or artifacts; Azure refuses the pipeline): move it to an agent job")
            continue
        name = str(step["task"])
        label = step.get("displayName") or step.get("name") or name
        found = tasks.module(name)
        if found is not None and found.KIND != "server":
            refused.append(f"{at}: {head}: task {name} needs an agent and is not valid in an agentless job (Azure "
                           "refuses the pipeline): move it to an agent job")
        elif found is not None:
            refused += [f"{at}: step '{label}' of job {job.name}: {problem}"
                        for problem in tasks.problems(name, step.get("inputs") or {})]
        else:
            why = tasks.server_refusal(name) if tasks.is_server_task(name) else tasks.refusal(name)
            stops[id(step)] = f"{at}: step '{label}' of agentless job {job.name}: {why}"
    return refused, stops


def check(document: dict, stages: list[Stage], mapping: dict, definitions: dict[str, str] | None = None,
          registries: dict | None = None, lfs_used: Callable[[str], bool] | None = None) -> Plan:
    """Inspect a compiled pipeline and its normalized stages; a Plan of what cannot run here (mapping: ci.repositories,
    registries: ci.registries)."""
    plan = Plan()
    declared = repositories.declared(document)
    if definitions is not None:  # a completion trigger or resource on a definition nobody here is named
        known = {*definitions, *definitions.values()}
        section = document.get("resources")
        for resource in (section.get("pipelines") or []) if isinstance(section, dict) else []:
            if isinstance(resource, dict) and str(resource.get("source", "")) not in known:
                plan.notes.append(
                    f"{where(resource, 'source')}: pipeline resource '{resource.get('pipeline')}' names the "
                    f"definition '{resource.get('source')}', which no pipeline file here is: its completion trigger "
                    "never fires and its resources.pipeline variables are empty; map it in mlops.yml "
                    f"(ci: {{pipelines: {{'{resource.get('source')}': <file stem of .pipelines/>}}}})")
    pipeline_variables = _literal_variables(document.get("variables") if isinstance(document, dict) else None)
    for stage in stages:
        for job in stage.jobs:
            scope = {**pipeline_variables, **_literal_variables(stage.variables), **_literal_variables(job.variables)}
            if job.agentless:
                refused, stops = _agentless_problems(job)
                plan.refused += refused
                plan.step_stops.update(stops)
                plan.stops += stops.values()
                continue
            services = job.services or (document.get("services") if isinstance(document, dict) else None)
            if services and not (job.container or document.get("container")):
                why = (f"{job.container_where or where(document, 'services')}: job {job.name} uses service containers "
                       f"({', '.join(map(str, services))}): the local engine does not start them; start them with "
                       "`docker run` in a step, or remove `services:`")
                plan.job_stops[f"{stage.name}/{job.name}"] = why
                plan.stops.append(why)
                continue
            container = job.container or (document.get("container") if isinstance(document, dict) else None)
            if container:
                at = job.container_where or where(document, "container")
                image = container.get("image") if isinstance(container, dict) else container
                why = (f"{at}: job {job.name} runs in container {image!r} on Azure (container jobs): the local engine "
                       "runs steps on this machine, not in a container; remove `container:` to run the steps here, "
                       "or run them with `docker run` in a script step")
                plan.job_stops[f"{stage.name}/{job.name}"] = why
                plan.stops.append(why)
                continue
            for step in job.steps:
                if not isinstance(step, dict):
                    continue
                kind = kind_of(step)
                target = step.get("target")
                target = target.get("container") if isinstance(target, dict) else target
                if target and str(target) != "host":
                    why = (f"{where(step, 'target')}: a step with target {target!r} runs in a container on Azure: "
                           "the local engine runs it on this machine; remove `target:` or use `docker run`")
                    plan.step_stops[id(step)] = why
                    plan.stops.append(why)
                    continue
                if _mentions_access_token(step):
                    why = (f"{where(step, kind or 'env')}: the step uses System.AccessToken, a token of Azure DevOps "
                           "that does not exist here: pass a credential of your own through a variable group "
                           "(mlops.yml ci.variable_groups secrets)")
                    plan.step_stops[id(step)] = why
                    plan.stops.append(why)
                    continue
                if kind == "checkout":
                    value = str(step["checkout"])
                    refused, notes = _checkout_problems(step, lfs_used or (lambda value: True))
                    plan.refused += refused
                    plan.notes += notes
                    if value not in ("self", "none"):
                        try:
                            repositories.resolve(value, declared, mapping, where(step, "checkout"))
                        except repositories.RepositoryError as exc:
                            plan.refused.append(f"checkout: {exc}")
                elif (kind in ("pwsh", "powershell") or (kind == "task" and str(step["task"]).lower().startswith(
                        "powershell@"))) and not shutil.which("pwsh"):
                    why = (f"{where(step, kind)}: {kind if kind != 'task' else step['task']} needs PowerShell "
                           "(pwsh), which is not installed here: install pwsh, or write the step as a bash step")
                    plan.step_stops[id(step)] = why
                    plan.stops.append(why)
                elif kind == "task" and _connection_problem(step, registries or {}, scope):
                    why = f"{where(step, 'task')}: {_connection_problem(step, registries or {}, scope)}"
                    plan.step_stops[id(step)] = why
                    plan.stops.append(why)
                elif kind == "task" and not tasks.supported(str(step["task"])):
                    why = f"{where(step, 'task')}: {tasks.refusal(str(step['task']))}"
                    plan.step_stops[id(step)] = why
                    plan.stops.append(why)
                elif kind == "task" and tasks.is_server_task(str(step["task"])):
                    plan.refused.append(
                        f"{where(step, 'task')}: step '{step.get('displayName') or step['task']}' of job {job.name}: "
                        f"task {step['task']} runs only in an agentless job (pool: server), and Azure refuses it in "
                        "an agent job: put it in a job of its own with `pool: server`")
                elif kind == "task":  # a supported task: its inputs as written (unknown, unsupported values)
                    label = step.get("displayName") or step.get("name") or step["task"]
                    plan.refused += [f"{where(step, 'task')}: step '{label}' of job {job.name}: {problem}"
                                     for problem in tasks.problems(str(step["task"]), step.get("inputs") or {})]
    return plan
