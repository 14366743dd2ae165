"""The secret masker (masking.py): every form it promises to hide a secret in is hidden, exactly: the agent's
encoders (base64 at the three offsets, base64url, JSON, URI, XML, command-line and expression escapes, quotes
stripped), hex, each line of a multi-line secret; and the longest form first, so nothing of a secret is left
beside its stars. Written first while mutation-testing masking.py (issue 19); Hypothesis checks the encoders
over arbitrary secrets (issue 29)."""
import base64
import json
import urllib.parse

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ml_service.ci.runner import masking
from ml_service.ci.runner.masking import Masker

SECRETS = st.text(min_size=3, max_size=24).filter(lambda s: "*" not in s and s.strip() == s and s.strip('"') == s)
TEXT = st.text(max_size=10).filter(lambda s: "*" not in s)

SECRET = "pa&ss<w>or\"d'x é+ zz?>?"


def masker(*secrets):
    m = Masker()
    for secret in secrets:
        m.add(secret)
    return m


@pytest.mark.parametrize("form", [
    SECRET,
    json.dumps(SECRET)[1:-1],
    json.dumps(SECRET, ensure_ascii=False)[1:-1],
    urllib.parse.quote(SECRET, safe="-_.~"),
    urllib.parse.quote_plus(SECRET),
    SECRET.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    .replace("'", "&apos;"),
    SECRET.replace('"', '\\"'),
    SECRET.replace("'", "''"),
    SECRET.encode().hex(),
    SECRET.encode().hex().upper(),
], ids=["plain", "json", "json-utf8", "uri", "uri-plus", "xml", "command-line", "expression", "hex", "HEX"])
def test_each_encoded_form_is_masked_whole(form):
    assert masker(SECRET)(f"before {form} after") == "before *** after"


def test_a_quoted_secret_is_masked_without_its_quotes():
    assert masker('"quoted-secret"')("value: quoted-secret.") == "value: ***."


@pytest.mark.parametrize("prefix", ["", "u", "us"])
@pytest.mark.parametrize("urlsafe", [False, True])
def test_base64_of_a_text_holding_the_secret_is_masked_at_each_offset(prefix, urlsafe):
    data = SECRET.encode()
    encode = base64.urlsafe_b64encode if urlsafe else base64.b64encode
    encoded = encode(prefix.encode() + data).decode()
    assert any(c in base64.b64encode(prefix.encode() + data).decode() for c in "+/")  # the two alphabets differ
    lead = (0, 2, 3)[len(prefix)]  # characters mixing bits of the prefix
    full = (len(prefix) + len(data)) * 8 // 6  # characters from here on mix bits of what follows
    assert masker(SECRET)(encoded) == encoded[:lead] + "***" + encoded[full:]


def test_each_line_of_a_multi_line_secret_is_masked():
    m = masker("abcd\nsecond-line-of-it")
    assert m("x abcd y") == "x *** y" and m("z second-line-of-it") == "z ***"


def test_the_shortest_secrets_and_forms():
    assert masker("abc")("1 abc 2") == "1 *** 2"  # three characters: masked
    assert masker("abc")("YWJj") == "***"  # its base64 has four characters: masked
    assert masker("ab")("ab cd") == "ab cd"  # shorter: would mask ordinary text everywhere
    assert masker("")("text") == "text"


def test_the_longest_form_is_replaced_first():
    assert masker("abc", "abcdef")("abcdef") == "***"
    assert masker("abcdef", "abc")("abcdef abc") == "*** ***"


@given(secret=SECRETS, before=TEXT, after=TEXT)
def test_every_encoded_form_of_any_secret_is_masked_anywhere_in_a_line(secret, before, after):
    """A secret never shows in its plain, JSON, URI, hex or base64 form, whatever text is around it."""
    m = masker(secret)
    data = secret.encode()
    forms = [secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1],
             urllib.parse.quote(secret, safe="-_.~"), urllib.parse.quote_plus(secret), data.hex(),
             base64.b64encode(data).decode().rstrip("=")[:len(data) * 8 // 6]]
    for form in forms:
        if len(form) < masking.MIN_ENCODED and form != secret:
            continue
        masked = m(before + form + after)
        assert form not in masked, form
        assert "***" in masked


@given(secret=SECRETS, prefix=st.binary(max_size=5), suffix=st.binary(max_size=5))
def test_base64_of_a_text_holding_any_secret_keeps_none_of_the_characters_it_decides(secret, prefix, suffix):
    data = secret.encode()
    encoded = base64.b64encode(prefix + data + suffix).decode()
    shift = len(prefix) % 3
    start = len(prefix) // 3 * 4 + (0, 2, 3)[shift]  # the first character holding only the secret's bits
    end = (len(prefix) + len(data)) * 8 // 6  # characters from here on also hold bits of the suffix
    core = encoded[start:end]
    if len(core) >= masking.MIN_ENCODED:
        assert core not in masker(secret)(encoded)


def test_three_characters_are_masked_and_two_are_not():
    """The shortest secret masked is exactly MIN_LENGTH (3) characters: both sides of the boundary."""
    assert masking.MIN_LENGTH == 3
    assert masker("xyz")("a xyz b") == "a *** b"
    assert masker("xy")("a xy b") == "a xy b"


@given(secret=st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=3, max_size=24))
def test_a_secret_added_twice_or_with_others_is_still_masked(secret):
    m = masker(secret, "other-secret-value", secret)
    assert m(f"[{secret}] [other-secret-value]") == "[***] [***]"
