"""The trigger form: one DAG ``Param`` per JobSpec field, with the JSON schema pydantic derives.

The conf of a run *is* the job spec (flat but for the ``finishing`` object, a JSON field in the form), so the
UI form, ``airflow dags trigger --conf`` and the REST API all take the same JSON, and Airflow refuses a bad
conf before the run is created (REST answers 400).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from airflow.sdk import Param
from pydantic import BaseModel

from video_pipeline.models import JobSpec

#: Fields the form shows first: what the job is, then its content; the settings follow.
FORM_FIRST = ("job_id", "title", "script", "segments")


def _inline_refs(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        if "$ref" in node:
            return _inline_refs(copy.deepcopy(defs[node["$ref"].rsplit("/", 1)[-1]]), defs)
        return {k: _inline_refs(v, defs) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline_refs(v, defs) for v in node]
    return node


def _nullable_to_type_list(schema: dict[str, Any]) -> dict[str, Any]:
    """``anyOf: [X, {type: null}]`` → X with ``type: [X.type, "null"]``: the form renders that as a field."""
    options = schema.get("anyOf")
    if not options or len(options) != 2 or {"type": "null"} not in options:
        return schema
    (inner,) = [o for o in options if o != {"type": "null"}]
    if "type" not in inner:
        return schema
    merged = {k: v for k, v in schema.items() if k != "anyOf"}
    merged.update(inner)
    merged["type"] = [inner["type"], "null"]
    return merged


def _field_default(name: str) -> Any:
    """A field's default as JSON (a nested model such as ``finishing`` becomes its dict of defaults)."""
    default = JobSpec.model_fields[name].get_default(call_default_factory=True)
    return default.model_dump(mode="json") if isinstance(default, BaseModel) else default


def job_spec_params(example: Path) -> dict[str, Param]:
    """Params for every JobSpec field, defaulting to the example job so the form starts filled in."""
    schema = JobSpec.model_json_schema()
    defaults = json.loads(example.read_text())
    required = set(schema.get("required", []))
    params: dict[str, Param] = {}
    properties = schema["properties"]
    first = [name for name in FORM_FIRST if name in properties]  # pydantic lists a subclass's fields last
    for name in [*first, *(n for n in properties if n not in first)]:
        prop = properties[name]
        prop = _nullable_to_type_list(_inline_refs(prop, schema.get("$defs", {})))
        prop.pop("default", None)
        title = prop.pop("title", name)
        default = defaults[name] if name in defaults else _field_default(name)
        if name not in required and default is None and "null" not in str(prop.get("type")):
            prop["type"] = [prop["type"], "null"] if "type" in prop else prop.get("type")
        params[name] = Param(default, title=title, **prop)
    return params
