"""The JSON Schema of flow files, made from the pydantic models: for editors and checks.

Editors (the YAML language server) read scalars by YAML 1.2: ``2024`` is a number there,
``yes`` text. flow-airflow keeps every scalar as the text written, so the schema accepts what
the loader accepts: any scalar where text is expected, and numbers and booleans also as text
(``"3"``, ``yes``) where pydantic converts them. Blank keys mean "not set". Keys of another task
type load with a warning; the schema marks them deprecated. Rules over the whole flow (titles,
relations, references) are only checked by ``flow-airflow validate``.
"""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from flow_airflow.spec import models

DIALECT = "https://json-schema.org/draft/2020-12/schema"
_SCALAR_TYPES = ["string", "number", "boolean"]
_INTEGER_TEXT = r"^\s*[-+]?[0-9][0-9_]*(\.0*)?\s*$"
_NUMBER_TEXT = r"^\s*[-+]?([0-9][0-9_]*)?(\.[0-9_]*)?([eE][-+]?[0-9]+)?\s*$"
_BOOLEAN_TEXT = "^([Tt]rue|TRUE|[Ff]alse|FALSE|[Yy]es|YES|[Nn]o|NO|[Oo]n|ON|[Oo]ff|OFF|[tTfFyYnN]|1|0)$"
_TASKS = {"exec": "ExecTask", "data": "DataTask", "deploy": "DeployTask"}


class _AsWritten(GenerateJsonSchema):
    """Scalar types as a flow file may write them."""

    def str_schema(self, schema: core_schema.StringSchema) -> JsonSchemaValue:
        return {**super().str_schema(schema), "type": _SCALAR_TYPES}

    def int_schema(self, schema: core_schema.IntSchema) -> JsonSchemaValue:
        return {"anyOf": [super().int_schema(schema), {"type": "string", "pattern": _INTEGER_TEXT}]}

    def float_schema(self, schema: core_schema.FloatSchema) -> JsonSchemaValue:
        return {"anyOf": [super().float_schema(schema), {"type": "string", "pattern": _NUMBER_TEXT}]}

    def bool_schema(self, schema: core_schema.BoolSchema) -> JsonSchemaValue:
        return {"anyOf": [{"type": "boolean"}, {"enum": [0, 1]}, {"type": "string", "pattern": _BOOLEAN_TEXT}]}

    def union_schema(self, schema: core_schema.UnionSchema) -> JsonSchemaValue:
        """``str | int | float | bool`` is any scalar: one choice instead of eight."""
        result = super().union_schema(schema)
        choices = result.get("anyOf", [])
        if not any(c.get("type") == _SCALAR_TYPES for c in choices):
            return result
        rest = [c for c in choices if not _is_scalar(c)]
        if not rest:
            return {k: v for k, v in result.items() if k != "anyOf"} | {"type": _SCALAR_TYPES}
        return {**result, "anyOf": [{"type": _SCALAR_TYPES}, *rest]}


def _is_scalar(choice: dict[str, Any]) -> bool:
    if "anyOf" in choice:
        return all(_is_scalar(c) for c in choice["anyOf"])
    if "enum" in choice:
        return all(isinstance(v, str | int | float | bool) for v in choice["enum"])
    kind = choice.get("type")
    return kind == _SCALAR_TYPES or kind in ("string", "number", "integer", "boolean")


def flow_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a flow file, in the documented and the blueprint dialect."""
    schema = models.Flow.model_json_schema(schema_generator=_AsWritten)
    for name, definition in schema.get("$defs", {}).items():
        _blank_means_not_set(definition)
        if name in _TASKS.values():
            _other_types_keys(name, definition, schema["$defs"])
    _blank_means_not_set(schema)
    schema["oneOf"] = [
        {"title": "documented format (flow:)", "required": ["flow", "tasks", "relations"],
         "not": {"required": ["title"]}},
        {"title": "blueprint format (title:)", "required": ["title", "tasks"], "not": {"required": ["flow"]}},
    ]
    schema["not"] = {"required": ["schedule", "recurring"]}
    return {"$schema": DIALECT, **schema, "title": "cnvrg flow file (flow-airflow)"}


def _blank_means_not_set(definition: dict[str, Any]) -> None:
    """An optional key left blank (``description:``) is not set: allow null for each."""
    required = set(definition.get("required", []))
    for key, prop in definition.get("properties", {}).items():
        if key in required or _allows_null(prop):
            continue
        definition["properties"][key] = {"anyOf": [prop, {"type": "null"}]}


def _allows_null(prop: dict[str, Any]) -> bool:
    return not prop or prop.get("type") == "null" or any(_allows_null(p) for p in prop.get("anyOf", []))


def _other_types_keys(name: str, definition: dict[str, Any], definitions: dict[str, Any]) -> None:
    """Keys of another task type: accepted with a warning ("no effect"), so deprecated here."""
    own = definition["properties"]
    kind = next(k for k, v in _TASKS.items() if v == name)
    for other_kind, other in _TASKS.items():
        for key in definitions[other]["properties"]:
            if key not in own:
                own[key] = {"deprecated": True,
                            "description": f"a key of {other_kind} tasks: it has no effect on {kind} tasks"}
