"""Columns that are not features: a row index without a name, identifiers, --keep / --drop; and the warning for a
feature that follows the row order of a sorted file."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml_service.init import InitError
from ml_service.init.columns import id_like_name
from ml_service.init.profile import profile_frame
from ml_service.init.reader import read_table
from ml_service.init.suite import build_suite


def table(rows: int = 120, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"size": rng.normal(50, 10, rows).round(3), "rooms": rng.integers(1, 6, rows),
                          "area": rng.choice(["north", "south"], rows)})
    frame["price"] = (frame["size"] * 3 + frame["rooms"] * 10 + rng.normal(0, 5, rows)).round(2)
    return frame


def features(profile) -> list[str]:
    return [c.name for c in profile.features]


def test_the_unnamed_index_pandas_writes_is_not_a_feature(tmp_path):
    path = tmp_path / "pandas.csv"
    table().to_csv(path)  # index=True: the header starts with an empty name
    frame = read_table(path)
    profile = profile_frame(frame, "price")
    assert features(profile) == ["size", "rooms", "area"]
    assert [e.name for e in profile.excluded] == ["Unnamed: 0"]
    suite = build_suite(profile, "d", "d.csv")
    assert suite["expectations"][0]["kwargs"]["column_list"][0] == "Unnamed: 0"
    assert not [e for e in suite["expectations"][1:] if e["kwargs"].get("column") == "Unnamed: 0"]


def test_r_row_names_quoted_and_textual_are_not_a_feature(tmp_path):
    frame = table(40)
    path = tmp_path / "r.csv"
    frame.index = [f"car {i}" for i in range(len(frame))]
    frame.to_csv(path, quoting=1)  # R's write.csv: "","size",... with the row names first
    profile = profile_frame(read_table(path), "price")
    assert features(profile) == ["size", "rooms", "area"]


def test_an_unnamed_first_column_that_repeats_values_is_refused_with_a_hint(tmp_path):
    frame = table(40)
    frame.index = np.arange(len(frame)) % 3
    frame.to_csv(tmp_path / "r.csv")
    with pytest.raises(InitError, match="not a row index: give it a name"):
        profile_frame(read_table(tmp_path / "r.csv"), "price")


@pytest.mark.parametrize("name", ["id", "ID", "rownames", "uuid", "customer_id", "CustomerID", "order uuid",
                                  "Row_Number", "PassengerId"])
def test_identifier_names(name):
    assert id_like_name(name)


@pytest.mark.parametrize("name", ["idle", "kidney", "valid", "paid", "width", "identity", "names", "grid", "key"])
def test_names_that_merely_contain_id_are_not_identifier_names(name):
    assert not id_like_name(name)


def test_identifier_columns_are_left_out_and_say_why():
    frame = table(300)
    frame.insert(0, "Order", np.arange(1, 301))  # counts the rows
    frame.insert(1, "PID", np.random.default_rng(1).permutation(10 ** 6)[:300] + 5 * 10 ** 8)  # unique numbers
    frame["Name"] = [f"passenger {i}" for i in range(300)]  # unique text
    frame["customer_id"] = np.arange(300) % 50  # the name says so
    frame["visits"] = np.random.default_rng(2).integers(0, 1000, 300)  # whole numbers with repeats: a feature
    profile = profile_frame(frame, "price")
    reasons = {e.name: e.reason for e in profile.excluded}
    assert set(reasons) == {"Order", "PID", "Name", "customer_id"}
    assert "count the rows" in reasons["Order"] and "every row" in reasons["PID"]
    assert features(profile) == ["size", "rooms", "area", "visits"]


def test_keep_and_drop_override_the_guess_and_unknown_columns_are_named():
    frame = table().assign(id=np.arange(120) % 9)
    profile = profile_frame(frame, "price", keep=["id"], drop=["area"])
    assert features(profile) == ["size", "rooms", "id"] and [e.name for e in profile.excluded] == ["area"]
    with pytest.raises(InitError, match="--keep 'nope': no such column"):
        profile_frame(frame, "price", keep=["nope"])
    with pytest.raises(InitError, match="that is the target"):
        profile_frame(frame, "price", drop=["price"])


def test_when_every_column_looks_like_an_identifier_it_says_to_keep_some():
    frame = pd.DataFrame({"id": np.arange(30), "y": np.arange(30) % 2})
    with pytest.raises(InitError, match="--keep"):
        profile_frame(frame, "y")


def test_a_feature_that_follows_the_order_of_a_file_sorted_by_the_target_is_warned_about():
    frame = table(200).sort_values("price").reset_index(drop=True)
    frame["ticket"] = np.arange(200) // 2 + 1000  # follows the row order, repeats: not an identifier
    profile = profile_frame(frame, "price")
    assert "ticket" in features(profile)
    assert len(profile.warnings) == 1 and "'ticket'" in profile.warnings[0] and "target" in profile.warnings[0]
    assert not profile_frame(table(200).assign(ticket=np.arange(200) // 2), "price",
                             drop=["ticket"]).warnings


def test_a_shuffled_file_gets_no_warning():
    frame = table(200)
    frame["ticket"] = np.random.default_rng(4).permutation(np.arange(200) // 2)
    assert profile_frame(frame, "price").warnings == ()


@pytest.mark.parametrize("distinct, excluded", [(95, True), (94, False)])
def test_text_is_an_identifier_from_95_distinct_values_in_100_rows(distinct, excluded):
    """NEARLY_UNIQUE (columns.py) on both sides: text with a distinct value on 95 of 100 rows is left out as an
    identifier or free text; 94 of 100 is a feature."""
    frame = table(100)
    frame["note"] = [f"n{i}" for i in range(distinct)] + ["n0"] * (100 - distinct)
    profile = profile_frame(frame, "price")
    assert ("note" in profile.excluded_names) is excluded
    assert ("note" in features(profile)) is not excluded


@pytest.mark.parametrize("rows, excluded", [(100, True), (99, False)])
def test_whole_numbers_distinct_on_every_row_are_an_identifier_from_100_rows(rows, excluded):
    """MIN_ROWS_UNIQUE_NUMBERS (columns.py) on both sides: shuffled whole numbers, all distinct, mark an identifier
    in 100 rows; in 99 they may be a feature."""
    frame = table(rows)
    frame["code"] = np.random.default_rng(4).permutation(10_000)[:rows] + 70_000  # distinct, in no order
    profile = profile_frame(frame, "price")
    assert ("code" in profile.excluded_names) is excluded
    assert ("code" in features(profile)) is not excluded


@pytest.mark.parametrize("values, row_number", [
    (lambda n: np.full(n, 7), False),                 # a constant: no step, not a row number
    (lambda n: np.arange(n, 0, -1), True),            # counting down by one
    (lambda n: np.arange(0, 3 * n, 3) + 500, True),   # any constant step
])
def test_whole_numbers_that_step_evenly_count_the_rows_and_a_constant_does_not(values, row_number):
    """columns.py _counts_rows on both sides: a non-zero constant step is a row number; a step of 0 is not."""
    frame = table(60)
    frame["seq"] = values(60)
    reasons = {e.name: e.reason for e in profile_frame(frame, "price").excluded}
    assert ("row number" in reasons.get("seq", "")) is row_number


@pytest.mark.parametrize("distinct, warned", [(21, True), (20, False)])
def test_a_feature_following_the_row_order_is_warned_about_from_21_distinct_values(distinct, warned):
    """MANY_VALUES (columns.py) on both sides: a numeric feature that follows the row order is worth a warning when
    it has more than 20 distinct values (it can number the rows); with 20 it is a coarse grouping."""
    from ml_service.init.columns import sort_warnings

    frame = table(210).sort_values("price").reset_index(drop=True)
    frame["batch"] = np.arange(210) * distinct // 210  # rises with the rows, `distinct` values
    assert frame["batch"].nunique() == distinct
    assert bool(sort_warnings(frame, "price", ["batch"])) is warned
