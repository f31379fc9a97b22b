// heapscope report: the flame graph (an icicle: callers on top, callees below).
"use strict";

HS.ROW = 18;

/** Lays out one view's pruned tree: x offsets (in bytes), depths, subtree sizes. */
HS.Tree = function (data, view) {
  var t = view.tree;
  var n = t.f.length;
  this.data = data;
  this.view = view;
  this.f = t.f;
  this.p = t.p;
  this.v = t.v;
  this.c = t.c;
  this.n = n;
  this.merged = {};
  for (var k = 0; k < t.o.length; k++) this.merged[t.o[k][0]] = t.o[k][1];
  this.x = new Float64Array(n);
  this.depth = new Int32Array(n);
  this.size = new Int32Array(n);
  var cursor = new Float64Array(n);
  this.maxDepth = 0;
  for (var i = 0; i < n; i++) {
    var p = this.p[i];
    this.size[i] = 1;
    if (p >= 0) {
      this.x[i] = cursor[p];
      cursor[p] += this.v[i];
      this.depth[i] = this.depth[p] + 1;
      if (this.depth[i] > this.maxDepth) this.maxDepth = this.depth[i];
    }
    cursor[i] = this.x[i];
  }
  for (var j = n - 1; j > 0; j--) this.size[this.p[j]] += this.size[j];
};

/** Function name, file and line of a node (the root and "other" nodes have no file). */
HS.Tree.prototype.frame = function (i) {
  var f = this.f[i];
  var s = this.data.strings;
  if (f === -1) return { name: "all", file: "", line: 0, kind: "root" };
  if (f < 0) {
    var m = this.merged[i] || 0;
    return { name: "other (" + m + " smaller frame" + (m === 1 ? "" : "s") + ")", file: "", line: 0, kind: "other" };
  }
  var fr = this.data.frames[f];
  return { name: s[fr[0]] || "<unknown>", file: s[fr[1]], line: fr[2], kind: "frame" };
};

/** The flame graph widget: rendering, hover, click-to-zoom, search highlighting. */
HS.Flame = function (svg, wrap, tooltip, breadcrumb, resetButton) {
  this.svg = svg;
  this.wrap = wrap;
  this.tooltip = tooltip;
  this.breadcrumb = breadcrumb;
  this.resetButton = resetButton;
  this.tree = null;
  this.zoom = 0;
  this.query = "";
  this.matched = null;
  var self = this;
  svg.addEventListener("mousemove", function (ev) { self.hover(ev); });
  svg.addEventListener("mouseleave", function () { tooltip.hidden = true; });
  svg.addEventListener("click", function (ev) {
    var i = self.nodeOf(ev.target);
    if (i !== null) self.setZoom(i);
  });
  resetButton.addEventListener("click", function () { self.setZoom(0); });
};

HS.Flame.prototype.nodeOf = function (target) {
  var g = target && target.closest ? target.closest("g[data-i]") : null;
  return g ? Number(g.getAttribute("data-i")) : null;
};

/** Shows a view's tree, zoomed out. */
HS.Flame.prototype.show = function (tree) {
  this.tree = tree;
  this.zoom = 0;
  this.search(this.query);
};

HS.Flame.prototype.setZoom = function (i) {
  this.zoom = i;
  this.render();
};

/** Highlights frames whose function or file contains `query` (case-insensitive). */
HS.Flame.prototype.search = function (query) {
  this.query = query;
  var t = this.tree;
  var q = query.trim().toLowerCase();
  this.matched = null;
  this.searchSummary = "";
  if (t && q) {
    var m = new Uint8Array(t.n);
    var under = new Uint8Array(t.n);
    var frames = 0;
    var bytes = 0;
    for (var i = 1; i < t.n; i++) {
      var fr = t.frame(i);
      var hit = fr.name.toLowerCase().indexOf(q) >= 0 || fr.file.toLowerCase().indexOf(q) >= 0;
      var p = t.p[i];
      under[i] = under[p] || m[p];
      if (hit) {
        m[i] = 1;
        frames++;
        if (!under[i]) bytes += t.v[i];
      }
    }
    this.matched = m;
    this.searchSummary = frames + " frame" + (frames === 1 ? "" : "s") + " match, " +
      HS.bytes(bytes) + " (" + HS.pct(bytes, t.v[0]) + ")";
  }
  this.render();
  return this.searchSummary;
};

HS.Flame.prototype.label = function (fr) {
  return fr.kind === "frame" ? fr.name + " (" + fr.file.split("/").pop() + ":" + fr.line + ")" : fr.name;
};

HS.Flame.prototype.color = function (fr) {
  if (fr.kind === "root") return "hsl(220, 15%, 80%)";
  if (fr.kind === "other") return "hsl(220, 8%, 72%)";
  // Native (C) frames of --native: blues, apart from the warm Python frames.
  if (fr.name && fr.name.slice(-9) === " [native]") {
    var n = HS.hash(fr.name + "\u0000" + fr.file);
    return "hsl(" + (195 + (n % 30)) + ", 60%, " + (62 + ((n >> 16) % 12)) + "%)";
  }
  var h = HS.hash(fr.name + "\u0000" + fr.file);
  return "hsl(" + (8 + (h % 44)) + ", " + (70 + ((h >> 8) % 20)) + "%, " + (58 + ((h >> 16) % 14)) + "%)";
};

