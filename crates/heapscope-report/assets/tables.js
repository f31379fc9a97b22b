// heapscope report: sortable top-N tables by line and by file.
"use strict";

/** A sortable table over rows of arrays; `cells(row)` gives the displayed cells. */
HS.Table = function (table, cells) {
  this.table = table;
  this.body = table.tBodies[0];
  this.cells = cells;
  this.rows = [];
  this.key = null;
  this.desc = true;
  var self = this;
  var ths = table.tHead.rows[0].cells;
  for (var i = 0; i < ths.length; i++) {
    ths[i].setAttribute("tabindex", "0");
    ths[i].addEventListener("click", function (ev) { self.sortBy(ev.currentTarget); });
    ths[i].addEventListener("keydown", function (ev) {
      if (ev.key === "Enter" || ev.key === " ") {
        ev.preventDefault();
        self.sortBy(ev.currentTarget);
      }
    });
  }
};

HS.Table.prototype.show = function (rows, total) {
  this.rows = rows.slice();
  this.total = total;
  this.key = null;
  var first = this.table.tHead.rows[0].cells[0];
  this.desc = false;
  this.sortBy(first);
};

HS.Table.prototype.sortBy = function (th) {
  var key = Number(th.getAttribute("data-key"));
  var num = th.hasAttribute("data-num");
  this.desc = this.key === key ? !this.desc : num;
  this.key = key;
  var desc = this.desc;
  var strings = HS.data.strings;
  this.rows.sort(function (a, b) {
    var x = a[key];
    var y = b[key];
    if (!num) {
      x = strings[x] || "";
      y = strings[y] || "";
      if (x === y && a.length === 5) {
        x = a[1];
        y = b[1];
      }
    }
    var r = x < y ? -1 : x > y ? 1 : 0;
    return desc ? -r : r;
  });
  var ths = this.table.tHead.rows[0].cells;
  for (var i = 0; i < ths.length; i++) ths[i].removeAttribute("aria-sort");
  th.setAttribute("aria-sort", desc ? "descending" : "ascending");
  this.render();
};

HS.Table.prototype.render = function () {
  HS.clear(this.body);
  var frag = document.createDocumentFragment();
  var self = this;
  this.rows.forEach(function (row) {
    var tr = HS.el("tr");
    self.cells(row, self.total).forEach(function (c) {
      var td = HS.el("td", c[1], c[0]);
      if (c[2]) td.title = c[2];
      tr.appendChild(td);
    });
    frag.appendChild(tr);
  });
  if (!this.rows.length) {
    var tr = HS.el("tr");
    var td = HS.el("td", "muted", "Nothing in this view.");
    td.colSpan = 5;
    tr.appendChild(td);
    frag.appendChild(tr);
  }
  this.body.appendChild(frag);
};

/** Cells of a by-line row: [file, line, function, bytes, count]. */
HS.lineCells = function (r, total) {
  var s = HS.data.strings;
  return [
    [HS.bytes(r[3]), "num"], [HS.pct(r[3], total), "num"], [HS.count(r[4]), "num"],
    [s[r[0]] + ":" + r[1], "loc", s[r[0]] + ":" + r[1]], [s[r[2]] || "<unknown>", "fn"],
  ];
};

/** Cells of a by-file row: [file, bytes, count]. */
HS.fileCells = function (r, total) {
  var s = HS.data.strings;
  return [[HS.bytes(r[1]), "num"], [HS.pct(r[1], total), "num"], [HS.count(r[2]), "num"], [s[r[0]], "loc", s[r[0]]]];
};
