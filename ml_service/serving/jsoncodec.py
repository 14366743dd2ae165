"""JSON on the request path: the standard library's C encoder and scanner, built once instead of every call.

json.dumps builds a new C encoder object on every call, and json.loads checks the encoding and matches two
regular expressions around the scan: on a one-row request these wrappers cost more than the encoding itself
(bench/serving.py profiles about 1.5 us saved an encode, 1 us a parse). The output is byte for byte what
json.dumps gives with the same separators (ASCII, NaN allowed as json.dumps allows it, no circular check:
every value here comes from a JSON parse or from results.py, which returns plain lists); errors and any body
the fast path does not handle go through json.loads itself, so messages do not change.
"""
from __future__ import annotations

import json
from json import encoder, scanner

_decoder = json.JSONDecoder()
_scan = scanner.make_scanner(_decoder)


def _unserialisable(value: object):
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def make_encoder(item_separator: str, key_separator: str):
    """A function value -> JSON text, as json.dumps(value, separators=(item_separator, key_separator))."""
    if encoder.c_make_encoder is None:  # an interpreter without the C accelerator
        return json.JSONEncoder(separators=(item_separator, key_separator)).encode
    chunks = encoder.c_make_encoder(None, _unserialisable, encoder.encode_basestring_ascii, None, key_separator,
                                    item_separator, False, False, True)

    def encode(value: object) -> str:
        return "".join(chunks(value, 0))
    return encode


COMPACT = make_encoder(",", ":")  # log lines and collected records
string = encoder.encode_basestring_ascii  # a str as a JSON string, as both encoders write it
dumps = make_encoder(", ", ": ")  # response bodies, as json.dumps writes them


def loads(body: bytes) -> object:
    """json.loads(body), faster for the common body: UTF-8 text that starts with '{' and has nothing after
    the value. Anything else (other encodings, whitespace around the value, invalid JSON) is json.loads's."""
    if body[:1] == b"{" and body[1:2] != b"\x00":  # json.detect_encoding: UTF-8
        try:
            text = body.decode()
            value, end = _scan(text, 0)
            if end == len(text):
                return value
        except (StopIteration, ValueError):
            pass
    return json.loads(body)
