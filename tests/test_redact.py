"""The Redactor and SecretValue: every form of a secret is replaced, nothing else is touched."""

from __future__ import annotations

import base64
import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bodywork_action.redact import MIN_SECRET_LENGTH, REDACTED, Redactor, SecretValue

CANARY = "canary-Zq81-postgres-password"


def test_plain_value_is_replaced_everywhere_it_occurs() -> None:
    redactor = Redactor([CANARY])
    text = f"connecting with {CANARY} ... retry with {CANARY}"
    assert redactor.redact(text) == f"connecting with {REDACTED} ... retry with {REDACTED}"


def test_text_without_secrets_is_returned_unchanged() -> None:
    redactor = Redactor([CANARY])
    assert redactor.redact("nothing to see here") == "nothing to see here"
    assert Redactor().redact("anything") == "anything"


def test_empty_and_short_values_are_skipped_and_counted() -> None:
    redactor = Redactor(["", "ab", "x" * (MIN_SECRET_LENGTH - 1), CANARY])
    assert redactor.skipped_short_values == 2  # "" is absent, not short
    assert redactor.redact("ab ab xxx") == "ab ab xxx"


def test_longest_value_wins_when_one_contains_another() -> None:
    inner = "secret-token"
    outer = "prefix-secret-token-suffix"
    redactor = Redactor([inner, outer])
    assert redactor.redact(f"a {outer} b {inner}") == f"a {REDACTED} b {REDACTED}"


def test_base64_form_of_the_value_is_replaced() -> None:
    encoded = base64.b64encode(CANARY.encode()).decode()
    redactor = Redactor([CANARY])
    assert CANARY not in redactor.redact(f"data: {encoded}")
    assert encoded not in redactor.redact(f"data: {encoded}")


@pytest.mark.parametrize("prefix", [b"", b"a", b"ab", b"abc", b"abcd", b'{"auths": '])
def test_value_embedded_in_a_larger_base64_blob_is_replaced(prefix: bytes) -> None:
    blob = base64.b64encode(prefix + CANARY.encode() + b" trailing bytes").decode()
    redacted = Redactor([CANARY]).redact(blob)
    assert REDACTED in redacted
    # Nothing of the secret can be recovered: no decodable window of the remaining text contains it.
    for start in range(4):
        chunk = redacted.split(REDACTED)
        for piece in chunk:
            trimmed = piece[start:]
            trimmed = trimmed[: len(trimmed) - len(trimmed) % 4]
            try:
                decoded = base64.b64decode(trimmed)
            except ValueError:
                continue
            assert CANARY.encode() not in decoded


def test_each_line_of_a_multiline_value_is_replaced() -> None:
    pem = "-----BEGIN KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END KEY-----"
    redactor = Redactor([pem])
    logged = "loaded key line: MIIEvQIBADANBgkqhkiG9w0BAQEFAASC"
    assert "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC" not in redactor.redact(logged)


def test_with_values_keeps_the_old_values_and_adds_new_ones() -> None:
    first = Redactor([CANARY])
    both = first.with_values(["another-secret-1"])
    assert both.redact(f"{CANARY} another-secret-1") == f"{REDACTED} {REDACTED}"
    assert first.redact("another-secret-1") == "another-secret-1"


def test_redactor_repr_shows_no_value() -> None:
    assert CANARY not in repr(Redactor([CANARY]))


def test_secret_value_never_shows_its_content() -> None:
    secret = SecretValue(CANARY)
    shown = [str(secret), repr(secret), f"{secret}", f"{secret!r}", "%s" % (secret,), format(secret, "")]  # noqa: UP031
    assert all(CANARY not in text for text in shown)
    assert repr([secret]) == f"[SecretValue({REDACTED})]"
    assert secret.reveal() == CANARY
    assert len(secret) == len(CANARY)


def test_secret_values_compare_by_content_and_refuse_pickling() -> None:
    assert SecretValue(CANARY) == SecretValue(CANARY)
    assert SecretValue(CANARY) != SecretValue("other-value")
    assert len({SecretValue(CANARY), SecretValue(CANARY)}) == 1
    with pytest.raises(TypeError):
        pickle.dumps(SecretValue(CANARY))


def test_redactor_accepts_secret_values() -> None:
    assert Redactor([SecretValue(CANARY)]).redact(CANARY) == REDACTED


@given(
    secret=st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=0x2FF), min_size=MIN_SECRET_LENGTH),
    before=st.text(max_size=30),
    after=st.text(max_size=30),
)
def test_no_secret_survives_redaction(secret: str, before: str, after: str) -> None:
    assert secret not in Redactor([secret]).redact(before + secret + after)
