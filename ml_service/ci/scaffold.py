"""The pipeline files of one model project: <project>-build.yml, -retrain.yml and -release.yml.

Each file is a few lines over the shared templates in .pipelines/templates/ (which name no model):
triggers and resources, the variable MLOPS_MODEL (so every `mlops` command in its steps acts on
that project: Azure maps variables to environment variables), and the template's stages. The
build's path filter watches the project folder, the extra paths given (its data and contract), its
own pipeline files and the platform code it runs on (not the platform's tests: platform.yml runs
them). `mlops init` writes them for a new project; the committed files of every project are
exactly what this module writes (a test compares).
"""
from __future__ import annotations

import re
import textwrap
from pathlib import Path, PurePosixPath

from ml_service.config import PROJECT_NAME, ModelProject

PIPELINES_DIR = ".pipelines"
KINDS = ("build", "retrain", "release")
# What a model's build runs on (a change there rebuilds every model); the platform's tests (tests/), chart and
# environment_setup are the platform pipeline's (.pipelines/platform.yml), never a model's build.
PLATFORM_PATHS = ("ml_service", ".pipelines/templates", "pyproject.toml", "Makefile")
DOC_PATHS = ("docs", "**/*.md")
PLAIN = re.compile(r"^[A-Za-z0-9_.][A-Za-z0-9_./-]*$")
GENERATED = "# Written by `mlops init` (ml_service/ci/scaffold.py); regenerate it rather than edit it."
HEADERS = {
    "build": "Build (CI) of the model project {project}, on main when its folder, its data or contract, its "
             "pipeline files or the platform code it runs on change: its data contract, flake8 on its folder "
             "and its own tests (the platform's tests run in platform.yml), then publish its retraining "
             "pipeline (templates/build-stages.yml).",
    "retrain": "Retraining of the model project {project}, when {project}-build completes on main, nightly "
               "(locally: `mlops ci scheduler`), or when its data set has a new version (`mlops data add`): "
               "run its ML pipeline on the newest data set version, register only if "
               "better (templates/retrain-stages.yml). Its stage Release runs when a version was registered, "
               "or when QA does not serve the champion; that stage triggers the release.",
    "release": "Release of the model project {project}, when the stage Release of {project}-retrain "
               "completes (a new version, or QA lost the champion): the version in that run's `model` "
               "artifact -> image -> "
               "QA (one container) -> smoke test -> approval on environment `production` -> production "
               "(templates/release-stages.yml).",
}

BUILD = """\
{header}
{generated}
trigger:
  branches:
    include: [main]
  paths:
    include:
{includes}
    exclude: [{excludes}]
pr: none

variables:
  MLOPS_MODEL: {project}

stages:
  - template: templates/build-stages.yml
    parameters:
      project: {project}
{data_parameters}"""

RETRAIN = """\
{header}
{generated}
trigger: none
pr: none
schedules:
  - cron: "0 3 * * *"
    displayName: Nightly retraining
    branches:
      include: [main]
    always: 'true'

resources:
  pipelines:
    - pipeline: build
      source: {project}-build
      trigger:
        branches:
          include: [main]
  webhooks:
    - webhook: data             # a new version of the project's data set (mlops data add)
      connection: mlops-data
      filters:
        - path: project
          value: {project}

parameters:
  - name: params
    displayName: ML pipeline parameters, NAME=VALUE separated by spaces (empty = as in the pipeline file)
    type: string
    default: ''

variables:
  MLOPS_MODEL: {project}

stages:
  - template: templates/retrain-stages.yml
    parameters:
      params: ${{{{ parameters.params }}}}
"""

RELEASE = """\
{header}
{generated}
trigger: none
pr: none

resources:
  pipelines:
    - pipeline: retrain
      source: {project}-retrain
      trigger:
        branches:
          include: [main]
        stages: [Release]

parameters:
  - name: model
    displayName: Model version to release when run by hand (NAME:VERSION); empty = from the retrain run
    type: string
    default: ''
  - name: canaryPercent
    displayName: Production canary share, 1-100; 0 = replace the stable release
    type: number
    default: '0'

variables:
  MLOPS_MODEL: {project}

stages:
  - template: templates/release-stages.yml
    parameters:
      model: ${{{{ parameters.model }}}}
      canaryPercent: ${{{{ parameters.canaryPercent }}}}
"""


