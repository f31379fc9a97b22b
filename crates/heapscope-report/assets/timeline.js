// heapscope report: the timeline of traced memory and RSS, with the peak marked.
"use strict";

HS.drawTimeline = function (svg, legend, data) {
  var tl = data.timeline;
  var meta = data.meta;
  HS.clear(svg);
  HS.clear(legend);
  var W = Math.max(svg.clientWidth || svg.parentNode.clientWidth, 300);
  var H = 170;
  var L = 64, R = 12, T = 16, B = 22;
  svg.setAttribute("viewBox", "0 0 " + W + " " + H);
  var n = tl.t.length;
  if (n === 0) {
    svg.appendChild(HS.svg("text", { x: L, y: H / 2 })).textContent = "No timeline samples in this capture.";
    return;
  }
  var tMax = Math.max(tl.t[n - 1], meta.duration_ms, 1);
  var yMax = Math.max(meta.peak_bytes, 1);
  for (var i = 0; i < n; i++) yMax = Math.max(yMax, tl.traced[i], tl.rss[i]);
  var sx = function (t) { return L + ((W - L - R) * t) / tMax; };
  var sy = function (b) { return T + (H - T - B) * (1 - b / yMax); };
  svg.appendChild(HS.svg("line", { x1: L, y1: sy(0), x2: W - R, y2: sy(0), "class": "axis" }));
  svg.appendChild(HS.svg("line", { x1: L, y1: T, x2: L, y2: sy(0), "class": "axis" }));
  [0, 0.5, 1].forEach(function (f) {
    var lab = HS.svg("text", { x: L - 6, y: sy(yMax * f) + 4, "text-anchor": "end" });
    lab.textContent = HS.bytes(Math.round(yMax * f));
    svg.appendChild(lab);
    var tl2 = HS.svg("text", { x: sx(tMax * f), y: H - 6, "text-anchor": f === 0 ? "start" : f === 1 ? "end" : "middle" });
    tl2.textContent = HS.duration(tMax * f);
    svg.appendChild(tl2);
  });
  var area = [sx(tl.t[0]).toFixed(1) + "," + sy(0).toFixed(1)];
  var rss = [];
  for (var k = 0; k < n; k++) {
    area.push(sx(tl.t[k]).toFixed(1) + "," + sy(tl.traced[k]).toFixed(1));
    rss.push(sx(tl.t[k]).toFixed(1) + "," + sy(tl.rss[k]).toFixed(1));
  }
  area.push(sx(tl.t[n - 1]).toFixed(1) + "," + sy(0).toFixed(1));
  svg.appendChild(HS.svg("polygon", { points: area.join(" "), "class": "traced" }));
  svg.appendChild(HS.svg("polyline", { points: rss.join(" "), "class": "rss" }));
  (data.lines || []).forEach(function (line) {
    var pts = [];
    for (var j = 0; j < line.t.length; j++) pts.push(sx(line.t[j]).toFixed(1) + "," + sy(line.v[j]).toFixed(1));
    var pl = HS.svg("polyline", { points: pts.join(" "), "class": "proc-line" });
    pl.appendChild(HS.svg("title", {})).textContent = line.label;
    svg.appendChild(pl);
  });
  var px = sx(meta.peak_time_ms);
  var py = sy(meta.peak_bytes);
  svg.appendChild(HS.svg("line", { x1: px, y1: T, x2: px, y2: sy(0), "class": "peak" }));
  svg.appendChild(HS.svg("circle", { cx: px, cy: py, r: 4, "class": "peak-dot" }));
  var label = HS.svg("text", { x: px + (px > W / 2 ? -6 : 6), y: T + 10, "class": "peak-label", "text-anchor": px > W / 2 ? "end" : "start" });
  label.textContent = "peak " + HS.bytes(meta.peak_bytes) + " at " + HS.duration(meta.peak_time_ms);
  svg.appendChild(label);
  var items = [["traced memory", "#2f5fd0"], ["RSS", "#e07b24"], ["peak", "#c0262d"]];
  if ((data.lines || []).length) items.splice(1, 0, ["each process", "#6b7a99"]);
  items.forEach(function (item) {
    var span = HS.el("span", "", item[0]);
    var sw = HS.el("i");
    sw.style.background = item[1];
    span.insertBefore(sw, span.firstChild);
    legend.appendChild(span);
  });
};
