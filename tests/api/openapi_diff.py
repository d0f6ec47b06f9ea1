"""Breaking changes between two OpenAPI 3.1 documents (oasdiff's main rules, in Python).

The maintained tools are not Python (oasdiff and pb33f's openapi-changes are Go, Azure's
openapi-diff and openapi-diff on npm are Node); the Python ones found (kryptorious-apiguard,
a single-file "specdiff") are one-author projects with a paid tier or no package, and
openapi-spec-validator checks one document, not two. So the rules are here, small, and
tested on hand-made before/after pairs (tests/api/test_openapi_diff.py).

Breaking, for a client written against `old`:
- a path or an operation removed;
- a parameter removed, added as required, or made required;
- a parameter or request body field that accepts fewer types or fewer enum values;
- a request body field added as required;
- a success status removed; a property of a success body removed, or one that may now
  hold a type it could not before (a string becoming nullable is breaking for a reader).
"""

from __future__ import annotations

from typing import Any

METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
MAX_DEPTH = 8  # recursive schemas (a tree of items) stop here


def _resolve(doc: dict, schema: dict) -> dict:
    seen = 0
    while "$ref" in schema and seen < 20:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
        seen += 1
    return schema


def _alternatives(doc: dict, schema: dict) -> list[dict]:
    schema = _resolve(doc, schema)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return [alt for item in schema[key] for alt in _alternatives(doc, item)]
    return [schema]


def _types(doc: dict, schema: dict) -> frozenset[str]:
    found: set[str] = set()
    for alt in _alternatives(doc, schema):
        kind = alt.get("type")
        if isinstance(kind, list):
            found.update(kind)
        elif kind:
            found.add(kind)
        elif "properties" in alt:
            found.add("object")
        elif "const" in alt or "enum" in alt:
            found.add("string")
        else:
            found.add("any")
    return frozenset(found)


def _covers(wider: frozenset[str], narrower: frozenset[str]) -> bool:
    """Every type of `narrower` is one of `wider` (an integer is a number)."""
    if "any" in wider:
        return True
    return all(t in wider or (t == "integer" and "number" in wider) for t in narrower)


def _enum(doc: dict, schema: dict) -> set | None:
    """The values allowed, or None when any value of its type is."""
    values: set = set()
    for alt in _alternatives(doc, schema):
        if "enum" in alt:
            values.update(map(str, alt["enum"]))
        elif "const" in alt:
            values.add(str(alt["const"]))
        elif alt.get("type") != "null":
            return None
    return values


def _narrowed(old_doc, old, new_doc, new, where: str) -> list[str]:
    """Input (a parameter, a body field): breaking when it accepts less."""
    problems = []
    before, after = _types(old_doc, old), _types(new_doc, new)
    if not _covers(after, before):
        problems.append(f"{where}: accepts {sorted(after)}, accepted {sorted(before)}")
    old_values, new_values = _enum(old_doc, old), _enum(new_doc, new)
    if new_values is not None and (old_values is None or old_values - new_values):
        gone = sorted(old_values - new_values) if old_values else ["(any value)"]
        problems.append(f"{where}: enum value(s) removed: {', '.join(gone)}")
    return problems


def _output(old_doc, old, new_doc, new, where: str, depth: int = 0) -> list[str]:
    """Output (a success body): breaking when a property goes or may hold a new type."""
    if depth > MAX_DEPTH:
        return []
    before, after = _types(old_doc, old), _types(new_doc, new)
    if not _covers(before, after):
        return [f"{where}: may now be {sorted(after - before)}, was {sorted(before)}"]
    problems = []
    old_props = _properties(old_doc, old)
    new_props = _properties(new_doc, new)
    for name, schema in old_props.items():
        if name not in new_props:
            problems.append(f"{where}.{name}: property removed")
        else:
            problems += _output(old_doc, schema, new_doc, new_props[name], f"{where}.{name}",
                                depth + 1)  # fmt: skip
    old_items, new_items = _items(old_doc, old), _items(new_doc, new)
    if old_items is not None and new_items is not None:
        problems += _output(old_doc, old_items, new_doc, new_items, f"{where}[]", depth + 1)
    return problems


