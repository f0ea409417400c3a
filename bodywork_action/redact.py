"""Redaction of secret values from every text that leaves the process (logs, summaries, outputs, errors).

Pure: a ``Redactor`` is built from the secret values the run knows about and replaces each occurrence,
including the base64 forms that end up in Kubernetes Secret ``data`` and in kubeconfigs. It must never
print, log or raise with a value in it — ``repr`` of both classes here shows counts only.
"""

from __future__ import annotations

import base64
import json
import re
import urllib.parse
from collections.abc import Iterable
from typing import Any

REDACTED = "***"  # what GitHub's own masking prints, so both look the same in a log

# Shorter values ("1", "yes", "eu") occur in ordinary text: replacing them would wreck every log while
# hiding nothing an attacker could not guess. GitHub's runner makes the same trade-off for tiny values.
MIN_SECRET_LENGTH = 4

# A base64 fragment shorter than this is too likely to occur by chance inside unrelated base64 text.
MIN_BASE64_FORM_LENGTH = 8


class SecretValue:
    """A secret held so that ``str``, ``repr``, ``format`` and f-strings never show it; ``reveal()`` does."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"SecretValue({REDACTED})"

    def __str__(self) -> str:
        return REDACTED

    def __format__(self, format_spec: str) -> str:
        return REDACTED

    def __len__(self) -> int:
        return len(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, SecretValue):
            return self._value == other._value
        return NotImplemented

    def __hash__(self) -> int:
        return hash(("SecretValue", self._value))

    def __reduce__(self) -> tuple[object, ...]:
        # Pickling would write the value somewhere we do not control (multiprocessing, caches).
        raise TypeError("SecretValue cannot be pickled")


def build_secret_forms(value: str) -> set[str]:
    """Every form of ``value`` worth redacting: itself and each long-enough line, each in every encoding
    a log commonly shows (``encoded_forms``), and the base64 fragments of the whole value.

    Base64 forms include the 0/1/2-byte shifted fragments (as GitHub's runner does), so the value is
    also found when it is embedded in a larger base64 blob such as a kubeconfig or a ``.dockerconfigjson``.
    """
    forms: set[str] = set()
    if len(value) < MIN_SECRET_LENGTH:
        return forms
    pieces = {value}
    for line in value.splitlines():
        stripped = line.strip()
        if len(stripped) >= MIN_SECRET_LENGTH:
            pieces.add(stripped)
    for piece in pieces:
        forms |= encoded_forms(piece)
    raw = value.encode("utf-8")
    for shift in (0, 1, 2):
        forms.update(_base64_fragments(raw, shift))
    return {form for form in forms if len(form) >= MIN_SECRET_LENGTH}


def encoded_forms(text: str) -> set[str]:
    """``text`` as written and as the common encodings write it, each form whole:

    - URL-encoded: ``quote`` (``safe`` "/", "" and JavaScript's ``encodeURIComponent`` set) and
      ``quote_plus`` (space as ``+``), each with upper- and lower-case escapes;
    - hex of the UTF-8 bytes, lower and upper case;
    - base64 and base64url, with and without ``=`` padding;
    - JSON string content (``json.dumps`` with and without ``ensure_ascii``, and ``/`` escaped as ``\\/``).
    """
    raw = text.encode("utf-8")
    url_forms = {
        *(urllib.parse.quote(text, safe=safe) for safe in ("", "/", "!'()*")),
        *(urllib.parse.quote_plus(text, safe=safe) for safe in ("", "/")),
    }
    forms = {text, raw.hex(), raw.hex().upper()}
    forms |= url_forms | {_lower_percent_escapes(form) for form in url_forms}
    for encoded in (base64.b64encode(raw).decode("ascii"), base64.urlsafe_b64encode(raw).decode("ascii")):
        forms |= {encoded, encoded.rstrip("=")}
    for ensure_ascii in (True, False):
        escaped = json.dumps(text, ensure_ascii=ensure_ascii)[1:-1]
        forms |= {escaped, escaped.replace("/", "\\/")}
    return forms


_PERCENT_ESCAPE = re.compile("%[0-9A-F]{2}")


def _lower_percent_escapes(text: str) -> str:
    return _PERCENT_ESCAPE.sub(lambda match: match.group(0).lower(), text)


def _base64_fragments(raw: bytes, shift: int) -> set[str]:
    """Base64 characters fully determined by ``raw`` when it starts ``shift`` bytes into a 3-byte group."""
    if len(raw) <= 3:
        return set()
    # Prefix with ``shift`` dummy bytes, encode, then drop the characters the dummy bytes touch.
    padded = bytes(shift) + raw
    encoded = base64.b64encode(padded).decode("ascii").rstrip("=")
    first_clean_char = {0: 0, 1: 2, 2: 3}[shift]  # first char not mixing dummy bits
    total_bits = len(padded) * 8
    last_clean_char = total_bits // 6  # characters made only of real bits (the tail may mix in padding)
    fragment = encoded[first_clean_char:last_clean_char]
    forms = {fragment} if len(fragment) >= MIN_BASE64_FORM_LENGTH else set()
    urlsafe = fragment.replace("+", "-").replace("/", "_")
    if urlsafe != fragment and len(urlsafe) >= MIN_BASE64_FORM_LENGTH:
        forms.add(urlsafe)
    return forms


class Redactor:
    """Replaces every known secret form in a text with ``***``; longest forms first."""

    __slots__ = ("_forms", "_pattern", "_skipped_short", "_values")

    def __init__(self, values: Iterable[str | SecretValue] = ()) -> None:
        plain_values = tuple(v.reveal() if isinstance(v, SecretValue) else v for v in values)
        self._values = tuple(dict.fromkeys(v for v in plain_values if v))
        forms: set[str] = set()
        skipped = 0
        for value in self._values:
            found = build_secret_forms(value)
            if not found:
                skipped += 1
            forms |= found
        self._forms = frozenset(forms)
        self._skipped_short = skipped
        self._pattern = _compile_forms(self._forms) if self._forms else None

    def with_values(self, values: Iterable[str | SecretValue]) -> Redactor:
        """A new redactor that also knows ``values``."""
        return Redactor([*self._values, *values])

    @property
    def skipped_short_values(self) -> int:
        """How many non-empty values were too short to redact (reported, never shown)."""
        return self._skipped_short

    def __len__(self) -> int:
        return len(self._forms)

    def __repr__(self) -> str:
        return f"Redactor({len(self._forms)} forms)"

    def redact(self, text: str) -> str:
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(REDACTED, text)


def _compile_forms(forms: Iterable[str]) -> re.Pattern[str]:
    """One regular expression matching every form, the longest one where several start at one place (a
    value that contains another is replaced whole, no tail left behind).

    The alternatives are a trie (``ab(?:c|d(?:ef)?)``) rather than a flat ``abc|abd|abdef`` list: at each
    position the engine follows one branch per character instead of trying every form, so a log costs
    about the same with 40 forms as with 400.
    """
    trie: dict[str, Any] = {}
    for form in forms:
        node = trie
        for char in form:
            node = node.setdefault(char, {})
        node[_END] = {}
    try:
        return re.compile(_trie_regex(trie))
    except (RecursionError, re.error, OverflowError):  # pathologically deep trie: the flat list
        ordered = sorted(forms, key=lambda form: (-len(form), form))
        return re.compile("|".join(re.escape(form) for form in ordered))


_END = ""  # the trie key marking that a form ends at this node (no form character is empty)


def _trie_regex(node: dict[str, Any]) -> str:
    """The regex of a trie node: a run of single-child nodes as literal text, then the branches; a form
    ending here makes what follows optional, and greedy, so the longer form is tried first."""
    literal: list[str] = []
    while len(node) == 1 and _END not in node:
        ((char, node),) = node.items()
        literal.append(re.escape(char))
    ends = _END in node
    branches = [re.escape(char) + _trie_regex(child) for char, child in sorted(node.items()) if char != _END]
    if not branches:
        return "".join(literal)
    rest = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
    if ends:
        rest = f"(?:{rest})?" if len(branches) == 1 else f"{rest}?"
    return "".join(literal) + rest
