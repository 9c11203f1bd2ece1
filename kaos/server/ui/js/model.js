// A model's page: metrics, hyperparameters, the provenance graph, the diff against the
// previous model (or any other), the job's logs (live while it runs) and archive downloads.

import { download, enc, get } from "./api.js";
import { bundle, card, clear, fmtTime, fmtValue, h, s, stateBadge } from "./dom.js";
import { logsCard } from "./logs.js";

export async function modelPage(root, modelId) {
  const prov = await get(`/models/${enc(modelId)}`);
  const { model, job } = prov;
  const id = model.model_id;
  root.append(h("div", { class: "page-head" },
    h("h1", { class: "mono", id: "model-id" }, id, " ", stateBadge(model.state)),
    h("div", { class: "chips" },
      h("span", { class: "chip" }, h("b", {}, "workspace"), h("a", { href: `#/w/${enc(job.workspace)}` }, job.workspace)),
      h("span", { class: "chip" }, h("b", {}, "trained"), fmtTime(model.finished)),
      h("span", { class: "chip" }, h("b", {}, "by"), prov.deploy_author)),
    h("div", { class: "downloads" }, ["source", "data", "model"].map((part) =>
      h("button", { class: "small", dataset: { part }, onclick: () => download(`/models/${enc(id)}/archive/${part}`, `${id.replace(":", "-")}-${part}.tar`) }, `⤓ ${part}.tar`)))));

  root.append(h("div", { class: "columns" },
    card("Metrics", {}, keyValues(model.metrics, "metrics")),
    card("Hyperparameters", {}, model.params && Object.keys(model.params).length
      ? keyValues(model.params, "params") : h("p", { class: "empty-state" }, "No grid: the source's own defaults."))));

  const deploy = job.deploy_id ? await get(`/deploys/${job.deploy_id}`).catch(() => null) : null;
  root.append(card("Provenance", { id: "provenance" }, provenanceGraph(prov, deploy)));

  const diffBox = h("div", { id: "diff" });
  const against = h("select", { id: "diff-against", "aria-label": "compare with" });
  root.append(card("Changes", {}, h("div", { class: "toolbar" }, h("label", {}, "compared with ", against)), diffBox));
  const progress = await get(`/workspaces/${enc(job.workspace)}/progress`).catch(() => ({ points: [] }));
  const others = progress.points.filter((p) => p.model_id !== id);
  const at = progress.points.findIndex((p) => p.model_id === id);
  const previous = at > 0 ? progress.points[at - 1] : null;
  clear(against, others.length ? others.map((p) => h("option", { value: p.model_id, selected: p === previous },
    `${p === previous ? "previous: " : ""}${p.model_id}`)) : h("option", { value: "" }, "no other model"));
  const showDiff = async () => {
    if (!against.value) return clear(diffBox, h("p", { class: "empty-state" }, "This is the workspace's only model."));
    try {
      const diff = await get(`/models/${enc(id)}/diff`, { against: against.value });
      clear(diffBox, renderDiff(diff));
    } catch (error) {
      if (error.status && error.status !== 404 && error.status !== 405) throw error;
      clear(diffBox, h("p", { class: "empty-state", id: "diff-unavailable" }, "diff unavailable on this server"));
    }
  };
  against.addEventListener("change", showDiff);
  await showDiff();

  const logs = logsCard(job.id);
  root.append(logs.element);
  await logs.start();
  return () => logs.stop();
}

function keyValues(values, kind) {
  const entries = Object.entries(values || {}).sort(([a], [b]) => a.localeCompare(b));
  if (!entries.length) return h("p", { class: "empty-state" }, `No ${kind}.`);
  return h("table", { class: "table kv", id: `model-${kind}` },
    h("tbody", {}, entries.map(([k, v]) => h("tr", {}, h("th", {}, k), h("td", { class: "num" }, fmtValue(v))))));
}

