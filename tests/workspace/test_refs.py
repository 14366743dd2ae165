"""One parser for model references (workspace/refs.py): every form round-trips, and text that is no reference is
refused with its reason (an empty name, a version that is not ASCII digits, a stray separator)."""
from __future__ import annotations

import pytest
from hypothesis import given, settings as hypothesis_settings, strategies as st

from ml_service.errors import UsageError
from ml_service.workspace.refs import ModelRef, ModelRefError, parse_model_ref

NAMES = st.text(alphabet=st.characters(blacklist_characters="@:/", blacklist_categories=("Cs", "Cc", "Zl", "Zp")),
                min_size=1, max_size=30).filter(lambda name: not any(c.isspace() and c != " " for c in name))
ALIASES = st.text(alphabet="abcxyz019_-", min_size=1, max_size=12)
VERSIONS = st.integers(0, 10 ** 12)


@hypothesis_settings(deadline=None, max_examples=200)
@given(name=NAMES, version=VERSIONS, alias=ALIASES)
def test_every_form_round_trips(name, version, alias):
    by_version, by_alias, latest = ModelRef(name, version=version), ModelRef(name, alias=alias), ModelRef(name)
    for ref in (by_version, by_alias, latest):
        assert parse_model_ref(str(ref)) == ref
    for ref in (by_version, by_alias):
        assert parse_model_ref(ref.uri) == ref
    assert str(by_version) == f"{name}:{version}" and by_version.uri == f"models:/{name}/{version}"
    assert str(by_alias) == f"{name}@{alias}" and by_alias.uri == f"models:/{name}@{alias}"


@pytest.mark.parametrize("text, reason", [
    ("", "the name is empty"),
    (":3", "the name is empty"),
    ("@champion", "the name is empty"),
    ("models:/", "the name is empty"),
    ("models:/@champion", "the name is empty"),
    ("m@", "the alias is empty"),
    ("m:", "the version '' is not a number (digits 0-9)"),
    ("m:1\n", "the version '1\\n' is not a number (digits 0-9)"),
    ("m:\u0661", "the version '\u0661' is not a number (digits 0-9)"),
    ("m:\u00b2", "the version '\u00b2' is not a number (digits 0-9)"),
    ("m:-1", "the version '-1' is not a number (digits 0-9)"),
    ("m: 1", "the version ' 1' is not a number (digits 0-9)"),
    ("m:1:2", "the name 'm:1' contains ':'"),
    ("m@champion@qa", "the alias 'champion@qa' contains '@'"),
    ("models:/m/x", "the version 'x' is not a number (digits 0-9)"),
    ("models:/m/3:4", "the version '3:4' is not a number (digits 0-9)"),
    ("a/b:3", "the name 'a/b' contains '/'"),
    ("m\t:3", "the name 'm\\t' contains '\\t'"),
])
def test_text_that_is_no_reference_is_refused_with_its_reason(text, reason):
    with pytest.raises(ModelRefError) as refused:
        parse_model_ref(text)
    assert refused.value.reason == reason
    assert str(refused.value) == f"model reference {text!r}: {reason}"
    assert isinstance(refused.value, UsageError)  # the CLI's exit 2


def test_a_bare_name_is_the_latest_version_unless_a_version_or_alias_is_needed():
    assert parse_model_ref("m") == ModelRef("m") and parse_model_ref("models:/m") == ModelRef("m")
    assert parse_model_ref("m:007") == ModelRef("m", version=7) == parse_model_ref("models:/m:7")
    with pytest.raises(ModelRefError) as refused:
        parse_model_ref("m", need_version_or_alias=True)
    assert refused.value.reason == "give NAME@ALIAS or NAME:VERSION (e.g. m@champion)"
    with pytest.raises(ModelRefError):
        ModelRef("m").uri  # noqa: B018 - MLflow has no URI for "the latest"
