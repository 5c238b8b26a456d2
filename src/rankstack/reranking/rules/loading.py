"""Reading YAML configs with errors that name the file, the rule (index and name) and the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from rankstack.errors import ConfigError
from rankstack.io import read_yaml_mapping as read_mapping

ModelT = TypeVar("ModelT", bound=BaseModel)


def read_yaml_mapping(path: str | Path) -> dict[str, Any]:
    """The top-level mapping of a rules/re-rank YAML file (see :func:`rankstack.io.read_yaml_mapping`)."""
    return read_mapping(path, what="rules file")


def _describe(error: dict[str, Any], data: Any) -> str:
    """``rules[2] 'cap-genre' (cap), field 'max_per_slate': <message>`` from one pydantic error."""
    loc = list(error["loc"])
    parts: list[str] = []
    if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
        index = loc[1]
        raw = data.get("rules") if isinstance(data, dict) else None
        entry = raw[index] if isinstance(raw, list) and index < len(raw) else None
        label = f"rules[{index}]"
        if isinstance(entry, dict):
            if entry.get("name"):
                label += f" '{entry['name']}'"
            if isinstance(entry.get("type"), str):
                label += f" ({entry['type']})"
        parts.append(label)
        loc = loc[2:]
        if loc and isinstance(entry, dict) and loc[0] == entry.get("type"):
            loc = loc[1:]  # pydantic puts the union tag in the path
    elif loc and loc[0] == "diversity" and len(loc) >= 2 and isinstance(loc[1], str) and loc[1] in ("mmr", "dpp"):
        loc = [loc[0], *loc[2:]]
    msg = str(error["msg"]).removeprefix("Value error, ")
    kind = error["type"]
    if kind == "extra_forbidden":
        field, msg = ".".join(str(p) for p in loc[:-1]), f"unknown field '{loc[-1]}'"
    elif kind == "missing":
        field, msg = ".".join(str(p) for p in loc[:-1]), f"missing required field '{loc[-1]}'"
    elif kind in ("union_tag_invalid", "union_tag_not_found"):
        field = ".".join(str(p) for p in loc) or "type"
        field = "type" if parts and not loc else field
        msg = msg.replace("'type'", "the 'type' key")
    else:
        field = ".".join(str(p) for p in loc)
    if field:
        parts.append(f"field '{field}'")
    return (", ".join(parts) + ": " if parts else "") + msg


def validate_config(model: type[ModelT], data: dict[str, Any], source: str) -> ModelT:
    """``model.model_validate(data)``; a ValidationError becomes a ConfigError listing each problem."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = [_describe(dict(err), data) for err in exc.errors()]
        raise ConfigError(f"{source}: " + "; ".join(problems)) from None
