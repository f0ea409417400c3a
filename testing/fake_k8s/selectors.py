"""Label and field selectors, as the apiserver parses them (the common subset)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

_TERM = re.compile(
    r"""\s*(?:
        (?P<not>!)\s*(?P<nkey>[^\s,!=()]+)                                     # !key
      | (?P<skey>[^\s,!=()]+)\s+(?P<setop>in|notin)\s*\((?P<values>[^)]*)\)    # key in (a,b)
      | (?P<key>[^\s,!=()]+)\s*(?P<op>==|=|!=)\s*(?P<value>[^\s,!=()]*)        # key=value
      | (?P<ekey>[^\s,!=()]+)                                                  # key
    )\s*(?:,|$)""",
    re.VERBOSE,
)


class SelectorError(ValueError):
    pass


def _terms(selector: str):
    pos = 0
    selector = selector.strip()
    while pos < len(selector):
        m = _TERM.match(selector, pos)
        if not m or m.end() == pos:
            raise SelectorError(f"unable to parse requirement: {selector[pos:]!r}")
        pos = m.end()
        yield m


def label_selector(selector: str | None) -> Callable[[dict], bool]:
    """Compile `a=b,c!=d,e in (f,g),!h,i` into a predicate over a labels dict."""
    if not selector or not selector.strip():
        return lambda labels: True
    checks: list[Callable[[dict], bool]] = []
    for m in _terms(selector):
        if m["nkey"]:
            checks.append(lambda lb, k=m["nkey"]: k not in lb)
        elif m["skey"]:
            values = {v.strip() for v in m["values"].split(",") if v.strip()}
            if m["setop"] == "in":
                checks.append(lambda lb, k=m["skey"], vs=values: lb.get(k) in vs)
            else:
                checks.append(lambda lb, k=m["skey"], vs=values: lb.get(k) not in vs)
        elif m["key"]:
            if m["op"] == "!=":
                checks.append(lambda lb, k=m["key"], v=m["value"]: lb.get(k) != v)
            else:
                checks.append(lambda lb, k=m["key"], v=m["value"]: lb.get(k) == v)
        else:
            checks.append(lambda lb, k=m["ekey"]: k in lb)
    return lambda labels: all(c(labels or {}) for c in checks)


def match_labels_selector(selector: dict | None) -> Callable[[dict], bool]:
    """Compile a LabelSelector object ({matchLabels, matchExpressions})."""
    selector = selector or {}
    parts = [f"{k}={v}" for k, v in (selector.get("matchLabels") or {}).items()]
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op in ("In", "NotIn"):
            parts.append(f"{key} {op.lower()} ({','.join(values)})")
        elif op == "Exists":
            parts.append(key)
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
    return label_selector(",".join(parts))


def _field_value(obj: dict, path: str) -> Any:
    value: Any = obj
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def field_selector(selector: str | None) -> Callable[[dict], bool]:
    """Compile `metadata.name=x,status.phase!=Running` into a predicate over an object."""
    if not selector or not selector.strip():
        return lambda obj: True
    checks: list[Callable[[dict], bool]] = []
    for m in _terms(selector):
        if not m["key"]:
            raise SelectorError(f"invalid field selector: {selector!r}")

        def check(obj, path=m["key"], op=m["op"], want=m["value"]):
            got = _field_value(obj, path)
            got = "" if got is None else str(got).lower() if isinstance(got, bool) else str(got)
            return got != want if op == "!=" else got == want

        checks.append(check)
    return lambda obj: all(c(obj) for c in checks)
