"""Tables as spreadsheets and other tools write them (semicolons and decimal commas, tabs, '|', aligned
columns) read as the standard CSV file every pipeline reads, value text unchanged but the decimal mark."""
from __future__ import annotations

import csv
import io

import pytest
from hypothesis import given, settings as hypothesis_settings, strategies as st

from ml_service.data import dialect
from ml_service.data.dialect import Dialect

STANDARD = "age,bmi,name,y\n59,32.1,ann,151.5\n48,-21.6,bob,75\n72,.5,cy,141.25\n"
WRITTEN = {  # the table above as each tool writes it
    Dialect(";", ","): "age;bmi;name;y\n59;32,1;ann;151,5\n48;-21,6;bob;75\n72;,5;cy;141,25\n",
    Dialect(";", "."): "age;bmi;name;y\n59;32.1;ann;151.5\n48;-21.6;bob;75\n72;.5;cy;141.25\n",
    Dialect("\t", "."): "age\tbmi\tname\ty\n59\t32.1\tann\t151.5\n48\t-21.6\tbob\t75\n72\t.5\tcy\t141.25\n",
    Dialect("\t", ","): "age\tbmi\tname\ty\n59\t32,1\tann\t151,5\n48\t-21,6\tbob\t75\n72\t,5\tcy\t141,25\n",
    Dialect("|", "."): "age|bmi|name|y\n59|32.1|ann|151.5\n48|-21.6|bob|75\n72|.5|cy|141.25\n",
    Dialect(" ", "."): "age   bmi  name  y\n 59  32.1  ann   151.5\n 48 -21.6  bob   75\n 72    .5  cy    141.25\n",
}


@pytest.mark.parametrize("written", list(WRITTEN), ids=lambda d: d.describe())
def test_each_tools_table_is_sniffed_and_becomes_the_standard_csv_byte_for_byte(tmp_path, written):
    source = tmp_path / "table.txt"
    source.write_text(WRITTEN[written])
    assert dialect.sniff(WRITTEN[written]) == written and not written.standard
    assert dialect.standard_text(source, written) == STANDARD
    out = tmp_path / "out"
    out.mkdir()
    found, copy = dialect.standard_file(source, out)
    assert found == written and copy.parent == out and copy.read_text() == STANDARD
    assert source.read_text() == WRITTEN[written]  # the user's file is left as it is


def test_a_standard_csv_is_used_as_it_is_whatever_its_quoted_text_holds(tmp_path):
    """Semicolons, tabs, '|' and decimal commas inside quoted fields of a comma file change nothing."""
    text = 'id,note,price\n1,"a; b; c",25\n2,"x\ty|z",3\n3,"1,5",4\n'
    source = tmp_path / "standard.csv"
    source.write_text(text)
    assert dialect.sniff(text) == Dialect(",", ".") and dialect.of(source).standard
    assert dialect.standard_file(source, tmp_path) == (Dialect(), source)


def test_only_values_that_are_numbers_lose_their_decimal_comma_and_the_header_keeps_its_own(tmp_path):
    text = 'price, EUR;label;0,5\n"1,5";"a,b";3\n2,25;c,d,e;1e3\n-0,5;1,2,3;7\n'
    source = tmp_path / "t.csv"
    source.write_text(text)
    found = dialect.sniff(text)
    assert found == Dialect(";", ",")
    assert list(csv.reader(io.StringIO(dialect.standard_text(source, found)))) == [
        ["price, EUR", "label", "0,5"], ["1.5", "a,b", "3"], ["2.25", "c,d,e", "1e3"], ["-0.5", "1,2,3", "7"]]


def test_decimal_points_anywhere_keep_every_comma_as_it_is():
    """A ';' file with one number written with a point: its commas are not decimal marks."""
    assert dialect.sniff("a;b\n1,5;2\n3;4.5\n") == Dialect(";", ".")
    assert dialect.sniff("a;b\n1;2\n3;4\n") == Dialect(";", ".")  # whole numbers: nothing to convert
    assert dialect.sniff("a;0.25\n1,5;2\n") == Dialect(";", ",")  # a column's name is no value


def test_a_table_no_separator_splits_evenly_is_left_to_pandas_and_a_cut_last_line_is_ignored():
    assert dialect.sniff("a,b,c\n1,2\n3,4,5,6\n") == Dialect()  # ragged: pandas says where
    assert dialect.sniff("just one column\nx\ny\n") == Dialect()
    sample = "a;b;c\n1;2;3\n4;5;6\n7;8"  # the sample ends inside a line
    assert dialect.sniff(sample) == Dialect(";", ".")


NUMBER = st.one_of(st.integers(-10**6, 10**6).map(str),
                   st.floats(-1e6, 1e6, allow_nan=False).map(lambda f: repr(round(f, 4))))
WORD = st.text(alphabet="abcxyz_", min_size=1, max_size=6)


@hypothesis_settings(max_examples=60, deadline=None)
@given(st.integers(2, 5).flatmap(lambda width: st.tuples(
    st.lists(WORD, min_size=width, max_size=width, unique=True),
    st.lists(st.lists(st.one_of(NUMBER, WORD), min_size=width, max_size=width), min_size=1, max_size=12))))
def test_a_table_saved_with_semicolons_and_decimal_commas_reads_as_its_standard_csv(tmp_path_factory, table):
    header, rows = table
    standard = io.StringIO()
    csv.writer(standard, lineterminator="\n").writerows([header] + rows)
    european = "\n".join(";".join(value.replace(".", ",") for value in row) for row in [header] + rows) + "\n"
    source = tmp_path_factory.mktemp("t") / "european.csv"
    source.write_text(european)
    found = dialect.sniff(european)
    assert found.separator == ";"
    assert dialect.standard_text(source, found) == standard.getvalue()
