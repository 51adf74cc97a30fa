// The experiments page (flow_airflow/experiments/templates/experiments.html): fills the table and the
// charts from the JSON API (GET <prefix>/api/experiments/<dag>/<run>, page by page), follows a running
// run, and stops / re-runs it through Airflow's own REST API (which checks the caller's rights again).
// Without a run (data-run=""), the flow's page: every experiment of the chosen runs
// (GET <prefix>/api/experiments/<dag>?run=..&last=N), with a Run column and a chooser of the runs.
"use strict";
(() => {
  const root = document.getElementById("page");
  const cfg = root.dataset;
  const PAGE = 1000;
  const FINISHED = new Set(["success", "failed"]);
  const NOT_RUN = new Set(["None", "null", "scheduled", "queued", "up_for_reschedule", "removed", "upstream_failed", "skipped"]);
  const flow = !cfg.run;  // the flow's page: several runs
  const chosen = new URLSearchParams(window.location.search);  // ?run=..&run=.. or ?last=N
  const view = { run: null, rows: [], sort: null, desc: false, tab: "", brushed: null, charts: {}, flow, open: new Set() };
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
    const generation = (view.generation = (view.generation || 0) + 1);  // a newer load (other runs chosen) wins
    for (;;) {
      const query = flow ? `${chosen.toString()}&` : "";
      const response = await fetch(`${cfg.api}?${query}offset=${offset}&limit=${PAGE}`, { credentials: "same-origin" });
      if (!response.ok) throw new Error(`${response.status}: ${(await response.json().catch(() => ({}))).detail || response.statusText}`);
      const body = await response.json();
      if (generation !== view.generation) return;
      if (!flow) for (const e of body.experiments) e.run_id = cfg.run;
      if (flow) body.state = summaryState(body.runs);
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
  // The table's columns: a param or tag column that is empty for every row of the tab is left out.
  function columns() {
    const run = view.run;
    const tabRows = view.rows.filter((e) => !view.tab || e.task === view.tab);
    const filled = (get) => tabRows.some((e) => text(get(e)) !== "");
    const params = ($("differ").checked ? run.param_keys.filter((k) => run.differing.includes(k)) : run.param_keys)
      .filter((k) => filled((e) => paramOf(e, k)));
    return [
      ...(flow ? [{ key: "run", title: "Run", get: (e) => e.run_id }] : []),
      { key: "task", title: "Task", get: (e) => e.task },
      { key: "route", title: "Route", get: (e) => e.label, sortBy: (e) => e.index },
      ...params.map((k) => ({ key: `param:${k}`, title: k, kind: "param", get: (e) => paramOf(e, k) })),
      ...run.tag_keys.filter((k) => filled((e) => e.tags[k])).map((k) => ({ key: `tag:${k}`, title: k, kind: "tag", get: (e) => e.tags[k] })),
      { key: "state", title: "State", get: (e) => e.state },
      { key: "duration", title: "Duration (s)", get: (e) => (e.duration === null ? "" : e.duration.toFixed(1)) },
      { key: "log", title: "Log", get: () => "" },
      { key: "artifacts", title: "Artifacts", get: (e) => e.artifacts.join(" ") },
      { key: "conditions", title: "Conditions", get: (e) => e.conditions.map((c) => `${c.task}: ${c.passed ? "passed" : "left out"}${c.why.length ? ` (${c.why.join("; ")})` : ""}`).join("; ") },
    ];
  }

  // Ids shown short, in full on hover: a run id "manual__2026-12-07T12:33:05.305041+00:00" as
  // "manual 2026-12-07 12:33:05", a commit (40 or 64 hex digits) as its first 8.
  function short(value) {
    const id = text(value);
    const run = /^([a-z_]+?)__(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)/.exec(id);
    if (run) return `${run[1]} ${run[2]} ${run[3]}`;
    return /^[0-9a-f]{40}([0-9a-f]{24})?$/i.test(id) ? id.slice(0, 8) : id;
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

  const rowKey = (e) => `${e.run_id}#${e.task_id}#${e.map_index}#${e.index}`;  // a batch's routes share a map index

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

  // The Airflow UI's page of a task of the experiment's run; the run's experiments API.
  const taskUrl = (e, taskId) => `${cfg.root}/dags/${encodeURIComponent(cfg.dag)}/runs/${encodeURIComponent(e.run_id)}/tasks/${encodeURIComponent(taskId)}`;
  const runApi = (e) => `${cfg.prefix}/api/experiments/${encodeURIComponent(cfg.dag)}/${encodeURIComponent(e.run_id)}`;
  const artifactUrl = (e, name) => `${runApi(e)}/artifacts/${encodeURIComponent(e.task_id)}/${e.index}/${name.split("/").map(encodeURIComponent).join("/")}`;
  window.FlowArtifactUrl = artifactUrl;  // the charts' image gallery (experiment-charts.js)

  function logLink(e) {
    const base = taskUrl(e, e.task_id);
    return el("a", { href: e.map_index >= 0 ? `${base}/mapped/${e.map_index}` : base, target: "_top", text: "log" });
  }

  function cell(col, e) {
    const td = el("td");
    if (col.key === "log") td.append(logLink(e));
    else if (col.key === "artifacts") {
      for (const name of e.artifacts) {
        const href = artifactUrl(e, name);
        td.append(el("a", { href, download: "", text: name }), el("br"));
      }
    } else if (col.key === "conditions") conditionsCell(td, e);
    else if (col.key === "run") td.append(el("a", { href: `${cfg.prefix}/experiments/${encodeURIComponent(cfg.dag)}/${encodeURIComponent(e.run_id)}`, text: short(e.run_id), title: e.run_id })); else if (col.key === "state") {
      td.append(el("span", { class: `badge state-${e.state}`, text: e.state === "None" ? "not run yet" : e.state }));
      if (e.reused) {  // taken from an earlier experiment of the same key (runtime/reuse.py): link to its run
        const r = e.reused;
        td.append(" ", el("a", { class: "badge reused", href: `${cfg.prefix}/experiments/${encodeURIComponent(r.dag_id)}/${encodeURIComponent(r.run_id)}`,
          text: "reused", title: `same key as ${r.run_id} ${r.task} #${r.index} (${r.when})` }));
      }
    }
    else {
      const full = text(col.get(e));
      td.textContent = col.kind ? short(full) : full;
      if (td.textContent !== full) td.title = full;
      if (col.kind && num(col.get(e)) !== null) td.className = "num";
      if (col.kind === "param" && !(col.key.slice(6) in e.params) && td.textContent) {
        td.classList.add("inherited");
        td.title = `${full} (a param of a task before it on its route)`;
      }
    }
    return td;
  }

  // What each condition after the experiment decided on it, and why (the condition task's own words),
  // linked to the condition task's log.
  function conditionsCell(td, e) {
    td.className = "conditions";
    for (const c of e.conditions) {
      td.append(el("span", { class: c.passed ? "passed" : "left-out", text: `${c.passed ? "✓" : "✗"} ${c.task}: ${c.passed ? "passed" : "left out"}` }), " ");
      td.append(el("a", { href: taskUrl(e, c.condition), target: "_top", text: "(log)" }));
      for (const line of c.why) td.append(el("span", { class: "why", text: line }));
    }
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
      const tr = el("tr", { "data-task": e.task, "data-index": String(e.index), "data-run": e.run_id });
      if (!e.has_record && NOT_RUN.has(e.state)) tr.classList.add("not-run");
      if (rowKey(e) === top) tr.classList.add("best");
      if (view.open.has(rowKey(e))) tr.classList.add("open");
      tr.addEventListener("click", (event) => {  // one line each, opened (and closed) by a click
        if (event.target.closest("a, button")) return;
        if (view.open.has(rowKey(e))) view.open.delete(rowKey(e)); else view.open.add(rowKey(e));
        tr.classList.toggle("open");
      });
      for (const c of cols) tr.append(cell(c, e));
      body.append(tr);
    }
    $("experiments").tBodies[0].replaceChildren(body);
    $("count").textContent = `${rows.length} shown of ${view.run.total} experiments` + (view.rows.length < view.run.total ? ` (${view.rows.length} loaded)` : "");
  }

  // Spare task instances (mapped ones beyond the routes the run planned, skipped): not experiments,
  // one folded line under the table, per task (and run) when opened.
  function renderSpare() {
    const spare = view.run.spare || [];
    const shown = spare.filter((s) => !view.tab || s.task === view.tab);
    const count = shown.reduce((n, s) => n + s.count, 0);
    $("spare").hidden = !count;
    $("spare").querySelector("summary").textContent =
      `${count} spare task instance${count === 1 ? "" : "s"}, skipped: the run planned fewer routes than the DAG has task instances`;
    $("spare").querySelector("ul").replaceChildren(...shown.map((s) => el("li", {
      text: `${flow ? `${s.run_id} · ` : ""}${s.task}: ${s.count} (${s.label})` })));
  }

  function renderHeader() {
    const run = view.run;
    const paused = flow ? run.runs.filter((r) => r.paused) : run.paused ? [run] : [];
    $("run-state").textContent = !flow && run.paused ? "paused" : run.state;
    $("run-state").className = `badge state-${!flow && run.paused ? "paused" : run.state}`;
    $("paused").hidden = !paused.length;  // nothing more of it is scheduled: not a hung run
    $("paused").textContent = paused.length ? `The flow is paused: Airflow schedules nothing more of ${flow
      ? paused.map((r) => short(r.run_id)).join(", ") : "this run"} until it is unpaused (the toggle on its Airflow page).` : "";
    if ($("run-note")) $("run-note").textContent = run.note || "";  // "Stopped by <user> at <time>"
    if (flow) renderChooser(run);
    $("pending").replaceChildren(...run.pending.map((p) => el("p", {},
      el("span", { class: "badge pending-approval", text: "Pending Approval" }), ` ${p.task}${flow ? ` of ${p.run_id}` : ""} waits for a decision: `,
      el("a", { href: `${cfg.root}${p.url}`, text: "open the approval" }))));
    const tabs = [["", `All (${run.total})`], ...run.tasks.map((t) => [t.task, `${t.task} (${t.total})`])];
    $("tabs").replaceChildren(...tabs.map(([task, label]) => {
      const b = el("button", { type: "button", class: view.tab === task ? "here" : "", "data-task": task, text: label });
      b.addEventListener("click", () => { view.tab = task; render(); });
      return b;
    }));
    const stop = $("stop");
    if (stop) stop.hidden = FINISHED.has(run.state);
    const numeric = run.tag_keys.filter((k) => view.rows.some((e) => num(e.tags[k]) !== null));
    fillSelect($("best-tag"), numeric, "(a tag)");
    fillSelect($("metric"), numeric);
    const goal = run.goal;  // the flow's own condition: what "best" means, chosen once, on load
    if (goal && !view.goalSet && numeric.includes(goal.tag)) {
      view.goalSet = true;
      $("best-tag").value = goal.tag;
      $("best-dir").value = goal.direction;
      $("metric").value = goal.tag;
      $("best-tag").title = `as the condition of ${goal.task} seeks: ${goal.direction === "max" ? "highest" : "lowest"} ${goal.tag}`;
    }
    fillSelect($("x-param"), run.param_keys);
    fillSelect($("color-param"), flow ? [RUN, ...run.param_keys] : run.param_keys, "(none)");
  }

  // ---- the flow's page: which runs ---------------------------------------------------------------
  const RUN = "(run)";  // colour the scatter by run
  function summaryState(runs) {
    const states = runs.map((r) => r.state);
    if (!states.length) return "no runs";
    return states.every((s) => FINISHED.has(s)) ? `${runs.length} run${runs.length > 1 ? "s" : ""}` : "running";
  }

  function renderChooser(run) {
    $("runs-chosen").textContent = run.runs.map((r) => `${short(r.run_id)} (${r.state}, ${r.total})`).join(", ") || "none";
    $("runs-chosen").title = run.runs.map((r) => r.run_id).join("\n");
    const picked = new Set(run.runs.map((r) => r.run_id));
    const want = run.recent.map((r) => `${r.run_id}:${picked.has(r.run_id)}:${r.state}`).join("\n");
    if ($("runs-list").dataset.shown === want) return;
    $("runs-list").dataset.shown = want;
    $("runs-list").replaceChildren(...run.recent.map((r) => {
      const box = el("input", { type: "checkbox", value: r.run_id });
      box.checked = picked.has(r.run_id);
      box.addEventListener("change", chooseRuns);
      const own = `${cfg.prefix}/experiments/${encodeURIComponent(cfg.dag)}/${encodeURIComponent(r.run_id)}`;
      const label = el("label", {}, box, " ", el("code", { text: short(r.run_id), title: r.run_id }), ` ${r.state}, run after ${(r.run_after || "").slice(0, 19)} · `,
        el("a", { href: own, text: "its page" }));
      if (cfg.mayEdit === "true" && !FINISHED.has(r.state)) {  // a running run: stop it here too
        const button = el("button", { type: "button", class: "reject stop-run", "data-run": r.run_id, text: "Stop" });
        button.addEventListener("click", () => stop(r.run_id));
        label.append(" ", button);
      }
      return label;
    }));
  }

  function choose(params) {
    for (const key of [...chosen.keys()]) chosen.delete(key);
    for (const [k, v] of params) chosen.append(k, v);
    window.history.replaceState(null, "", `${window.location.pathname}?${chosen.toString()}`);
    view.brushed = null;
    if (window.FlowCharts) window.FlowCharts.clear(view);
    clearTimeout(view.timer);
    follow();  // the chosen runs, followed while one of them runs
  }

  function chooseRuns() {
    const ids = [...$("runs-list").querySelectorAll("input:checked")].map((b) => b.value);
    choose(ids.length ? ids.map((id) => ["run", id]) : [["last", $("last").value]]);
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
    renderSpare();
    if (window.FlowCharts) window.FlowCharts.draw(view, visibleRows);
  }

  // ---- CSV ------------------------------------------------------------------------------------
  function csv() {
    const cols = columns().filter((c) => c.key !== "log");
    const quote = (v) => (/[",\n]/.test(v) ? `"${v.replaceAll('"', '""')}"` : v);
    const lines = [cols.map((c) => quote(c.kind ? `${c.kind}:${c.title}` : c.title)), ...visibleRows().map((e) => cols.map((c) => quote(text(c.get(e)))))];
    const blob = new Blob([lines.map((l) => l.join(",")).join("\n") + "\n"], { type: "text/csv" });
    const a = el("a", { href: URL.createObjectURL(blob), download: `${cfg.dag}-${flow ? "runs" : cfg.run}.csv`.replace(/[^\w.+-]/g, "_") });
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

  async function stop(runId = cfg.run) {
    if (!confirm(`Stop ${runId}? Its running tasks are failed; finished ones stay as they ended.`)) return;
    try {  // the plugin's stop: finished experiments stay as they ended (Airflow's PATCH state=failed fails them)
      const response = await fetch(`${cfg.prefix}/api/experiments/${encodeURIComponent(cfg.dag)}/${encodeURIComponent(runId)}/stop`,
        { method: "POST", credentials: "same-origin", headers: { "Content-Type": "application/json" }, body: "{}" });
      const answer = await response.json().catch(() => ({}));
      if (!response.ok) throw new Error(`${response.status}: ${text(answer.detail) || response.statusText}`);
      await fetchAll();
    }
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
    if (flow && view.run.runs.length) $("rerun-from").textContent = view.run.runs[0].run_id;
    $("rerun-fields").replaceChildren(...(fields.length ? fields : [el("p", { class: "muted", text: "This flow has no params." })]));
    $("rerun").hidden = false;
  }

  async function rerun(event) {
    event.preventDefault();
    const conf = {};
    for (const input of $("rerun-fields").querySelectorAll("input[data-task]")) {
      (conf[input.dataset.task] ||= {})[input.name] = input.value.trim() === "" ? null : input.value.trim();
    }
    conf.flow_airflow = { reuse: $("rerun-reuse").checked };  // runtime/reuse.py: asked for, never assumed
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
  if ($("stop")) $("stop").addEventListener("click", () => stop());
  if ($("rerun-open")) {
    $("rerun-open").addEventListener("click", openRerun);
    $("rerun").addEventListener("submit", rerun);
    $("rerun-cancel").addEventListener("click", () => ($("rerun").hidden = true));
  }
  if (flow) {
    if (chosen.get("last")) $("last").value = chosen.get("last");
    $("last").addEventListener("change", () => choose([["last", $("last").value]]));
  }
  view.render = render;

  async function follow() {
    view.timer = null;
    try { await fetchAll(); $("result").textContent = ""; }
    catch (error) { $("result").textContent = `Could not load the experiments: ${error.message}`; }
    const done = view.run && (flow ? view.run.runs.every((r) => FINISHED.has(r.state)) : FINISHED.has(view.run.state));
    if (!done) {
      view.timer = setTimeout(follow, view.rows.length > 2000 ? 30000 : 5000);  // the page follows a running run
    }
  }
  window.FlowExperiments = view;
  follow();
})();
