"""Load YAML config files and turn validation errors into `file:line: reason` messages."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

Model = TypeVar("Model", bound=BaseModel)


class ConfigError(ValueError):
    """A config file that cannot be used; names the file, the line and the reason."""

    def __init__(self, path: Path | str, line: int | None, reason: str) -> None:
        self.path = str(path)
        self.line = line
        self.reason = reason
        where = f"{self.path}:{line}" if line else self.path
        super().__init__(f"{where}: {reason}")


def line_of(node: yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    """Follow a pydantic error location through the YAML node tree to a 1-based line."""
    if node is None:
        return None
    best = node.start_mark.line + 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if key_node.value == str(part):
                    best = key_node.start_mark.line + 1
                    node = value_node
                    break
            else:
                return best
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                return best
            node = node.value[part]
            best = node.start_mark.line + 1
        else:
            return best
    return best


def read_yaml(path: Path) -> tuple[Any, yaml.Node | None]:
    """Parse a YAML file, returning its data and its node tree (for line numbers)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(path, None, "file not found") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(path, None, f"not UTF-8 text ({exc.reason})") from exc
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        raise ConfigError(path, line, f"invalid YAML: {exc.problem}") from exc
    return data, node


def load_model(path: Path, model: type[Model], *, defaults: dict[str, Any] | None = None) -> Model:
    """Read `path` and validate it as `model`; the first error names its line.

    `defaults` fill keys the file leaves out (a campaign's key comes from its file name).
    """
    data, node = read_yaml(path)
    if data is None:
        raise ConfigError(path, None, "file is empty")
    if not isinstance(data, dict):
        raise ConfigError(
            path, 1, f"expected a mapping at the top level, got {type(data).__name__}"
        )
    try:
        return model.model_validate({**(defaults or {}), **data})
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = tuple(error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        pointed = re.match(r"^([A-Za-z_][\w]*(?:\.\w+)*): (.*)$", message, re.DOTALL)
        if pointed:  # a whole-model check naming the field it is about
            loc += tuple(int(p) if p.isdigit() else p for p in pointed.group(1).split("."))
            message = pointed.group(2)
        field = ".".join(str(part) for part in loc) or "(top level)"
        more = f" (and {exc.error_count() - 1} more problem(s))" if exc.error_count() > 1 else ""
        raise ConfigError(path, line_of(node, loc), f"{field}: {message}{more}") from exc
