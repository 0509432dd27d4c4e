"""``experiments/plan-keys.md``: every key of plan.yaml with its type, range and default, from the schema and the
notebooks' parameters cells. ``python -m mame.engine.plan.reference`` (``make docs``) writes it and the schema file."""

from __future__ import annotations

import json
from pathlib import Path

from mame import config
from mame.engine.plan.schema_build import KEYS_DOC, PARAMETERS, SCHEMA_FILE, build_schema, schema_text

_TYPES = {"integer": "integer", "number": "number", "string": "text", "boolean": "true/false", "array": "list",
          "object": "mapping", "null": "null"}


def describe(schema: dict) -> tuple[str, str]:
    """(type, range or values) of one property's schema, as the reference shows them."""
    if "$ref" in schema:
        return "mapping", "see " + schema["$ref"].rsplit("/", 1)[-1].replace("_", " ")
    if "const" in schema:
        return "text", repr(schema["const"])
    if "enum" in schema:
        return "one of", ", ".join("null" if v is None else str(v) for v in schema["enum"])
    if "anyOf" in schema:
        parts = [describe(s) for s in schema["anyOf"]]
        return " or ".join(t for t, _ in parts), "; ".join(r for _, r in parts if r)
    kinds = schema.get("type", "")
    kind = " or ".join(_TYPES[t] for t in (kinds if isinstance(kinds, list) else [kinds]) if t)
    return kind, _range(schema)


def _range(schema: dict) -> str:
    parts = [f"{sign} {schema[key]}" for key, sign in (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤"),
                                                       ("exclusiveMaximum", "<")) if key in schema]
    if "items" in schema:
        item_kind, item_range = describe(schema["items"])
        parts.append(f"items: {item_kind}{' ' + item_range if item_range else ''}")
    if schema.get("minItems"):
        parts.append(f"at least {schema['minItems']} item")
    return ", ".join(parts)


def _table(properties: dict, required=()) -> list[str]:
    rows = ["| key | type | range / values | default | what it is |", "| --- | --- | --- | --- | --- |"]
    for key, schema in properties.items():
        kind, span = describe(schema)
        default = "required" if key in required else (f"`{json.dumps(schema['default'])}`" if "default" in schema else "")
        rows.append(f"| `{key}` | {kind} | {span} | {default} | {schema.get('description', '')} |")
    return rows


def _defaults(plan_stages: dict) -> dict[str, dict[str, object]]:
    """parameter -> {stage: the default of that stage's notebook}."""
    from mame.engine.plan.load import notebook_parameters

    out: dict[str, dict[str, object]] = {}
    for stage, spec in plan_stages.items():
        for key, value in notebook_parameters(config.EXPERIMENTS_DIR / spec["notebook"]).items():
            out.setdefault(key, {})[stage] = value
    return out


def _show(value) -> str:
    return "null" if value is None else str(value).replace("True", "true").replace("False", "false")


def _parameter_rows(defaults: dict) -> list[str]:
    rows = ["| parameter | type | range / values | default (per notebook) | what it is |", "| --- | --- | --- | --- | --- |"]
    for key, schema in PARAMETERS.items():
        kind, span = describe(schema)
        per_stage = defaults.get(key, {})
        shown = {_show(v) for v in per_stage.values()}
        default = next(iter(shown)) if len(shown) == 1 else "; ".join(f"{s}: {_show(v)}" for s, v in per_stage.items())
        rows.append(f"| `{key}` | {kind} | {span} | `{default}` | {schema.get('description', '')} |".replace("`; ", "; "))
    return rows


def keys_markdown(plan_stages: dict) -> str:
    schema = build_schema()
    defs, top = schema["definitions"], schema["properties"]
    lines = [
        "# plan.yaml: every key", "",
        "Generated from `mame/engine/plan/schema_build.py` and the notebooks' `parameters` cells by `make docs`; a test "
        "fails when it is out of date. The same rules are in `mame/engine/schema/plan.schema.json`, which "
        "`plan.yaml`'s first line hands to YAML language servers, so an editor underlines a mistake as it is typed. "
        "`python -m mame check` checks the plan without running anything; `run`, `report`, `status` and `estimate` "
        "check it before they start. Names (stages, variants, profiles) are safe path parts: letters, digits, "
        "`.`, `_` and `-`, starting with a letter or digit.", "",
        "## Top level", "", *_table(top, schema["required"]), "",
        "## `stages.<stage>`", "", f"Stages: {', '.join(f'`{s}`' for s in top['stages']['propertyNames']['enum'])}.", "",
        *_table(defs["stage"]["properties"], defs["stage"]["required"]), "",
        "## `stages.<stage>.variants.<variant>`", "",
        "A variant holds only what differs from its notebook's `parameters` cell (any parameter below that the "
        "stage's notebook declares), plus these reserved keys:", "",
        *_table({k: v for k, v in defs["variant"]["properties"].items() if k not in PARAMETERS}), "",
        "## `profiles.<profile>`", "", *_table(defs["profile"]["properties"], defs["profile"]["required"]), "",
        "### `data` (source: synthetic)", "", *_table(defs["data"]["then"]["properties"], defs["data"]["then"]["required"]), "",
        "### `data` (source: mame)", "", *_table(defs["data"]["else"]["then"]["properties"]), "",
        "### `timeouts`", "", *_table(defs["profile"]["properties"]["timeouts"]["properties"]), "",
        "### `report`", "", *_table(defs["profile"]["properties"]["report"]["properties"]), "",
        "### `resources`", "", *_table(defs["profile"]["properties"]["resources"]["properties"]), "",
        "### `stages.<stage>`", "", *_table(defs["profile_stage"]["properties"]), "",
        "## Parameters", "",
        "Set in a variant, or in a profile's `params` / `force` (every stage whose notebook declares it) or its "
        "`stages.<stage>.params` / `force`. A name must be a parameter of the notebook it goes to (of some stage's "
        "notebook, for a profile's own `params` / `force`): `python -m mame check` names any other, with the closest "
        "one. The schema knows the types and ranges of the shipped notebooks' parameters below; a notebook of your "
        "own may declare more. Resolution order: notebook default "
        "< profile `params` < `stages.<stage>.params` < variant < profile `force` < `stages.<stage>.force`.", "",
        *_parameter_rows(_defaults(plan_stages)), "",
    ]
    return "\n".join(lines)


def write(out_dir: Path | None = None) -> list[Path]:
    """Write the schema file and this reference (``make docs``); ``out_dir``: elsewhere, for the test that they are current."""
    import yaml

    stages = yaml.safe_load((config.EXPERIMENTS_DIR / "plan.yaml").read_text(encoding="utf-8"))["stages"]
    schema_path = (out_dir / SCHEMA_FILE.name) if out_dir else SCHEMA_FILE
    doc_path = (out_dir / KEYS_DOC.name) if out_dir else KEYS_DOC
    schema_path.write_text(schema_text(), encoding="utf-8")
    doc_path.write_text(keys_markdown(stages), encoding="utf-8")
    return [schema_path, doc_path]


if __name__ == "__main__":
    for written in write():
        print(written)