def _properties(doc: dict, schema: dict) -> dict[str, dict]:
    found: dict[str, dict] = {}
    for alt in _alternatives(doc, schema):
        found.update(alt.get("properties", {}))
    return found


def _items(doc: dict, schema: dict) -> dict | None:
    for alt in _alternatives(doc, schema):
        if "items" in alt:
            return alt["items"]
    return None


def _json_schema(part: dict) -> dict | None:
    content = part.get("content", {})
    media = content.get("application/json") or next(iter(content.values()), None)
    return media.get("schema") if media else None


def _parameters(operation: dict) -> dict[tuple[str, str], dict]:
    return {(p["in"], p["name"]): p for p in operation.get("parameters", [])}


def _body_changes(old_doc, old_op, new_doc, new_op, name: str) -> list[str]:
    old_body, new_body = old_op.get("requestBody"), new_op.get("requestBody")
    if new_body is None:
        return []
    if old_body is None:
        return [f"{name}: a request body is now required"] if new_body.get("required") else []
    old_schema, new_schema = _json_schema(old_body), _json_schema(new_body)
    if old_schema is None or new_schema is None:
        return []
    problems = []
    old_required = {r for a in _alternatives(old_doc, old_schema) for r in a.get("required", [])}
    new_props = _properties(new_doc, new_schema)
    for alt in _alternatives(new_doc, new_schema):
        for field in set(alt.get("required", [])) - old_required:
            problems.append(f"{name}: body field {field} is now required")
    for field, schema in _properties(old_doc, old_schema).items():
        if field in new_props:
            problems += _narrowed(old_doc, schema, new_doc, new_props[field],
                                  f"{name}: body field {field}")  # fmt: skip
        elif _resolve(new_doc, new_schema).get("additionalProperties") is False:
            problems.append(f"{name}: body field {field} removed")
    return problems


def _operation_changes(old_doc, old_op, new_doc, new_op, name: str) -> list[str]:
    problems = []
    old_params, new_params = _parameters(old_op), _parameters(new_op)
    for key, param in new_params.items():
        if param.get("required") and not old_params.get(key, {}).get("required"):
            state = "added as required" if key not in old_params else "now required"
            problems.append(f"{name}: {key[0]} parameter {key[1]} {state}")
    for key, param in old_params.items():
        if key not in new_params:
            problems.append(f"{name}: {key[0]} parameter {key[1]} removed")
        else:
            problems += _narrowed(old_doc, param.get("schema", {}), new_doc,
                                  new_params[key].get("schema", {}),
                                  f"{name}: {key[0]} parameter {key[1]}")  # fmt: skip
    problems += _body_changes(old_doc, old_op, new_doc, new_op, name)
    new_responses = new_op.get("responses", {})
    for status, response in old_op.get("responses", {}).items():
        if not status.startswith("2"):
            continue
        if status not in new_responses:
            problems.append(f"{name}: response {status} removed")
            continue
        old_schema, new_schema = _json_schema(response), _json_schema(new_responses[status])
        if old_schema is not None and new_schema is not None:
            problems += _output(old_doc, old_schema, new_doc, new_schema,
                                f"{name}: response {status} body")  # fmt: skip
    return problems


def breaking_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Each breaking change from `old` to `new`, one readable line each."""
    problems = []
    new_paths = new.get("paths", {})
    for path, item in old.get("paths", {}).items():
        if path not in new_paths:
            problems.append(f"{path}: path removed")
            continue
        for method in METHODS:
            if method not in item:
                continue
            name = f"{method.upper()} {path}"
            if method not in new_paths[path]:
                problems.append(f"{name}: operation removed")
                continue
            problems += _operation_changes(old, item[method], new, new_paths[path][method], name)
    return problems