HS.Flame.prototype.bar = function (i, x, w, y, cls) {
  var t = this.tree;
  var fr = t.frame(i);
  var g = HS.svg("g", { "data-i": i });
  if (cls) g.setAttribute("class", cls);
  g.appendChild(HS.svg("rect", { x: x.toFixed(2), y: y, width: Math.max(w, 0.5).toFixed(2), height: HS.ROW - 1, fill: this.color(fr) }));
  if (w > 36) {
    var text = this.label(fr);
    var fit = Math.floor((w - 6) / 6.7);
    if (text.length > fit) text = fit > 2 ? text.slice(0, fit - 1) + "\u2026" : "";
    if (text) {
      var tx = HS.svg("text", { x: (x + 3).toFixed(2), y: y + 12.5 });
      tx.textContent = text;
      g.appendChild(tx);
    }
  }
  return g;
};

/** Draws the zoomed subtree, plus its ancestors as full-width bars to zoom back out. */
HS.Flame.prototype.render = function () {
  var t = this.tree;
  var svg = this.svg;
  HS.clear(svg);
  if (!t) return;
  var W = Math.max(this.wrap.clientWidth, 200);
  var z = this.zoom;
  var frag = document.createDocumentFragment();
  var path = [];
  for (var a = t.p[z]; a >= 0; a = t.p[a]) path.unshift(a);
  for (var k = 0; k < path.length; k++) frag.appendChild(this.bar(path[k], 0, W, k * HS.ROW, "ancestor"));
  var scale = t.v[z] > 0 ? W / t.v[z] : 0;
  var x0 = t.x[z];
  var end = z + t.size[z];
  var drawn = 0;
  var deepest = t.depth[z];
  for (var i = z; i < end; ) {
    var w = t.v[i] * scale;
    if (w < 1 && i !== z) {
      i += t.size[i];
      continue;
    }
    var cls = this.matched ? (this.matched[i] ? "match" : "dim") : "";
    frag.appendChild(this.bar(i, (t.x[i] - x0) * scale, w, t.depth[i] * HS.ROW, cls));
    if (t.depth[i] > deepest) deepest = t.depth[i];
    drawn++;
    i++;
  }
  svg.setAttribute("height", (deepest + 1) * HS.ROW + 2);
  svg.setAttribute("viewBox", "0 0 " + W + " " + ((deepest + 1) * HS.ROW + 2));
  svg.setAttribute("data-zoom", z);
  svg.setAttribute("data-drawn", drawn);
  svg.appendChild(frag);
  this.resetButton.disabled = z === 0;
  this.renderBreadcrumb(path.concat(z === 0 ? [] : [z]));
};

HS.Flame.prototype.renderBreadcrumb = function (path) {
  var self = this;
  var bc = this.breadcrumb;
  HS.clear(bc);
  if (path.length === 0) {
    bc.textContent = "Click a frame to zoom in; hover for details.";
    return;
  }
  path.forEach(function (i, k) {
    if (k > 0) bc.appendChild(document.createTextNode(" \u203A "));
    var fr = self.tree.frame(i);
    if (k === path.length - 1) {
      bc.appendChild(HS.el("strong", "", self.label(fr)));
    } else {
      var a = HS.el("a", "", self.label(fr));
      a.setAttribute("role", "link");
      a.addEventListener("click", function () { self.setZoom(i); });
      bc.appendChild(a);
    }
  });
};

HS.Flame.prototype.hover = function (ev) {
  var i = this.nodeOf(ev.target);
  var tip = this.tooltip;
  if (i === null || !this.tree) {
    tip.hidden = true;
    return;
  }
  var t = this.tree;
  var fr = t.frame(i);
  HS.clear(tip);
  tip.appendChild(HS.el("div", "", fr.name));
  if (fr.kind === "frame") tip.appendChild(HS.el("div", "", fr.file + ":" + fr.line));
  tip.appendChild(HS.el("div", "", HS.bytes(t.v[i]) + " \u00B7 " + HS.pct(t.v[i], t.v[0]) + " of this view" +
    (this.zoom ? " \u00B7 " + HS.pct(t.v[i], t.v[this.zoom]) + " of zoom" : "")));
  tip.appendChild(HS.el("div", "", HS.count(t.c[i]) + " block" + (t.c[i] === 1 ? "" : "s")));
  tip.hidden = false;
  var x = Math.min(ev.clientX + 14, window.innerWidth - tip.offsetWidth - 8);
  var y = ev.clientY + 16;
  if (y + tip.offsetHeight > window.innerHeight) y = ev.clientY - tip.offsetHeight - 8;
  tip.style.left = Math.max(4, x) + "px";
  tip.style.top = Math.max(4, y) + "px";
};
