"""Public Azure Pipelines files through the local engine: what it makes of each (issue 23).

    python tools/ci_corpus.py collect   # fetched repositories -> /work/corpus/<owner+repo>/<path>
    python tools/ci_corpus.py check     # compile, run in a sandbox, census -> /work/corpus/results.json
    python tools/ci_corpus.py report    # results.json -> Markdown (per repository, per construct)

`collect` reads the snapshots the `fetch` tool brought to /work/.mirror/<owner+repo>/repo and keeps
every YAML file that is an Azure Pipelines pipeline or template (GitHub workflows, Azure ML specs,
conda and Kubernetes files are left out), with a SOURCE.json naming the commit. Files that could
only be read through the code index (scikit-learn: its snapshot is over the fetch limit) are put in
the corpus by hand with their own SOURCE.json; `collect` leaves them alone.

`check` classifies every file with the engine of this checkout:
- compile: templates, the schema check and the typed model, in this process (nothing runs);
- run: every pipeline that compiles runs once in a Docker container with no network, the engine
  and its venv mounted read-only and the repository's tree as a scratch copy, so a step can break
  nothing but the copy; cloud tasks are expected to be refused;
- census: which constructs each file uses, each with what today's engine does with it
  (CONSTRUCTS: ok, different = runs with a meaning Azure does not give it, unclear = an error that
  does not name the real reason, refused = a clear refusal, late = refused only when the step is
  reached). A pipeline is "silently different" when it compiles and uses a `different` construct
  (its own or one of its templates').

The corpus stays outside the repository; nothing here writes into it.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import traceback
from collections import Counter, defaultdict
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(HERE))

MIRRORS = Path("/work/.mirror")
CORPUS = Path("/work/corpus")
# The sandbox needs git (checkout, the engine's sources); environment_setup/base_image.sh builds the base
# without it, so a run uses an image FROM it with git added (CI_CORPUS_IMAGE names another).
SANDBOX_IMAGE = os.environ.get("CI_CORPUS_IMAGE", "mlops-ci-corpus:git")
SANDBOX_RECIPE = ("FROM mlops-python:3.11-bookworm\nRUN apt-get update -qq && apt-get install -y -qq "
                  "--no-install-recommends git && rm -rf /var/lib/apt/lists/*\n")
RUN_LIMIT_S = 240  # wall clock of one sandboxed run
PLACEHOLDER_BRANCH = "main"
PLACEHOLDER_COMMIT = "0" * 40

# owner/name -> (ref, why, layout). A layout gives the corpus "variants" of a repository: {label:
# (ref, [(source prefix, target prefix), ...])}, for repositories whose pipelines run from a folder
# a team copies into a repository of its own (MLOpsManufacturing's samples, mlops-project-template's
# project types, laid out as Azure/mlops-v2 .azuredevops/scripts/initialise_repo.sh lays them out).
PROJECT_TYPES = ("classical/aml-cli-v2", "classical/python-sdk-v2", "classical/rai-aml-cli-v2", "cv/aml-cli-v2",
                 "cv/python-sdk-v1", "nlp/aml-cli-v2", "nlp/python-sdk-v2")
MANUFACTURING = ("common/azureml_appinsights_logger", "common/infrastructure", "common/pipeline_monitor",
                 "common/pipeline_trigger", "samples/edge-inferencing-and-mlops", "samples/edge-object-detection",
                 "samples/image-classification-tensorflow", "samples/kaldi-asr-yesno",
                 "samples/mlops-for-azure-custom-question-answering", "samples/non-python-preprocess")
TAILSPIN = ("blue-green", "database", "jmeter", "release", "release-pipeline", "schema-changes", "selenium")


def _project_layout(kind: str, infra: str) -> list[tuple[str, str]]:
    return [(f"{kind}/data-science/", "data-science/"), (f"{kind}/mlops/", "mlops/"), (f"{kind}/data/", "data/"),
            (f"{kind}/config-aml.yml", "config-aml.yml"), (f"infrastructure/{infra}/", "infrastructure/"),
            ("config-infra-dev.yml", "config-infra-dev.yml"), ("config-infra-prod.yml", "config-infra-prod.yml")]


MANIFEST = {
    "microsoft/MLOpsPython": ("HEAD", "the reference this project replaces", None),
    "Azure/mlops-v2": ("HEAD", "issue 23", None),
    "Azure/mlops-project-template": (
        "HEAD", "issue 23; one variant per project type as initialise_repo.sh lays it out; templates from "
                "Azure/mlops-templates (@mlops-templates)",
        {**{k.replace("/", "-"): ("HEAD", _project_layout(k, "bicep")) for k in PROJECT_TYPES},
         "classical-aml-cli-v2-terraform": ("HEAD", _project_layout("classical/aml-cli-v2", "terraform"))}),
    "Azure/mlops-templates": ("HEAD", "the repository resource mlops-project-template includes (templates only)",
                              None),
    "Azure-Samples/MLOpsManufacturing": ("HEAD", "issue 23; each sample as the root of its own repository",
                                         {f.split("/")[1]: ("HEAD", [(f"{f}/", "")]) for f in MANUFACTURING}),
    "OpenAstronomy/azure-pipelines-templates": ("HEAD", "issue 23: ${{ each }} job templates", None),
    "microsoft/azure-pipelines-yaml": ("HEAD", "issue 23: Microsoft's starter templates ({{ placeholders }} filled "
                                               "as the new-pipeline page fills them: FILL)", None),
    "ansible-collections/ansible.posix": ("HEAD", "stage templates with typed object parameters", None),
    "DiamondLightSource/python-workflows": ("46db2c1^", "matrix, build artifacts, ExtractFiles (the last commit "
                                                        "with .azure-pipelines/)", None),
    "Clouddigitalplatform/mslearn-tailspin-spacegame-web-deploy": (
        "HEAD", "deployment jobs, environments, download: current (one variant per branch)",
        {b: (b, [("", "")]) for b in TAILSPIN}),
    "SuhelMakkad/vscode-shadcn-ui": ("5186515^", "a root-level strategy: matrix (the last commit with it)", None),
}
TEMPLATE_LIBRARIES = {"Azure/mlops-templates"}


def variants(name: str) -> dict[str, tuple[str, list[tuple[str, str]]]]:
    """label -> (ref, moves) of one repository ('' = the repository as it is)."""
    ref, _, layout = MANIFEST[name]
    return layout or {"": (ref, [("", "")])}


def moved(path: str, moves: list[tuple[str, str]]) -> str | None:
    """Where a repository path lands in a variant, or None when it is not part of it."""
    for source, target in moves:
        if source == "" or path == source or (source.endswith("/") and path.startswith(source)):
            return target + path[len(source):]
    return None


# The starter templates' {{ placeholders }}, as Azure DevOps' new-pipeline page fills them: the branch,
# a Microsoft-hosted pool, and for the rest (service connections, app names) a name the user picks.
FILL = {"branch": "main", "pool": "vmImage: ubuntu-latest", "workingDirectory": "$(System.DefaultWorkingDirectory)",
        "servicePort": "8080", "dockerfilePath": "$(Build.SourcesDirectory)/Dockerfile"}
PLACEHOLDER = re.compile(r"\{\{ *([A-Za-z][\w.]*) *\}\}")


def fill_placeholders(text: str) -> str:
    """A starter template with its {{ placeholders }} filled (FILL, else 'my-<name>')."""
    return PLACEHOLDER.sub(lambda m: FILL.get(m.group(1), "my-" + m.group(1).split(".")[0]), text)


# --- which YAML files are Azure Pipelines files -----------------------------------------------

def looks_like_pipeline(doc, path: str) -> bool:
    """A pipeline or a template (stages, jobs, steps, extends, or a variables template)."""
    if "/.github/workflows/" in f"/{path}" or not isinstance(doc, dict):
        return False
    keys = {str(k) for k in doc}
    if "$schema" in keys or "apiVersion" in keys or "channels" in keys:
        return False
    if isinstance(doc.get("jobs"), dict):  # GitHub workflows and Azure ML pipeline jobs
        return False
    if keys & {"stages", "jobs", "steps", "extends"}:
        return True
    return "variables" in keys and keys <= {"variables", "parameters"}


def _git(repo: Path, *args: str) -> bytes:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, check=True).stdout


def collect(corpus: Path) -> None:
    """Extract the pipeline files of every fetched repository of MANIFEST into the corpus."""
    for name, (_, why, _) in MANIFEST.items():
        mirror = MIRRORS / name.replace("/", "+") / "repo"
        if not mirror.is_dir():
            print(f"skip {name}: not fetched ({mirror})")
            continue
        target = corpus / name.replace("/", "+")
        shutil.rmtree(target, ignore_errors=True)
        source = {"repo": name, "why": why, "variants": {}}
        for label, (ref, moves) in variants(name).items():
            commit = _git(mirror, "rev-parse", ref).decode().strip()
            kept = []
            for path in _git(mirror, "ls-tree", "-r", "--name-only", commit).decode().splitlines():
                where = moved(path, moves)
                if where is None or not path.endswith((".yml", ".yaml")):
                    continue
                try:
                    text = _git(mirror, "show", f"{commit}:{path}").decode(errors="replace")
                    if name == "microsoft/azure-pipelines-yaml":
                        text = fill_placeholders(text)
                    doc = yaml.safe_load(text)
                except (subprocess.CalledProcessError, yaml.YAMLError):
                    continue
                if looks_like_pipeline(doc, where):
                    out = target / label / where
                    out.parent.mkdir(parents=True, exist_ok=True)
                    out.write_text(text)
                    kept.append(path)
            source["variants"][label] = {"ref": ref, "commit": commit, "moves": moves, "files": kept}
            print(f"{name} {label or ref}: {len(kept)} files")
        target.mkdir(parents=True, exist_ok=True)
        (target / "SOURCE.json").write_text(json.dumps(source, indent=1))


def export_tree(name: str, label: str, destination: Path) -> bool:
    """A variant's whole tree at the collected commit (for a run); False when not fetched."""
    mirror = MIRRORS / name.replace("/", "+") / "repo"
    source = json.loads((CORPUS / name.replace("/", "+") / "SOURCE.json").read_text())
    if not mirror.is_dir() or "variants" not in source:
        return False
    variant = source["variants"][label]
    moves = [tuple(m) for m in variant["moves"]]
    listing = _git(mirror, "ls-tree", "-r", "-z", variant["commit"]).decode(errors="replace").split("\0")
    for entry in filter(None, listing):
        meta, path = entry.split("\t", 1)
        mode, kind, blob = meta.split()
        where = moved(path, moves)
        if kind != "blob" or where is None or mode == "120000":  # symlinks are left out of the copy
            continue
        try:
            data = _git(mirror, "cat-file", "blob", blob)
        except subprocess.CalledProcessError:  # a large file the snapshot does not hold
            continue
        out = destination / where
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(data)
        if mode == "100755":
            out.chmod(0o755)
    return True


