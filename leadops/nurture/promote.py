"""Promote an A/B test's winner: the edit to the campaign file that gives every new lead
the winning variant, shown as a diff to review and written only when asked.

The edit sets the other variants' `weight:` to 0 and the winner's to 1, touching only
those lines (comments and layout stay). Leads already enrolled keep the campaign version
they enrolled in, and touches already planned keep the variant they recorded, so the
change applies to leads who enroll after it; the results keep counting every variant.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path

import yaml

from leadops.core.configfile import ConfigError, read_yaml
from leadops.delivery.campaigns import load_campaign


@dataclass(frozen=True)
class Promotion:
    path: Path
    before: str
    after: str

    @property
    def diff(self) -> str:
        name = str(self.path)
        return "".join(
            difflib.unified_diff(
                self.before.splitlines(keepends=True),
                self.after.splitlines(keepends=True),
                fromfile=name,
                tofile=name,
            )
        )

    def write(self) -> None:
        self.path.write_text(self.after, encoding="utf-8")
        load_campaign(self.path)  # the file written is still a valid campaign


def _key(mapping: yaml.MappingNode, name: str) -> tuple[yaml.Node, yaml.Node] | None:
    for key, value in mapping.value:
        if key.value == name:
            return key, value
    return None


def _variants_node(path: Path, node: yaml.Node | None, step: str) -> yaml.SequenceNode:
    steps = _key(node, "steps") if isinstance(node, yaml.MappingNode) else None
    if steps is None or not isinstance(steps[1], yaml.SequenceNode):
        raise ConfigError(path, None, "no steps")
    for item in steps[1].value:
        found = _key(item, "key") if isinstance(item, yaml.MappingNode) else None
        if found is not None and found[1].value == step:
            variants = _key(item, "variants")
            if variants is None or not isinstance(variants[1], yaml.SequenceNode):
                line = item.start_mark.line + 1
                raise ConfigError(path, line, f"step {step!r} has no variants")
            return variants[1]
    raise ConfigError(path, None, f"no step {step!r}")


def promotion(path: Path, step: str, winner: str) -> Promotion:
    """The edit of campaign file `path` that sends `winner` to every new lead on `step`."""
    campaign = load_campaign(path)
    keys = [variant.key for variant in campaign.step(step).variants]
    if not keys:
        raise ConfigError(path, None, f"step {step!r} has no variants")
    if winner not in keys:
        raise ConfigError(path, None, f"step {step!r} has no variant {winner!r} (has {keys})")
    text = path.read_text(encoding="utf-8")
    _, node = read_yaml(path)
    lines = text.splitlines(keepends=True)
    edits: dict[int, str] = {}  # line index -> the new line (a weight)
    inserts: dict[int, str] = {}  # line index -> a line to add after it
    for item in _variants_node(path, node, step).value:
        assert isinstance(item, yaml.MappingNode)
        key = _key(item, "key")
        assert key is not None
        weight = "1" if key[1].value == winner else "0"
        found = _key(item, "weight")
        if found is not None:
            line, start = found[1].start_mark.line, found[1].start_mark.column
            end = found[1].end_mark.column
            edits[line] = lines[line][:start] + weight + lines[line][end:]
        elif item.flow_style:
            raise ConfigError(
                path, item.start_mark.line + 1, "give each variant a `weight:` to promote"
            )
        else:
            line, column = key[0].start_mark.line, key[0].start_mark.column
            inserts[line] = " " * column + f"weight: {weight}\n"
    out = []
    for index, line in enumerate(lines):
        out.append(edits.get(index, line))
        if index in inserts:
            out.append(inserts[index])
    return Promotion(path, text, "".join(out))
