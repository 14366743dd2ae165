"""`python -m ml_service.cli`: the `mlops` command."""
import sys

from ml_service.cli import main

if __name__ == "__main__":
    sys.exit(main())