# --- the census: constructs and what today's engine does with them --------------------------------

# status today: ok, different (runs with another meaning), unclear (an error that does not name the
# reason), refused (clear, before anything runs), late (refused when the step is reached, named).
CONSTRUCTS = {
    "timeoutInMinutes: 0": ("ok", "0 = no limit, as Azure"),
    "timeoutInMinutes (non-zero)": ("ok", ""),
    "${{ variables.X }}: top-level mapping variable": ("ok", ""),
    "${{ variables.X }}: list-form / stage / job / template variable": ("ok", ""),
    "${{ variables.X }}: predefined variable": ("ok", "the compile-time predefined variables"),
    "checkout: self / none": ("ok", ""),
    "checkout: <repository alias>": ("refused", "cloned when mlops.yml ci.repositories maps it, else refused before "
                                                "the run with file:line"),
    "checkout: git://project/repo": ("refused", "cloned when mapped, else refused before the run"),
    "several checkout steps in a job": ("ok", "each repository in s/<name>"),
    "template: file@repository": ("refused", "read from the mapped repository, else refused naming ci.repositories"),
    "extends: template": ("ok", "the template's stages/jobs/steps with its parameters; also file@repository"),
    "resources.repositories": ("ok", "declaration only"),
    "resources.pipelines trigger (source is not a file stem)": ("refused", "fires through mlops.yml ci.pipelines; "
                                                                           "unmapped: refused before the run"),
    "resources.pipelines trigger (source is a file stem)": ("ok", ""),
    "$(resources.pipeline.A.runID|runName|pipelineName|sourceBranch|sourceCommit)": ("ok", ""),
    "$(resources.pipeline.A.pipelineID|projectID|runURI|requestedFor...)": ("ok", ""),
    "download: none": ("ok", ""),
    "download: current / alias": ("ok", ""),
    "deployment job without a download step": ("ok", "the deploy hook downloads the run's artifacts"),
    "deployment job runOnce deploy": ("ok", ""),
    "runOnce preDeploy / routeTraffic / postRouteTraffic": ("ok", ""),
    "runOnce on: success / failure": ("ok", ""),
    "deployment strategy rolling / canary": ("refused", ""),
    "DownloadPipelineArtifact@2 source/buildType specific": ("ok", ""),
    "PublishCodeCoverageResults wildcard summaryFileLocation": ("ok", ""),
    "failOnStderr: true": ("ok", ""),
    "strategy: matrix / parallel in a job": ("ok", "legs run one after another"),
    "strategy at the pipeline root": ("ok", ""),
    "${{ insert }}": ("ok", ""),
    "container / services (job, root or step target)": ("late", "named in the run's plan before it starts; the job "
                                                                "fails when reached"),
    "pool: server (agentless job)": ("ok", "ManualValidation as an approval, Delay a real wait; scripts, agent "
                                           "tasks and server tasks needing Azure refused before the run"),
    "checkout fetchDepth / submodules / lfs / sparse": ("ok", "shallow clone, submodule update, sparse-checkout; lfs "
                                                              "without git-lfs refused before the run"),
    "name: (run number format)": ("ok", "Build.BuildNumber from it (Date, Rev, tokens, variables)"),
    "variable group": ("refused", "unless mapped in mlops.yml ci.variable_groups"),
    "pwsh / powershell step": ("late", ""),
    "upload: (the deprecated spelling of publish)": ("ok", "read as publish"),
    "parameters declared in the old mapping form": ("ok", ""),
    "parameters passed to a template that declares none": ("ok", ""),
    "YAML 1.1 scalar whose text changes (3.10, 0001, on, yes ...)": ("ok", "scalars keep their text"),
    "YAML boolean in a value position (true -> True)": ("ok", "scalars keep their text"),
    "two jobs with one name (or no name)": ("ok", "unnamed: Job, Job1 ...; duplicates refused before the run"),
    "stage variable $[ stageDependencies... ]": ("ok", ""),
    "predefined variable Azure defines but the engine does not": ("different", "$(X) is left as written"),
    "System.AccessToken": ("late", "named in the run's plan; the step fails when reached"),
    "expression function the engine lacks (counter, iif, xor, trim, convertToJson)": ("unclear", ""),
    "status function with job names (succeeded('A'))": ("refused", ""),
    "logging command the engine ignores (##vso[artifact.upload|build.*|task.setsecret ...])": (
        "ok", "setsecret masks, updatebuildnumber sets Build.BuildNumber, the rest are named in the step's detail"),
    "script runs python / pip / conda": ("ok", "the agent's PATH: nothing of mlops's own environment"),
    "${{ each }}": ("ok", ""),
    "${{ if }} / elseif / else": ("ok", ""),
    "isOutput variable across jobs or stages": ("ok", ""),
    "$[ ] runtime expression": ("ok", ""),
    "dependsOn": ("ok", ""),
    "condition": ("ok", ""),
    "schedules": ("ok", ""),
    "trigger / pr filters": ("ok", ""),
    "retryCountOnTaskFailure": ("ok", ""),
    "continueOnError": ("ok", ""),
    "workspace: clean": ("ok", "a fresh run folder each run"),
    "typed parameters (parameters: - name:)": ("ok", ""),
}
TASK_STATUS_TODAY = {"ManualValidation@0": "ok", "ManualValidation@1": "ok", "Delay@1": "ok",
                     "InvokeRESTAPI@1": "refused", "PublishTestResults@2": "ok", "PublishCodeCoverageResults@1": "ok",
                     "PublishCodeCoverageResults@2": "ok", "PublishPipelineArtifact@1": "ok",
                     "DownloadPipelineArtifact@2": "ok", "Bash@3": "ok", "CmdLine@2": "ok", "PythonScript@0": "ok",
                     "UsePythonVersion@0": "ok", "CopyFiles@2": "ok", "DeleteFiles@1": "ok", "ArchiveFiles@2": "ok",
                     "ExtractFiles@1": "ok", "PublishBuildArtifacts@1": "ok", "DownloadBuildArtifacts@0": "ok",
                     "DownloadBuildArtifacts@1": "ok"}