// source, data, hyperparameters, deploy -> image, job -> model, drawn as boxes and curves.
function provenanceGraph(prov, deploy) {
  const { model, job } = prov;
  const W = 230;
  const H = 50;
  const grid = deploy?.grid ? Object.entries(deploy.grid).map(([k, v]) => `${k}: ${v.length} values`).join(", ") : null;
  const nodes = {
    source: [0, 0, "source", bundle(prov.source_name, job.source), job.source],
    data: [0, 1, "data", bundle(prov.data_name, job.data), job.data],
    params: [0, 2, "hyperparameters", model.params ? Object.entries(model.params).map(([k, v]) => `${k}=${fmtValue(v)}`).join(" ") : "defaults", grid ? `grid ${grid}` : null],
    deploy: [0, 3, `deploy${job.deploy_id ? ` #${job.deploy_id}` : ""}`, `${prov.deploy_author} · ${fmtTime(prov.deploy_time)}`, null],
    image: [1, 0, prov.lock ? "lock → image" : "image", job.source ? `build-train-${prov.source_name || "?"}:${job.source.slice(0, 5)}` : "—", job.image],
    job: [1, 1.5, "train job", `${job.id.slice(0, 12)} · ${job.state}`, job.id],
    model: [2, 1.5, "model", model.model_id, model.output_tree],
  };
  const edges = [["source", "image"], ["image", "job"], ["data", "job"], ["params", "job"], ["deploy", "job"], ["job", "model"]];
  const colX = [10, 330, 650];
  const rowY = (r) => 12 + r * 66;
  const svg = s("svg", { class: "graph", viewBox: `0 0 ${colX[2] + W + 10} ${rowY(3) + H + 12}`, role: "img" });
  for (const [a, b] of edges) {
    const [ca, ra] = nodes[a];
    const [cb, rb] = nodes[b];
    const x1 = colX[ca] + W;
    const y1 = rowY(ra) + H / 2;
    const x2 = colX[cb];
    const y2 = rowY(rb) + H / 2;
    if (ca === cb) { // same column: straight down
      const cx = colX[ca] + W / 2;
      const top = rowY(ra) + H;
      const bottom = rowY(rb);
      svg.append(s("path", { class: "edge", d: `M${cx},${top} L${cx},${bottom - 6}` }),
        s("path", { class: "arrow", d: `M${cx - 4},${bottom - 7} L${cx},${bottom} L${cx + 4},${bottom - 7}z` }));
      continue;
    }
    const mid = (x1 + x2) / 2;
    svg.append(s("path", { class: "edge", d: `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2 - 6},${y2}` }),
      s("path", { class: "arrow", d: `M${x2 - 7},${y2 - 4} L${x2},${y2} L${x2 - 7},${y2 + 4}z` }));
  }
  for (const [key, [c, r, title, value, full]] of Object.entries(nodes)) {
    const x = colX[c];
    const y = rowY(r);
    const text = String(value ?? "—");
    svg.append(s("g", { class: `node ${key}`, dataset: { node: key } },
      full ? s("title", {}, full) : null,
      s("rect", { x, y, width: W, height: H, rx: 8 }),
      s("text", { class: "node-title", x: x + 12, y: y + 19 }, title),
      s("text", { class: "node-value", x: x + 12, y: y + 37 }, text.length > 34 ? `${text.slice(0, 33)}…` : text)));
  }
  return svg;
}

// The diff (the API's ModelDiff: from model a, the one compared with, to model b, this one):
// changed files with their unified diffs, appended data rows, hyperparameters, packages, metrics.
function renderDiff(diff) {
  const unified = (text) => h("pre", { class: "udiff" }, text.split("\n").map((line) =>
    h("span", { class: line.startsWith("@@") ? "hunk" : line.startsWith("+") && !line.startsWith("+++") ? "add" : line.startsWith("-") && !line.startsWith("---") ? "del" : "" }, `${line}\n`)));
  const files = (label, tree) => {
    if (tree.same) return h("div", { class: "diff-part" }, h("h3", {}, label), h("p", { class: "muted" }, "unchanged"));
    return h("div", { class: "diff-part" }, h("h3", {}, label, h("span", { class: "muted" }, ` ${tree.files.length} file${tree.files.length === 1 ? "" : "s"} changed`)),
      tree.files.map((f) => h("div", { class: "diff-file" },
        h("div", { class: "diff-file-head" }, h("span", { class: `badge ${f.change}` }, f.change), h("span", { class: "mono" }, f.path),
          f.rows_appended !== null && f.rows_appended !== undefined ? h("span", { class: "muted" }, `+${f.rows_appended} rows appended`) : null,
          f.size_a !== null && f.size_b !== null && !f.diff ? h("span", { class: "muted" }, `${f.size_a} → ${f.size_b} bytes`) : null),
        f.diff ? unified(f.diff) : null)));
  };
  const values = (label, changes, delta) => h("div", { class: "diff-part" }, h("h3", {}, label),
    changes.length
      ? h("table", { class: "table compact diff-values" },
          h("thead", {}, h("tr", {}, h("th", {}, "name"), h("th", { class: "num" }, diff.a.model_id), h("th", { class: "num" }, diff.b.model_id), delta ? h("th", { class: "num" }, "change") : null)),
          h("tbody", {}, changes.map((c) => {
            const d = typeof c.a === "number" && typeof c.b === "number" ? c.b - c.a : null;
            return h("tr", {}, h("td", { class: "mono" }, c.name), h("td", { class: "num" }, fmtValue(c.a)), h("td", { class: "num" }, fmtValue(c.b)),
              delta ? h("td", { class: `num ${d > 0 ? "up" : d < 0 ? "down" : ""}` }, d === null ? "" : `${d > 0 ? "+" : ""}${fmtValue(d)}`) : null);
          })))
      : h("p", { class: "muted" }, "no difference"));
  return h("div", { class: "diff" },
    files("Source", diff.source), files("Data", diff.data),
    h("div", { class: "columns" }, values("Hyperparameters", diff.hyperparams), values("Packages", diff.packages)),
    values("Metrics", diff.metrics, true));
}
