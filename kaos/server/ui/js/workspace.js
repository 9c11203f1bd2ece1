// The workspaces list and a workspace's page: progress curve, deploy timeline, live jobs,
// the models table and the endpoints panel.

import { enc, get } from "./api.js";
import { handle } from "./app.js";
import { progressChart } from "./charts.js";
import {
  bundle, card, clear, fmtAgo, fmtDuration, fmtTime, fmtValue, h, stateBadge,
} from "./dom.js";
import { modelsTable } from "./models-table.js";

const POLL_MS = 1500; // live job states: at most every 2 s
const FINISHED = new Set(["JOB_SUCCESS", "JOB_FAILURE", "JOB_KILLED"]);

export async function workspacesPage(root) {
  const workspaces = await get("/workspaces");
  root.append(h("h1", {}, "Workspaces"));
  if (!workspaces.length) {
    root.append(card(null, {}, h("p", { class: "empty-state" },
      "No workspaces yet. Create one with ", h("code", {}, "kaos workspace create -n NAME"), ".")));
    return;
  }
  root.append(card(null, {}, h("table", { class: "table", id: "workspaces" },
    h("thead", {}, h("tr", {}, ["workspace", "source", "data", "image", "jobs", "owner", "created"].map((c) => h("th", {}, c)))),
    h("tbody", {}, workspaces.map((w) => h("tr", {},
      h("td", {}, h("a", { href: `#/w/${enc(w.name)}` }, w.name)),
      h("td", { class: "mono" }, bundle(w.inputs.source_name, w.inputs.source)),
      h("td", { class: "mono" }, bundle(w.inputs.data_name, w.inputs.data)),
      h("td", { class: "mono" }, w.inputs.image ? `${w.inputs.image.name || "?"} (${w.inputs.image.state})` : "—"),
      h("td", {}, w.jobs),
      h("td", {}, w.owner || "—"),
      h("td", {}, fmtTime(w.created))))))));
}

export async function workspacePage(root, name) {
  const ws = await get(`/workspaces/${enc(name)}`);
  const inputs = ws.inputs;
  root.append(h("div", { class: "page-head" },
    h("h1", {}, name),
    h("div", { class: "chips" },
      chip("source", bundle(inputs.source_name, inputs.source)),
      chip("data", bundle(inputs.data_name, inputs.data)),
      chip("image", inputs.image ? `${inputs.image.name || "?"} · ${inputs.image.state}` : "—"),
      chip("grid", inputs.grid ? Object.entries(inputs.grid).map(([k, v]) => `${k}: ${v.length}`).join(", ") : "none"),
      chip("owner", ws.owner || "none"),
      chip("shared with", Object.entries(ws.shares || {}).map(([user, role]) => `${user} (${role})`).join(", ") || "no one"))));

  const chartBox = h("div", { class: "chart-box", id: "progress-chart" });
  const metricSelect = h("select", { id: "metric", "aria-label": "metric" });
  const xSelect = h("select", { id: "x-axis", "aria-label": "x axis" },
    h("option", { value: "order" }, "deploy order"), h("option", { value: "time" }, "time"));
  const bestNote = h("span", { class: "muted", id: "best-note" });
  root.append(card("Progress", { id: "progress" },
    h("div", { class: "toolbar" }, h("label", {}, "metric ", metricSelect), h("label", {}, "x ", xSelect), bestNote,
      h("span", { class: "legend" }, h("i", { class: "dot" }), "model ", h("i", { class: "dot best" }), "best so far")),
    chartBox));

  const timelineBox = h("div", { id: "timeline" });
  const jobsBox = h("div", { id: "jobs" });
  root.append(h("div", { class: "columns" },
    card("Deploys", { class: "card timeline-card" }, timelineBox),
    card("Jobs", { class: "card" }, jobsBox)));

  const table = modelsTable(name);
  root.append(card("Models", { id: "models" }, table.element));
  const endpointsBox = h("div", { id: "endpoints" });
  root.append(card("Endpoints", {}, endpointsBox));

  let metric = null;
  async function drawProgress() {
    const progress = await get(`/workspaces/${enc(name)}/progress`, { metric });
    metric = progress.metric;
    clear(metricSelect, progress.metrics.map((m) => h("option", { value: m, selected: m === metric }, m)));
    metricSelect.disabled = !progress.metrics.length;
    const best = [...progress.points].reverse().find((p) => p.best);
    bestNote.textContent = best
      ? `best ${best.model_id} = ${fmtValue(best.value)} (${progress.goal === "max" ? "higher" : "lower"} is better)`
      : "";
    lastProgress = progress;
    draw();
    return progress;
  }
  let lastProgress = null;
  const draw = () => progressChart(chartBox, lastProgress, {
    byTime: xSelect.value === "time",
    onOpen: (p) => { location.hash = `#/m/${enc(p.model_id)}`; },
  });
  xSelect.addEventListener("change", draw);
  metricSelect.addEventListener("change", async () => {
    metric = metricSelect.value;
    const progress = await drawProgress();
    table.sortBy(`${progress.goal === "max" ? "-" : ""}metrics.${metric}`);
  });

  const timeline = timelineView(name, timelineBox);
  const jobs = jobsView(name, jobsBox);
  const first = await drawProgress();
  table.sortBy(first.metric ? `${first.goal === "max" ? "-" : ""}metrics.${first.metric}` : "created", false);
  await Promise.all([table.refresh(), timeline.refresh(), jobs.refresh(), endpointsView(name, endpointsBox)]);

  // Live: poll the jobs; when one starts or ends, refresh what depends on it.
  const live = document.getElementById("live");
  live.hidden = false;
  let busy = false;
  const timer = setInterval(async () => {
    if (busy || document.hidden) return;
    busy = true;
    try {
      if (await jobs.refresh()) {
        await Promise.all([drawProgress(), table.refresh(), timeline.refresh()]);
      }
    } catch (error) {
      handle(error, root);
      clearInterval(timer);
    } finally {
      busy = false;
    }
  }, POLL_MS);
  return () => {
    clearInterval(timer);
    live.hidden = true;
  };
}

