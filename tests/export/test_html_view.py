"""The HTML waterfall, checked as a page (self-contained) and in a real headless Chromium, offline."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from chromium_cdp import Browser, Page, find_chromium

from handbuilt_spans import SpanBuilder, call_attributes, model_init_trace
from yolospan import attributes as A
from yolospan.export.html import render_html
from yolospan.export.spantree import Trace, build_traces

SCREENSHOT_DIR_ENV = "YOLOSPAN_SCREENSHOT_DIR"
"""Where the tests also save their screenshots (for docs/), besides the test's temporary directory."""

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _page_text(traces: list[Trace]) -> str:
    return render_html(traces, title="test.otlp.jsonl")


# --- the file, without a browser --------------------------------------------------------------


def test_the_page_loads_nothing_from_anywhere():
    text = _page_text(build_traces(model_init_trace().spans))
    assert "default-src 'none'" in text  # the browser refuses any fetch, whatever the page says
    for needle in ("http://", "https://", "<link", " src=", "@import", "url("):
        assert needle not in text, needle


def test_attribute_text_cannot_end_the_data_script():
    b = SpanBuilder()
    b.add("evil", 0, 1, attributes={"note": "</script><script>alert(1)</script><!--"})
    text = _page_text(build_traces(b.spans))
    assert text.count("</script>") == 2  # the data block's and the script's own
    data = text.split('id="yolospan-data">', 1)[1].split("</script>", 1)[0]
    row = json.loads(data)["traces"][0]["rows"][0]
    assert row["a"] == [["note", "</script><script>alert(1)</script><!--"]]


# --- in Chromium --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = find_chromium()
    if executable is None:
        pytest.skip(
            "headless Chromium not found (Debian: apt-get install chromium; or set YOLOSPAN_CHROMIUM): "
            "the HTML view is only tested in a real browser"
        )
    with Browser(executable) as started:
        yield started


def _open(browser: Browser, tmp_path: Path, traces: list[Trace], **size: int) -> Page:
    path = tmp_path / "view.html"
    path.write_text(_page_text(traces), encoding="utf-8")
    return browser.open(path, **size)


def _offline_and_clean(page: Page) -> None:
    assert page.requests() == [page.url], "the page made a request besides loading itself"
    assert page.problems() == []


def _screenshot(page: Page, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    page.screenshot(path)
    assert path.read_bytes().startswith(PNG_SIGNATURE)
    keep = os.environ.get(SCREENSHOT_DIR_ENV)
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(keep) / name)
    return path


def _visible_names(page: Page) -> list[str]:
    return page.evaluate(
        "[...document.querySelectorAll('.row[data-i]')].filter(r => r.offsetParent !== null)"
        ".map(r => r.querySelector('.name').textContent.replace(/^\\u25be/, ''))"
    )


def test_one_bar_per_span_nested_by_depth_and_an_attribute_panel_on_click(browser, tmp_path):
    traces = build_traces(model_init_trace().spans)
    page = _open(browser, tmp_path, traces)
    rows = page.evaluate(
        "[...document.querySelectorAll('.row[data-i]')].map(r => [r.querySelector('.name').textContent,"
        " Number(r.dataset.depth), r.querySelectorAll('.bar').length, parseFloat(r.querySelector('.name')"
        ".style.paddingLeft)])"
    )
    assert [(name.lstrip("▾"), depth, bars) for name, depth, bars, _ in rows] == [
        ("model.init", 0, 1),
        ("stride_probe", 1, 1),
        ("forward", 2, 1),
        ("info_profile", 1, 1),
        ("forward", 2, 1),
        ("Conv #0", 3, 1),
        ("Upsample #1", 3, 1),
        ("amp_check", 1, 1),
        ("forward", 2, 1),
        ("forward", 2, 1),
    ]
    indents = [indent for *_, indent in rows]
    assert all(indents[i] > indents[j] for i, j in ((1, 0), (2, 1), (5, 4)))  # deeper is further right
    assert page.evaluate("document.querySelectorAll('.bar').length") == 10

    assert "Click a span" in page.evaluate("document.getElementById('panel').textContent")
    page.click('.row[data-i="5"] .bar')
    panel = page.evaluate(
        "[...document.querySelectorAll('#panel tr')].map(tr => [...tr.cells].map(td => td.textContent))"
    )
    assert page.evaluate("document.querySelector('#panel h2').textContent") == "Conv #0"
    assert page.evaluate("document.querySelector('#panel .line').textContent") == (
        "1×3×64×64 → 1×16×32×32  float32 cpu  3.5 MFLOPs"
    )
    assert ["duration", "6.8 ms"] in panel
    assert ["FLOPs", "3.5 MFLOPs"] in panel
    assert ["achieved", "518.5 MFLOP/s"] in panel  # 3,500,000 FLOPs in 6.75 ms
    assert ["yolospan.input.shape", "[1, 3, 64, 64]"] in panel
    assert ["yolospan.layer.index", "0"] in panel
    assert page.evaluate("document.querySelector('.row.sel').dataset.i") == "5"
    _offline_and_clean(page)
    _screenshot(page, tmp_path, "waterfall-handbuilt.png")


