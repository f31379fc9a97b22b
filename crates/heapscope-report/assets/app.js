// heapscope report: wiring. Reads the embedded JSON, fills the page, handles the view switch.
"use strict";

(function () {
  var t0 = performance.now();
  var data = JSON.parse(document.getElementById("heapscope-data").textContent);
  HS.data = data;
  var $ = function (id) { return document.getElementById(id); };
  var meta = data.meta;

  var command = meta.command.join(" ");
  $("title-command").textContent = command;
  document.title = "heapscope: " + (command || "report");
  var rows = [
    ["Command", command || "(unknown)"],
    ["Python", meta.python_version || "?"],
    ["PID", meta.pid],
    ["Started", meta.start_time_unix_ms ? new Date(meta.start_time_unix_ms).toISOString().replace("T", " ").slice(0, 19) + " UTC" : "?"],
    ["Duration", HS.duration(meta.duration_ms)],
    ["Peak", HS.bytes(meta.peak_bytes) + " at " + HS.duration(meta.peak_time_ms)],
    ["Total allocated", HS.bytes(meta.total_allocated_bytes) + " in " + HS.count(meta.total_allocations) + " blocks"],
    ["Stacks", HS.count(meta.stacks)],
    ["Threads", meta.threads],
  ];
  rows.forEach(function (r) {
    var d = HS.el("div");
    d.appendChild(HS.el("dt", "", r[0]));
    d.appendChild(HS.el("dd", "", r[1]));
    $("meta").appendChild(d);
  });
  $("truncated").hidden = !meta.truncated;

  var trees = {};
  var current = HS.selection(data, -1);
  var currentView = data.views[data.initial] ? data.initial : "peak";
  var flame = new HS.Flame($("flame"), $("flame-wrap"), $("tooltip"), $("breadcrumb"), $("zoom-reset"));
  var byLine = new HS.Table($("by-line"), HS.lineCells);
  var byFile = new HS.Table($("by-file"), HS.fileCells);

  function showView(name) {
    var view = current.views[name];
    if (!view) return;
    currentView = name;
    var key = current.key + ":" + name;
    if (!trees[key]) trees[key] = new HS.Tree(data, view);
    var buttons = document.querySelectorAll("#view-switch button");
    for (var i = 0; i < buttons.length; i++) {
      buttons[i].setAttribute("aria-selected", String(buttons[i].getAttribute("data-view") === name));
    }
    $("flame-title").textContent = HS.VIEW_TITLES[name] + ": " + HS.bytes(view.total_bytes) + " in " + HS.count(view.total_count) + " blocks";
    $("search-result").textContent = flame.show(trees[key]) || "";
    var kept = view.tree.f.length;
    $("flame-note").textContent = kept < view.full_nodes
      ? "Showing " + HS.count(kept) + " of " + HS.count(view.full_nodes) + " call-tree nodes; frames under 0.02% of the view are merged into \u201cother\u201d."
      : "";
    byLine.show(view.by_line, view.total_bytes);
    byFile.show(view.by_file, view.total_bytes);
    document.body.setAttribute("data-view", name);
  }

  document.querySelectorAll("#view-switch button").forEach(function (b) {
    b.addEventListener("click", function () { showView(b.getAttribute("data-view")); });
  });
  $("search").addEventListener("input", function (ev) {
    $("search-result").textContent = flame.search(ev.target.value);
  });
  document.addEventListener("keydown", function (ev) {
    if (ev.key === "Escape") flame.setZoom(0);
  });
  var pending = 0;
  window.addEventListener("resize", function () {
    clearTimeout(pending);
    pending = setTimeout(function () {
      flame.render();
      HS.drawTimeline($("timeline"), $("timeline-legend"), current);
    }, 100);
  });

  HS.setupProcesses(data, $("processes-section"), $("process-select"), $("processes"), function (index) {
    current = HS.selection(data, index);
    HS.drawTimeline($("timeline"), $("timeline-legend"), current);
    showView(currentView);
  });
  HS.drawTimeline($("timeline"), $("timeline-legend"), current);
  showView(currentView);
  document.body.setAttribute("data-ready", "1");
  document.body.setAttribute("data-render-ms", String(Math.round(performance.now() - t0)));
})();
