/*
 * report.html's script, inlined by render.ts; plain ES2017 because it runs as is in the browser.
 * charts-png.ts runs the same file in Node to get `config` and the error-bar plugin, so the
 * PNG exports and the page are drawn by one implementation. It never builds HTML from strings:
 * everything user-named is rendered (escaped) by the template; this only draws charts on canvases
 * and toggles which pre-rendered cell detail is visible.
 */
(function (root) {
  'use strict';

  // Draws lo–hi whiskers for datasets that carry `errorBars: [{lo, hi} | null]`.
  var errorBars = {
    id: 'errorBars',
    afterDatasetsDraw: function (chart) {
      var ctx = chart.ctx;
      chart.data.datasets.forEach(function (ds, di) {
        if (!ds.errorBars || !chart.isDatasetVisible(di)) return;
        var meta = chart.getDatasetMeta(di);
        var scale = chart.scales[meta.yAxisID];
        meta.data.forEach(function (el, i) {
          var e = ds.errorBars[i];
          if (!e || e.lo === null || e.hi === null || el.skip) return;
          var x = el.x;
          var top = scale.getPixelForValue(e.hi);
          var bottom = scale.getPixelForValue(e.lo);
          var cap = Math.max(3, Math.min(8, (el.width || 12) / 4));
          ctx.save();
          ctx.strokeStyle = '#222';
          ctx.lineWidth = 1.2;
          ctx.beginPath();
          ctx.moveTo(x, top);
          ctx.lineTo(x, bottom);
          ctx.moveTo(x - cap, top);
          ctx.lineTo(x + cap, top);
          ctx.moveTo(x - cap, bottom);
          ctx.lineTo(x + cap, bottom);
          ctx.stroke();
          ctx.restore();
        });
      });
    },
  };

  // Opaque white behind the chart, so exported pixels are the same on any page background.
  var background = {
    id: 'whiteBackground',
    beforeDraw: function (chart) {
      var ctx = chart.ctx;
      ctx.save();
      ctx.fillStyle = '#ffffff';
      ctx.fillRect(0, 0, chart.width, chart.height);
      ctx.restore();
    },
  };

  function fmt(spec, v) {
    if (v === null || v === undefined || !isFinite(v)) return 'n/a';
    return spec.percent ? (v * 100).toFixed(1) + ' %' : (v >= 0 ? '+' : '') + v.toFixed(3);
  }

  // A chart.js configuration from a ChartSpec (chart-specs.ts).
  function config(spec, opts) {
    opts = opts || {};
    var scaleY = spec.percent ? 100 : 1;
    var datasets = spec.series.map(function (s) {
      var base = {
        label: s.label,
        data: s.values.map(function (v) { return v === null ? null : v * scaleY; }),
        errorBars: s.values.map(function (_, i) {
          return s.lo[i] === null || s.hi[i] === null ? null : { lo: s.lo[i] * scaleY, hi: s.hi[i] * scaleY };
        }),
        notes: s.notes,
        borderColor: s.colour,
        backgroundColor: spec.type === 'bar' ? s.colour + 'cc' : s.colour,
      };
      if (spec.type === 'line') {
        base.borderDash = s.control ? [6, 4] : [];
        base.pointRadius = 4;
        base.spanGaps = true;
        base.tension = 0;
      }
      return base;
    });
    // Whiskers are drawn by the plugin, so the axis must be told to leave room for them.
    var ends = [0];
    spec.series.forEach(function (s) {
      s.lo.concat(s.hi, s.values).forEach(function (v) { if (v !== null && isFinite(v)) ends.push(v * scaleY); });
    });
    return {
      type: spec.type,
      data: { labels: spec.labels, datasets: datasets },
      plugins: [background, errorBars],
      options: {
        responsive: opts.responsive !== false,
        maintainAspectRatio: false,
        animation: false,
        devicePixelRatio: opts.devicePixelRatio,
        plugins: {
          title: { display: true, text: spec.title },
          legend: { position: 'bottom' },
          tooltip: {
            callbacks: {
              label: function (item) {
                var ds = item.dataset;
                var e = ds.errorBars[item.dataIndex];
                var v = item.raw === null ? null : item.raw / scaleY;
                var ciText = e ? ' [' + fmt(spec, e.lo / scaleY) + ' – ' + fmt(spec, e.hi / scaleY) + ']' : '';
                var note = ds.notes[item.dataIndex];
                return ds.label + ': ' + fmt(spec, v) + ciText + (note ? ' (' + note + ')' : '');
              },
            },
          },
        },
        scales: {
          x: { title: { display: true, text: spec.xLabel } },
          y: spec.percent
            ? { min: 0, max: 100, title: { display: true, text: spec.yLabel } }
            : { suggestedMin: Math.min.apply(null, ends), suggestedMax: Math.max.apply(null, ends), title: { display: true, text: spec.yLabel } },
        },
      },
    };
  }

  root.PatchAtlasCharts = { config: config, errorBars: errorBars, background: background };

  if (typeof document === 'undefined') return;

  function boot() {
    var el = document.getElementById('report-data');
    var data = JSON.parse(el.textContent);
    (data.charts || []).forEach(function (spec) {
      var canvas = document.getElementById('chart-' + spec.id);
      if (!canvas) return;
      // One broken chart must not take the rest of the page (or the ready flag) with it.
      try {
        new root.Chart(canvas, config(spec));
      } catch (e) {
        console.error('chart ' + spec.id + ': ' + (e && e.message));
      }
    });
    // Atlas grid: clicking a cell shows its pre-rendered detail panel.
    var cells = document.querySelectorAll('.atlas-grid .cell');
    Array.prototype.forEach.call(cells, function (btn) {
      btn.addEventListener('click', function () {
        Array.prototype.forEach.call(document.querySelectorAll('.cell-detail'), function (d) { d.hidden = true; });
        Array.prototype.forEach.call(cells, function (c) { c.classList.remove('selected'); });
        var d = document.getElementById('cell-detail-' + btn.getAttribute('data-cell'));
        if (d) d.hidden = false;
        var hint = document.getElementById('cell-hint');
        if (hint) hint.hidden = true;
        btn.classList.add('selected');
      });
    });
    document.documentElement.setAttribute('data-ready', '1');
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', boot);
  else boot();
})(typeof self !== 'undefined' ? self : globalThis);