WANTED_TASKS = {"Bash@3", "CmdLine@2", "PythonScript@0", "UsePythonVersion@0", "CopyFiles@2", "DeleteFiles@1",
                "ArchiveFiles@2", "ExtractFiles@1", "PublishBuildArtifacts@1", "DownloadBuildArtifacts@0",
                "DownloadBuildArtifacts@1", "Docker@2", "HelmDeploy@0", "HelmInstaller@1", "Cache@2"}

# Predefined variables as docs/pipelines/build/variables.md lists them (Azure DevOps Services), and
# whether they are "available in templates" (compile time).
AZURE_PREDEFINED = {
    "Agent.BuildDirectory": False, "Agent.ContainerMapping": False, "Agent.HomeDirectory": False, "Agent.Id": False,
    "Agent.JobName": False, "Agent.JobStatus": False, "Agent.MachineName": False, "Agent.Name": False,
    "Agent.OS": False, "Agent.OSArchitecture": False, "Agent.TempDirectory": False, "Agent.ToolsDirectory": False,
    "Agent.WorkFolder": False, "Build.ArtifactStagingDirectory": False, "Build.BuildId": False,
    "Build.BuildNumber": False, "Build.BuildUri": False, "Build.BinariesDirectory": False, "Build.ContainerId": False,
    "Build.CronSchedule.DisplayName": True, "Build.DefinitionName": True, "Build.DefinitionVersion": True,
    "Build.QueuedBy": True, "Build.QueuedById": True, "Build.Reason": True, "Build.Repository.Clean": False,
    "Build.Repository.LocalPath": False, "Build.Repository.ID": False, "Build.Repository.Name": False,
    "Build.Repository.Provider": False, "Build.Repository.Uri": False, "Build.RequestedFor": True,
    "Build.RequestedForEmail": True, "Build.RequestedForId": True, "Build.SourceBranch": True,
    "Build.SourceBranchName": True, "Build.SourcesDirectory": False, "Build.SourceVersion": True,
    "Build.SourceVersionMessage": False, "Build.StagingDirectory": False,
    "Build.Repository.Git.SubmoduleCheckout": False, "Build.TriggeredBy.BuildId": False,
    "Build.TriggeredBy.DefinitionId": False, "Build.TriggeredBy.DefinitionName": False,
    "Build.TriggeredBy.BuildNumber": False, "Build.TriggeredBy.ProjectID": False,
    "Common.TestResultsDirectory": False, "Pipeline.Workspace": False, "Environment.Name": False,
    "Environment.Id": False, "Environment.ResourceName": False, "Environment.ResourceId": False,
    "Strategy.Name": False, "Strategy.CycleName": False, "System.AccessToken": True, "System.CollectionId": True,
    "System.CollectionUri": True, "System.DefaultWorkingDirectory": False, "System.DefinitionId": True,
    "System.HostType": True, "System.JobAttempt": False, "System.JobDisplayName": False, "System.JobId": False,
    "System.JobName": False, "System.PhaseAttempt": False, "System.PhaseDisplayName": False,
    "System.PhaseName": False, "System.PlanId": False, "System.PullRequest.IsFork": True,
    "System.PullRequest.PullRequestId": False, "System.PullRequest.PullRequestNumber": False,
    "System.PullRequest.targetBranchName": False, "System.PullRequest.SourceBranch": False,
    "System.PullRequest.SourceCommitId": False, "System.PullRequest.SourceRepositoryURI": False,
    "System.PullRequest.TargetBranch": False, "System.StageAttempt": False, "System.StageDisplayName": False,
    "System.StageName": True, "System.TeamFoundationCollectionUri": True, "System.TeamProject": True,
    "System.TeamProjectId": True, "System.ArtifactsDirectory": False, "System.Debug": False,
    "System.WorkFolder": False, "TF_BUILD": False, "Checks.StageAttempt": False,
}
MACRO = re.compile(r"\$\(([A-Za-z_][\w.\-]*)\)")
EXPR = re.compile(r"\$\{\{(.*?)\}\}", re.DOTALL)
VARIABLE_REF = re.compile(r"\bvariables(?:\.([A-Za-z_][\w.\-]*)|\[\s*'([^']+)'\s*\])")
FUNCTION = re.compile(r"\b(counter|iif|xor|trim|convertToJson)\s*\(", re.IGNORECASE)
STATUS_WITH_ARGS = re.compile(r"\b(succeeded|failed|succeededOrFailed|canceled)\(\s*'", re.IGNORECASE)
VSO = re.compile(r"##vso\[([\w.]+)")
VSO_HANDLED = {"task.setvariable", "task.prependpath", "task.logissue", "task.complete", "task.uploadsummary"}
PYTHON_IN_SCRIPT = re.compile(r"(^|[\s;&|(])(python3?|pip3?|conda)(\s|$)", re.MULTILINE)
STEP_KEYS = ("script", "bash", "pwsh", "powershell", "task", "checkout", "download", "publish", "template", "upload",
             "downloadBuild", "getPackage", "reviewApp")
