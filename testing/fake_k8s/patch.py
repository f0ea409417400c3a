"""JSON merge patch (RFC 7386), a strategic-merge patch for the common list keys, and JSON patch."""

from __future__ import annotations

from typing import Any

import jsonpatch

from .json_data import deep_copy

# list field name -> merge key(s); the first key present in an element is used
MERGE_KEYS: dict[str, tuple[str, ...]] = {
    "containers": ("name",),
    "initContainers": ("name",),
    "ephemeralContainers": ("name",),
    "env": ("name",),
    "volumes": ("name",),
    "imagePullSecrets": ("name",),
    "volumeMounts": ("mountPath",),
    "volumeDevices": ("devicePath",),
    "ports": ("containerPort", "port"),
    "conditions": ("type",),
    "ownerReferences": ("uid",),
    "hostAliases": ("ip",),
    "topologySpreadConstraints": ("topologyKey",),
}
# lists of scalars merged as sets
SET_LISTS = {"finalizers"}


class PatchError(ValueError):
    pass


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return deep_copy(patch)
    result = deep_copy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def json_patch(target: Any, ops: Any) -> Any:
    if not isinstance(ops, list):
        raise PatchError("a JSON patch must be a list of operations")
    try:
        return jsonpatch.apply_patch(target, ops)
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
        raise PatchError(str(exc)) from exc


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        raise PatchError("a strategic merge patch must be a JSON object")
    return _smp_map(target if isinstance(target, dict) else {}, patch)


def _smp_map(target: dict, patch: dict) -> dict:
    directive = patch.get("$patch")
    if directive == "replace":
        return {k: deep_copy(v) for k, v in patch.items() if not k.startswith("$")}
    if directive == "delete":
        return {}
    result = deep_copy(target)
    for key, value in patch.items():
        if key.startswith("$"):  # $setElementOrder/..., $retainKeys, $deleteFromPrimitiveList/...
            if key.startswith("$deleteFromPrimitiveList/"):
                field = key.split("/", 1)[1]
                result[field] = [x for x in result.get(field, []) if x not in value]
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            current = result.get(key)
            result[key] = _smp_map(current if isinstance(current, dict) else {}, value)
        elif isinstance(value, list) and isinstance(result.get(key), list):
            result[key] = _smp_list(key, result[key], value)
        else:
            result[key] = _strip_directives(value)
    return result


def _merge_key(field: str, element: dict) -> str | None:
    for key in MERGE_KEYS.get(field, ()):
        if key in element:
            return key
    return None


def _smp_list(field: str, target: list, patch: list) -> list:
    if field in SET_LISTS:
        out = list(target)
        out.extend(x for x in patch if x not in out)
        return out
    if field not in MERGE_KEYS:
        return _strip_directives(patch)
    # a {"$patch": "replace"} element replaces the whole list
    if any(isinstance(p, dict) and p.get("$patch") == "replace" for p in patch):
        return [_strip_directives(p) for p in patch if not (isinstance(p, dict) and "$patch" in p)]
    result = deep_copy(target)
    for element in patch:
        if not isinstance(element, dict):
            raise PatchError(f"list {field!r} must hold objects")
        key = _merge_key(field, element)
        if key is None:
            raise PatchError(f"an element of {field!r} lacks its merge key {MERGE_KEYS[field][0]!r}")
        index = next(
            (i for i, e in enumerate(result) if isinstance(e, dict) and e.get(key) == element[key]), None
        )
        if element.get("$patch") == "delete":
            if index is not None:
                del result[index]
        elif index is None:
            result.append(_strip_directives(element))
        else:
            result[index] = _smp_map(result[index], element)
    return result


def _strip_directives(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_directives(v) for k, v in value.items() if not k.startswith("$") and v is not None}
    if isinstance(value, list):
        return [_strip_directives(v) for v in value]
    return value


def apply_patch(content_type: str, target: dict, body: Any) -> dict:
    ctype = content_type.split(";")[0].strip().lower()
    if ctype == "application/json-patch+json":
        result = json_patch(target, body)
    elif ctype == "application/merge-patch+json":
        result = merge_patch(target, body)
    elif ctype == "application/strategic-merge-patch+json":
        result = strategic_merge_patch(target, body)
    else:
        raise LookupError(ctype)
    if not isinstance(result, dict):
        raise PatchError("the patch did not produce an object")
    return result
