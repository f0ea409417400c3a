"""The Redactor and SecretValue: every form of a secret is replaced, nothing else is touched."""

from __future__ import annotations

import base64
import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bodywork_action.redact import MIN_SECRET_LENGTH, REDACTED, Redactor, SecretValue
from testing.secret_encodings import AWKWARD_SECRET as AWKWARD
from testing.secret_encodings import secret_encodings

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


# ------------------------------------------------------------------------------------------- encodings


@pytest.mark.parametrize(
    "value", [CANARY, AWKWARD, "s3://bucket/canary root"], ids=["plain", "awkward", "url"]
)
def test_every_common_encoding_of_a_value_is_replaced_whole(value: str) -> None:
    redactor = Redactor([value])
    encodings = secret_encodings(value)
    if value == AWKWARD:  # the awkward value really exercises every encoding: none leaves it as it is
        assert value not in encodings.values()
    for name, encoded in encodings.items():
        redacted = redactor.redact(f"before {encoded} after")
        assert redacted == f"before {REDACTED} after", name


def test_an_encoded_value_inside_a_larger_encoded_text_is_replaced() -> None:
    import json
    import urllib.parse

    redactor = Redactor([AWKWARD])
    url = "https://host/login?" + urllib.parse.urlencode({"user": "me", "password": AWKWARD, "next": "/"})
    document = json.dumps({"config": {"password": AWKWARD, "user": "me"}})
    hexdump = ("user=me;password=" + AWKWARD + ";").encode().hex()
    for text in (url, document, hexdump, hexdump.upper()):
        redacted = redactor.redact(text)
        assert REDACTED in redacted
        assert AWKWARD not in urllib.parse.unquote_plus(redacted)
        assert AWKWARD not in redacted.replace("\\/", "/").encode().decode("unicode_escape", "replace")
    assert "user=me" in redactor.redact(url)  # the rest of the URL stays readable


def test_encoded_forms_of_a_short_value_are_not_redacted() -> None:
    # The short-value rule holds for every encoding: "eu" is not hidden as "6575" or "ZXU" either.
    redactor = Redactor(["eu", "ab/"])
    for text in ("region eu", "6575", "ZXU=", "ab%2F", "616232f"):
        assert redactor.redact(text) == text


def test_ordinary_text_is_not_touched_by_the_encoded_forms() -> None:
    redactor = Redactor([CANARY, AWKWARD])
    text = "2026-12-02 19:48:11 INFO GET /health 200 sha 0123456789abcdef0123456789abcdef01234567"
    assert redactor.redact(text) == text


def test_many_values_compile_into_one_pattern_that_still_finds_each_one() -> None:
    values = [f"canary-{i:03d}-value" for i in range(300)]
    redactor = Redactor(values)
    text = " ".join(values[::7])
    assert set(redactor.redact(text).split()) == {REDACTED}


def test_a_long_multiline_value_builds_and_is_redacted() -> None:
    # A PEM-sized value: the pattern is built without recursing once per character.
    body = "".join(f"MIIE{i:04d}" for i in range(600))
    pem = "-----BEGIN KEY-----\n" + body + "\n-----END KEY-----"
    redactor = Redactor([pem])
    assert redactor.redact(f"key: {pem}") == f"key: {REDACTED}"
    assert redactor.redact(base64.b64encode(pem.encode()).decode()) == REDACTED


@given(
    secret=st.text(alphabet=st.characters(min_codepoint=9, max_codepoint=0x2FF), min_size=MIN_SECRET_LENGTH),
    encoding=st.sampled_from(sorted(secret_encodings(CANARY))),
    before=st.text(alphabet=" ,;:=&?", max_size=5),
)
def test_no_encoded_secret_survives_redaction(secret: str, encoding: str, before: str) -> None:
    encoded = secret_encodings(secret)[encoding]
    assert encoded not in Redactor([secret]).redact(before + encoded + before)
