"""Hyperparameter tuning with Optuna (`mlops tune`, and a pipeline's `tune` step): a project's parameters.yml
declares a search space; an Optuna study, stored in the workspace's database, searches it with trials that each
train the project's train step on the data less its held-out rows and are recorded as nested MLflow runs; the
best parameters go to the following train.

Modules: space (the search space, checked), storage (the study's database), holdout (the rows no trial sees),
trials (one trial: train, measure, record), study (workers running trials), step (the pipeline step),
commands (`mlops tune`).
"""
from __future__ import annotations

from ml_service.errors import MLOpsError, UsageError


class TuneError(MLOpsError):
    """A study could not run (a trial kept failing, the storage did not answer); the message says why (exit 1)."""


class SpaceError(UsageError):
    """The search space (or another tuning setting) is malformed; the message names the file and key (exit 2)."""
