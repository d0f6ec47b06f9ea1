"""The breaking-change rules (tests/api/openapi_diff.py) on hand-made before/after pairs."""

from __future__ import annotations

import copy

import pytest

from tests.api.openapi_diff import breaking_changes


def _document() -> dict:
    status = {"anyOf": [{"type": "string", "enum": ["success", "failed"]}, {"type": "null"}]}
    return {
        "openapi": "3.1.0",
        "paths": {
            "/items": {
                "get": {
                    "parameters": [
                        {"in": "query", "name": "status", "required": False, "schema": status},
                        {"in": "query", "name": "limit", "schema": {"type": "integer"}},
                    ],
                    "responses": {
                        "200": {"content": {"application/json": {"schema": {
                            "$ref": "#/components/schemas/Page"}}}},
                        "401": {"description": "no token"},
                    },
                },
                "post": {
                    "requestBody": {"required": True, "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/NewItem"}}}},
                    "responses": {"201": {"description": "made"}},
                },
            },
            "/other": {"get": {"responses": {"200": {"description": "ok"}}}},
        },
        "components": {"schemas": {
            "Page": {"type": "object", "properties": {
                "items": {"type": "array", "items": {"$ref": "#/components/schemas/Item"}},
                "next_cursor": {"anyOf": [{"type": "string"}, {"type": "null"}]}}},
            "Item": {"type": "object", "properties": {
                "id": {"type": "string"}, "duration": {"type": "number"}}},
            "NewItem": {"type": "object", "required": ["name"], "properties": {
                "name": {"type": "string"},
                "kind": {"type": "string", "enum": ["a", "b"]}}},
        }},
    }  # fmt: skip


def _changed(change) -> list[str]:
    before = _document()
    after = copy.deepcopy(before)
    change(after)
    return breaking_changes(before, after)


def _schemas(doc: dict) -> dict:
    return doc["components"]["schemas"]


def _get(doc: dict) -> dict:
    return doc["paths"]["/items"]["get"]


BREAKING = {
    "path removed": (lambda d: d["paths"].pop("/other"), "/other: path removed"),
    "operation removed": (lambda d: d["paths"]["/items"].pop("post"),
                          "POST /items: operation removed"),
    "required parameter added": (
        lambda d: _get(d)["parameters"].append(
            {"in": "query", "name": "team", "required": True, "schema": {"type": "string"}}),
        "GET /items: query parameter team added as required"),
    "parameter made required": (
        lambda d: _get(d)["parameters"][0].update(required=True),
        "GET /items: query parameter status now required"),
    "parameter removed": (lambda d: _get(d)["parameters"].pop(1),
                          "GET /items: query parameter limit removed"),
    "parameter type narrowed": (
        lambda d: _get(d)["parameters"][1].update(schema={"type": "boolean"}),
        "GET /items: query parameter limit: accepts ['boolean'], accepted ['integer']"),
    "parameter enum value removed": (
        lambda d: _get(d)["parameters"][0]["schema"]["anyOf"][0].update(enum=["success"]),
        "GET /items: query parameter status: enum value(s) removed: failed"),
    "response property removed": (
        lambda d: _schemas(d)["Item"]["properties"].pop("duration"),
        "GET /items: response 200 body.items[].duration: property removed"),
    "response property type changed": (
        lambda d: _schemas(d)["Item"]["properties"].update(id={"type": "integer"}),
        "GET /items: response 200 body.items[].id: may now be ['integer'], was ['string']"),
    "response property made nullable": (
        lambda d: _schemas(d)["Item"]["properties"].update(
            duration={"anyOf": [{"type": "number"}, {"type": "null"}]}),
        "GET /items: response 200 body.items[].duration: may now be ['null']"),
    "success status removed": (
        lambda d: _get(d)["responses"].pop("200"), "GET /items: response 200 removed"),
    "body field required": (
        lambda d: _schemas(d)["NewItem"]["required"].append("kind"),
        "POST /items: body field kind is now required"),
    "body enum value removed": (
        lambda d: _schemas(d)["NewItem"]["properties"]["kind"].update(enum=["a"]),
        "POST /items: body field kind: enum value(s) removed: b"),
}  # fmt: skip


@pytest.mark.parametrize("case", BREAKING)
def test_a_breaking_change_is_named(case) -> None:
    change, expected = BREAKING[case]
    found = _changed(change)
    assert any(line.startswith(expected) for line in found), found


COMPATIBLE = {
    "path added": lambda d: d["paths"].update({"/new": {"get": {"responses": {}}}}),
    "optional parameter added": lambda d: _get(d)["parameters"].append(
        {"in": "query", "name": "q", "schema": {"type": "string"}}),
    "response property added": lambda d: _schemas(d)["Item"]["properties"].update(
        name={"type": "string"}),
    "error response added": lambda d: _get(d)["responses"].update({"429": {}}),
    "error response removed": lambda d: _get(d)["responses"].pop("401"),
    "parameter enum value added": lambda d: _get(d)["parameters"][0]["schema"]["anyOf"][0]
    .update(enum=["success", "failed", "running"]),
    "parameter widened to number": lambda d: _get(d)["parameters"][1].update(
        schema={"type": "number"}),
    "optional body field added": lambda d: _schemas(d)["NewItem"]["properties"].update(
        note={"type": "string"}),
    "response nullable made non-null": lambda d: _schemas(d)["Page"]["properties"].update(
        next_cursor={"type": "string"}),
}  # fmt: skip


@pytest.mark.parametrize("case", COMPATIBLE)
def test_a_compatible_change_is_not_breaking(case) -> None:
    assert _changed(COMPATIBLE[case]) == []
