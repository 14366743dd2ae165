"""The local Azure Pipelines engine, in the shape of nektos/act: the typed model (model.py), the
plan (planner.py), the execution of stages and jobs (executor.py) and of each step (steps.py),
run-time macros and step environments (macros.py), step processes and logging commands
(process.py), and the secret masker (masking.py). This module keeps the names the rest of the
platform imports.
"""
from __future__ import annotations

from ml_service.ci.executor import Engine
from ml_service.ci.macros import MACRO, RUNTIME
from ml_service.ci.masking import Masker
from ml_service.ci.model import STEP_KINDS, WAITING, EngineError, Job, Outcome, Result, Stage, Var, normalize
from ml_service.ci.planner import worst

__all__ = ["Engine", "EngineError", "Job", "MACRO", "Masker", "Outcome", "RUNTIME", "Result", "STEP_KINDS", "Stage",
           "Var", "WAITING", "normalize", "worst"]
