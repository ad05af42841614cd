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
  function hourLabel(u, vals) { return vals.map(function (v) { return v === null ? "" : (v < 10 ? "0" : "") + v + "h"; }); }

  // calls and abandons per hour (the report's "hours")
  var hrs = data.hours;
  charts.push(plot("chart-hours", {
    scales: { x: { time: false } },
    axes: [Object.assign({ values: hourLabel }, AXIS), Object.assign({}, AXIS)],
    series: [{}, { label: S.offered, stroke: C.offered, fill: C.offered + "88", paths: bars() },
             { label: S.abandoned, stroke: C.abandoned, fill: C.abandoned + "cc", paths: bars() }]
  }, [hrs.map(function (h) { return h.hour; }), hrs.map(function (h) { return h.offered; }),
      hrs.map(function (h) { return h.abandoned; })]));

  // service level per day
  var days = data.service_level_by_day;
  charts.push(plot("chart-sl", {
    scales: { x: { time: false }, y: { range: [0, 100] } },
    axes: [Object.assign({ values: function (u, vals) { return vals.map(function (v) {
              var d = days[Math.round(v)]; return d && Math.abs(v - Math.round(v)) < 1e-9 ? d.day.slice(5) : ""; }); } }, AXIS),
           Object.assign({ values: function (u, vals) { return vals.map(function (v) { return v + " %"; }); } }, AXIS)],
    series: [{}, { label: S.sl, stroke: C.sl, width: 2, points: { show: true, size: 7 },
                   value: function (u, v) { return v === null ? "–" : v.toFixed(0) + " %"; } }]
  }, [days.map(function (d, i) { return i; }),
      days.map(function (d) { return d.service_level === null ? null : Math.round(d.service_level * 1000) / 10; })]));

  // waiting-time distribution
  var waits = data.wait_distribution;
  charts.push(plot("chart-waits", {
    scales: { x: { time: false } },
    axes: [Object.assign({ values: function (u, vals) { return vals.map(function (v) {
              var w = waits[Math.round(v)]; return w && Math.abs(v - Math.round(v)) < 1e-9 ? w.label : ""; }); } }, AXIS),
           Object.assign({}, AXIS)],
    series: [{}, { label: S.answered, stroke: C.answered, fill: C.answered + "aa", paths: bars() },
             { label: S.abandoned, stroke: C.abandoned, fill: C.abandoned + "aa", paths: bars() }]
  }, [waits.map(function (w, i) { return i; }), waits.map(function (w) { return w.answered; }),
      waits.map(function (w) { return w.abandoned; })]));

  // seats needed vs agents logged in, per hour
  var st = data.staffing;
  charts.push(plot("chart-staff", {
    scales: { x: { time: false } },
    axes: [Object.assign({ values: hourLabel }, AXIS), Object.assign({}, AXIS)],
    series: [{}, { label: S.seats, stroke: C.seats, width: 2, paths: uPlot.paths.stepped({ align: 1 }) },
             { label: S.logged, stroke: C.logged, width: 2 },
             { label: S.staffed, stroke: C.staffed, width: 2, dash: [6, 4] }]
  }, [st.map(function (h) { return h.hour; }), st.map(function (h) { return h.seats_needed; }),
      st.map(function (h) { return h.logged_in; }), st.map(function (h) { return h.staffed; })]));

  window.addEventListener("resize", function () {
    charts.forEach(function (u) { if (u) u.setSize({ width: width(u.root.parentNode), height: 240 }); });
  });
})();
