// heapscope report: shared helpers. Every string from the profile reaches the page through
// textContent or setAttribute, never through innerHTML.
"use strict";
var HS = {};

HS.SVG = "http://www.w3.org/2000/svg"; // the SVG namespace name, not a network address

/** Creates an HTML element with optional class and text. */
HS.el = function (tag, cls, text) {
  var e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
};

/** Creates an SVG element with attributes. */
HS.svg = function (tag, attrs) {
  var e = document.createElementNS(HS.SVG, tag);
  if (attrs) {
    for (var k in attrs) {
      if (Object.prototype.hasOwnProperty.call(attrs, k)) e.setAttribute(k, String(attrs[k]));
    }
  }
  return e;
};

/** Removes every child of a node. */
HS.clear = function (node) {
  while (node.firstChild) node.removeChild(node.firstChild);
};

/** 1536 -> "1.5 KiB". */
HS.bytes = function (n) {
  var units = ["B", "KiB", "MiB", "GiB", "TiB"];
  var i = 0;
  var v = Number(n) || 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return (i === 0 ? String(v) : v.toFixed(v >= 100 ? 0 : v >= 10 ? 1 : 2)) + " " + units[i];
};

/** 12345 -> "12,345". */
HS.count = function (n) {
  return (Number(n) || 0).toLocaleString("en-US");
};

/** A share as a percentage with one decimal. */
HS.pct = function (part, whole) {
  if (!whole) return "0%";
  var p = (100 * part) / whole;
  return (p >= 10 ? p.toFixed(1) : p.toFixed(2)) + "%";
};

/** 61500 ms -> "1 min 1.5 s". */
HS.duration = function (ms) {
  var s = (Number(ms) || 0) / 1000;
  if (s < 60) return s.toFixed(s < 10 ? 2 : 1) + " s";
  var m = Math.floor(s / 60);
  return m + " min " + (s - 60 * m).toFixed(1) + " s";
};

/** A stable hue for a string, for frame colors. */
HS.hash = function (str) {
  var h = 2166136261;
  for (var i = 0; i < str.length; i++) {
    h ^= str.charCodeAt(i);
    h = Math.imul(h, 16777619);
  }
  return h >>> 0;
};

HS.VIEW_TITLES = {
  peak: "Memory at peak",
  end: "Leaks: memory still held at end",
  total: "Total allocated (including freed)",
};
