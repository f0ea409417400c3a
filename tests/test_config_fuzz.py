"""10,000 hostile bodywork.yaml documents through ``bodywork-action validate``: never exit 3.

Each document is a valid file edited in its text: values, keys and whole lines replaced by aliases and
merges, alias bombs, explicit tags, huge and non-finite numbers, control characters, tabs, unclosed
brackets, deep nesting, several documents, bytes that are not UTF-8. Every one must end with exit 0 or
2, nothing on stderr, and every problem line located (``FILE:LINE:COL: path: message``).

Examples are batches of documents, so the 10,000 documents cost Hypothesis 400 examples; the count is
checked after the run.
"""

from __future__ import annotations

import io
import re
from functools import cache
from pathlib import Path
from unittest import mock

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bodywork_action import cli

DATA = Path(__file__).parent / "data"
TEMPLATES = [
    (DATA / "bodywork_project" / "bodywork.yaml").read_text().splitlines(),
    (DATA / "seed" / "bodywork.yaml").read_text().splitlines(),
]
DOCUMENTS_PER_EXAMPLE = 25
EXAMPLES = 400

LAUGHS = "&a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"z{level}: &{chr(98 + level)} [{', '.join([f'*{chr(97 + level)}'] * 9)}]\n" for level in range(8)
)
FRAGMENTS = [
    # aliases and merges
    "&anchor value",
    "*anchor",
    "&a {x: *a}",
    "{<<: *anchor, y: 1}",
    "<<: *anchor",
    "<<: [*anchor, *anchor]",
    "&m {max_completion_time_seconds: 1, retries: 0}",
    LAUGHS,
    # explicit tags
    "!!int abc",
    "!!int 7",
    "!!float x",
    "!!float 1.5",
    "!!bool maybe",
    "!!bool yes",
    "!!timestamp 2020-13-45",
    "!!timestamp 2020-01-01",
    "!!null x",
    "!!str 5",
    "!!binary aGk=",
    "!!set {a, b}",
    "!!omap [a: 1]",
    "!!pairs [a: 1]",
    "!!python/object/apply:os.system [ls]",
    "!custom thing",
    "!<tag:example.com,2000:x> y",
    "!!map [1]",
    "!!seq {a: 1}",
    # numbers
    "9" * 5000,
    "-" + "9" * 40,
    ":".join(["59"] * 300),
    "0x" + "f" * 30,
    "0b" + "1" * 80,
    "9223372036854775808",
    ".inf",
    "-.inf",
    ".nan",
    "1.0e+400",
    "2024-01-31",
    "2020-13-45",
    "12:30:45",
    # names and strings
    '"a\\nb"',
    '"a\\rb"',
    '"\\x1b[31mred"',
    '"x\\u2028y"',
    '"\\u202eevil"',
    '"\\0"',
    "'::error::injected'",
    "joblib=1.1.0",
    "[numpy>=, 'pandas; python_version >']",
    "stage_1",
    "a >> b,c",
    ">>",
    "",
    "~",
    "yes",
    # syntax
    "[unclosed",
    "{unclosed: 1",
    '"unclosed',
    "key:value",
    "\tindented",
    "[" * 300 + "]" * 300,
    "- " * 200 + "x",
    "{a: " * 100 + "1" + "}" * 100,
    "? [complex, key]\n: 1",
    "---\nsecond: document",
    "%YAML 1.1",
    "@reserved",
    "`reserved",
    "| \n  literal",
]
RAW_INSERTS = [b"\xff\xfe", b"\x00", b"\xe9", b"\xef\xbb\xbf", b"\r\n", b"\x85", b"\xc3"]

operation = st.tuples(
    st.integers(min_value=0, max_value=60),  # line
    st.sampled_from(["value", "key", "line", "indented-line", "bytes"]),
    st.integers(min_value=0, max_value=len(FRAGMENTS) - 1),
)
document = st.tuples(
    st.integers(min_value=0, max_value=len(TEMPLATES) - 1), st.lists(operation, min_size=1, max_size=4)
)


def build(template: int, operations: list[tuple[int, str, int]]) -> bytes:
    lines = list(TEMPLATES[template])
    suffix = b""
    for line_number, kind, fragment_index in operations:
        index = line_number % len(lines)
        fragment = FRAGMENTS[fragment_index]
        line = lines[index]
        indent = line[: len(line) - len(line.lstrip())]
        key, colon, _ = line.partition(":")
        if kind == "value" and colon:
            lines[index] = f"{key}: {fragment}"
        elif kind == "key" and colon:
            lines[index] = f"{indent}{fragment}:{line.partition(':')[2]}"
        elif kind == "indented-line":
            lines.insert(index, f"{indent}x-extra: {fragment}")
        elif kind == "bytes":
            suffix += RAW_INSERTS[fragment_index % len(RAW_INSERTS)]
        else:  # a whole line, or a value or key edit on a line without a key
            lines.insert(index, fragment)
    return "\n".join(lines).encode() + b"\n" + suffix


_LOCATED = re.compile(r"^(?P<file>.+):(?P<line>[1-9][0-9]*):(?P<column>[1-9][0-9]*): (warning: )?\S.*: .+$")


def check_validate(path: Path, raw: bytes) -> None:
    path.write_bytes(raw)
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(["validate", "-f", str(path)], out=out, err=err, environ={})
    assert code in (0, 2), (code, raw[:300], err.getvalue()[-500:])
    assert err.getvalue() == ""
    lines = out.getvalue().splitlines()
    assert lines, raw[:300]
    for line in lines[:-1]:
        found = _LOCATED.match(line)
        assert found and found["file"] == str(path), line
        assert line.isprintable(), line
    shown = re.escape(str(path))
    assert re.fullmatch(rf"([0-9]+ errors? in {shown}|{shown} is valid)( \([0-9]+ warnings?\))?", lines[-1])


def test_ten_thousand_hostile_documents_never_end_in_exit_3(tmp_path: Path) -> None:
    path = tmp_path / "bodywork.yaml"
    seen = [0]

    @settings(max_examples=EXAMPLES, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(st.lists(document, min_size=DOCUMENTS_PER_EXAMPLE, max_size=DOCUMENTS_PER_EXAMPLE))
    def run(documents: list[tuple[int, list[tuple[int, str, int]]]]) -> None:
        for template, operations in documents:
            check_validate(path, build(template, operations))
            seen[0] += 1

    # The parser is built once instead of once per call: argparse's set-up is 80% of a call's cost.
    with mock.patch.object(cli, "build_parser", cache(cli.build_parser)):
        run()
    assert seen[0] >= EXAMPLES * DOCUMENTS_PER_EXAMPLE