def pipeline_name(project: str, kind: str) -> str:
    """The pipeline name (file stem) of one of a project's pipelines, e.g. <project>-build."""
    if kind not in KINDS:
        raise ValueError(f"pipeline kind {kind!r} is not one of {', '.join(KINDS)}")
    return f"{project}-{kind}"


def _scalar(value: str) -> str:
    """value as a YAML flow scalar: plain when it is safe, single-quoted otherwise."""
    return value if PLAIN.match(value) else "'" + value.replace("'", "''") + "'"


def _repo_path(value: str) -> str:
    """A repository-relative POSIX path, normalized; refuses absolute paths and '..'."""
    text = str(value).strip().replace("\\", "/")
    path = PurePosixPath(text)
    if not text or path.is_absolute() or ".." in path.parts:
        raise ValueError(f"watched path {value!r} must be relative to the repository root, inside it")
    return path.as_posix()


def build_paths(project: str, watched: list[str], data: str = "", contract: str = "") -> list[str]:
    """What the build's path filter includes: the project, its extra paths, its pipelines, the platform."""
    paths = [project, *(_repo_path(p) for p in [*watched, data, contract] if p),
             f"{PIPELINES_DIR}/{project}-*.yml", *PLATFORM_PATHS]
    return list(dict.fromkeys(paths))


def model_pipeline_texts(project: str, watched: list[str], *, data: str = "", contract: str = "") -> dict[str, str]:
    """File name -> YAML text of the project's build, retrain and release pipelines.

    Args:
        project: the model project (folder and Python package name).
        watched: extra repository-relative paths in the build's path filter (its data file, contract ...).
        data: the data file the build validates (default: the model's data in mlops.yml, via MLOPS_MODEL).
        contract: that file's data contract (required with data).
    """
    if not PROJECT_NAME.match(project or ""):
        raise ValueError(f"model project {project!r} must be a Python package name (ASCII letters, digits, _)")
    if bool(data) != bool(contract):
        raise ValueError("give both data and contract, or neither (then mlops.yml's are validated)")
    includes = "\n".join(f"      - {_scalar(p)}" for p in build_paths(project, watched, data, contract))
    data_parameters = "" if not data else \
        f"      data: {_scalar(_repo_path(data))}\n      contract: {_scalar(_repo_path(contract))}\n"

    def fields(kind: str) -> dict:
        header = textwrap.fill(HEADERS[kind].format(project=project), width=100, initial_indent="# ",
                               subsequent_indent="# ", break_long_words=False, break_on_hyphens=False)
        return {"project": project, "generated": GENERATED, "header": header}
    return {
        f"{pipeline_name(project, 'build')}.yml": BUILD.format(
            **fields("build"), includes=includes, excludes=", ".join(_scalar(p) for p in DOC_PATHS),
            data_parameters=data_parameters),
        f"{pipeline_name(project, 'retrain')}.yml": RETRAIN.format(**fields("retrain")),
        f"{pipeline_name(project, 'release')}.yml": RELEASE.format(**fields("release")),
    }


def write_model_pipelines(root: Path, project: str, watched: list[str], overwrite: bool = False, *,
                          data: str = "", contract: str = "") -> list[Path]:
    """Write the project's three pipeline files under root/.pipelines; returns their paths.

    Raises FileExistsError naming the first file that exists, unless overwrite is true (then nothing
    is written before every file was checked).
    """
    folder = Path(root) / PIPELINES_DIR
    texts = model_pipeline_texts(project, watched, data=data, contract=contract)
    targets = {folder / name: text for name, text in texts.items()}
    if not overwrite:
        for path in targets:
            if path.exists():
                raise FileExistsError(f"{path} already exists (overwrite it to regenerate the pipelines of "
                                      f"{project})")
    folder.mkdir(parents=True, exist_ok=True)
    for path, text in targets.items():
        path.write_text(text)
    return list(targets)


def project_arguments(model: ModelProject, root: Path) -> dict:
    """The generator's arguments for a model project of mlops.yml: watched = its data and contract."""
    def rel(path: Path | None) -> str:
        if path is None:
            return ""
        try:
            return Path(path).resolve().relative_to(Path(root).resolve()).as_posix()
        except ValueError:
            raise ValueError(f"{path} of model project {model.project} is outside the repository {root}") from None
    data, contract = rel(model.data), rel(model.contract)
    if not (data and contract):
        data = contract = ""
    return {"project": model.project, "watched": [p for p in (data, rel(model.contract)) if p],
            "data": data, "contract": contract}
