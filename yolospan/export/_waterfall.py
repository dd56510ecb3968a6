"""The stylesheet and script of the HTML waterfall (`yolospan.export.html`), inlined into each page.

Plain ES5-level JavaScript and CSS, no dependencies. The script reads the JSON in
``#yolospan-data`` and draws the selected trace: a ruler, one row per span (name indented by depth,
a bar on the time axis coloured by phase, the duration), a panel with the clicked span's
attributes. Rows collapse (▾ or ←/→), ↑/↓ move the selection, and "layers" hides layer spans.
"""

from __future__ import annotations

__all__ = ["SCRIPT", "STYLE"]

STYLE = """
*{box-sizing:border-box}
html,body{height:100%}
body{margin:0;font:13px/1.35 system-ui,-apple-system,"Segoe UI",sans-serif;color:#1d2430;background:#fff;
  display:flex;flex-direction:column;overflow:hidden}
header{flex:none;padding:8px 12px;border-bottom:1px solid #d8dde6;background:#f6f8fa}
h1{font-size:15px;margin:0 0 6px}
.controls{display:flex;gap:16px;align-items:center;flex-wrap:wrap}
select{max-width:60vw}
#legend span{display:inline-flex;align-items:center;gap:4px;margin-right:10px}
#legend i{display:inline-block;width:12px;height:12px;border-radius:2px}
#summary{margin:6px 0 0;font:12px/1.3 ui-monospace,Menlo,Consolas,monospace;white-space:pre-wrap}
main{display:flex;flex:1;min-height:0}
#waterfall{flex:1;overflow:auto;outline:none;scroll-padding-top:22px}
#panel{width:380px;flex:none;overflow:auto;border-left:1px solid #d8dde6;padding:8px 12px;background:#fbfcfd}
#panel h2{font-size:14px;margin:0 0 4px;word-break:break-all}
#panel h3{font-size:12px;margin:10px 0 2px;color:#57606a;text-transform:uppercase;letter-spacing:.04em}
#panel table{border-collapse:collapse;width:100%;font:12px/1.35 ui-monospace,Menlo,Consolas,monospace}
#panel td{padding:1px 4px;vertical-align:top;word-break:break-all}
#panel td:first-child{color:#57606a;white-space:nowrap;word-break:normal}
#panel .line{font:12px/1.35 ui-monospace,Menlo,Consolas,monospace;margin:2px 0 6px;white-space:pre-wrap}
.hint{color:#57606a}
.row{display:flex;height:20px;align-items:center;cursor:pointer;border-bottom:1px solid #f0f2f5}
.row:hover{background:#eef3fb}
.row.sel{background:#dbe8fb}
.row.hidden,.no-layers .row.layer{display:none}
.name{width:340px;flex:none;overflow:hidden;white-space:nowrap;text-overflow:ellipsis;padding-right:6px}
.row.error .name{color:#c62828}
.tog{display:inline-block;width:14px;color:#57606a;text-align:center}
.collapsed>.name .tog{transform:rotate(-90deg)}
.track{position:relative;flex:1;height:100%;margin-right:70px}
.bar{position:absolute;top:4px;height:12px;min-width:1px;border-radius:2px}
.row.error .bar{outline:2px solid #c62828}
.dt{position:absolute;top:3px;font-size:11px;color:#57606a;white-space:nowrap}
.ruler{position:sticky;top:0;z-index:1;background:#fff;cursor:default;border-bottom:1px solid #d8dde6}
.ruler:hover{background:#fff}
.tick{position:absolute;top:0;bottom:0;pointer-events:none;border-left:1px solid #c8ced8;padding-left:3px;
  font-size:11px;color:#57606a;white-space:nowrap}
.ruler .name{padding-left:4px}
"""

