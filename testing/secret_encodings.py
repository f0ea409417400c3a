"""Every common encoding of a secret value, as code that leaks it would print it: for the canary tests.

Named so a failing test says which form leaked. The redactor (``bodywork_action/redact.py``) must hide
each of them; the tests build them independently of it, with the standard library.
"""

from __future__ import annotations

import base64
import json
import urllib.parse

# A value every encoding changes: "@", "/", space, "+", "%", quotes, a backslash, a tab and non-ASCII.
AWKWARD_SECRET = 'p@ss w/rd%+&="q"\\\tÉ-canary'


def secret_encodings(value: str) -> dict[str, str]:
    """encoding name → ``value`` so encoded (URL quote and quote_plus with both escape cases, hex in
    both cases, base64 and base64url with and without padding, JSON string content)."""
    raw = value.encode("utf-8")
    quoted = {
        "quote": urllib.parse.quote(value),
        "quote-safe-none": urllib.parse.quote(value, safe=""),
        "quote-js": urllib.parse.quote(value, safe="!'()*"),
        "quote_plus": urllib.parse.quote_plus(value),
        "quote_plus-slash": urllib.parse.quote_plus(value, safe="/"),
    }
    return {
        **quoted,
        **{f"{name}-lower": text.lower() for name, text in quoted.items() if "%" in text},
        "hex": raw.hex(),
        "HEX": raw.hex().upper(),
        "base64": base64.b64encode(raw).decode(),
        "base64-unpadded": base64.b64encode(raw).decode().rstrip("="),
        "base64url": base64.urlsafe_b64encode(raw).decode(),
        "base64url-unpadded": base64.urlsafe_b64encode(raw).decode().rstrip("="),
        "json": json.dumps(value)[1:-1],
        "json-utf8": json.dumps(value, ensure_ascii=False)[1:-1],
        "json-slash": json.dumps(value)[1:-1].replace("/", "\\/"),
    }