RESOURCE_FIELDS_OK = {"runid", "runname", "pipelinename", "sourcebranch", "sourcecommit"}


def _engine_predefined() -> set[str]:
    """Names (lower case) the engine defines today: the run's and the job's."""
    import inspect

    from ml_service.ci.runner import executor
    from ml_service.ci.server import service

    names = set(re.findall(r'"((?:Build|System|Agent|Pipeline|Environment|Common|Strategy)\.[\w.]+|TF_BUILD)"',
                           inspect.getsource(service.predefined) + inspect.getsource(service.compile_time) +
                           inspect.getsource(executor.Engine._run_job)))
    return {n.lower() for n in names}


def _walk(node, parent: str = "", path: tuple = ()):
    """(parent key, node, path) for every mapping and list in a loaded document."""
    yield parent, node, path
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(value, (dict, list)):
                yield from _walk(value, str(key), path + (str(key),))
    elif isinstance(node, list):
        for item in node:
            if isinstance(item, (dict, list)):
                yield from _walk(item, parent, path)


def _strings(node):
    """Every string (keys too) in a loaded document."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            if isinstance(key, str):
                yield key
            yield from _strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item)


def _steps(doc):
    """Every step mapping (a mapping in a list under a `steps` key), with its path."""
    for parent, node, path in _walk(doc):
        if parent == "steps" and isinstance(node, dict) and any(k in node for k in STEP_KEYS):
            yield node, path


def _jobs(doc):
    for _, node, path in _walk(doc):
        if isinstance(node, dict) and ("job" in node or "deployment" in node) and \
                ({"steps", "strategy", "pool", "dependsOn", "variables", "environment", "template"} & set(node) or
                 node.get("job") is None):
            yield node, path


def _scalar_findings(text: str) -> list[tuple[str, int, str]]:
    """Plain scalars that YAML 1.1 (what the engine reads) turns into something other than their text."""
    from ml_service.ci.model import expressions as ex

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return []
    found = []
    value_keys = {"variables", "env", "inputs", "parameters", "matrix", "value", "default"}

    def visit(node, context: str, is_key: bool = False):
        if isinstance(node, yaml.ScalarNode):
            if node.style is None and node.tag.rsplit(":", 1)[-1] in ("bool", "int", "float", "timestamp"):
                value = yaml.safe_load(node.value)
                shown = ex.to_str(value)
                if shown != node.value:
                    if shown.lower() == node.value.lower() and isinstance(value, bool):
                        if context in value_keys and context != "inputs" and not is_key:
                            found.append(("YAML boolean in a value position (true -> True)", node.start_mark.line + 1,
                                          f"{node.value} -> {shown}"))
                    elif not isinstance(value, bool) or is_key or context in value_keys:
                        found.append(("YAML 1.1 scalar whose text changes (3.10, 0001, on, yes ...)",
                                      node.start_mark.line + 1, f"{node.value} -> {shown}"))
        elif isinstance(node, yaml.SequenceNode):
            for item in node.value:
                visit(item, context)
        elif isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                visit(key, context, is_key=True)
                name = key.value if isinstance(key, yaml.ScalarNode) else ""
                inner = context if context in value_keys and name not in ("inputs", "env") else name
                visit(value, inner)
    if root is not None:
        visit(root, "")
    return found


def census(doc, text: str, path: Path, stems: set[str], engine_names: set[str]) -> list[dict]:
    """The constructs one file uses: [{construct, line, detail}] (line 0 when unknown)."""
    found: list[dict] = []

    def add(construct: str, detail: str = "", line: int = 0) -> None:
        found.append({"construct": construct, "line": line, "detail": str(detail)[:160]})

    def line_of(needle: str) -> int:
        index = text.find(needle)
        return text.count("\n", 0, index) + 1 if index >= 0 else 0

    if not isinstance(doc, dict):
        return found
    for construct, line, detail in _scalar_findings(text):
        add(construct, detail, line)
    if "extends" in doc:
        add("extends: template", doc.get("extends"), line_of("extends:"))
    if "name" in doc and "stages" in doc or "name" in doc and ("jobs" in doc or "steps" in doc):
        add("name: (run number format)", doc["name"], line_of("name:"))
    if "strategy" in doc:
        add("strategy at the pipeline root", "", line_of("strategy:"))
    if "container" in doc or "services" in doc:
        add("container / services (job, root or step target)", "root", line_of("container:"))
    if "schedules" in doc:
        add("schedules")
    if "trigger" in doc or "pr" in doc:
        add("trigger / pr filters")
    params = doc.get("parameters")
    if isinstance(params, dict):
        add("parameters declared in the old mapping form", ", ".join(map(str, params))[:100], line_of("parameters:"))
    elif isinstance(params, list) and params:
        add("typed parameters (parameters: - name:)")
    resources = doc.get("resources") if isinstance(doc.get("resources"), dict) else {}
    if resources.get("repositories"):
        aliases = [str(r.get("repository")) for r in resources["repositories"] if isinstance(r, dict)]
        add("resources.repositories", ", ".join(aliases))
    for pipe in resources.get("pipelines") or []:
        if isinstance(pipe, dict) and pipe.get("trigger") not in (None, False, "none", "false"):
            source = str(pipe.get("source"))
            kind = "resources.pipelines trigger (source is a file stem)" if source in stems else \
                "resources.pipelines trigger (source is not a file stem)"
            add(kind, f"source: {source}", line_of(f"source: {source}"))
    if resources.get("containers"):
        add("container / services (job, root or step target)", "resources.containers")

    # expressions and macros in every string
    top_mapping = set(map(str, doc["variables"])) if isinstance(doc.get("variables"), dict) else set()
    declared_elsewhere = set()
    for parent, node, _ in _walk(doc):
        if isinstance(node, dict) and isinstance(node.get("variables"), (dict, list)) and node is not doc:
            block = node["variables"]
            declared_elsewhere |= set(map(str, block)) if isinstance(block, dict) else \
                {str(v.get("name")) for v in block if isinstance(v, dict) and "name" in v}
    if isinstance(doc.get("variables"), list):
        declared_elsewhere |= {str(v.get("name")) for v in doc["variables"] if isinstance(v, dict) and "name" in v}
    if isinstance(doc.get("variables"), dict) and set(doc) <= {"variables", "parameters"}:
        declared_elsewhere |= top_mapping  # a variables template: its variables reach ${{ }} only as template ones
        top_mapping = set()
    predefined_lower = {k.lower(): k for k in AZURE_PREDEFINED}
    seen_macros = set()
    for value in _strings(doc):
        for expression in EXPR.findall(value):
            body = expression.strip()
            if body.startswith("each "):
                add("${{ each }}")
            elif re.match(r"(if|elseif|else)\b", body):
                add("${{ if }} / elseif / else")
            elif body == "insert":
                add("${{ insert }}", "", line_of("${{ insert }}"))
            for a, b in VARIABLE_REF.findall(expression):
                name = a or b
                if name.lower() in predefined_lower:
                    add("${{ variables.X }}: predefined variable", name, line_of(name))
                elif name in top_mapping:
                    add("${{ variables.X }}: top-level mapping variable", name)
                elif name in declared_elsewhere:
                    add("${{ variables.X }}: list-form / stage / job / template variable", name, line_of(name))
            if FUNCTION.search(expression):
                add("expression function the engine lacks (counter, iif, xor, trim, convertToJson)",
                    FUNCTION.search(expression).group(1))
        if value.lstrip().startswith("$[") and "stageDependencies" not in value:
            add("$[ ] runtime expression")
        if FUNCTION.search(value) and "${{" not in value:
            add("expression function the engine lacks (counter, iif, xor, trim, convertToJson)",
                FUNCTION.search(value).group(1))
        if STATUS_WITH_ARGS.search(value):
            add("status function with job names (succeeded('A'))", value.strip()[:80])
        for name in MACRO.findall(value):
            low = name.lower()
            if low.startswith("resources.pipeline."):
                field = low.rsplit(".", 1)[-1]
                add("$(resources.pipeline.A.runID|runName|pipelineName|sourceBranch|sourceCommit)" if
                    field in RESOURCE_FIELDS_OK else
                    "$(resources.pipeline.A.pipelineID|projectID|runURI|requestedFor...)", name, line_of(name))
            elif low == "system.accesstoken":
                add("System.AccessToken", name, line_of(name))
            elif low in predefined_lower and low not in engine_names and low not in seen_macros:
                seen_macros.add(low)
                add("predefined variable Azure defines but the engine does not", name, line_of(name))
        for ref in re.findall(r"variables\[\s*'([^']+)'\s*\]", value):
            low = ref.lower()
            if low in predefined_lower and low not in engine_names and "${{" not in value and low not in seen_macros:
                seen_macros.add(low)
                add("predefined variable Azure defines but the engine does not", ref, line_of(ref))
        for area in VSO.findall(value):
            if area.lower() not in VSO_HANDLED:
                add("logging command the engine ignores (##vso[artifact.upload|build.*|task.setsecret ...])", area,
                    line_of(area))
        if "isOutput=true" in value.replace(" ", "") or "isoutput=true" in value.replace(" ", "").lower():
            add("isOutput variable across jobs or stages")

    # jobs
    for job, _ in _jobs(doc):
        name = job.get("job", job.get("deployment"))
        if name is None:
            add("two jobs with one name (or no name)", "a job without a name", line_of("- job:"))
        timeout = job.get("timeoutInMinutes")
        if timeout is not None:
            add("timeoutInMinutes: 0" if str(timeout).strip() == "0" else "timeoutInMinutes (non-zero)",
                f"job {name}", line_of(f"timeoutInMinutes: {timeout}"))
        strategy = job.get("strategy")
        if "job" in job and isinstance(strategy, dict):
            add("strategy: matrix / parallel in a job", ", ".join(map(str, strategy)), line_of("strategy:"))
        if "container" in job or "services" in job:
            add("container / services (job, root or step target)", f"job {name}")
        pool = job.get("pool")
        if pool == "server" or isinstance(pool, dict) and pool.get("name") == "server":
            add("pool: server (agentless job)", f"job {name}")
        if isinstance(job.get("workspace"), dict):
            add("workspace: clean")
        if job.get("dependsOn") is not None:
            add("dependsOn")
        if job.get("condition") is not None:
            add("condition")
        if job.get("continueOnError") is not None:
            add("continueOnError")
        if "deployment" in job and isinstance(strategy, dict):
            if set(map(str, strategy)) & {"rolling", "canary"}:
                add("deployment strategy rolling / canary", f"job {name}", line_of("rolling:") or line_of("canary:"))
            run_once = strategy.get("runOnce") if isinstance(strategy.get("runOnce"), dict) else {}
            if run_once:
                add("deployment job runOnce deploy", f"job {name}")
            hooks = {str(k) for k in run_once}
            if hooks & {"preDeploy", "routeTraffic", "postRouteTraffic"}:
                add("runOnce preDeploy / routeTraffic / postRouteTraffic", ", ".join(sorted(hooks)), line_of("Deploy:"))
            if "on" in hooks or "True" in hooks:
                add("runOnce on: success / failure", f"job {name}", line_of("on:"))
            deploy = run_once.get("deploy") if isinstance(run_once.get("deploy"), dict) else {}
            steps = deploy.get("steps") or []
            if isinstance(steps, list) and not any(isinstance(s, dict) and "download" in s for s in steps):
                add("deployment job without a download step", f"job {name}", line_of(f"deployment: {name}"))
    for _, node, _ in _walk(doc):
        if isinstance(node, dict) and "stage" in node and isinstance(node.get("variables"), (dict, list)):
            for value in _strings(node["variables"]):
                if value.lstrip().startswith("$[") and "stageDependencies" in value:
                    add("stage variable $[ stageDependencies... ]", value.strip()[:80], line_of("stageDependencies"))
        if isinstance(node, dict) and ("stage" in node or "job" in node or "deployment" in node or node is doc):
            block = node.get("variables")
            items = block if isinstance(block, list) else []
            for item in items:
                if isinstance(item, dict) and "group" in item:
                    add("variable group", item["group"], line_of(f"group: {item['group']}"))
        if isinstance(node, dict) and "stage" in node and node.get("condition") is not None:
            add("condition")
        if isinstance(node, dict) and "stage" in node and node.get("dependsOn") is not None:
            add("dependsOn")

    # steps
    for step, _ in _steps(doc):
        if "checkout" in step:
            value = str(step["checkout"])
            kind = "checkout: self / none" if value in ("self", "none") else \
                "checkout: git://project/repo" if value.startswith("git://") else "checkout: <repository alias>"
            add(kind, value, line_of(f"checkout: {value}"))
            options = [k for k in ("fetchDepth", "submodules", "lfs", "sparseCheckoutDirectories",
                                   "sparseCheckoutPatterns") if step.get(k) not in (None, "", "0", "false", False, 0)]
            if options:
                add("checkout fetchDepth / submodules / lfs / sparse", ", ".join(options), line_of(options[0]))
        if "download" in step:
            value = str(step["download"])
            add("download: none" if value == "none" else "download: current / alias", value,
                line_of(f"download: {value}"))
        if "template" in step:
            ref = str(step["template"])
            if "@" in ref:
                add("template: file@repository", ref, line_of(ref))
        if "pwsh" in step or "powershell" in step:
            add("pwsh / powershell step")
        if "upload" in step:
            add("upload: (the deprecated spelling of publish)", step["upload"], line_of("upload:"))
        if str(step.get("failOnStderr", "")).lower() == "true":
            add("failOnStderr: true", step.get("displayName", ""), line_of("failOnStderr"))
        if "target" in step:
            add("container / services (job, root or step target)", f"step target {step['target']}")
        if step.get("timeoutInMinutes") is not None:
            add("timeoutInMinutes (non-zero)" if str(step["timeoutInMinutes"]).strip() != "0" else
                "timeoutInMinutes (non-zero)", "step")
        if step.get("retryCountOnTaskFailure") is not None:
            add("retryCountOnTaskFailure")
        if step.get("continueOnError") is not None:
            add("continueOnError")
        if step.get("condition") is not None:
            add("condition")
        scripts = [str(step[k]) for k in ("script", "bash") if k in step]
        inputs = step.get("inputs") if isinstance(step.get("inputs"), dict) else {}
        if "task" in step:
            task = str(step["task"])
            add(f"task {task}", step.get("displayName", ""), line_of(f"task: {task}"))
            lowered = {str(k).lower(): v for k, v in inputs.items()}
            if task.startswith("DownloadPipelineArtifact") and \
                    str(lowered.get("source", lowered.get("buildtype", ""))).lower() == "specific":
                add("DownloadPipelineArtifact@2 source/buildType specific", "", line_of("specific"))
            if task.startswith("PublishCodeCoverageResults") and \
                    any(c in str(lowered.get("summaryfilelocation", "")) for c in "*?"):
                add("PublishCodeCoverageResults wildcard summaryFileLocation", lowered["summaryfilelocation"],
                    line_of("summaryFileLocation"))
            if task.split("@")[0] in ("Bash", "CmdLine", "AzureCLI", "ShellScript"):
                scripts += [str(v) for k, v in lowered.items() if k in ("script", "inlinescript")]
            if task.split("@")[0] in ("PowerShell", "AzurePowerShell"):
                add("pwsh / powershell step", task)
        for script in scripts:
            if PYTHON_IN_SCRIPT.search(script):
                add("script runs python / pip / conda")
                break
    for item, _ in ((n, p) for parent, n, p in _walk(doc) if isinstance(n, dict) and "template" in n):
        ref = str(item["template"])
        if "@" in ref and not any(f["construct"] == "template: file@repository" and f["detail"] == ref for f in found):
            add("template: file@repository", ref, line_of(ref))
    return found


def construct_status(construct: str) -> str:
    """What today's engine does with a construct (tasks by name)."""
    if construct.startswith("task "):
        task = construct[5:]
        if task in TASK_STATUS_TODAY:
            return TASK_STATUS_TODAY[task]
        return "late"
    return CONSTRUCTS.get(construct, ("ok", ""))[0]


