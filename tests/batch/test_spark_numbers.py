"""The executor's CSV conversion (spark_worker._csv_numbers) gives exactly what its two plain steps give:
text that pyarrow's CSV reader takes as null made null (_csv_nulls), then numeric columns as float64 when every
value of them is a number (_as_numbers), on splits of plain numbers and on splits with every kind of odd value."""
from __future__ import annotations

import pyarrow as pa
import pytest

from ml_service.batch.spark_worker import CSV_NULLS, _as_numbers, _csv_nulls, _csv_numbers

NAMES = ["a", "b", "label"]


def _split(odd: str | None, column: int = 1) -> pa.Table:
    columns = [[f"{i}.5" for i in range(20)], [str(i * 3) for i in range(20)], ["x", "NA", "y", ""] * 5]
    columns[column][7] = odd
    return pa.table({name: pa.array(values, pa.string()) for name, values in zip(NAMES, columns)})


@pytest.mark.parametrize("odd", ["4", None, "x", "1e400", "inf", "-0", " 5", *CSV_NULLS])
@pytest.mark.parametrize("numeric", [frozenset({"a", "b"}), frozenset({"b"}), frozenset()])
def test_the_one_step_conversion_is_the_two_steps(odd, numeric):
    table = _split(odd)
    expected, got = _as_numbers(_csv_nulls(table), numeric), _csv_numbers(table, numeric)
    assert got.schema == expected.schema
    assert got.to_pydict().__repr__() == expected.to_pydict().__repr__()  # NaN compares by its text


def test_a_numeric_column_already_typed_takes_the_two_steps():
    table = _split("4").set_column(0, "a", pa.array([float(i) for i in range(20)]))
    numeric = frozenset({"a", "b"})
    assert _csv_numbers(table, numeric).equals(_as_numbers(_csv_nulls(table), numeric))
