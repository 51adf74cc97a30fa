// The experiments page's charts, drawn with the vendored Apache ECharts (static/vendor/echarts.min.js):
// a metric against a param (scatter, coloured by a second param), parallel coordinates over the params
// and the metric (brushing an axis filters the table), the series logged with log_metric(key, Ys=[...]),
// the SDKs' charts (log_chart, create_chart, update_chart, cnvrg_linechart_ lines: a chart per key, every
// shown experiment's series in it; a heatmap per experiment) and the images the experiments logged.
"use strict";
(() => {
  const num = (v) => (v === null || v === undefined || v === "" || isNaN(Number(v)) ? null : Number(v));
  const $ = (id) => document.getElementById(id);
  const rowKey = (e) => `${e.run_id}#${e.task_id}#${e.map_index}#${e.index}`;  // a batch's routes share a map index
  const param = (e, k) => window.FlowParamOf(e, k);
  const RUN = "(run)";  // the flow's page colours by run
  const colour = (e, k) => (k === RUN ? e.run_id : param(e, k));
  const name = (view, e) => `${view.flow ? `${e.run_id} · ` : ""}${e.task} ${e.label}`;
  const state = { parallelSignature: "", parallelRows: [] };
  // A tooltip's HTML is made of the flow's and the run's own text (titles, param keys and values, tag
  // keys, a run's conf): every piece is escaped, never markup (issue 29: stored XSS).
  const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
  const esc = (v) => String(v ?? "").replace(/[&<>"']/g, (c) => ESCAPES[c]);

  function chart(view, id, count) {
    if (!view.charts[id]) {
      view.charts[id] = echarts.init($(id), null, { renderer: count > 2000 ? "canvas" : "svg" });
      window.addEventListener("resize", () => view.charts[id].resize());
    }
    return view.charts[id];
  }

  function axis(values, name) {
    const numeric = values.every((v) => num(v) !== null);
    return numeric ? { type: "value", name, scale: true }
      : { type: "category", name, data: [...new Set(values.map(String))].sort() };
  }

  function empty(c, message) {
    c.setOption({ title: { text: message, left: "center", top: "middle", textStyle: { fontSize: 13, fontWeight: "normal" } },
      series: [], xAxis: [], yAxis: [], parallelAxis: [] }, true);
  }

  function scatter(view, rows) {
    const metric = $("metric").value, x = $("x-param").value, color = $("color-param").value;
    const points = rows.filter((e) => metric && x && num(e.tags[metric]) !== null && param(e, x) !== undefined);
    const c = chart(view, "scatter", points.length);
    if (!points.length) return empty(c, "Scatter: choose a metric (a numeric tag) and a param");
    const groups = new Map();
    const numericX = points.every((p) => num(param(p, x)) !== null);
    for (const e of points) {
      const g = color ? String(colour(e, color) ?? "(not set)") : "experiments";
      if (!groups.has(g)) groups.set(g, []);
      const xv = numericX ? num(param(e, x)) : String(param(e, x));
      groups.get(g).push({ value: [xv, num(e.tags[metric])], name: name(view, e) });
    }
    c.setOption({ animation: false,  // redrawn on every load of a followed run
      title: { text: `${metric} against ${x}`, textStyle: { fontSize: 13 } },
      tooltip: { formatter: (p) => `${esc(p.seriesName)}<br>${esc(p.name)}<br>${esc(x)}=${esc(p.value[0])}, ${esc(metric)}=${esc(p.value[1])}` },
      legend: { top: 24, type: "scroll" }, grid: { top: 64, left: 56, right: 24, bottom: 40 },
      xAxis: axis(points.map((e) => param(e, x)), x), yAxis: { type: "value", name: metric, scale: true },
      series: [...groups].map(([group, data]) => ({ type: "scatter", name: color === RUN ? group : color ? `${color}=${group}` : group, data, symbolSize: 10 })),
    }, true);
  }

  function parallel(view) {
    const metric = $("metric").value, run = view.run;
    const keys = run.differing.length ? run.differing : run.param_keys;
    const rows = view.rows.filter((e) => e.has_record && (!view.tab || e.task === view.tab));
    const runs = view.flow && run.runs.length > 1 ? [{ k: "run", get: (e) => e.run_id }] : [];  // brush a run
    const dims = [...runs, ...keys.map((k) => ({ k, get: (e) => param(e, k) })), ...(metric ? [{ k: metric, get: (e) => e.tags[metric] }] : [])]
      .filter((d) => rows.some((e) => d.get(e) !== undefined));
    const data = rows.map((e) => dims.map((d) => { const v = d.get(e); return v === undefined ? null : num(v) ?? String(v); }));
    const signature = JSON.stringify([dims.map((d) => d.k), data]);
    if (signature === state.parallelSignature) return;
    state.parallelSignature = signature;
    state.parallelRows = rows;
    const c = chart(view, "parallel", rows.length);
    if (dims.length < 2) return empty(c, "Parallel coordinates: needs params and a metric");
    c.setOption({ animation: false,  // redrawn on every load of a followed run
      title: { text: "Params and metric (brush an axis to filter the table)", textStyle: { fontSize: 13 } },
      parallel: { left: 56, right: 72, top: 64, bottom: 32 },
      parallelAxis: dims.map((d, dim) => ({ id: `axis${dim}`, dim, ...axis(data.map((r) => r[dim]).filter((v) => v !== null), d.k) })),
      series: [{ type: "parallel", data, lineStyle: { width: 1.5, opacity: 0.6 }, inactiveOpacity: 0.05, activeOpacity: 1 }],
    }, true);
    c.off("axisareaselected");
    c.on("axisareaselected", () => {
      const series = c.getModel().getSeries()[0];
      const inactive = series.getRawIndicesByActiveState("inactive");
      view.brushed = inactive.length ? new Set(series.getRawIndicesByActiveState("active").map((i) => rowKey(state.parallelRows[i]))) : null;
      view.render();
    });
  }

  function series(view, rows) {
    const metric = $("metric").value;
    const logged = rows.filter((e) => e.series && Object.keys(e.series).length).slice(0, 30);
    const c = chart(view, "series", 0);
    const key = (e) => (metric && e.series[metric] ? metric : Object.keys(e.series)[0]);
    if (!logged.length) return empty(c, "Series: none logged with log_metric(key, Ys=[...]) among the shown experiments");
    c.setOption({ animation: false,  // redrawn on every load of a followed run
      title: { text: `Series of the shown experiments (${logged.length})`, textStyle: { fontSize: 13 } },
      tooltip: { trigger: "axis", formatter: (ps) => [`step ${esc(ps[0]?.value[0])}`, ...ps.map((p) => `${p.marker}${esc(p.seriesName)}: ${esc(p.value[1])}`)].join("<br>") },
      legend: { top: 24, type: "scroll" }, grid: { top: 64, left: 56, right: 24, bottom: 40 },
      xAxis: { type: "value", name: "step", scale: true }, yAxis: { type: "value", scale: true },
      series: logged.map((e) => {
        const s = e.series[key(e)];
        const ys = Array.isArray(s) ? s : s.ys || [], xs = Array.isArray(s) ? null : s.xs;
        return { type: "line", name: `${name(view, e)} · ${key(e)}`, showSymbol: ys.length === 1,  // one point: a dot
          data: ys.map((y, i) => [xs ? num(xs[i]) ?? i : i, num(y)]) };
      }),
    }, true);
  }

  const SDK_KEYS = 24, SDK_EXPERIMENTS = 30, HEATMAPS = 6, IMAGES = 48;

  // The divs of the SDKs' charts: one per chart key (a heatmap: one per experiment), made again when they change.
  function sdkSlots(view, slots) {
    const box = $("sdk-charts");
    const signature = JSON.stringify(slots.map((s) => s.id));
    if (box.dataset.signature === signature) return;
    for (const id of Object.keys(view.charts).filter((k) => k.startsWith("sdk-"))) {
      view.charts[id].dispose();
      delete view.charts[id];
    }
    box.replaceChildren(...slots.map((s) => Object.assign(document.createElement("div"), { id: s.id, className: "chart" })));
    box.dataset.signature = signature;
  }

  const points = (data) => data.map((p, i) => (Array.isArray(p) ? [num(p[0]) ?? String(p[0]), num(p[1])] : [i, num(p)]));

  function sdkCharts(view, rows) {
    const logged = rows.filter((e) => e.charts && Object.keys(e.charts).length).slice(0, SDK_EXPERIMENTS);
    const keys = [...new Set(logged.flatMap((e) => Object.keys(e.charts)))].sort().slice(0, SDK_KEYS);
    const slots = [];
    for (const key of keys) {
      const having = logged.filter((e) => e.charts[key]);
      if (having[0].charts[key].type === "heatmap") having.slice(0, HEATMAPS).forEach((e, i) => slots.push({ id: `sdk-${slots.length}`, key, e, i }));
      else slots.push({ id: `sdk-${slots.length}`, key, having });
    }
    sdkSlots(view, slots);
    for (const slot of slots) {
      const c = chart(view, slot.id, 0);
      if (slot.e) heatmap(view, c, slot.key, slot.e);
      else sdkChart(view, c, slot.key, slot.having);
    }
  }

  function sdkChart(view, c, key, having) {
    const first = having[0].charts[key], kind = first.type === "scatter" ? "scatter" : first.type === "bar" ? "bar" : "line";
    const series = having.flatMap((e) => (e.charts[key].type === first.type ? e.charts[key].series : []).map((s) => ({
      type: kind, name: `${name(view, e)}${s.name ? ` · ${s.name}` : ""}`,
      data: kind === "bar" ? s.data.map(num) : points(s.data), showSymbol: kind !== "line" || s.data.length === 1,
    })));
    const xs = series.flatMap((s) => (kind === "bar" ? [] : s.data.map((p) => p[0])));
    const ticks = first.x_ticks || null;
    const xAxis = kind === "bar" ? { type: "category", name: first.x_axis || "", data: (ticks || series[0]?.data.map((_, i) => i) || []).map(String) }
      : xs.every((x) => typeof x === "number") ? { type: "value", name: first.x_axis || "", scale: true }
        : { type: "category", name: first.x_axis || "", data: [...new Set(xs.map(String))] };
    c.setOption({ animation: false,  // redrawn on every load of a followed run; bars start at 0 (no scale)
      title: { text: first.title || key, textStyle: { fontSize: 13 } },
      tooltip: { trigger: kind === "scatter" ? "item" : "axis", formatter: (ps) => [].concat(ps).map((p) => `${p.marker}${esc(p.seriesName)}: ${esc(p.value)}`).join("<br>") },
      legend: { top: 24, type: "scroll" }, grid: { top: 64, left: 56, right: 24, bottom: 40 },
      xAxis, yAxis: { type: "value", name: first.y_axis || "", scale: kind !== "bar", min: first.min ?? null, max: first.max ?? null }, series,
    }, true);
  }

  function heatmap(view, c, key, e) {
    const h = e.charts[key], cells = h.series.flatMap((s) => s.data).filter((d) => Array.isArray(d) && d.length === 3);
    const width = Math.max(0, ...cells.map((d) => d[0] + 1)), height = Math.max(0, ...cells.map((d) => d[1] + 1));
    const values = cells.map((d) => num(d[2])).filter((v) => v !== null);
    const ticks = (t, n) => (Array.isArray(t) && t.length >= n ? t : [...Array(n).keys()]).map(String);
    c.setOption({ animation: false,
      title: { text: `${h.title || key} · ${name(view, e)}`, textStyle: { fontSize: 13 } },
      tooltip: { formatter: (p) => `${esc(p.value[2])}` }, grid: { top: 40, left: 72, right: 24, bottom: 72 },
      xAxis: { type: "category", data: ticks(h.x_ticks, width), name: h.x_axis || "" },
      yAxis: { type: "category", data: ticks(h.y_ticks, height), name: h.y_axis || "", inverse: true },  // row 0 on top
      visualMap: { min: h.min ?? Math.min(...values, 0), max: h.max ?? Math.max(...values, 1), calculable: true, orient: "horizontal", left: "center", bottom: 0 },
      series: [{ type: "heatmap", data: cells, label: { show: cells.length <= 100 } }],
    }, true);
  }

  function images(view, rows) {
    const box = $("images");
    const shown = rows.flatMap((e) => (e.images || []).map((path) => ({ e, path }))).slice(0, IMAGES);
    const signature = JSON.stringify(shown.map((s) => [rowKey(s.e), s.path]));
    if (box.dataset.signature === signature) return;
    box.dataset.signature = signature;
    box.replaceChildren(...shown.map(({ e, path }) => {
      const figure = document.createElement("figure");
      const img = Object.assign(document.createElement("img"), { src: window.FlowArtifactUrl(e, path), alt: path, loading: "lazy" });
      const caption = document.createElement("figcaption");
      caption.textContent = `${name(view, e)} · ${path}`;  // text, never markup
      figure.append(img, caption);
      return figure;
    }));
  }

  window.FlowCharts = {
    draw(view, visibleRows) {
      if (typeof echarts === "undefined") return;
      const rows = visibleRows();
      scatter(view, rows);
      parallel(view);
      series(view, rows);
      sdkCharts(view, rows);
      if (window.FlowArtifactUrl) images(view, rows);
    },
    clear(view) {
      state.parallelSignature = "";
      if (view.charts.parallel) view.charts.parallel.clear();
    },
  };
})();
