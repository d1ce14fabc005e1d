"""The trigger form: one DAG ``Param`` per JobSpec field, with the JSON schema pydantic derives.

The conf of a run *is* the job spec (flat but for the ``finishing`` object, a JSON field in the form), so the
UI form, ``airflow dags trigger --conf`` and the REST API all take the same JSON, and Airflow refuses a bad
conf before the run is created (REST answers 400).

Airflow lays a run's conf over the Params' defaults, so a default is part of every spec that leaves the field
out. Each Param's default is therefore the spec's own default (``seed`` 0, ``approval`` both, no script, no
segments), never an example's value: the demo's segments merged into a script job made it refuse "give exactly
one of 'script' or 'segments'", and a spec without a ``job_id`` ran as the demo. The required fields
(``job_id``, ``title``) have no default: a conf without them is refused with the field named (REST 400). The
form still offers the example: as suggestions on the text fields and as a sample in the help of ``segments``.
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


#: The JSON Schema dialect every Param declares. Airflow validates each Param with ``jsonschema.validate``,
#: which first checks the schema itself against its dialect's meta-schema, and does so whenever a task builds
#: its context: four times per task (OpenLineage's listener asks for the context three more times). Without a
#: ``$schema`` that is draft 2020-12, whose meta-schema check made up most of the 28 % of a task process's CPU
#: spent in ``process_params`` (py-spy, two e2e tests); with draft 7 a validation of all Params takes 6.8 ms
#: instead of 21.8 (cold process, 6 segments). Pydantic's schemas here use nothing newer than draft 7
#: (``tests/plugins/test_params.py`` checks).
JSON_SCHEMA_DIALECT = "http://json-schema.org/draft-07/schema#"

#: How many of the example's segments the help of ``segments`` shows.
EXAMPLE_SEGMENTS = 2


def _offer_example(name: str, prop: dict[str, Any], example: dict[str, Any]) -> None:
    """Show the example's value in the form without making it the field's value: a suggestion list on text
    fields, a sample in the help of ``segments`` (its JSON editor would turn ``examples`` into a pick list)."""
    value = example.get(name)
    if value is None:
        return
    if name == "segments":
        sample = json.dumps(value[:EXAMPLE_SEGMENTS], indent=2, ensure_ascii=False)
        prop["description_md"] = (
            f"{prop.pop('description', '')} A list of objects with `prompt` (required), `motion_prompt`, "
            f'`narration` (spoken by the job\'s `voice`) and `duration_s` (2–10, or `"auto"`: as long as the narration '
            f"is spoken); leave empty for a `script` job. For example:\n\n"
            f"```json\n{sample}\n```"
        )
        prop["description"] = None
    elif prop.get("type") in ("string", ["string", "null"]) and "enum" not in prop and "const" not in prop:
        prop["examples"] = [value]


def job_spec_params(example: Path) -> dict[str, Param]:
    """Params for every JobSpec field: the spec's own defaults (none for the required fields), with the
    example job offered as suggestions."""
    schema = JobSpec.model_json_schema()
    sample = json.loads(example.read_text())
    required = set(schema.get("required", []))
    params: dict[str, Param] = {}
    properties = schema["properties"]
    first = [name for name in FORM_FIRST if name in properties]  # pydantic lists a subclass's fields last
    for name in [*first, *(n for n in properties if n not in first)]:
        prop = properties[name]
        prop = _nullable_to_type_list(_inline_refs(prop, schema.get("$defs", {})))
        prop.pop("default", None)
        title = prop.pop("title", name)
        prop["$schema"] = JSON_SCHEMA_DIALECT
        if name == "script":
            prop["format"] = "multiline"  # a text area in the form
        _offer_example(name, prop, sample)
        if name in required:
            params[name] = Param(title=title, **prop)  # no default: a conf without it is refused
            continue
        default = _field_default(name)
        if default is None and "null" not in str(prop.get("type")):
            prop["type"] = [prop["type"], "null"] if "type" in prop else prop.get("type")
        params[name] = Param(default, title=title, **prop)
    return params
