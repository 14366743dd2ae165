"""What spark_job.py does without Spark: the message of a failed Spark job is the line that names the error (the
BatchError a task raised, else the first `...Error: ...` line), never a Traceback header, else the first line.
(tests/batch/test_spark.py runs Spark itself; it is slow.)"""
from __future__ import annotations

from ml_service.batch.spark_job import _spark_message


def test_a_failed_jobs_message_is_the_error_line_not_the_traceback_nor_the_first_line():
    text = ("An error occurred while calling o91.collectToPython.\n"
            "Traceback (most recent call last): BatchError: in the header, not the error\n"
            '  File "/w/ml_service/batch/spark_tasks.py", line 80, in score\n'
            "ml_service.batch.BatchError: part-0.csv: 3 rows in bytes 0-40, 2 lines\n"
            "py4j.protocol.Py4JJavaError: Job aborted\n")
    assert _spark_message(Exception(text)) == "ml_service.batch.BatchError: part-0.csv: 3 rows in bytes 0-40, 2 lines"
    without_batch_error = text.replace("BatchError: ", "Other: ")
    assert _spark_message(Exception(without_batch_error)) == "py4j.protocol.Py4JJavaError: Job aborted"
    assert _spark_message(Exception("Java gateway gone\nmore")) == "Java gateway gone"