# --- compile and run with today's engine ----------------------------------------------------

def _references(doc, file: Path, root: Path) -> list[tuple[Path, dict, str]]:
    """(template file, parameters passed, alias or '') of every `template:` reference in a file."""
    refs = []
    for _, node, _ in _walk(doc):
        if isinstance(node, dict) and isinstance(node.get("template"), str) and "${{" not in node["template"]:
            ref = node["template"]
            alias = ""
            if "@" in ref:
                ref, alias = ref.rsplit("@", 1)
                if alias == "self":
                    alias = ""
            target = root / ref.lstrip("/") if ref.startswith("/") else file.parent / ref
            refs.append((target.resolve(), node.get("parameters") or {}, alias))
    return refs


def _placeholders(doc) -> dict:
    """A value for every declared parameter without a default (a run needs them)."""
    values = {}
    params = doc.get("parameters") if isinstance(doc, dict) else None
    if isinstance(params, list):
        for spec in params:
            if isinstance(spec, dict) and "name" in spec and "default" not in spec:
                kind = spec.get("type", "string")
                allowed = spec.get("values")
                values[spec["name"]] = allowed[0] if isinstance(allowed, list) and allowed else \
                    {"number": "1", "boolean": "true", "object": "{}", "stringList": "[x]"}.get(kind, "x")
    return values


