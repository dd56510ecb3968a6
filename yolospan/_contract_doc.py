"""Render the span contract (``yolospan.attributes``) as Markdown for ``docs/span-contract.md``.

The constants and their docstrings are the single source; the test suite fails when the
document drifts. Regenerate with ``python -m yolospan._contract_doc > docs/span-contract.md``.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from importlib import resources

_SECTION = re.compile(r"^# --- (.+?) -+$")

_INTRO = """# Span contract

Every span name and attribute key yolospan emits. Users search Jaeger and write test
assertions with these strings, so they change only with a new major version. This page is
generated from `yolospan/attributes.py`; do not edit it by hand.

Attribute values are OpenTelemetry primitives or homogeneous arrays: shapes are int arrays.
Outputs are flattened depth-first: Detect's eval output `(pred, [p3, p4, p5])` becomes
`yolospan.output.0.shape` … `yolospan.output.3.shape`. Indexed keys stop at `MAX_INDEXED`
(32) so no span comes near the SDK's 128-attribute limit; `yolospan.output.count` keeps the
true count.

Layer spans (`layers=True`) are made when their forward ends, with the times the layers really
started and ended, as children of the forward span (or of an enclosing layer's span). With the
OpenTelemetry SDK's own `TracerProvider` they are handed finished to its span processors'
`on_end`, so a span processor's `on_start` sees forward and phase spans but not layer spans. Where
none of the provider's processors does anything in `on_start` (the SDK's batch and simple
processors), forward spans too reach them finished, at `on_end` only; a processor that implements
`on_start` sees every forward span start before its module runs. Every exporter, processor and
file reader receives the same span content either way (see
[performance.md](performance.md#spans-without-the-tracer-api)).
"""


@dataclass(frozen=True)
class Entry:
    section: str
    constant: str
    value: str
    doc: str


def entries() -> list[Entry]:
    """Every string constant of the contract with its section and docstring, in source order."""
    source = resources.files("yolospan").joinpath("attributes.py").read_text(encoding="utf-8")
    sections = {}
    current = "General"
    for number, line in enumerate(source.splitlines(), start=1):
        match = _SECTION.match(line.strip())
        if match:
            current = match.group(1)
        sections[number] = current
    body = ast.parse(source).body
    found: list[Entry] = []
    for node, following in zip(body, [*body[1:], None], strict=True):
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        if not (isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)):
            continue
        doc = ""
        if isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant):
            doc = " ".join(str(following.value.value).split())
        found.append(Entry(sections[node.lineno], node.target.id, node.value.value, doc))
    return found


def render() -> str:
    lines = [_INTRO]
    section = None
    for entry in entries():
        if entry.section != section:
            section = entry.section
            lines += [
                "",
                f"## {section[:1].upper()}{section[1:]}",
                "",
                "| key | constant | meaning |",
                "|---|---|---|",
            ]
        meaning = entry.doc.replace("|", "\\|")
        lines.append(f"| `{entry.value}` | `{entry.constant}` | {meaning} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render(), end="")
