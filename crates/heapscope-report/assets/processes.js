// heapscope report: the processes of a multi-process capture: a table and a selector that
// shows one process's views and timeline, or all of them merged.
"use strict";

HS.setupProcesses = function (data, section, select, table, onSelect) {
  var procs = data.processes || [];
  if (procs.length < 2) return;
  section.hidden = false;
  var all = HS.el("option", "", "All " + procs.length + " processes (merged; at peak: each process at its own peak)");
  all.value = "-1";
  select.appendChild(all);
  var body = table.tBodies[0];
  procs.forEach(function (p, i) {
    var tr = HS.el("tr");
    var label = p.command.join(" ");
    [p.pid, p.ppid == null ? "-" : p.ppid, p.note ? "-" : HS.bytes(p.peak_bytes), p.exit,
      label + (p.note ? " (" + p.note + ")" : "")].forEach(function (v, k) {
      tr.appendChild(HS.el("td", k < 3 ? "num" : "", String(v)));
    });
    if (p.views) {
      var opt = HS.el("option", "", "pid " + p.pid + ": " + (label.length > 80 ? label.slice(0, 77) + "..." : label));
      opt.value = String(i);
      select.appendChild(opt);
      tr.className = "selectable";
      tr.addEventListener("click", function () { select.value = String(i); onSelect(i); });
    }
    body.appendChild(tr);
  });
  select.addEventListener("change", function () { onSelect(parseInt(select.value, 10)); });
};

/** Most processes drawn as their own line on the merged timeline. */
HS.MAX_PROCESS_LINES = 32;

/** What the page shows for a selection: the whole capture (-1) or one process. The whole
 * capture's timeline also draws each process's own traced memory as a line. */
HS.selection = function (data, index) {
  var procs = data.processes || [];
  var p = index >= 0 ? procs[index] : null;
  if (!p || !p.views) {
    var lines = [];
    procs.forEach(function (q) {
      if (!q.views || lines.length >= HS.MAX_PROCESS_LINES || q.timeline.t.length === 0) return;
      lines.push({
        label: "pid " + q.pid,
        t: q.timeline.t.map(function (t) { return t + q.start_offset_ms; }),
        v: q.timeline.traced,
      });
    });
    return { key: "all", views: data.views, timeline: data.timeline, meta: data.meta, lines: lines };
  }
  return {
    key: "p" + index,
    views: p.views,
    timeline: p.timeline,
    meta: { duration_ms: p.duration_ms, peak_bytes: p.peak_bytes, peak_time_ms: p.peak_time_ms },
  };
};