def _unclear(message: str) -> str:
    """Why a refusal does not name the real reason ('' when it does)."""
    if "file not found" in message and "@" in message:
        return "a template of another repository is read as a local file"
    if "unknown key 'True'" in message:
        return "YAML 1.1 read `on:` as a boolean"
    if "unknown key 'strategy' in the pipeline" in message:
        return "root-level strategy: 'unknown key'"
    if "pipeline resource 'none'" in message:
        return "`download: none` read as a pipeline resource"
    if "(declared: none)" in message:
        return "Azure passes parameters to a template that declares none"
    if "unknown parameter" in message:
        declared_in = Path(message.split(":", 1)[0])
        try:
            params = (yaml.safe_load(declared_in.read_text()) or {}).get("parameters")
        except (OSError, yaml.YAMLError, AttributeError):
            params = []
        if isinstance(params, dict):
            return "Azure accepts any parameter passed to a template that declares its parameters in the old " \
                   "mapping form"
    if "found: upload" in message:
        return "`upload:` is Azure's deprecated spelling of `publish:` (the schema accepts it)"
    if re.search(r"function \S+\(\) is not supported", message):  # not a file named *functionapp*
        return "an expression function is missing"
    if "internal error" in message:
        return "a crash"
    return ""


def compile_file(file: Path, root: Path, groups: set[str]) -> dict:
    """Compile one pipeline with today's engine, in this process: compiled, or the refusal."""
    from ml_service.ci.model import schema
    from ml_service.ci.model.pipeline import EngineError, normalize
    from ml_service.ci.model.template import Compiler, TemplateError
    from ml_service.ci.model.variables import VariableError, parse_variables
    from ml_service.ci.model.yamlload import YamlError, load_file

    try:
        raw = load_file(file)
    except YamlError as exc:
        return {"status": "refused", "message": str(exc), "unclear": _unclear(str(exc))}
    params = _placeholders(raw)
    try:
        document = Compiler(root).compile(file, params)
        schema.check(document, str(file))
        stages = normalize(document)
        empty = {name: {} for name in groups}
        parse_variables(document.get("variables"), empty)
        for stage in stages:
            parse_variables(stage.variables, empty)
            for job in stage.jobs:
                parse_variables(job.variables, empty)
    except (TemplateError, schema.SchemaError, EngineError, VariableError, YamlError) as exc:
        message = str(exc)
        return {"status": "refused", "message": message, "unclear": _unclear(message), "params": params}
    except Exception as exc:  # noqa: BLE001 - a crash is a finding
        return {"status": "error", "message": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc()[-2000:], "params": params}
    jobs = [(s.name, j.name) for s in stages for j in s.jobs]
    duplicates = sorted({f"{s}.{j}" for s, j in jobs if jobs.count((s, j)) > 1})
    stage_deps = []
    for stage in stages:
        for value in _strings(stage.variables):
            if value.lstrip().startswith("$[") and "stageDependencies" in value:
                stage_deps.append(stage.name)
    return {"status": "compiled", "params": params, "jobs": [f"{s}.{j}" for s, j in jobs],
            "duplicate_jobs": duplicates, "stage_dependencies_in_stage_variables": stage_deps}


def sandbox_run(tree: Path, rel: str, params: dict, groups: list[str]) -> dict:
    """Inside the sandbox: queue and run one pipeline with the engine; what happened, as data."""
    os.environ.update({"MLOPS_ROOT": str(tree), "MLOPS_STATE_DIR": str(tree.parent / "state"),
                       "MLOPS_USER": "corpus@example.com", "MLFLOW_DISABLE_TELEMETRY": "true"})
    config = {"models": [], "ci": {"variable_groups": {g: {"variables": {}} for g in groups}}}
    (tree / "mlops.yml").write_text(yaml.safe_dump(config))
    from ml_service.ci.server import service
    from ml_service.config import load_settings

    settings = load_settings()
    store = service.open_store(settings)
    run_id = service.queue(settings, store, tree / rel, "Manual", params, tree, PLACEHOLDER_BRANCH,
                           PLACEHOLDER_COMMIT)
    outcome: dict = {}
    try:
        service.execute(settings, store, run_id, chain=False)
    except service.CIError as exc:
        outcome["refused"] = str(exc)
    except Exception as exc:  # noqa: BLE001
        outcome["crash"] = f"{type(exc).__name__}: {exc}"
    run = store.get_run(run_id)
    for record in store.records(run_id):  # refused as the run compiles (a variable group) or is planned (container:)
        refusal = record["kind"] == "error" or (record["kind"] == "plan" and run.result != "succeeded")
        if refusal and record["detail"] and "refused" not in outcome:
            outcome["refused"] = record["detail"]
    steps = [{"path": r["path"], "display": r["display"], "result": r["result"] or r["status"],
              "detail": (r["detail"] or "")[:300]} for r in store.records(run_id) if r["kind"] == "step"]
    outcome.update({"result": run.result, "status": run.status, "steps": steps})
    return outcome


