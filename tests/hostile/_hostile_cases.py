"""The hostile-input corpus: command lines a careless or malicious user could type, and what each
must end with. Every case runs in its own folder (its working directory and $HOME); ``files``
are created there first. Unless a case says otherwise it must exit 2 with exactly one line on
stderr that contains ``names`` (the input at fault), and never a traceback.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

__all__ = ["CASES", "FIFO", "Case", "Link"]


class _Fifo:
    def __repr__(self) -> str:
        return "FIFO"


FIFO = _Fifo()
"""A ``files`` value: make a named pipe nobody writes to."""


@dataclass(frozen=True)
class Link:
    """A ``files`` value: a symbolic link to ``target``."""

    target: str


@dataclass(frozen=True)
class Case:
    id: str
    argv: tuple[str, ...]
    names: str
    """Text the stderr line must contain: the input at fault (a path, an option, a variable)."""
    files: dict[str, object] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    status: int = 2
    lines: int | None = 1
    """Exact number of non-blank stderr lines; None: not checked."""
    absent: tuple[str, ...] = ()
    """Text that must appear in neither stdout nor stderr (a secret, a success message)."""
    memory_mb: int = 2048
    timeout_s: float = 90.0


# --- material ------------------------------------------------------------------------------------

ROW1 = "[-1, 1, Conv, [64, 3, 2]]"
HEAD = "[[3, 4], 1, Detect, [nc, anchors]]"


def tiny(
    *,
    nc: str = "2",
    depth: str = "0.33",
    width: str = "0.25",
    anchors: str = "[[10,13, 16,30, 33,23], [30,61, 62,45, 59,119]]",
    row1: str = ROW1,
    c3: str = "[-1, 1, C3, [64]]",
    head: str = HEAD,
    extra: str = "",
) -> str:
    """A small valid config (strides 8 and 16), with any part replaced."""
    return (
        f"nc: {nc}\ndepth_multiple: {depth}\nwidth_multiple: {width}\nanchors: {anchors}\n{extra}"
        "backbone:\n"
        f"  [[-1, 1, Conv, [32, 3, 2]],\n   {row1},\n   {c3},\n"
        "   [-1, 1, Conv, [128, 3, 2]],\n   [-1, 1, Conv, [256, 3, 2]],\n  ]\n"
        f"head:\n  [{head}]\n"
    )


def _bomb(levels: int = 10, fan: int = 10) -> str:
    """A "billion laughs" flow sequence of 1 KB: anchors a0..a9, each fanning out into the
    previous one, so the last stands for fan**levels strings once expanded."""
    items = ["&a0 [lol]"]
    for level in range(1, levels):
        items.append(f"&a{level} [" + ",".join([f"*a{level - 1}"] * fan) + "]")
    return "[" + ", ".join(items) + "]"


_BOMB = _bomb()


def _bomb_config(where: str) -> str:
    """The bomb as a config's value: the issue's reproductions, each in a different place."""
    return {
        "nc": tiny(nc=_BOMB),
        "inplace": tiny(extra=f"inplace: {_BOMB}\n"),
        "c3": tiny(c3=f"[-1, 1, C3, [64, {_BOMB}]]"),
        "anchors": tiny(anchors=f"[{_BOMB}, {_BOMB}]"),
        "anchor-level": tiny(anchors=f"[[10, 13], {_BOMB}]"),
        "backbone": tiny().replace("backbone:\n  [[-1, 1, Conv, [32, 3, 2]],", f"backbone:\n  [{_BOMB},"),
    }[where]


_SPAN = {
    "traceId": "0123456789abcdef0123456789abcdef",
    "spanId": "0123456789abcdef",
    "name": "forward",
    "kind": 1,
    "startTimeUnixNano": "1000",
    "endTimeUnixNano": "2000",
    "attributes": [{"key": "yolospan.phase", "value": {"stringValue": "build"}}],
    "status": {},
}


def _request(spans: list[dict[str, object]]) -> str:
    return json.dumps({"resourceSpans": [{"resource": {}, "scopeSpans": [{"scope": {}, "spans": spans}]}]})


TRACE = _request([_SPAN]) + "\n"


def _deep_attribute(depth: int) -> str:
    value = '{"arrayValue": {"values": [' * depth + '{"stringValue": "x"}' + "]}}" * depth
    span = dict(_SPAN, attributes=[{"key": "deep", "value": {"stringValue": "PLACEHOLDER"}}])
    return _request([span]).replace('{"stringValue": "PLACEHOLDER"}', value) + "\n"


def _chain(length: int) -> str:
    spans = []
    for index in range(1, length + 1):
        span = dict(_SPAN, spanId=f"{index:016x}", name=f"s{index % 7}")
        if index > 1:
            span["parentSpanId"] = f"{index - 1:016x}"
        spans.append(span)
    return _request(spans) + "\n"


def _png(width: int, height: int) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (width, height), 128).save(buffer, "PNG")
    return buffer.getvalue()


def _png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width``x``height`` but holds almost no data (a pixel bomb)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def _dataset(data_yaml: str | None = None) -> dict[str, object]:
    """A two-image dataset (one label each), with ``data.yaml`` when given."""
    png = _png(64, 64)
    files: dict[str, object] = {
        "ds/images/train/a.png": png,
        "ds/labels/train/a.txt": "0 0.5 0.5 0.2 0.2\n",
        "ds/images/val/b.png": png,
        "ds/labels/val/b.txt": "0 0.5 0.5 0.2 0.2\n",
    }
    if data_yaml is not None:
        files["ds/data.yaml"] = data_yaml
    return files


# --- the cases -----------------------------------------------------------------------------------

CASES: list[Case] = []


def case(id: str, *argv: str, names: str, **options: object) -> None:
    CASES.append(Case(id, tuple(argv), names, **options))  # type: ignore[arg-type]


def config_case(id: str, text: str | bytes, names: str = "x.yaml", **options: object) -> None:
    case(f"config-{id}", "trace", "x.yaml", names=names, files={"x.yaml": text}, **options)


# YAML that expands or nests without bound
for where in ("nc", "inplace", "c3", "anchors", "anchor-level", "backbone"):
    config_case(f"alias-bomb-{where}", _bomb_config(where))
config_case(
    "alias-bomb-small-fan", "a: &a [x, x]\nb: &b [*a, *a, *a]\nc: [" + ",".join(["*b"] * 2000) + "]\n"
)
config_case("alias-recursive-nc", tiny(nc="&r [*r]"))
config_case("alias-recursive-anchors", tiny(anchors="&r [*r, *r]"))
config_case("alias-recursive-row", tiny(row1="&r [-1, 1, Conv, *r]"))
config_case("nest-20000-lists", "nc: " + "[" * 20000 + "\n")
config_case("nest-20000-closed", "nc: " + "[" * 20000 + "]" * 20000 + "\n")
config_case("nest-mappings", "nc: " + "{a: " * 5000 + "1" + "}" * 5000 + "\n")
config_case("nest-block", "".join("  " * level + "a:\n" for level in range(2000)))
config_case("many-nodes", "nc: [" + ",".join(["1"] * 200_000) + "]\n")
config_case("huge-file", "# " + "x" * (2 << 20) + "\n")
config_case("binary", bytes(range(256)) * 8)
config_case("not-utf8", b"nc: \xff\xfe\n")
config_case("empty", "")
config_case("only-comment", "# nothing\n")
config_case("a-list", "- 1\n- 2\n")
config_case("a-string", "just text\n")
config_case("python-tag", "!!python/object/apply:os.system ['echo pwned > pwned']\n")
config_case("python-name-tag", tiny(nc="!!python/name:os.system"))
config_case("bad-yaml", "nc: [1, 2\n")
config_case("tabs", "nc:\t\t[\n\t- 1\n")
config_case("duplicate-anchor-undefined", tiny(nc="*nowhere"))
config_case("unknown-key", tiny(extra="eval: __import__('os')\n"))
config_case("activation-call", tiny(extra="activation: __import__('os').system('echo pwned > pwned')\n"))
config_case("activation-unknown", tiny(extra="activation: nn.GELUish()\n"))
config_case("activation-bad-argument", tiny(extra="activation: nn.LeakyReLU(x)\n"))

# Values out of range
for id, value in {
    "zero": "0",
    "negative": "-3",
    "huge": "1000000000",
    "1e20": "100000000000000000000",
    "float": "2.5",
    "string": "many",
    "bool": "true",
    "list": "[1, 2]",
    "null": "null",
    "100000": "100000",
}.items():
    config_case(f"nc-{id}", tiny(nc=value))
for key in ("depth", "width"):
    for id, value in {
        "zero": "0",
        "negative": "-1",
        "1e6": "1e6",
        "1e300": "1e300",
        "inf": ".inf",
        "nan": ".nan",
        "string": "wide",
    }.items():
        config_case(f"{key}-{id}", tiny(**{key: value}))
for id, value in {
    "count-1e6": "1000000",
    "count-zero": "0",
    "empty": "[]",
    "odd": "[[10, 13, 16]]",
    "negative": "[[10, -13], [1, 2]]",
    "huge-size": "[[1e300, 13], [1, 2]]",
    "ragged": "[[10, 13], [1, 2, 3, 4]]",
    "string": "'many'",
    "levels-mismatch": "[[10, 13], [1, 2], [3, 4]]",
    "many-per-level": "[[" + ",".join(["5"] * 400) + "], [" + ",".join(["5"] * 400) + "]]",
}.items():
    config_case(f"anchors-{id}", tiny(anchors=value))

# Rows that validate but cannot be built or run, or are far beyond any real model
for id, row in {
    "out-ch-1e20": "[-1, 1, Conv, [100000000000000000000, 3, 2]]",
    "out-ch-1e6": "[-1, 1, Conv, [1000000, 3, 2]]",
    "out-ch-zero": "[-1, 1, Conv, [0, 3, 2]]",
    "kernel-999": "[-1, 1, Conv, [64, 999, 2]]",
    "kernel-zero": "[-1, 1, Conv, [64, 0, 2]]",
    "stride-1000": "[-1, 1, Conv, [64, 3, 1000]]",
    "groups-7": "[-1, 1, Conv, [64, 3, 2, None, 7]]",
    "groups-huge": "[-1, 1, Conv, [64, 3, 2, None, 1000000]]",
    "padding-huge": "[-1, 1, Conv, [64, 3, 2, 100000]]",
    "dilation-huge": "[-1, 1, Conv, [64, 3, 2, None, 1, 100000]]",
    "args-not-list": "[-1, 1, Conv, 64]",
    "args-too-many": "[-1, 1, Conv, [64, 3, 2, None, 1, 1, true, 9, 9]]",
    "arg-symbol": "[-1, 1, Conv, [__import__, 3, 2]]",
    "arg-nested": "[-1, 1, Conv, [[[[64]]], 3, 2]]",
    "row-short": "[-1, 1, Conv]",
    "row-scalar": "42",
    "from-out-of-range": "[7, 1, Conv, [64, 3, 2]]",
    "from-huge": "[-100000000000, 1, Conv, [64, 3, 2]]",
    "number-zero": "[-1, 0, Conv, [64, 3, 2]]",
    "number-1e9": "[-1, 1000000000, Bottleneck, [32]]",
    "module-unknown": "[-1, 1, os.system, [64]]",
    "module-dunder": "[-1, 1, __import__, [64]]",
    "module-number": "[-1, 1, 7, [64]]",
    "upsample-tiny": "[-1, 1, nn.Upsample, [None, 0.0001, 'nearest']]",
    "upsample-huge": "[-1, 1, nn.Upsample, [None, 100000, 'nearest']]",
    "upsample-size-huge": "[-1, 1, nn.Upsample, [1000000000, None, 'nearest']]",
    "upsample-none": "[-1, 1, nn.Upsample, [None, None, 'nearest']]",
    "upsample-mode": "[-1, 1, nn.Upsample, [None, 2, 'bicubic']]",
    "sppf-kernel-huge": "[-1, 1, SPPF, [64, 10001]]",
    "concat-one-source": "[-1, 1, Concat, [1]]",
    "concat-dim-7": "[[-1, 0], 1, Concat, [7]]",
    "head-early": "[[0, 1], 1, Detect, [nc, anchors]]",
    "bottleneck-expansion-huge": "[-1, 1, Bottleneck, [64, true, 1, 100000.0]]",
}.items():
    config_case(f"row-{id}", tiny(row1=row))
config_case("concat-sizes", tiny(c3="[[-1, 0], 1, Concat, [1]]"))
config_case("depth-1e6-repeats", tiny(depth="1e6", c3="[-1, 3, C3, [64]]"))
config_case("width-10-channels", tiny(width="16", row1="[-1, 1, Conv, [16384, 3, 2]]"))
config_case("head-not-last", tiny(head="[[3, 4], 1, Detect, [nc, anchors]], [-1, 1, Conv, [8, 1, 1]]"))
config_case("head-missing", tiny(head="[-1, 1, Conv, [8, 1, 1]]"))
config_case("head-anchor-levels", tiny(head="[[2, 3, 4], 1, Detect, [nc, anchors]]"))
config_case("head-anchors-1e6", tiny(head="[[3, 4], 1, Detect, [nc, 1000000]]"))
config_case("head-nc-1e9", tiny(head="[[3, 4], 1, Detect, [1000000000, anchors]]"))
config_case(
    "rows-1000", tiny().replace("backbone:\n  [", "backbone:\n  [" + "[-1, 1, Conv, [8, 1, 1]],\n" * 1000)
)
config_case("section-empty", tiny().replace("head:\n", "head: []\nx:\n"))

# The config's path itself
case("config-missing", "trace", "nowhere.yaml", names="nowhere.yaml")
case("config-directory", "trace", "adir/", names="adir", files={"adir/x": ""})
case("config-dev-zero", "trace", "/dev/zero", names="/dev/zero")
case("config-fifo", "trace", "f.yaml", names="f.yaml", files={"f.yaml": FIFO})
case("config-link-dev-zero", "trace", "z.yaml", names="z.yaml", files={"z.yaml": Link("/dev/zero")})
case("config-unknown-name", "trace", "yolov9000", names="yolov9000")

# Overrides and options of trace
case("trace-nc-1e9", "trace", "x.yaml", "--nc", "1000000000", names="nc override", files={"x.yaml": tiny()})
case("trace-nc-100000", "trace", "x.yaml", "--nc", "100000", names="nc override", files={"x.yaml": tiny()})
case("trace-nc-zero", "trace", "x.yaml", "--nc", "0", names="--nc", files={"x.yaml": tiny()})
case("trace-nc-text", "trace", "x.yaml", "--nc", "lots", names="--nc", files={"x.yaml": tiny()})
case("trace-imgsz-1e6", "trace", "x.yaml", "--imgsz", "1000000", names="imgsz", files={"x.yaml": tiny()})
case("trace-imgsz-zero", "trace", "x.yaml", "--imgsz", "0", names="--imgsz", files={"x.yaml": tiny()})
case("trace-device-bad", "trace", "x.yaml", "--device", "tpu:0", names="tpu", files={"x.yaml": tiny()})
case(
    "trace-device-cuda-99",
    "trace",
    "x.yaml",
    "--device",
    "cuda:99",
    names="cuda:99",
    files={"x.yaml": tiny()},
)
case("trace-exporter-bad", "trace", "x.yaml", "--exporter", "carrier-pigeon", names="carrier-pigeon")
case(
    "trace-exporter-file-no-out",
    "trace",
    "x.yaml",
    "--exporter",
    "file",
    names="--out",
    files={"x.yaml": tiny()},
)
case("trace-unknown-option", "trace", "x.yaml", "--frobnicate", names="--frobnicate")
case("unknown-command", "explode", names="explode")

# Images for the AMP check
for id, (name, content) in {
    "missing": ("nowhere.png", None),
    "dev-zero": ("/dev/zero", None),
    "fifo": ("f.png", FIFO),
    "directory": ("d.png", "dir"),
    "text": ("t.png", "not an image\n"),
    "truncated": ("c.png", _png(64, 64)[:40]),
    "empty-file": ("e.png", b""),
    "pixel-bomb": ("bomb.png", _png_header(60000, 60000)),
    "url": ("https://example.com/a.png", None),
}.items():
    files: dict[str, object] = {"x.yaml": tiny()}
    if content == "dir":
        files[f"{name}/x"] = ""
    elif content is not None:
        files[name] = content
    case(f"image-{id}", "trace", "x.yaml", "--amp-check", "on", "--image", name, names=name, files=files)
for id, (width, height) in {"100000x1": (100000, 1), "1x100000": (1, 100000)}.items():
    case(
        f"image-{id}",
        "trace",
        "x.yaml",
        "--amp-check",
        "on",
        "--image",
        "long.png",
        names="",
        files={"x.yaml": tiny(), "long.png": _png(width, height)},
        status=0,
        lines=None,
    )

# Trace files and expectations for check
GOOD_EXPECT = "forward == 1"
for id, (name, content) in {
    "dev-zero": ("/dev/zero", None),
    "dev-urandom": ("/dev/urandom", None),
    "fifo": ("f.jsonl", FIFO),
    "link-dev-zero": ("z.jsonl", Link("/dev/zero")),
    "missing": ("nowhere.jsonl", None),
    "binary": ("b.jsonl", bytes(range(256))),
    "not-json": ("n.jsonl", "hello\n"),
    "json-list": ("l.jsonl", "[1, 2]\n"),
    "nested-100000": ("d.jsonl", "[" * 100000 + "]" * 100000 + "\n"),
    "nested-object": ("o.jsonl", '{"a":' * 100000 + "1" + "}" * 100000 + "\n"),
    "attribute-300-deep": ("a.jsonl", _deep_attribute(300)),
    "attribute-5000-deep": ("a5.jsonl", _deep_attribute(5000)),
    "bad-trace-id": ("i.jsonl", TRACE.replace("0123456789abcdef0123456789abcdef", "zz")),
    "zero-trace-id": ("z0.jsonl", TRACE.replace("0123456789abcdef0123456789abcdef", "0" * 32)),
    "bad-kind": ("k.jsonl", TRACE.replace('"kind": 1', '"kind": 99')),
    "spans-not-list": (
        "s.jsonl",
        TRACE.replace('"spans": [', '"spans": {"x": [').replace("}]}]}]}", "}]}}]}]}"),
    ),
    "huge-number": ("h.jsonl", TRACE.replace('"1000"', "1" + "0" * 5000)),
    "string-times": ("t.jsonl", TRACE.replace('"1000"', '"soon"')),
}.items():
    files = {} if content is None else {name: content}
    case(f"check-file-{id}", "check", name, GOOD_EXPECT, names=name, files=files)
case("check-directory", "check", "d", GOOD_EXPECT, names="d", files={"d/x": ""})
for id, expectation in {
    "5000-brackets": "forward[a=" + "[" * 5000 + "] == 1",
    "100000-chars": "forward[phase=" + "x" * 100000 + "] == 1",
    "bad-op": "forward === 1",
    "bad-regex": "forward[phase~'('] == 1",
    "no-count": "forward ==",
    "unclosed": "forward[phase=build == 1",
    "trailing": "forward == 1 and more",
    "huge-count": "forward == " + "9" * 5000,
}.items():
    case(
        f"check-expect-{id}",
        "check",
        "t.jsonl",
        "-e",
        expectation,
        names="bad expectation",
        files={"t.jsonl": TRACE},
    )
case("check-no-expectation", "check", "t.jsonl", names="expectation", files={"t.jsonl": TRACE})
_SELF_PARENT = dict(_SPAN, parentSpanId=_SPAN["spanId"])
_LOOP = [
    dict(_SPAN, spanId="1" * 16, parentSpanId="2" * 16),
    dict(_SPAN, spanId="2" * 16, parentSpanId="1" * 16),
]
case(
    "check-own-parent",
    "check",
    "p.jsonl",
    "s1 == 1",
    names="",
    files={"p.jsonl": _request([_SELF_PARENT])},
    status=1,
    lines=0,
)
case(
    "check-parent-loop",
    "check",
    "p.jsonl",
    "s1 == 1",
    names="",
    files={"p.jsonl": _request(_LOOP)},
    status=1,
    lines=0,
)
case(
    "check-chain-5000",
    "check",
    "c.jsonl",
    "s1 == 0",
    names="",
    files={"c.jsonl": _chain(5000)},
    status=1,
    lines=0,
)
case("check-good", "check", "t.jsonl", GOOD_EXPECT, names="", files={"t.jsonl": TRACE}, status=0, lines=0)

# send
REFUSED = "http://127.0.0.1:9"  # the discard port: nobody listens there on a test machine
for id, (name, content) in {
    "dev-zero": ("/dev/zero", None),
    "fifo": ("f.otlp.jsonl", FIFO),
    "link-dev-zero": ("z.otlp.jsonl", Link("/dev/zero")),
    "missing": ("nowhere.otlp.jsonl", None),
}.items():
    files = {} if content is None else {name: content}
    case(f"send-{id}", "send", name, "--endpoint", REFUSED, names=name, files=files)
case(
    "send-fifo-in-dir",
    "send",
    "spool",
    "--endpoint",
    REFUSED,
    names="",
    files={"spool/f.otlp.jsonl": FIFO},
    status=0,
    lines=0,
)
case(
    "send-malformed",
    "send",
    "m.otlp.jsonl",
    "--endpoint",
    REFUSED,
    names="m.otlp.jsonl",
    files={"m.otlp.jsonl": "nope\n"},
    status=1,
)
case(
    "send-refused",
    "send",
    "t.otlp.jsonl",
    "--endpoint",
    REFUSED,
    names="connection refused",
    files={"t.otlp.jsonl": TRACE},
    status=1,
)
SECRET = "s3cr3tTOKEN"
for id, (variable, text) in {
    "colon": ("OTEL_EXPORTER_OTLP_HEADERS", f"x-api-key:{SECRET}"),
    "traces-colon": ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", f"authorization:Bearer {SECRET}"),
    "second-entry": ("OTEL_EXPORTER_OTLP_HEADERS", f"a=b,{SECRET}"),
    "bad-key": ("OTEL_EXPORTER_OTLP_HEADERS", f"x(key)={SECRET}"),
    "bad-value": ("OTEL_EXPORTER_OTLP_HEADERS", f'x-key={SECRET}"quoted"'),
}.items():
    for protocol in ("http/protobuf", "grpc"):
        short = "http" if protocol.startswith("http") else "grpc"
        case(
            f"send-header-{id}-{short}",
            "send",
            "t.otlp.jsonl",
            "--endpoint",
            REFUSED,
            "--protocol",
            protocol,
            names=variable,
            files={"t.otlp.jsonl": TRACE},
            env={variable: text},
            absent=(SECRET,),
        )
case(
    "trace-header-colon",
    "trace",
    "x.yaml",
    names="OTEL_EXPORTER_OTLP_HEADERS",
    files={"x.yaml": tiny()},
    env={"OTEL_EXPORTER_OTLP_ENDPOINT": REFUSED, "OTEL_EXPORTER_OTLP_HEADERS": f"api-key:{SECRET}"},
    absent=(SECRET,),
)
case(
    "send-protocol-bad",
    "send",
    "t.otlp.jsonl",
    names="OTEL_EXPORTER_OTLP_PROTOCOL",
    files={"t.otlp.jsonl": TRACE},
    env={"OTEL_EXPORTER_OTLP_PROTOCOL": "carrier-pigeon"},
)

# Trace output and the batch processor's environment on the file path
case(
    "out-dev-full",
    "trace",
    "x.yaml",
    "--out",
    "/dev/full",
    names="/dev/full",
    files={"x.yaml": tiny()},
    absent=("trace written",),
    lines=None,
)
case("out-directory", "trace", "x.yaml", "--out", "d", names="d", files={"x.yaml": tiny(), "d/x": ""})
case(
    "out-under-file",
    "trace",
    "x.yaml",
    "--out",
    "f/run.jsonl",
    names="f/run.jsonl",
    files={"x.yaml": tiny(), "f": ""},
)
for variable, value in {
    "OTEL_BSP_MAX_QUEUE_SIZE": "-5",
    "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "0",
    "OTEL_BSP_SCHEDULE_DELAY": "-1",
}.items():
    case(
        f"env-{variable.lower()}",
        "trace",
        "x.yaml",
        "--exporter",
        "file",
        "--out",
        "run.jsonl",
        names=variable,
        files={"x.yaml": tiny()},
        env={variable: value},
        status=0,
        lines=2,  # the warning, then "trace written to run.jsonl"
    )

# Datasets: synth
for id, (options, names) in {
    "imgsz-100000": (("--imgsz", "100000"), "--imgsz"),
    "imgsz-8": (("--imgsz", "8"), "--imgsz"),
    "nc-1e9": (("--nc", "1000000000"), "--nc"),
    "seed-negative": (("--seed", "-5"), "--seed"),
    "seed-huge": (("--seed", "9" * 40), "--seed"),
    "seed-text": (("--seed", "abc"), "--seed"),
    "images-1e9": (("--images", "1000000000"), "--images"),
    "images-zero": (("--images", "0"), "--images"),
    "val-images-1e9": (("--val-images", "1000000000"), "--val-images"),
}.items():
    case(f"synth-{id}", "data", "synth", "out", *options, names=names)
case("synth-existing", "data", "synth", "ds", names="ds", files=_dataset())
case("synth-over-file", "data", "synth", "f", "--images", "1", names="f", files={"f": "x"})
case("synth-missing-action", "data", names="data")

# Datasets: train
TRAIN = ("train", "--data", "ds", "--cfg", "x.yaml", "--imgsz", "64", "--epochs", "1", "--batch", "2")
for id, data_yaml in {
    "names-mixed-keys": "names: {0: a, b: c}\n",
    "names-gap": "names: {0: a, 5: c}\n",
    "names-numbers": "names: [1, 2]\n",
    "names-string": "names: cats\n",
    "nc-1e6": "nc: 1000000\n",
    "nc-zero": "nc: 0\n",
    "nc-string": "nc: lots\n",
    "nc-names-mismatch": "nc: 3\nnames: [a]\n",
    "a-list": "- a\n",
    "bad-yaml": "nc: [\n",
    "alias-bomb": f"names: {_BOMB}\n",
    "deep": "names: " + "[" * 10000 + "\n",
    "binary": "\xff\xfe",
}.items():
    files = dict(_dataset(data_yaml), **{"x.yaml": tiny()})
    case(f"train-data-yaml-{id}", *TRAIN, names="data.yaml", files=files)
case(
    "train-data-yaml-fifo",
    *TRAIN,
    names="data.yaml",
    files=dict(_dataset(), **{"x.yaml": tiny(), "ds/data.yaml": FIFO}),
)
case(
    "train-data-yaml-dev-zero",
    *TRAIN,
    names="data.yaml",
    files=dict(_dataset(), **{"x.yaml": tiny(), "ds/data.yaml": Link("/dev/zero")}),
)
case("train-data-missing", *TRAIN, names="ds", files={"x.yaml": tiny()})
case("train-data-is-file", *TRAIN, names="ds", files={"x.yaml": tiny(), "ds": "x"})
case("train-nc-1e9", *TRAIN, "--nc", "1000000000", names="--nc", files=dict(_dataset(), **{"x.yaml": tiny()}))
case(
    "train-seed-negative",
    *TRAIN,
    "--seed",
    "-5",
    names="--seed",
    files=dict(_dataset(), **{"x.yaml": tiny()}),
)
case(
    "train-imgsz-huge",
    *TRAIN[:-6],
    "--imgsz",
    "100000",
    names="imgsz",
    files=dict(_dataset(), **{"x.yaml": tiny()}),
)
case(
    "train-imgsz-odd",
    *TRAIN[:-6],
    "--imgsz",
    "33",
    names="--imgsz",
    files=dict(_dataset(), **{"x.yaml": tiny()}),
)
case(
    "train-batch-zero", *TRAIN, "--batch", "0", names="--batch", files=dict(_dataset(), **{"x.yaml": tiny()})
)
case("train-cfg-bomb", *TRAIN, names="x.yaml", files=dict(_dataset(), **{"x.yaml": _bomb_config("nc")}))
case(
    "train-cfg-cannot-run",
    *TRAIN,
    names="x.yaml",
    files=dict(_dataset(), **{"x.yaml": tiny(row1="[-1, 1, Conv, [64, 3, 2, None, 7]]")}),
)
