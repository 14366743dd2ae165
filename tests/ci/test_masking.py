"""Every form the masker promises to hide a secret in is hidden, exactly: the agent's encoders (base64 at the
three offsets, base64url, JSON, URI, XML, command-line and expression escapes, quotes stripped), hex, each line
of a multi-line secret; and the longest form first, so nothing of a secret is left beside its stars."""
import base64
import json
import urllib.parse

import pytest

from ml_service.ci.masking import Masker

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