def run_in_sandbox(name: str, label: str, rel: str, params: dict, groups: list[str]) -> dict:
    """Run one pipeline in a container: no network, engine read-only, a scratch copy of the tree."""
    with tempfile.TemporaryDirectory(prefix="ci-corpus-") as scratch:
        tree = Path(scratch) / "tree"
        tree.mkdir()
        export_tree(name, label, tree)  # the repository's files, when it was fetched
        # then the corpus files over them: as collected (starter templates with their placeholders filled)
        shutil.copytree(CORPUS / name.replace("/", "+") / label, tree, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("SOURCE.json"))
        venv = Path(sys.prefix)
        base = Path(os.path.realpath(sys.executable)).parent.parent
        container = f"{os.environ.get('CI_CORPUS_PREFIX', 'ci-corpus')}-{Path(scratch).name}"
        argv = ["timeout", str(RUN_LIMIT_S), "docker", "run", "--rm", "--name", container, "--network", "none",
                "--cpus", "1", "--memory", "1g", "--pids-limit", "512",
                "-v", f"{base}:{base}:ro", "-v", f"{venv}:{venv}:ro", "-v", f"{HERE}:/engine:ro",
                "-v", f"{scratch}:/scratch", "-e", "PYTHONPATH=/engine", "-e", "HOME=/scratch/home",
                "-w", "/scratch/tree", SANDBOX_IMAGE, f"{venv}/bin/python", "/engine/tools/ci_corpus.py",
                "sandbox-run", "/scratch/tree", rel, json.dumps(params), json.dumps(groups)]
        done = subprocess.run(argv, capture_output=True, text=True)
        if done.returncode == 124:  # timeout ended the docker client only: the container would run on
            subprocess.run(["docker", "rm", "-f", container], capture_output=True)
            return {"timeout": RUN_LIMIT_S}
        try:
            return json.loads(done.stdout.strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            return {"crash": f"sandbox exit {done.returncode}: {done.stderr[-600:]}"}


def _first_failure(outcome: dict) -> str:
    for step in outcome.get("steps", []):
        if step["result"] == "Failed":
            return f"{step['display']}: {step['detail']}"
    return ""


def sandbox_image() -> None:
    """Build the sandbox image (the base image with git) when it is not there yet."""
    if subprocess.run(["docker", "image", "inspect", SANDBOX_IMAGE], capture_output=True).returncode == 0:
        return
    print(f"building {SANDBOX_IMAGE} (the base image with git)", flush=True)
    subprocess.run(["docker", "build", "-q", "-t", SANDBOX_IMAGE, "-"], input=SANDBOX_RECIPE, text=True, check=True,
                   capture_output=True)


def check(corpus: Path, run: bool, only: str = "") -> dict:
    """Compile (and run) every pipeline of the corpus; compile unused templates through a stub; the census."""
    engine_names = _engine_predefined()
    if run:
        sandbox_image()
    results = {"files": {}}
    for repo_dir in sorted(p for p in corpus.iterdir() if p.is_dir()):
        source = json.loads((repo_dir / "SOURCE.json").read_text())
        name = source["repo"]
        if only and only not in name:
            continue
        for label in source.get("variants") or {"": None}:
            root = repo_dir / label if label else repo_dir
            files = sorted(p for p in root.rglob("*") if p.suffix in (".yml", ".yaml"))
            stems = {p.stem for p in (root / ".pipelines").glob("*.yml")}  # what completion triggers look up
            loaded = {}
            for file in files:
                text = file.read_text(errors="replace")
                try:
                    loaded[file] = (yaml.safe_load(text), text)
                except yaml.YAMLError:
                    loaded[file] = (None, text)
            included: set[Path] = set()
            for file, (doc, _) in loaded.items():
                included |= {target for target, _, alias in _references(doc, file, root) if not alias}
            for file, (doc, text) in loaded.items():
                rel = str(file.relative_to(repo_dir))
                role = "template" if name in TEMPLATE_LIBRARIES and file.resolve() not in included and \
                    "trigger" not in (doc or {}) else _role(doc, file.resolve() in included)
                entry = {"repo": name, "label": label, "path": rel, "role": role,
                         "included": file.resolve() in included,
                         "census": census(doc, text, file, stems, engine_names)}
                for item in entry["census"]:
                    item["status"] = construct_status(item["construct"])
                results["files"][f"{name}:{rel}"] = entry
            for file, (doc, _) in loaded.items():
                entry = results["files"][f"{name}:{file.relative_to(repo_dir)}"]
                entry["includes"] = sorted(str(t.relative_to(repo_dir)) for t, _, alias in
                                           _closure(file, root, loaded) if not alias and t.exists())
                # the groups of the file and of every template it includes (a variables template holds most)
                census_of = [entry["census"], *(results["files"].get(f"{name}:{rel}", {}).get("census", [])
                                                for rel in entry["includes"])]
                groups = sorted({f["detail"] for found in census_of for f in found
                                 if f["construct"] == "variable group"})
                if entry["role"] == "template":
                    if not entry["included"] and isinstance(doc, dict):
                        entry["compile"] = compile_template(file, root, doc, set(groups))
                    continue
                entry["compile"] = compile_file(file, root, set(groups))
                if run and entry["compile"]["status"] == "compiled":
                    entry["run"] = run_in_sandbox(name, label, str(file.relative_to(root)),
                                                  entry["compile"].get("params") or {}, groups)
                    print(f"  ran {name}:{file.relative_to(repo_dir)}: {entry['run'].get('result')} "
                          f"{_first_failure(entry['run'])[:100]}", flush=True)
    for entry in results["files"].values():
        entry["category"] = categorize(entry, results["files"])
    return results


def compile_template(file: Path, root: Path, doc: dict, groups: set[str]) -> dict:
    """Compile a template no corpus pipeline includes, through a one-line pipeline that includes it."""
    kind = next((k for k in ("stages", "jobs", "steps") if k in doc), "variables")
    params = _placeholders(doc)
    reference = {"template": file.name, **({"parameters": params} if params else {})}
    stub = {"stages": {"stages": [reference]}, "jobs": {"jobs": [reference]}, "steps": {"steps": [reference]},
            "variables": {"variables": [reference], "steps": [{"script": "true"}]}}[kind]
    with tempfile.NamedTemporaryFile("w", suffix=".yml", dir=file.parent, prefix=".stub-", delete=False) as handle:
        handle.write(yaml.safe_dump(stub))
    try:
        outcome = compile_file(Path(handle.name), root, groups)
    finally:
        Path(handle.name).unlink()
    outcome["through"] = f"a stub pipeline ({kind}: - template: {file.name})"
    return outcome


def _role(doc, included: bool) -> str:
    """A pipeline (something one would queue) or a template (included, or only parameters and a body)."""
    if included or not isinstance(doc, dict) or set(map(str, doc)) <= {"variables", "parameters"}:
        return "template"
    if {"trigger", "pr", "schedules", "resources", "pool", "name"} & set(map(str, doc)) or "parameters" not in doc:
        return "pipeline"
    return "template"


def _closure(file: Path, root: Path, loaded: dict, seen=None):
    """Every template a file includes, directly or not."""
    seen = set() if seen is None else seen
    doc = loaded.get(file, (None, ""))[0]
    for target, params, alias in _references(doc, file, root):
        if target in seen:
            continue
        seen.add(target)
        yield target, params, alias
        if target in loaded:
            yield from _closure(target, root, loaded, seen)


def categorize(entry: dict, files: dict) -> str:
    """compiled / ran / refused / error / silently different (pipelines); template (others)."""
    if entry["role"] != "pipeline":
        return "template"
    compiled = entry.get("compile", {})
    if compiled.get("status") == "error":
        return "error"
    if compiled.get("status") == "refused":
        return "error" if compiled.get("unclear") else "refused"
    own = [f for f in entry["census"] if f["status"] in ("different",)]
    for rel in entry.get("includes", []):
        other = files.get(f"{entry['repo']}:{rel}")
        if other:
            own += [f for f in other["census"] if f["status"] == "different"]
    if compiled.get("duplicate_jobs") or compiled.get("stage_dependencies_in_stage_variables"):
        own.append({"construct": "two jobs with one name (or no name)"})
    run = entry.get("run", {})
    if run.get("crash"):
        return "error"
    if own:
        return "silently different"
    if run.get("refused"):
        return "error" if _unclear(run["refused"]) else "refused"
    if "not supported locally" in _first_failure(run):
        return "refused late"
    return "ran" if run else "compiled"


# --- report ---------------------------------------------------------------------------------

def report(results: dict) -> str:
    """Markdown: per repository, per file, per construct."""
    files = results["files"]
    by_repo: dict[str, list[dict]] = defaultdict(list)
    for entry in files.values():
        by_repo[entry["repo"]].append(entry)
    out = ["| repository | files | pipelines | templates | compiled | ran | refused (reason) | refused late | error | "
           "silently different |", "|---|---|---|---|---|---|---|---|---|---|"]
    totals = Counter()
    for repo, entries in sorted(by_repo.items()):
        pipes = [e for e in entries if e["role"] == "pipeline"]
        counts = Counter(e["category"] for e in pipes)
        compiled = sum(1 for e in pipes if e.get("compile", {}).get("status") == "compiled")
        ran = sum(1 for e in pipes if e.get("run") and not e["run"].get("timeout"))
        row = [repo, len(entries), len(pipes), len(entries) - len(pipes), compiled, ran, counts["refused"],
               counts["refused late"], counts["error"], counts["silently different"]]
        totals.update(dict(zip(["files", "pipelines", "templates", "compiled", "ran", "refused", "late", "error",
                                "silent"], row[1:])))
        out.append("| " + " | ".join(map(str, row)) + " |")
    out.append(f"| **all** | {totals['files']} | {totals['pipelines']} | {totals['templates']} | {totals['compiled']} "
               f"| {totals['ran']} | {totals['refused']} | {totals['late']} | {totals['error']} | {totals['silent']} |")
    out.append("")
    for repo, entries in sorted(by_repo.items()):
        out.append(f"### {repo}\n")
        for entry in sorted(entries, key=lambda e: (e["role"], e["path"])):
            if entry["role"] != "pipeline":
                continue
            compiled = entry.get("compile", {})
            line = f"- `{entry['path']}`: **{entry['category']}**"
            if compiled.get("status") != "compiled":
                why = compiled.get("unclear")
                line += f" at compile: {compiled.get('message', '')[:220]}" + (f" (unclear: {why})" if why else "")
            run = entry.get("run")
            if run:
                steps = run.get("steps", [])
                ran = [s for s in steps if s["result"] not in ("Skipped", "pending")]
                line += f"; run {run.get('result') or run.get('status') or ''} ({len(ran)}/{len(steps)} steps ran"
                first = _first_failure(run)
                line += f"; first failure: {first[:200]}" if first else ""
                line += f"; refused: {run['refused'][:200]}" if run.get("refused") else ""
                line += f"; crash: {run['crash'][:200]}" if run.get("crash") else ""
                line += f"; stopped after {run['timeout']} s" if run.get("timeout") else ""
                line += ")"
            included = [f for rel in entry.get("includes", [])
                        for f in files.get(f"{repo}:{rel}", {}).get("census", [])]
            different = sorted({f["construct"] for f in [*entry["census"], *included] if f["status"] == "different"})
            if compiled.get("duplicate_jobs"):
                different.append(f"duplicate jobs {', '.join(compiled['duplicate_jobs'])}")
            if different:
                line += f"; different: {'; '.join(different)}"
            out.append(line)
        out.append("")
    out.append("## Census: constructs, how many files use them, what today's engine does\n")
    out.append("| construct | status today | files | repositories | example |")
    out.append("|---|---|---|---|---|")
    per: dict[str, set] = defaultdict(set)
    repos: dict[str, set] = defaultdict(set)
    example: dict[str, str] = {}
    for key, entry in files.items():
        for item in entry["census"]:
            per[item["construct"]].add(key)
            repos[item["construct"]].add(entry["repo"])
            if item["construct"] not in example and item.get("detail"):
                example[item["construct"]] = f"{entry['path']}:{item['line']} {item['detail']}"[:110]
    order = {"different": 0, "unclear": 1, "late": 2, "refused": 3, "ok": 4}
    for construct in sorted(per, key=lambda c: (order.get(construct_status(c), 5), -len(per[c]), c)):
        out.append(f"| {construct.replace('|', '/')} | {construct_status(construct)} | {len(per[construct])} | "
                   f"{len(repos[construct])} | {example.get(construct, '').replace('|', '/')} |")
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("collect", help="extract pipeline files of the fetched repositories into the corpus")
    checking = sub.add_parser("check", help="compile, run and census every corpus file")
    checking.add_argument("--no-run", action="store_true", help="compile and census only")
    checking.add_argument("--only", default="", help="repositories whose name contains this")
    sub.add_parser("report", help="results.json as Markdown")
    inner = sub.add_parser("sandbox-run")  # inside the container
    inner.add_argument("tree")
    inner.add_argument("file")
    inner.add_argument("params")
    inner.add_argument("groups")
    args = parser.parse_args(argv)
    if args.action == "collect":
        collect(CORPUS)
    elif args.action == "check":
        results = check(CORPUS, run=not args.no_run, only=args.only)
        saved = CORPUS / "results.json"
        if args.only and saved.is_file():  # merge: the other repositories' results stay
            kept = {k: v for k, v in json.loads(saved.read_text())["files"].items() if args.only not in v["repo"]}
            results["files"] = {**kept, **results["files"]}
        saved.write_text(json.dumps(results, indent=1, default=str))
        print(report(results))
    elif args.action == "report":
        print(report(json.loads((CORPUS / "results.json").read_text())))
    else:
        outcome = sandbox_run(Path(args.tree), args.file, json.loads(args.params), json.loads(args.groups))
        print(json.dumps(outcome, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