SCRIPT = r"""
(function () {
  "use strict";
  var DATA = JSON.parse(document.getElementById("yolospan-data").textContent);
  var pick = document.getElementById("trace"), fall = document.getElementById("waterfall");
  var panel = document.getElementById("panel"), legend = document.getElementById("legend");
  var summary = document.getElementById("summary"), layers = document.getElementById("layers");
  var trace = null, rows = [], collapsed = [], selected = -1;

  function esc(text) {
    return String(text).replace(/[&<>"']/g, function (c) { return "&#" + c.charCodeAt(0) + ";"; });
  }
  function pct(x) { return trace.total > 0 ? (100 * x / trace.total) : 0; }

  function table(pairs) {
    var h = "<table>";
    for (var i = 0; i < pairs.length; i++) {
      h += "<tr><td>" + esc(pairs[i][0]) + "</td><td>" + esc(pairs[i][1]) + "</td></tr>";
    }
    return h + "</table>";
  }

  function show(index) {
    trace = DATA.traces[index];
    selected = -1;
    collapsed = [];
    summary.textContent = trace.summary.join("\n");
    var lh = "";
    for (var p = 0; p < trace.legend.length; p++) {
      lh += '<span><i style="background:' + esc(trace.legend[p][1]) + '"></i>' +
        esc(trace.legend[p][0]) + "</span>";
    }
    legend.innerHTML = lh;
    var h = ['<div class="row ruler"><div class="name">' + esc(trace.name) + '</div><div class="track">'];
    for (var t = 0; t < trace.ticks.length; t++) {
      h.push('<span class="tick" style="left:' + trace.ticks[t][0] + '%">' +
        esc(trace.ticks[t][1]) + "</span>");
    }
    h.push("</div></div>");
    for (var i = 0; i < trace.rows.length; i++) {
      var r = trace.rows[i], left = pct(r.s), width = pct(r.t);
      var tip = r.n + (r.x ? "\n" + r.x : "") + (r.e ? "\n" + r.e : "") + "\n" + r.dt;
      // The duration goes right of the bar, or left of it when the bar ends near the right edge.
      var at = left + width > 80 ? "right:" + (100 - left + 0.5) + "%" :
        "left:calc(" + (left + width) + "% + 4px)";
      h.push('<div class="row' + (r.l ? " layer" : "") + (r.e ? " error" : "") + '" data-i="' + i +
        '" data-depth="' + r.d + '" title="' + esc(tip) + '"><div class="name" style="padding-left:' +
        (4 + 14 * r.d) + 'px"><span class="tog">' + (r.k ? "\u25be" : "") + "</span>" + esc(r.n) +
        '</div><div class="track"><div class="bar" style="left:' + left + "%;width:" + width +
        "%;background:" + esc(r.c) + '"></div><span class="dt" style="' + at + '">' + esc(r.dt) +
        "</span></div></div>");
    }
    fall.innerHTML = h.join("");
    rows = fall.querySelectorAll(".row[data-i]");
    panel.innerHTML = '<p class="hint">Click a span to see its attributes.</p>';
  }

  function refresh() {
    var cut = Infinity;
    for (var i = 0; i < rows.length; i++) {
      var d = trace.rows[i].d;
      if (d <= cut) { cut = Infinity; }
      var hide = d > cut;
      rows[i].classList.toggle("hidden", hide);
      rows[i].classList.toggle("collapsed", !!collapsed[i]);
      if (!hide && collapsed[i]) { cut = d; }
    }
  }

  function toggle(i, state) {
    if (!trace.rows[i].k) { return; }
    collapsed[i] = state === undefined ? !collapsed[i] : state;
    refresh();
  }

  function select(i) {
    if (selected >= 0) { rows[selected].classList.remove("sel"); }
    selected = i;
    rows[i].classList.add("sel");
    var r = trace.rows[i];
    var h = "<h2>" + esc(r.n) + "</h2>";
    if (r.x) { h += '<div class="line">' + esc(r.x) + "</div>"; }
    h += table(r.i);
    h += "<h3>attributes</h3>" + (r.a.length ? table(r.a) : '<p class="hint">none</p>');
    if (r.ev.length) {
      h += "<h3>events</h3>" + table(r.ev.map(function (e) { return [e[1] + " " + e[0], e[2]]; }));
    }
    panel.innerHTML = h;
  }

  function visible(i) { return rows[i].offsetParent !== null; }
  function step(from, by) {
    for (var i = from + by; i >= 0 && i < rows.length; i += by) { if (visible(i)) { return i; } }
    return from;
  }

  fall.addEventListener("click", function (event) {
    var row = event.target.closest(".row[data-i]");
    if (!row) { return; }
    var i = Number(row.getAttribute("data-i"));
    if (event.target.classList.contains("tog")) { toggle(i); } else { select(i); }
  });
  fall.addEventListener("keydown", function (event) {
    if (selected < 0) { if (rows.length) { select(0); } return; }
    var keys = {ArrowDown: 1, ArrowUp: -1};
    if (event.key in keys) {
      select(step(selected, keys[event.key]));
      rows[selected].scrollIntoView({block: "nearest"});
    }
    else if (event.key === "ArrowLeft") { toggle(selected, true); }
    else if (event.key === "ArrowRight") { toggle(selected, false); }
    else { return; }
    event.preventDefault();
  });
  layers.addEventListener("change", function () {
    document.body.classList.toggle("no-layers", !layers.checked);
  });
  pick.addEventListener("change", function () { show(Number(pick.value)); });

  for (var n = 0; n < DATA.traces.length; n++) {
    var option = document.createElement("option");
    option.value = String(n);
    option.textContent = (n + 1) + ". " + DATA.traces[n].label;
    pick.appendChild(option);
  }
  if (DATA.traces.length) { show(0); }
})();
"""
