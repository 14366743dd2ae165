"""Datasets as MLflow dataset inputs (workspace/datasets.py): the digest is the first 8 hex of the file's sha256,
rows do not count the header, a column is double only when every non-empty value is a number."""
from __future__ import annotations

import hashlib
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from ml_service.workspace.datasets import dataset_input, describe_csv


def test_digest_rows_elements_and_column_types(tmp_path):
    path = tmp_path / "t.csv"
    raw = b"x,name,y\n1.5,a,3\n,b,4\n-2e3,,5\n"
    path.write_bytes(raw)
    facts = describe_csv(path)
    assert facts["digest"] == hashlib.sha256(raw).hexdigest()[:8]
    assert (facts["rows"], facts["elements"]) == (3, 9)
    assert facts["schema"] == {"mlflow_colspec": [{"type": "double", "name": "x", "required": True},
                                                  {"type": "string", "name": "name", "required": True},
                                                  {"type": "double", "name": "y", "required": True}]}


def test_a_header_only_or_empty_file_has_no_rows(tmp_path):
    (tmp_path / "h.csv").write_text("a,b\n")
    assert (describe_csv(tmp_path / "h.csv")["rows"], describe_csv(tmp_path / "h.csv")["elements"]) == (0, 0)
    assert [c["name"] for c in describe_csv(tmp_path / "h.csv")["schema"]["mlflow_colspec"]] == ["a", "b"]
    (tmp_path / "e.csv").write_bytes(b"")
    assert describe_csv(tmp_path / "e.csv")["rows"] == 0


@settings(max_examples=50, deadline=None)
@given(st.lists(st.lists(st.integers(-1000, 1000), min_size=2, max_size=2), max_size=20))
def test_any_change_of_content_changes_the_digest_and_rows_count_the_body(tmp_path_factory, rows):
    path = tmp_path_factory.mktemp("d") / "t.csv"
    text = "a,b\n" + "".join(f"{a},{b}\n" for a, b in rows)
    path.write_text(text)
    facts = describe_csv(path)
    assert facts["rows"] == len(rows) and facts["digest"] == hashlib.sha256(text.encode()).hexdigest()[:8]
    path.write_text(text + "0,0\n")
    assert describe_csv(path)["digest"] != facts["digest"]


def test_the_dataset_input_carries_name_digest_source_profile_and_context(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a,target\n1,2\n3,4\n")
    entry, info = dataset_input(path, "table", targets="target", context="registry")
    facts = describe_csv(path)
    assert info == {"name": "table", "digest": facts["digest"], "source": str(path), "rows": 2}
    dataset = entry.dataset
    assert (dataset.name, dataset.digest, dataset.source_type) == ("table", facts["digest"], "local")
    assert json.loads(dataset.source) == {"uri": str(path)}
    assert json.loads(dataset.profile) == {"num_rows": 2, "num_elements": 4, "targets": "target"}
    assert json.loads(dataset.schema) == facts["schema"]
    assert [(t.key, t.value) for t in entry.tags] == [("mlflow.data.context", "registry")]
    plain, _ = dataset_input(path, "table")
    assert json.loads(plain.dataset.profile) == {"num_rows": 2, "num_elements": 4}
    assert [(t.key, t.value) for t in plain.tags] == [("mlflow.data.context", "training")]
