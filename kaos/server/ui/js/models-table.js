// The models table: one server-side page at a time (sorted, filtered and paged by the API, so
// 1,000 models cost one small page), any metric or hyperparameter as a column, and a switch
// that hides the columns with the same value on every model.

import { enc, get } from "./api.js";
import { clear, errorBox, fmtAgo, fmtTime, fmtValue, h, stateBadge } from "./dom.js";

const PAGE = 50;

export function modelsTable(workspace) {
  let sort = "created";
  let offset = 0;
  let filters = [];
  let onlyDiffer = false;
  let lastPage = null;

  const filterInput = h("input", { type: "search", id: "model-filter", placeholder: "filter: metrics.accuracy_test>=0.9, params.kernel=linear", size: 44 });
  const differBox = h("input", { type: "checkbox", id: "only-differ" });
  const status = h("span", { class: "muted", id: "models-status" });
  const prev = h("button", { class: "small", id: "models-prev" }, "‹ prev");
  const next = h("button", { class: "small", id: "models-next" }, "next ›");
  const tableBox = h("div", { class: "table-scroll" });
  const problem = h("div");
  const element = h("div", {},
    h("div", { class: "toolbar" }, filterInput,
      h("label", { class: "switch" }, differBox, " only columns that differ"),
      h("span", { class: "spacer" }), status, prev, next),
    problem, tableBox);

  filterInput.addEventListener("change", () => {
    filters = filterInput.value.split(/,|\band\b/).map((f) => f.trim()).filter(Boolean);
    offset = 0;
    api.refresh();
  });
  differBox.addEventListener("change", () => {
    onlyDiffer = differBox.checked;
    if (lastPage) render(lastPage);
  });
  prev.addEventListener("click", () => { offset = Math.max(0, offset - PAGE); api.refresh(); });
  next.addEventListener("click", () => { offset += PAGE; api.refresh(); });

  function header(label, key, title) {
    const active = sort.replace(/^-/, "") === key;
    const arrow = active ? (sort.startsWith("-") ? " ↓" : " ↑") : "";
    return h("th", {
      class: active ? "sortable active" : "sortable", title: title || `sort by ${key}`, dataset: { sort: key },
      onclick: () => {
        // metrics start best-first (descending); a second click flips
        sort = active ? (sort.startsWith("-") ? key : `-${key}`) : key.startsWith("metrics.") ? `-${key}` : key;
        offset = 0;
        api.refresh();
      },
    }, label, arrow);
  }

  function render(page) {
    lastPage = page;
    const cols = page.columns.filter((c) => !onlyDiffer || c.differs);
    const params = cols.filter((c) => c.group === "params");
    const metrics = cols.filter((c) => c.group === "metrics");
    const hidden = page.columns.length - cols.length;
    const end = page.offset + page.items.length;
    status.textContent = page.total
      ? `${page.offset + 1}–${end} of ${page.total}${hidden ? ` · ${hidden} same-valued columns hidden` : ""}`
      : "no models";
    prev.disabled = page.offset === 0;
    next.disabled = end >= page.total;
    clear(tableBox, h("table", { class: "table models", id: "models-table" },
      h("thead", {}, h("tr", {},
        h("th", { class: "num" }, "#"),
        header("model", "model_id"),
        h("th", {}, "state"),
        params.map((c) => header(c.name, `params.${c.name}`, "hyperparameter")),
        metrics.map((c) => header(c.name, `metrics.${c.name}`, "metric")),
        header("deployed", "created", "deploy order"),
        header("finished", "finished"))),
      h("tbody", {}, page.items.map((m, k) => h("tr", { dataset: { modelId: m.model_id || "" } },
        h("td", { class: "num muted" }, page.offset + k + 1),
        h("td", { class: "mono" }, m.model_id ? h("a", { href: `#/m/${enc(m.model_id)}` }, m.model_id) : h("span", { class: "muted" }, `${m.job_id.slice(0, 8)}/${m.index}`)),
        h("td", {}, stateBadge(m.state)),
        params.map((c) => h("td", { class: "param" }, fmtValue(m.params?.[c.name]))),
        metrics.map((c) => h("td", { class: "num metric", dataset: { metric: c.name } }, fmtValue(m.metrics[c.name]))),
        h("td", { title: fmtTime(m.created) }, `#${m.deploy_id ?? "—"} · ${m.author}`),
        h("td", { title: fmtTime(m.finished) }, fmtAgo(m.finished)))))));
  }

  const api = {
    element,
    sortBy(key, refresh = true) {
      sort = key;
      offset = 0;
      return refresh ? api.refresh() : null;
    },
    async refresh() {
      try {
        const page = await get(`/workspaces/${enc(workspace)}/models`, { sort, limit: PAGE, offset, filter: filters });
        clear(problem);
        render(page);
        element.dataset.sort = sort;
      } catch (error) {
        if (error.status !== 422) throw error;
        clear(problem, errorBox(error));
      }
    },
  };
  return api;
}