const chip = (label, value) => h("span", { class: "chip" }, h("b", {}, label), value);

function jobsView(name, box) {
  let seen = null;
  return {
    // true when a job appeared or changed state since the last look
    async refresh() {
      const jobs = await get(`/workspaces/${enc(name)}/jobs`);
      const states = jobs.map((j) => `${j.id}:${j.state}`).join(",");
      const changed = seen !== null && states !== seen;
      if (states === seen) return false;
      seen = states;
      if (!jobs.length) {
        clear(box, h("p", { class: "empty-state" }, "No jobs yet."));
        return changed;
      }
      const shown = jobs.slice(0, 12);
      clear(box, h("table", { class: "table compact", id: "jobs-table" },
        h("thead", {}, h("tr", {}, ["job", "kind", "state", "started", "duration", "author"].map((c) => h("th", {}, c)))),
        h("tbody", {}, shown.map((j) => h("tr", { dataset: { jobId: j.id, state: j.state, kind: j.kind } },
          h("td", { class: "mono" }, h("a", { href: `#/w/${enc(name)}/job/${j.id}` }, j.id.slice(0, 8))),
          h("td", {}, j.kind, j.hyperopt ? h("span", { class: "tag" }, "grid") : null),
          h("td", {}, stateBadge(j.state)),
          h("td", { title: fmtTime(j.started) }, fmtAgo(j.started)),
          h("td", {}, FINISHED.has(j.state) ? fmtDuration(j.duration) : j.started ? "running…" : "—"),
          h("td", {}, j.author))))),
        jobs.length > shown.length ? h("p", { class: "muted" }, `and ${jobs.length - shown.length} older jobs`) : null);
      return changed;
    },
  };
}

function timelineView(name, box) {
  const PAGE = 8;
  let limit = PAGE;
  const view = {
    async refresh() {
      const page = await get(`/workspaces/${enc(name)}/deploys`, { limit, offset: 0 });
      if (!page.items.length) {
        clear(box, h("p", { class: "empty-state" }, "No deploys yet: ", h("code", {}, "kaos train deploy -s SRC -d DATA")));
        return;
      }
      const more = page.total > page.items.length
        ? h("button", { class: "link", onclick: () => { limit += PAGE; view.refresh(); } }, `show older (${page.total - page.items.length})`)
        : null;
      clear(box, h("ol", { class: "timeline" }, page.items.map(deployItem)), more);
    },
  };
  return view;
}