def test_bars_sit_on_the_time_axis(browser, tmp_path):
    page = _open(browser, tmp_path, build_traces(model_init_trace().spans))
    # amp_check runs from 40 ms to 90 ms of the 100 ms trace.
    left, width, track = page.evaluate(
        "(() => { const r = document.querySelector('.row[data-i=\"7\"]');"
        " const b = r.querySelector('.bar').getBoundingClientRect(), t = r.querySelector('.track')"
        ".getBoundingClientRect(); return [b.left - t.left, b.width, t.width]; })()"
    )
    assert left == pytest.approx(0.40 * track, abs=1)
    assert width == pytest.approx(0.50 * track, abs=1)
    ticks = page.evaluate("[...document.querySelectorAll('.tick')].map(t => t.textContent)")
    assert ticks == [f"{ms:.1f} ms" if ms else "0.00 ms" for ms in range(0, 101, 20)]


def test_subtrees_collapse_and_layers_hide(browser, tmp_path):
    page = _open(browser, tmp_path, build_traces(model_init_trace().spans))
    all_names = _visible_names(page)
    page.click('.row[data-i="3"] .tog')  # info_profile
    assert _visible_names(page) == [name for i, name in enumerate(all_names) if i not in (4, 5, 6)]
    page.click('.row[data-i="3"] .tog')
    assert _visible_names(page) == all_names
    page.click("#layers")
    assert _visible_names(page) == [name for name in all_names if name not in ("Conv #0", "Upsample #1")]
    _offline_and_clean(page)


def test_each_trace_has_its_own_waterfall(browser, tmp_path):
    b = model_init_trace()
    step = b.add("train_step", 200, 300, trace_id=7, attributes={A.PHASE: "train"})
    b.add("loss", 210, 220, parent=step, trace_id=7, attributes={A.PHASE: "train"})
    page = _open(browser, tmp_path, build_traces(b.spans))
    options = page.evaluate("[...document.querySelectorAll('#trace option')].map(o => o.textContent)")
    assert options == [
        "1. model.init · 10 spans · 100.0 ms · 0af76519",
        "2. train_step · 2 spans · 100.0 ms · 00000000",
    ]
    page.evaluate(
        "(() => { const s = document.getElementById('trace'); s.value = '1';"
        " s.dispatchEvent(new Event('change')); })()"
    )
    assert _visible_names(page) == ["train_step", "loss"]
    assert page.evaluate("document.querySelectorAll('.bar').length") == 2
    assert "train" in page.evaluate("document.getElementById('legend').textContent")
    _offline_and_clean(page)


def test_hostile_attribute_text_is_shown_not_run(browser, tmp_path):
    b = SpanBuilder()
    b.add("evil", 0, 1, attributes={"note": '<img src="http://127.0.0.1:9/x.png" onerror="alert(1)">'})
    page = _open(browser, tmp_path, build_traces(b.spans))
    page.click(".row[data-i='0']")
    assert "<img" in page.evaluate("document.getElementById('panel').textContent")
    assert page.evaluate("document.querySelectorAll('img').length") == 0
    _offline_and_clean(page)


def _training_like_trace(steps: int, layers: int) -> list[Trace]:
    """One trace of ``steps`` forwards of ``layers`` layers each, plus loss and backward per step."""
    b = SpanBuilder()
    run = b.add("train", 0, steps * 10 + 1, attributes={A.PHASE: "train"})
    for step in range(steps):
        at = step * 10
        train_step = b.add("train_step", at, at + 10, parent=run, attributes={A.STEP: step})
        forward = b.add(
            "forward",
            at + 0.1,
            at + 6,
            parent=train_step,
            attributes=call_attributes([8, 3, 64, 64], [8, 85]),
        )
        for layer in range(layers):
            start = at + 0.1 + layer * 5.8 / layers
            b.add(
                "Conv",
                start,
                start + 5.8 / layers,
                parent=forward,
                attributes={
                    **call_attributes([8, 3, 64, 64], [8, 16, 32, 32], flops=1000),
                    A.LAYER_INDEX: layer,
                },
            )
        b.add("loss", at + 6, at + 7, parent=train_step)
        b.add("backward", at + 7, at + 9.5, parent=train_step)
    return build_traces(b.spans)


def test_a_3000_span_trace_renders_every_bar(browser, tmp_path):
    traces = _training_like_trace(steps=100, layers=26)
    assert len(traces[0].spans) == 3001
    page = _open(browser, tmp_path, traces, width=1400, height=900)
    assert page.evaluate("document.querySelectorAll('.bar').length") == 3001
    page.click("#layers")  # the forwards' 2,600 layers folded away: 401 rows to read
    assert (
        page.evaluate("[...document.querySelectorAll('.row[data-i]')].filter(r => r.offsetParent).length")
        == 401
    )
    _offline_and_clean(page)
    _screenshot(page, tmp_path, "waterfall-3000.png")
