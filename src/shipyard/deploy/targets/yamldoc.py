"""YAML as the targets write it: PyYAML's safe dumper, the key order of the code (fixed, so
two renders are identical), and multi-line strings (PromQL, shell scripts) as literal blocks
that read as written."""

from __future__ import annotations

from typing import Any


def dump_yaml(doc: Any) -> str:
    import yaml

    # no anchors: a step two jobs share is written out in each (as a reader expects)
    dumper: Any = type("LiteralDumper", (yaml.SafeDumper,), {"ignore_aliases": _no_aliases})

    def text(dumper: Any, value: str) -> Any:
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    dumper.add_representer(str, text)
    out: str = yaml.dump(doc, Dumper=dumper, sort_keys=False, width=4096, default_flow_style=False)
    return out


def _no_aliases(self: Any, data: Any) -> bool:
    return True
