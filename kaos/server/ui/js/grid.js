// A training job's grid: one hyperparameter against a metric (scatter) and parallel
// coordinates over every hyperparameter and the metric.

import { enc, get } from "./api.js";
import { parallelChart, scatterChart } from "./charts.js";
import { card, clear, fmtValue, h, stateBadge } from "./dom.js";
import { logsCard } from "./logs.js";

const FINISHED = ["JOB_SUCCESS", "JOB_FAILURE", "JOB_KILLED"];

export async function gridPage(root, workspace, jobId) {
  const detail = await get(`/jobs/${enc(jobId)}`);
  const { job, models } = detail;
  const params = [...new Set(models.flatMap((m) => Object.keys(m.params || {})))].sort();
  const metrics = detail.available_metrics;
  root.append(h("div", { class: "page-head" },
    h("h1", {}, `${job.kind === "build" ? "Build" : "Train"} job `, h("span", { class: "mono" }, job.id.slice(0, 8)), " ", stateBadge(job.state)),
    h("div", { class: "chips" },
      h("span", { class: "chip" }, h("b", {}, "source"), `/${detail.source_name || "?"}:${(job.source || "").slice(0, 5)}`),
      h("span", { class: "chip" }, h("b", {}, "data"), `/${detail.data_name || "?"}:${(job.data || "").slice(0, 5)}`),
      h("span", { class: "chip" }, h("b", {}, "models"), models.length))));
  if (job.kind === "train" && (!params.length || !metrics.length)) {
    root.append(card(null, {}, h("p", { class: "empty-state" },
      params.length ? "No model of this job has reported metrics yet." : "This job has no hyperparameter grid: each deploy trains one model.")));
  }
  const paramSelect = h("select", { id: "grid-param" }, params.map((p) => h("option", { value: p }, p)));
  const metricSelect = h("select", { id: "grid-metric" }, metrics.map((m) => h("option", { value: m }, m)));
  const scatterBox = h("div", { class: "chart-box", id: "scatter" });
  const parallelBox = h("div", { class: "chart-box", id: "parallel" });
  const open = (m) => { location.hash = `#/m/${enc(m.model_id)}`; };
  if (params.length && metrics.length) {
    root.append(h("div", { class: "toolbar" }, h("label", {}, "hyperparameter ", paramSelect), h("label", {}, "metric ", metricSelect)));
    root.append(h("div", { class: "columns" },
      card("Hyperparameter against metric", {}, scatterBox),
      card("Parallel coordinates", {}, parallelBox)));
  }
  const tableBox = h("div", { class: "table-scroll" });
  if (job.kind === "train") root.append(card("Models of this job", {}, tableBox));

  function draw(current) {
    if (params.length && metrics.length) {
      scatterChart(scatterBox, current, paramSelect.value, metricSelect.value, { onOpen: open });
      parallelChart(parallelBox, current, params, metricSelect.value);
    }
    const metric = metricSelect.value;
    const ranked = [...current].sort((a, b) => (b.metrics[metric] ?? -Infinity) - (a.metrics[metric] ?? -Infinity));
    clear(tableBox, h("table", { class: "table compact" },
      h("thead", {}, h("tr", {}, h("th", {}, "model"), h("th", {}, "state"), params.map((p) => h("th", {}, p)), metrics.map((m) => h("th", { class: "num" }, m)))),
      h("tbody", {}, ranked.map((m) => h("tr", {},
        h("td", { class: "mono" }, m.model_id ? h("a", { href: `#/m/${enc(m.model_id)}` }, m.model_id) : `#${m.index}`),
        h("td", {}, stateBadge(m.state)),
        params.map((p) => h("td", {}, fmtValue(m.params?.[p]))),
        metrics.map((k) => h("td", { class: "num" }, fmtValue(m.metrics[k]))))))));
  }
  paramSelect.addEventListener("change", () => draw(models));
  metricSelect.addEventListener("change", () => draw(models));
  draw(models);
  const logs = logsCard(job.id);
  root.append(logs.element);
  await logs.start();

  let timer = null;
  if (!FINISHED.includes(job.state)) {
    timer = setInterval(async () => {
      const fresh = await get(`/jobs/${enc(jobId)}`);
      draw(fresh.models);
      if (FINISHED.includes(fresh.job.state)) clearInterval(timer);
    }, 2000);
  }
  return () => {
    logs.stop();
    if (timer) clearInterval(timer);
  };
}
