"""Check a plan file against its JSON Schema (``mame.engine.plan.schema_build``) and say what is wrong, one line an error.

Each line names the file and the line the key is on, the key path (``profiles.demo.stages.scratch.params.epoch``),
the problem, and "did you mean ...?" where a close name exists::

    experiments/plan.yaml:212: profiles.demo.stages.scratch.params.epoch: unknown key; did you mean 'epochs'?
"""

from __future__ import annotations

import difflib
from functools import lru_cache
from pathlib import Path

import jsonschema
import yaml

from mame.engine.plan.schema_build import load_schema
from mame.names import MAX_NAME_LENGTH, is_safe_name

YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's, where PyYAML has it: 10x faster


@lru_cache(maxsize=1)
def _validator() -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(load_schema())


def schema_errors(raw: object, path: Path, text: str) -> list[str]:
    """One line per problem of ``raw`` (the parsed plan) against the schema, in file order."""
    lines = _LineFinder(text)
    if lines.twice:
        return [f"{path}:{line}: {_dotted(keys)}: appears twice (also on line {first}); YAML would keep only this one"
                for keys, line, first in lines.twice]
    found = {(lines.line(keys), _dotted(keys) or "(top level)", problem)
             for error in _validator().iter_errors(raw) for keys, problem in _explain(error)}
    return [f"{path}{f':{line}' if line else ''}: {where}: {problem}"
            for line, where, problem in sorted(found, key=lambda f: (f[0] or 0, f[1]))]


def did_you_mean(name: object, choices) -> str:
    close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _dotted(keys) -> str:
    def part(key) -> str:
        if isinstance(key, int):
            return f"[{key}]"
        return f".{key}" if is_safe_name(key) and "." not in key else f"[{str(key)!r}]"
    return "".join(part(k) for k in keys).lstrip(".")


def _explain(error: jsonschema.ValidationError) -> list[tuple[list, str]]:
    """(key path, problem) pairs for one schema error: an unknown key is reported at the key itself."""
    keys, schema, kind = list(error.absolute_path), error.schema, error.validator
    if "propertyNames" in error.schema_path:  # a key's own name is wrong: report it at the key
        return [(keys + [error.instance], _name_problem(error))]
    if kind == "additionalProperties" and isinstance(error.instance, dict):
        allowed = list(schema.get("properties", {}))
        return [(keys + [k], _unknown_key(k, allowed)) for k in error.instance if k not in allowed]
    if kind == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        return [(keys, f"missing key {missing!r}")]
    return [(keys, _value_problem(error))]


def _unknown_key(key: object, allowed: list[str]) -> str:
    hint = did_you_mean(key, allowed)
    if hint:
        return f"unknown key{hint}"
    known = ", ".join(allowed) if len(allowed) <= 12 else f"{len(allowed)} keys, listed in experiments/plan-keys.md"
    return f"unknown key (known: {known})"


def _name_problem(error: jsonschema.ValidationError) -> str:
    if error.validator == "enum":
        names = [v for v in error.schema["enum"] if v is not None]
        return f"unknown name {error.instance!r}{did_you_mean(error.instance, names)} (known: {', '.join(names)})"
    if error.validator in ("pattern", "maxLength"):
        return (f"{error.instance!r} is not a safe name (letters, digits, '.', '_' and '-', starting with a letter or "
                f"digit, at most {MAX_NAME_LENGTH} characters): names become folder names")
    return _value_problem(error)


_TYPE_WORDS = {"integer": "an integer", "number": "a number", "string": "a string", "boolean": "true or false",
               "array": "a list", "object": "a mapping", "null": "null"}


def _value_problem(error: jsonschema.ValidationError) -> str:
    kind, value, schema = error.validator, error.instance, error.schema
    if kind == "type":
        wanted = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        return f"expected {' or '.join(_TYPE_WORDS.get(t, t) for t in wanted)}, not {value!r}"
    if kind in ("enum", "const"):
        options = schema["enum"] if kind == "enum" else [schema["const"]]
        shown = ", ".join("null" if o is None else repr(o) for o in options)
        return f"{value!r} is not one of {shown}{did_you_mean(value, [o for o in options if o is not None])}"
    bounds = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}
    if kind in bounds:
        return f"must be {bounds[kind]} {schema[kind]}, not {value!r}"
    if kind in ("minItems", "minProperties"):
        return f"must not be empty ({kind} {schema[kind]}), not {value!r}"
    if kind == "uniqueItems":
        return f"lists an entry twice: {value!r}"
    if kind == "pattern":
        return f"{value!r} does not match {schema['pattern']}"
    if kind in ("anyOf", "oneOf") and error.context:
        return _value_problem(jsonschema.exceptions.best_match(error.context))
    return error.message


class _LineFinder:
    """The 1-based line of a key path in the YAML text (the key's own line), or None."""

    def __init__(self, text: str):
        try:
            self.root = yaml.compose(text, Loader=YAML_LOADER)
        except yaml.YAMLError:
            self.root = None
        self.twice: list[tuple[list, int, int]] = []  # (key path, line, line of the first) of keys written twice
        self._find_twice(self.root, [])

    def _find_twice(self, node, keys: list) -> None:
        if isinstance(node, yaml.MappingNode):
            seen: dict[str, int] = {}
            for key, value in node.value:
                line = key.start_mark.line + 1
                if key.value in seen:
                    self.twice.append((keys + [key.value], line, seen[key.value]))
                seen.setdefault(key.value, line)
                self._find_twice(value, keys + [key.value])
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self._find_twice(item, keys + [i])

    def line(self, keys) -> int | None:
        node, line = self.root, None
        for key in keys:
            if isinstance(node, yaml.MappingNode):
                pair = next(((k, v) for k, v in node.value if k.value == str(key)), None)
                if pair is None:
                    return line
                line, node = pair[0].start_mark.line + 1, pair[1]
            elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
                node = node.value[key]
                line = node.start_mark.line + 1
            else:
                return line
        return line if line is not None else (node.start_mark.line + 1 if node is not None and keys else None)


def locator(path: Path, text: str):
    """``at(keys, problem)``: one error line for the key path ``keys`` of the plan in ``path`` (the text is parsed
    for line numbers only when there is an error to place)."""
    lines: list[_LineFinder] = []

    def at(keys, problem: str) -> str:
        lines[:] = lines or [_LineFinder(text)]
        line = lines[0].line(keys)
        return f"{path}{f':{line}' if line else ''}: {_dotted(keys)}: {problem}"
    return at
