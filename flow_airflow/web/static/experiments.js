// The experiments page (flow_airflow/experiments/templates/experiments.html): fills the table and the
// charts from the JSON API (GET <prefix>/api/experiments/<dag>/<run>, page by page), follows a running
// run, and stops / re-runs it through Airflow's own REST API (which checks the caller's rights again).
"use strict";
(() => {
  const root = document.getElementById("page");
  const cfg = root.dataset;
  const PAGE = 1000;
  const FINISHED = new Set(["success", "failed"]);
  const NOT_RUN = new Set(["None", "null", "scheduled", "queued", "up_for_reschedule", "removed", "upstream_failed", "skipped"]);
  const view = { run: null, rows: [], sort: null, desc: false, tab: "", brushed: null, charts: {} };
  const $ = (id) => document.getElementById(id);

  const num = (v) => (v === null || v === undefined || v === "" || isNaN(Number(v)) ? null : Number(v));
  const text = (v) => (v === null || v === undefined ? "" : typeof v === "object" ? JSON.stringify(v) : String(v));
  const el = (tag, attrs = {}, ...children) => {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === "class") node.className = v; else if (k === "text") node.textContent = v; else node.setAttribute(k, v);
    }
    for (const c of children) node.append(c);
    return node;
  };

  async function fetchAll() {
    let offset = 0, run = null, rows = [];
    for (;;) {
      const response = await fetch(`${cfg.api}?offset=${offset}&limit=${PAGE}`, { credentials: "same-origin" });
      if (!response.ok) throw new Error(`${response.status}: ${(await response.json().catch(() => ({}))).detail || response.statusText}`);
      const body = await response.json();
      run = run || body;
      rows = rows.concat(body.experiments);
      if (offset === 0) { view.run = body; view.rows = rows; render(); }
      offset += body.experiments.length;
      if (!body.experiments.length || offset >= body.total) break;
    }
    view.run = { ...run, experiments: undefined };
    view.rows = rows;
    render();
  }

  // ---- the table -------------------------------------------------------------------------------
  function columns() {
    const run = view.run;
    const params = $("differ").checked ? run.param_keys.filter((k) => run.differing.includes(k)) : run.param_keys;
    return [
      { key: "task", title: "Task", get: (e) => e.task },
      { key: "route", title: "Route", get: (e) => e.label, sortBy: (e) => e.index },
      ...params.map((k) => ({ key: `param:${k}`, title: k, kind: "param", get: (e) => paramOf(e, k) })),
      ...run.tag_keys.map((k) => ({ key: `tag:${k}`, title: k, kind: "tag", get: (e) => e.tags[k] })),
      { key: "state", title: "State", get: (e) => e.state },
      { key: "duration", title: "Duration (s)", get: (e) => (e.duration === null ? "" : e.duration.toFixed(1)) },
      { key: "conditions", title: "Conditions", get: (e) => e.conditions.map((c) => `${c.task}: ${c.passed ? "passed" : "left out"}`).join("; ") },
      { key: "log", title: "Log", get: () => "" },
      { key: "artifacts", title: "Artifacts", get: (e) => e.artifacts.join(" ") },
    ];
  }

  function visibleRows() {
    const needle = $("filter").value.trim().toLowerCase();
    const cols = columns();
    let rows = view.rows.filter((e) => !view.tab || e.task === view.tab);
    if (view.brushed) rows = rows.filter((e) => view.brushed.has(rowKey(e)));
    if (needle) rows = rows.filter((e) => cols.some((c) => text(c.get(e)).toLowerCase().includes(needle)));
    if (view.sort) {
      const col = cols.find((c) => c.key === view.sort) || cols[0];
      const value = col.sortBy || col.get;
      const blank = (v) => text(v) === "";  // experiments without the value stay last, either way
      rows = rows.slice().sort((a, b) => (blank(value(a)) - blank(value(b))) || compare(value(a), value(b)) * (view.desc ? -1 : 1));
    }
    return rows;
  }

  function compare(a, b) {
    const x = num(a), y = num(b);
    if (x !== null && y !== null) return x - y;
    if (x !== null) return -1;
    if (y !== null) return 1;
    return text(a).localeCompare(text(b));
  }

  const rowKey = (e) => `${e.task_id}#${e.map_index}#${e.index}`;  // a batch's routes share a map index

  // A param of the experiment, else of the experiment before it on its route that had it (shown muted).
  function paramOf(e, key) {
    if (key in e.params) return e.params[key];
    for (const before of Object.values(e.upstream || {})) if (before.params && key in before.params) return before.params[key];
    return undefined;
  }
  window.FlowParamOf = paramOf;

  function best(rows) {
    const tag = $("best-tag").value;
    if (!tag) return null;
    const scored = rows.filter((e) => num(e.tags[tag]) !== null);
    if (!scored.length) return null;
    const sign = $("best-dir").value === "min" ? -1 : 1;
    return rowKey(scored.reduce((a, b) => (sign * (num(b.tags[tag]) - num(a.tags[tag])) > 0 ? b : a)));
  }

  function logLink(e) {
    const base = `${cfg.root}/dags/${encodeURIComponent(cfg.dag)}/runs/${encodeURIComponent(cfg.run)}/tasks/${encodeURIComponent(e.task_id)}`;
    return el("a", { href: e.map_index >= 0 ? `${base}/mapped/${e.map_index}` : base, target: "_top", text: "log" });
  }

  function cell(col, e) {
    const td = el("td");
    if (col.key === "log") td.append(logLink(e));
    else if (col.key === "artifacts") {
      for (const name of e.artifacts) {
        const href = `${cfg.api}/artifacts/${encodeURIComponent(e.task_id)}/${e.index}/${name.split("/").map(encodeURIComponent).join("/")}`;
        td.append(el("a", { href, download: "", text: name }), el("br"));
      }
    } else if (col.key === "conditions") {
      for (const c of e.conditions) {
        td.append(el("span", { class: c.passed ? "passed" : "left-out", text: `${c.passed ? "✓" : "✗"} ${c.task}: ${c.passed ? "passed" : "left out"}` }), " ");
        if (!c.passed) td.append(el("a", { href: `${cfg.root}/dags/${encodeURIComponent(cfg.dag)}/runs/${encodeURIComponent(cfg.run)}/tasks/${encodeURIComponent(c.condition)}`, target: "_top", text: "(why)" }));
        td.append(el("br"));
      }
    } else if (col.key === "state") td.append(el("span", { class: `badge state-${e.state}`, text: e.state === "None" ? "not run yet" : e.state }));
    else {
      td.textContent = text(col.get(e));
      if (col.kind && num(col.get(e)) !== null) td.className = "num";
      if (col.kind === "param" && !(col.key.slice(6) in e.params) && td.textContent) {
        td.classList.add("inherited");
        td.title = "a param of a task before it on its route";
      }
    }
    return td;
  }

  function renderTable() {
    const cols = columns(), rows = visibleRows(), top = best(rows);
    const head = el("tr");
    for (const c of cols) {
      const th = el("th", { "data-key": c.key, text: c.title, class: view.sort === c.key ? `sorted${view.desc ? " desc" : ""}` : "" });
      if (c.kind) th.append(el("span", { class: `kind ${c.kind}`, text: c.kind }));
      th.addEventListener("click", () => { view.desc = view.sort === c.key ? !view.desc : false; view.sort = c.key; render(); });
      head.append(th);
    }
    $("experiments").tHead.replaceChildren(head);
    const body = document.createDocumentFragment();
    for (const e of rows) {
      const tr = el("tr", { "data-task": e.task, "data-index": String(e.index) });
      if (!e.has_record && NOT_RUN.has(e.state)) tr.classList.add("not-run");
      if (rowKey(e) === top) tr.classList.add("best");
      for (const c of cols) tr.append(cell(c, e));
      body.append(tr);
    }
    $("experiments").tBodies[0].replaceChildren(body);
    $("count").textContent = `${rows.length} shown of ${view.run.total} experiments` + (view.rows.length < view.run.total ? ` (${view.rows.length} loaded)` : "");
  }

  function renderHeader() {
    const run = view.run;
    $("run-state").textContent = run.state;
    $("run-state").className = `badge state-${run.state}`;
    $("pending").replaceChildren(...run.pending.map((p) => el("p", {},
      el("span", { class: "badge pending-approval", text: "Pending Approval" }), ` ${p.task} waits for a decision: `,
      el("a", { href: `${cfg.root}${p.url}`, text: "open the approval" }))));
    const tabs = [["", `All (${run.total})`], ...run.tasks.map((t) => [t.task, `${t.task} (${t.total})`])];
    $("tabs").replaceChildren(...tabs.map(([task, label]) => {
      const b = el("button", { type: "button", class: view.tab === task ? "here" : "", "data-task": task, text: label });
      b.addEventListener("click", () => { view.tab = task; render(); });
      return b;
    }));
    const stop = $("stop");
    if (stop) stop.hidden = FINISHED.has(run.state);
    fillSelect($("best-tag"), run.tag_keys, "(a tag)");
    fillSelect($("metric"), run.tag_keys);
    fillSelect($("x-param"), run.param_keys);
    fillSelect($("color-param"), run.param_keys, "(none)");
  }

  function fillSelect(select, keys, none) {
    const want = [...(none !== undefined ? [""] : []), ...keys];
    if ([...select.options].map((o) => o.value).join("\n") === want.join("\n")) return;
    const keep = select.value;
    select.replaceChildren(...want.map((k) => el("option", { value: k, text: k || none })));
    if (want.includes(keep)) select.value = keep;
  }

  function render() {
    if (!view.run) return;
    renderHeader();
    renderTable();
    if (window.FlowCharts) window.FlowCharts.draw(view, visibleRows);
  }

  // ---- CSV ------------------------------------------------------------------------------------
  function csv() {
    const cols = columns().filter((c) => c.key !== "log");
    const quote = (v) => (/[",\n]/.test(v) ? `"${v.replaceAll('"', '""')}"` : v);
    const lines = [cols.map((c) => quote(c.kind ? `${c.kind}:${c.title}` : c.title)), ...visibleRows().map((e) => cols.map((c) => quote(text(c.get(e)))))];
    const blob = new Blob([lines.map((l) => l.join(",")).join("\n") + "\n"], { type: "text/csv" });
    const a = el("a", { href: URL.createObjectURL(blob), download: `${cfg.dag}-${cfg.run}.csv`.replace(/[^\w.+-]/g, "_") });
    document.body.append(a); a.click(); a.remove();
  }

  // ---- stop and run again ----------------------------------------------------------------------
  async function airflow(method, path, body) {
    const response = await fetch(`${cfg.root}/api/v2${path}`, {
      method, credentials: "same-origin", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(`${response.status}: ${text(answer.detail) || response.statusText}`);
    return answer;
  }

  const runsPath = () => `/dags/${encodeURIComponent(cfg.dag)}/dagRuns`;

  async function stop() {
    if (!confirm(`Stop ${cfg.run}? Its running tasks are failed.`)) return;
    try { await airflow("PATCH", `${runsPath()}/${encodeURIComponent(cfg.run)}`, { state: "failed" }); await fetchAll(); }
    catch (error) { $("result").textContent = `Not stopped: ${error.message}`; }
  }

  function openRerun() {
    const fields = [];
    for (const [task, params] of Object.entries(view.run.params)) {
      for (const [key, value] of Object.entries(params)) {
        const shown = value === null ? "" : Array.isArray(value) ? value.join(", ") : String(value);
        fields.push(el("label", {}, `${task} · ${key}`, el("input", { name: key, "data-task": task, value: shown })));
      }
    }
    $("rerun-fields").replaceChildren(...(fields.length ? fields : [el("p", { class: "muted", text: "This flow has no params." })]));
    $("rerun").hidden = false;
  }

  async function rerun(event) {
    event.preventDefault();
    const conf = {};
    for (const input of $("rerun-fields").querySelectorAll("input")) {
      (conf[input.dataset.task] ||= {})[input.name] = input.value.trim() === "" ? null : input.value.trim();
    }
    try {
      const run = await airflow("POST", runsPath(), { logical_date: null, conf, note: `Run again from the experiments page of ${cfg.run}` });
      window.location.href = `${cfg.prefix}/experiments/${encodeURIComponent(cfg.dag)}/${encodeURIComponent(run.dag_run_id)}`;
    } catch (error) { $("result").textContent = `Not triggered: ${error.message}`; }
  }

  // ---- wiring ---------------------------------------------------------------------------------
  for (const id of ["filter", "differ", "best-tag", "best-dir", "metric", "x-param", "color-param"]) {
    $(id).addEventListener(id === "filter" ? "input" : "change", render);
  }
  $("csv").addEventListener("click", csv);
  $("clear-brush").addEventListener("click", () => { view.brushed = null; if (window.FlowCharts) window.FlowCharts.clear(view); render(); });
  if ($("stop")) $("stop").addEventListener("click", stop);
  if ($("rerun-open")) {
    $("rerun-open").addEventListener("click", openRerun);
    $("rerun").addEventListener("submit", rerun);
    $("rerun-cancel").addEventListener("click", () => ($("rerun").hidden = true));
  }
  view.render = render;

  async function follow() {
    try { await fetchAll(); $("result").textContent = ""; }
    catch (error) { $("result").textContent = `Could not load the experiments: ${error.message}`; }
    if (!view.run || !FINISHED.has(view.run.state)) {
      setTimeout(follow, view.rows.length > 2000 ? 30000 : 5000);  // the page follows a running run
    }
  }
  window.FlowExperiments = view;
  follow();
})();
