// The reports page's charts (uPlot, vendored under /static/vendor/uplot/): the figures are
// in the page (script#report-charts, from pypbx.reports.build_charts and the report's
// "hours"), so no request is made. No build step.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("report-charts").textContent);
  var S = JSON.parse(document.getElementById("report-strings").textContent);
  var C = { offered: "#4aa3ff", answered: "#2e9e5b", abandoned: "#d93a3a", sl: "#e0a100",
            seats: "#d93a3a", logged: "#4aa3ff", staffed: "#2e9e5b" };
  var AXIS = { stroke: "#9fb0c2", grid: { stroke: "#2a3a4c" }, ticks: { stroke: "#2a3a4c" } };

  function width(el) { return Math.max(280, Math.min(el.clientWidth || 560, 720) - 8); }
  function bars() { return uPlot.paths.bars({ size: [0.6, 60] }); }
  function empty(el) {
    var p = document.createElement("p"); p.className = "empty"; p.textContent = S.none; el.appendChild(p);
  }
  function plot(id, opts, series) {
    var el = document.getElementById(id);
    if (!series[0].length) { empty(el); return null; }
    opts.width = width(el); opts.height = 240;
    opts.axes = opts.axes || [Object.assign({}, AXIS), Object.assign({}, AXIS)];
    opts.legend = { live: false };
    opts.cursor = { drag: { x: false, y: false } };
    var u = new uPlot(opts, series, el);
    el.dataset.drawn = "1";
    return u;
  }
  var charts = [];

  var H24 = []; for (var i = 0; i < 24; i++) H24.push(i);
  function perHour(rows, key) {
    var by = {}; rows.forEach(function (r) { by[r.hour] = r[key]; });
    return H24.map(function (h) { return by[h] === undefined ? 0 : by[h]; });
  }
  function xIndex(labels) {  // a category axis: a label under each whole index
    return Object.assign({ values: function (u, vals) { return vals.map(function (v) {
      return Math.abs(v - Math.round(v)) < 1e-9 && labels[Math.round(v)] !== undefined ? labels[Math.round(v)] : ""; }); } }, AXIS);
  }
  var HOURS_X = { time: false, range: [-0.5, 23.5] };
  var Y0 = { range: function (u, lo, hi) { return [0, Math.max(1, Math.ceil(hi * 1.1))]; } };
  var hourTicks = H24.map(function (h) { return h % 3 === 0 ? (h < 10 ? "0" : "") + h + "h" : ""; });

  // calls and abandons per hour (the report's "hours"): abandons drawn over the calls
  var hrs = data.hours;
  charts.push(plot("chart-hours", {
    scales: { x: HOURS_X, y: Y0 },
    axes: [Object.assign({ splits: function () { return H24; } }, xIndex(hourTicks)), Object.assign({}, AXIS)],
    series: [{}, { label: S.offered, stroke: C.offered, fill: C.offered + "88", paths: bars(), points: { show: false } },
             { label: S.abandoned, stroke: C.abandoned, fill: C.abandoned + "cc", paths: bars(), points: { show: false } }]
  }, hrs.length ? [H24, perHour(hrs, "offered"), perHour(hrs, "abandoned")] : [[]]));

  // service level per day
  var days = data.service_level_by_day;
  charts.push(plot("chart-sl", {
    scales: { x: { time: false, range: [-0.5, Math.max(days.length, 1) - 0.5] }, y: { range: [0, 100] } },
    axes: [xIndex(days.map(function (d) { return d.day.slice(5); })),
           Object.assign({ values: function (u, vals) { return vals.map(function (v) { return v + " %"; }); } }, AXIS)],
    series: [{}, { label: S.sl, stroke: C.sl, width: 2, points: { show: true, size: 9 },
                   value: function (u, v) { return v === null ? "–" : v.toFixed(0) + " %"; } }]
  }, [days.map(function (d, i) { return i; }),
      days.map(function (d) { return d.service_level === null ? null : Math.round(d.service_level * 1000) / 10; })]));

  // waiting-time distribution (seconds)
  var waits = data.wait_distribution;
  var anyWait = waits.some(function (w) { return w.answered + w.abandoned > 0; });
  charts.push(plot("chart-waits", {
    scales: { x: { time: false, range: [-0.5, waits.length - 0.5] }, y: Y0 },
    axes: [Object.assign({ splits: function () { return waits.map(function (w, i) { return i; }); } },
                         xIndex(waits.map(function (w) { return w.label.replace(" s", ""); })), { label: S.seconds }),
           Object.assign({}, AXIS)],
    series: [{}, { label: S.answered, stroke: C.answered, fill: C.answered + "aa", paths: bars(), points: { show: false } },
             { label: S.abandoned, stroke: C.abandoned, fill: C.abandoned + "aa", paths: bars(), points: { show: false } }]
  }, anyWait ? [waits.map(function (w, i) { return i; }), waits.map(function (w) { return w.answered; }),
                waits.map(function (w) { return w.abandoned; })] : [[]]));

  // seats needed (bars) vs agents logged in and staffed (lines), per hour
  var st = data.staffing;
  charts.push(plot("chart-staff", {
    scales: { x: HOURS_X, y: Y0 },
    axes: [Object.assign({ splits: function () { return H24; } }, xIndex(hourTicks)), Object.assign({}, AXIS)],
    series: [{}, { label: S.seats, stroke: C.seats, fill: C.seats + "66", paths: bars(), points: { show: false } },
             { label: S.logged, stroke: C.logged, width: 2, points: { show: false } },
             { label: S.staffed, stroke: C.staffed, width: 2, dash: [6, 4], points: { show: false } }]
  }, st.length ? [st.map(function (h) { return h.hour; }), st.map(function (h) { return h.seats_needed; }),
                  st.map(function (h) { return h.logged_in; }), st.map(function (h) { return h.staffed; })] : [[]]));

  window.addEventListener("resize", function () {
    charts.forEach(function (u) { if (u) u.setSize({ width: width(u.root.parentNode), height: 240 }); });
  });
})();
