"""Redaction of secret values from every text that leaves the process (logs, summaries, outputs, errors).

Pure: a ``Redactor`` is built from the secret values the run knows about and replaces each occurrence,
including the base64 forms that end up in Kubernetes Secret ``data`` and in kubeconfigs. It must never
print, log or raise with a value in it — ``repr`` of both classes here shows counts only.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable

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
    """Every form of ``value`` worth redacting: itself, each long-enough line, and its base64 encodings.

    Base64 forms include the 0/1/2-byte shifted fragments (as GitHub's runner does), so the value is
    also found when it is embedded in a larger base64 blob such as a kubeconfig or a ``.dockerconfigjson``.
    """
    forms: set[str] = set()
    if len(value) < MIN_SECRET_LENGTH:
        return forms
    forms.add(value)
    for line in value.splitlines():
        stripped = line.strip()
        if len(stripped) >= MIN_SECRET_LENGTH:
            forms.add(stripped)
    raw = value.encode("utf-8")
    forms.add(base64.b64encode(raw).decode("ascii"))
    for shift in (0, 1, 2):
        forms.update(_base64_fragments(raw, shift))
    return {form for form in forms if form}


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
        # Longest first: a value that contains another must be replaced whole, not leave a tail behind.
        ordered = sorted(self._forms, key=lambda form: (-len(form), form))
        self._pattern = re.compile("|".join(re.escape(form) for form in ordered)) if ordered else None

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