function deployItem(d) {
  const changes = [];
  if (d.source) changes.push(h("span", { class: "chip source" }, h("b", {}, "source"), bundle(d.source_name, d.source)));
  if (d.data) changes.push(h("span", { class: "chip data" }, h("b", {}, "data"), bundle(d.data_name, d.data)));
  if (d.grid) changes.push(h("span", { class: "chip grid" }, h("b", {}, "grid"), Object.entries(d.grid).map(([k, v]) => `${k}=[${v.map(fmtValue).join(", ")}]`).join(" ")));
  if (d.resources) changes.push(h("span", { class: "chip" }, h("b", {}, "resources"), Object.entries(d.resources).filter(([, v]) => v).map(([k, v]) => `${k}=${v}`).join(" ") || "default"));
  if (d.force) changes.push(h("span", { class: "chip" }, "forced"));
  if (!changes.length) changes.push(h("span", { class: "muted" }, "no change"));
  const started = d.jobs.length
    ? d.jobs.map((j) => h("span", { class: "started" }, `${j.kind} `,
        h("a", { class: "mono", href: `#/w/${enc(d.workspace)}/job/${j.id}` }, j.id.slice(0, 8)),
        " ", stateBadge(j.state)))
    : [h("span", { class: "muted" }, "started nothing: models already trained")];
  return h("li", { dataset: { deployId: d.id } },
    h("div", { class: "when" }, h("b", {}, `#${d.id}`), ` ${d.author} · `, h("span", { title: fmtTime(d.time) }, fmtAgo(d.time))),
    h("div", { class: "what" }, changes),
    h("div", { class: "started-list" }, started));
}

async function endpointsView(name, box) {
  let endpoints;
  try {
    endpoints = await get(`/workspaces/${enc(name)}/endpoints`);
  } catch (error) {
    if (error.status === 404 || error.status === 405) {
      clear(box, h("p", { class: "empty-state" }, "This server does not serve models."));
      return;
    }
    throw error;
  }
  if (!endpoints.length) {
    clear(box, h("p", { class: "empty-state" }, "No endpoints in this workspace: ", h("code", {}, "kaos serve deploy -m MODEL")));
    return;
  }
  // each endpoint's revisions (a handful of endpoints per workspace: one request each)
  const details = await Promise.all(endpoints.map((e) =>
    get(`/workspaces/${enc(name)}/endpoints/${enc(e.name)}`).catch(() => ({ revisions: [] }))));
  const ms = (v) => (v === null || v === undefined ? "—" : `${fmtValue(v)} ms`);
  clear(box, h("table", { class: "table compact", id: "endpoints-table" },
    h("thead", {}, h("tr", {}, ["endpoint", "state", "model", "revision", "revisions", "follows", "requests", "errors", "p50", "p99"]
      .map((c, k) => h("th", { class: k >= 6 ? "num" : "" }, c)))),
    h("tbody", {}, endpoints.map((e, k) => h("tr", { dataset: { endpoint: e.name } },
      h("td", { class: "mono", title: e.route }, e.name),
      h("td", {}, h("span", { class: `badge ${{ RUNNING: "success", STARTING: "starting", FAILED: "failure", KILLED: "killed" }[e.state] || ""}` }, e.state)),
      h("td", { class: "mono" }, e.model_id ? h("a", { href: `#/m/${enc(e.model_id)}` }, e.model_id) : "—"),
      h("td", {}, e.revision ? `#${e.revision}` : "—"),
      h("td", { title: details[k].revisions.map((r) => `#${r.id} ${r.cause} ${r.model_id}`).join("\n") }, details[k].revisions.length),
      h("td", { class: "mono" }, e.follow || "—"),
      h("td", { class: "num" }, e.stats.requests),
      h("td", { class: "num" }, e.stats.errors),
      h("td", { class: "num" }, ms(e.stats.p50_ms)),
      h("td", { class: "num" }, ms(e.stats.p99_ms)))))));
}
