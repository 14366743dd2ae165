"""The Spark session of a batch job (`mlops batch score --engine spark`): which master, which Python, how small.

The master follows Spark's own conventions: `--master URL` (as spark-submit takes it: `local[*]`,
`spark://host:7077`, `yarn`, `k8s://...`), else `spark.master` from `$SPARK_CONF_DIR/spark-defaults.conf`
(read by Spark itself), else `local[*]`. Any other setting comes from there too, or from `--conf KEY=VALUE`
(e.g. `spark.executor.memory=2g`); the job sets only what its exactness needs (split sizes that depend on the
input alone, no speculative copies of a task) and what keeps the driver's output readable.

The executors run the Python named by Spark's `PYSPARK_PYTHON` (default here: this interpreter, which has
the platform and the model's libraries); on a cluster, point it at the workers' Python.
"""
from __future__ import annotations

import os
import sys

from ml_service.batch import BatchError
from ml_service.errors import UsageError

INSTALL = "make install-spark   (or: bash environment_setup/spark.sh)"


def _spark_defaults_master() -> str | None:
    """spark.master from $SPARK_CONF_DIR/spark-defaults.conf (or $SPARK_HOME/conf), when one sets it."""
    from ml_service import env as envvars

    home = envvars.SPARK_HOME.get()
    folder = envvars.SPARK_CONF_DIR.get() or (os.path.join(home, "conf") if home else None)
    if not folder or not os.path.isfile(os.path.join(folder, "spark-defaults.conf")):
        return None
    with open(os.path.join(folder, "spark-defaults.conf")) as handle:
        for line in handle:
            parts = line.split(None, 1)
            if len(parts) == 2 and parts[0] == "spark.master":
                return parts[1].strip()
    return None


def master_url(master: str | None) -> str:
    """The master the job runs on: --master, else spark-defaults.conf's spark.master, else local[*]."""
    return master or _spark_defaults_master() or "local[*]"


def parse_conf(pairs: list[str]) -> dict[str, str]:
    """--conf KEY=VALUE pairs as a mapping; a UsageError names a malformed one."""
    conf = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.startswith("spark."):
            raise UsageError(f"--conf {pair!r}: expected spark.KEY=VALUE")
        conf[key] = value
    return conf


def job_conf(split_bytes: int) -> dict[str, str]:
    """What the job needs: input splits cut by size alone (the same on every attempt, whatever the cluster's
    cores), no speculative second copy of a task, Arrow batches large enough to keep Python busy."""
    return {
        "spark.sql.files.maxPartitionBytes": str(split_bytes),
        "spark.sql.files.minPartitionNum": "1",
        "spark.sql.files.openCostInBytes": str(4 << 20),
        "spark.speculation": "false",
        "spark.sql.execution.arrow.maxRecordsPerBatch": "50000",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.session.timeZone": "UTC",
    }


def start(master: str | None, app_name: str, conf: dict[str, str]):
    """A SparkSession on the master (see master_url) with conf; a BatchError with the install command when
    pyspark or Java is missing."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise BatchError(f"the Spark engine needs pyspark and Java 17; install them with: {INSTALL}") from None
    import warnings

    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas")  # mapInArrow: no pandas
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # Spark's own variable: the executors' Python
    builder = SparkSession.builder.master(master_url(master)).appName(app_name)
    for key, value in conf.items():
        builder = builder.config(key, value)
    try:
        spark = builder.getOrCreate()
    except Exception as exc:  # no Java, a master that does not answer: Spark says which
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise BatchError(f"cannot start Spark on {master_url(master)}: {type(exc).__name__}: {first} "
                         f"(install: {INSTALL})") from None
    spark.sparkContext.setLogLevel("ERROR")
    return spark
