"""Options that several `mlops` commands share, each declared once: its flag, help and environment variable.

A command adds one with `PROJECT.add(parser)`; where its help has always said more for that command, it passes
the text (`MODEL_NAME.add(parser, help=...)`), so the meaning and the spelling stay in one place. Imported by
`mlops --help`: argparse keywords only, nothing heavy.
"""
from __future__ import annotations


class Option:
    """One command-line option: the flag, its argparse keywords, the environment variable it falls back to."""

    def __init__(self, flag: str, env: str | None = None, **keywords):
        self.flag = flag
        self.env = env
        self.keywords = keywords

    def add(self, parser, **changes):
        """Add the option to an argparse parser; changes: keywords this command sets otherwise (help, required)."""
        return parser.add_argument(self.flag, **{**self.keywords, **changes})


# The model project a command acts on (a folder listed under models: in mlops.yml).
PROJECT = Option("--project", env="MLOPS_MODEL", metavar="PROJECT",
                 help="the model project to act on (default: MLOPS_MODEL, else the first in mlops.yml)")
# A registered model version: NAME:VERSION, NAME@ALIAS (models:/ forms too), parsed by workspace.refs.
MODEL_VERSION = Option("--model", help="NAME:VERSION or NAME@ALIAS")
# A registered model by name (a model project's name is accepted where the command says so).
MODEL_NAME = Option("--model", help="registered model name")
# The CI build that caused a run, recorded on runs and registered versions.
BUILD_ID = Option("--build-id", env="MLOPS_BUILD_ID",
                  help="CI build id recorded on the runs and the registered version")
BUILD_URI = Option("--build-uri", env="MLOPS_BUILD_URI",
                   help="CI build URI recorded on the runs and the registered version")
