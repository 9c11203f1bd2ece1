// Hand-written SVG charts: the progress curve, a scatter, parallel coordinates.
// No chart library: a few scales and paths draw 1,000 points in a few milliseconds, and the
// page needs nothing but the server it came from.

import { fmtNumber, fmtValue, h, hideTooltip, s, showTooltip } from "./dom.js";

const MARGIN = { left: 60, right: 24, top: 24, bottom: 44 };

export function linear([d0, d1], [r0, r1]) {
  const span = d1 - d0 || 1;
  return (v) => r0 + ((v - d0) / span) * (r1 - r0);
}

// Round tick values covering [lo, hi], about `count` of them.
export function ticks(lo, hi, count = 5) {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((m) => m >= raw) || raw;
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) {
    out.push(Number(v.toPrecision(12)));
  }
  return out;
}

function paddedDomain(values) {
  let lo = Math.min(...values);
  let hi = Math.max(...values);
  if (!Number.isFinite(lo)) return [0, 1];
  if (lo === hi) {
    const pad = Math.abs(lo) * 0.05 || 0.5;
    return [lo - pad, hi + pad];
  }
  const pad = (hi - lo) * 0.08;
  return [lo - pad, hi + pad];
}

function frame(container, height) {
  const width = Math.max(container.clientWidth || 0, 320);
  const svg = s("svg", {
    class: "chart", width, height, viewBox: `0 0 ${width} ${height}`, role: "img",
  });
  const inner = {
    x0: MARGIN.left, x1: width - MARGIN.right, y0: height - MARGIN.bottom, y1: MARGIN.top,
  };
  return { svg, width, height, inner };
}

function yAxis(svg, inner, y, domain, label) {
  for (const t of ticks(domain[0], domain[1], 5)) {
    const py = y(t);
    svg.append(
      s("line", { class: "grid", x1: inner.x0, x2: inner.x1, y1: py, y2: py }),
      s("text", { class: "tick", x: inner.x0 - 8, y: py + 4, "text-anchor": "end" }, fmtNumber(t)),
    );
  }
  svg.append(
    s("text", {
      class: "axis-label", transform: `translate(14 ${(inner.y0 + inner.y1) / 2}) rotate(-90)`,
      "text-anchor": "middle",
    }, label),
  );
}

// The progress curve: `progress` is the API's ProgressOut. Returns the svg.
// x is the models' deploy order, or with `byTime` the time of the deploy that trained them.
export function progressChart(container, progress, { onOpen, byTime = false } = {}) {
  const all = progress.points;
  const points = all.map((p, i) => ({ ...p, i })).filter((p) => p.value !== null);
  const { svg, inner } = frame(container, 300);
  container.replaceChildren(svg);
  if (!points.length) {
    svg.append(s("text", { class: "empty", x: inner.x1 / 2, y: 140, "text-anchor": "middle" },
      "No finished model reports this metric yet"));
    svg.dataset.drawn = "1";
    performance.mark("kaos:chart-drawn");
    return svg;
  }
  const range = [inner.x0 + 12, inner.x1 - 12];
  let x;
  if (byTime) {
    const t0 = Math.min(...points.map((p) => p.created));
    const t1 = Math.max(...points.map((p) => p.created));
    const xt = linear([t0, t1 > t0 ? t1 : t0 + 1], range);
    x = (p) => xt(p.created);
    const short = t1 - t0 < 86400
      ? { hour: "2-digit", minute: "2-digit" } : { month: "short", day: "numeric" };
    for (let k = 0; k <= 5; k += 1) {
      const t = t0 + ((t1 - t0) * k) / 5;
      svg.append(s("text", { class: "tick", x: xt(t), y: inner.y0 + 18, "text-anchor": "middle" },
        new Date(t * 1000).toLocaleString(undefined, short)));
    }
  } else {
    const xi = linear([0, Math.max(all.length - 1, 1)], range);
    x = (p) => xi(p.i);
    const step = Math.max(1, Math.ceil(all.length / 12));
    for (let i = 0; i < all.length; i += step) {
      svg.append(s("text", { class: "tick", x: xi(i), y: inner.y0 + 18, "text-anchor": "middle" },
        String(i + 1)));
    }
  }
  const domain = paddedDomain(points.map((p) => p.value));
  const y = linear(domain, [inner.y0, inner.y1]);
  yAxis(svg, inner, y, domain, progress.metric);
  svg.append(s("text", { class: "axis-label", x: (inner.x0 + inner.x1) / 2, y: inner.y0 + 38,
    "text-anchor": "middle" }, byTime ? "deployed at" : "model, in deploy order"));

  const line = points.map((p, k) => `${k ? "L" : "M"}${x(p).toFixed(1)},${y(p.value).toFixed(1)}`);
  svg.append(s("path", { class: "series", d: line.join("") }));

  // best so far: a step line, flat until a model beats it
  let best = null;
  const steps = [];
  for (const p of points) {
    const px = x(p).toFixed(1);
    if (best) steps.push(`H${px}`);
    if (p.best) {
      steps.push(best ? `V${y(p.value).toFixed(1)}` : `M${px},${y(p.value).toFixed(1)}`);
      best = p;
    }
  }
  svg.append(s("path", { class: "best-line", d: steps.join("") }));

  const dense = points.length > 200;
  // Labels: the best models first, then the others, each kept only where it overlaps none
  // kept before (a model id is about 130 px wide), so any number of points stays readable.
  const LABEL_W = 136;
  const kept = [];
  const ranked = [...points].sort((a, b) => (b.best - a.best) || (b.i - a.i));
  for (const p of ranked) {
    const cx = x(p);
    const cy = y(p.value);
    if (kept.length >= 40) break;
    if (kept.every((k) => Math.abs(k.cx - cx) > LABEL_W || Math.abs(k.cy - cy) > 16)) kept.push({ p, cx, cy });
  }
  const labels = new Set(kept.map((k) => k.p));
  const dots = s("g", { class: "points" });
  const texts = s("g", { class: "labels" });
  for (const p of points) {
    const cx = x(p);
    const cy = y(p.value);
    dots.append(s("circle", {
      class: p.best ? "point best" : "point", cx, cy, r: p.best ? (dense ? 4 : 6) : (dense ? 2.5 : 4.5),
      dataset: { i: p.i, modelId: p.model_id, value: p.value, best: p.best ? "1" : "0" },
    }));
    if (labels.has(p)) {
      // labels near an edge grow inwards, so none is cut off
      const anchor = cx > inner.x1 - 70 ? "end" : cx < inner.x0 + 70 ? "start" : "middle";
      texts.append(s("text", { class: "point-label", x: cx, y: cy - 12, "text-anchor": anchor }, p.model_id));
    }
  }
  svg.append(texts);
  svg.append(dots);
  const byIndex = new Map(points.map((p) => [String(p.i), p]));
  svg.addEventListener("mousemove", (event) => {
    const p = byIndex.get(event.target.dataset?.i);
    if (!p) return hideTooltip();
    showTooltip(event,
      h("div", { class: "tip-title" }, p.model_id, p.best ? h("span", { class: "tag best" }, "best so far") : null),
      h("div", {}, `${progress.metric} = ${fmtNumber(p.value)}`),
      h("div", { class: "muted" }, `#${p.i + 1} · deploy ${p.deploy_id ?? "—"} · ${p.author}`),
      p.changes.length
        ? h("ul", { class: "changes" }, p.changes.map((c) => h("li", {}, c.label)))
        : h("div", { class: "muted" }, p.i === 0 ? "first model" : "same inputs as the previous model"),
    );
  });
  svg.addEventListener("mouseleave", hideTooltip);
  svg.addEventListener("click", (event) => {
    const p = byIndex.get(event.target.dataset?.i);
    if (p && onOpen) onOpen(p);
  });
  svg.dataset.drawn = "1";
  performance.mark("kaos:chart-drawn");
  return svg;
}

// A scale for any values: numeric when all are numbers (and, for a hyperparameter, more than
// a few distinct ones), else evenly spaced categories in their natural order.
function axisScale(values, range, { fewIsCategorical = false } = {}) {
  const numbers = values.every((v) => typeof v === "number");
  const distinct = [...new Set(values)];
  const numeric = numbers && !(fewIsCategorical && distinct.length <= 6);
  if (numeric) {
    const domain = paddedDomain(values);
    const f = linear(domain, range);
    return { f, numeric, ticks: ticks(domain[0], domain[1], 5), domain };
  }
  const cats = (numbers ? distinct.sort((a, b) => a - b) : distinct.sort()).map(fmtValue);
  const f0 = linear([-0.5, cats.length - 0.5], range);
  return { f: (v) => f0(cats.indexOf(fmtValue(v))), numeric, cats };
}

export function colorFor(t) {
  // light blue-grey to indigo, t in [0, 1]
  const a = [203, 213, 225];
  const b = [67, 56, 202];
  const c = a.map((v, k) => Math.round(v + (b[k] - v) * Math.max(0, Math.min(1, t))));
  return `rgb(${c.join(",")})`;
}

export function scatterChart(container, models, param, metric, { onOpen } = {}) {
  const rows = models.filter((m) => m.params && param in m.params && typeof m.metrics[metric] === "number");
  const { svg, inner } = frame(container, 300);
  container.replaceChildren(svg);
  if (!rows.length) {
    svg.append(s("text", { class: "empty", x: inner.x1 / 2, y: 140, "text-anchor": "middle" }, "Nothing to plot"));
    return svg;
  }
  const xs = axisScale(rows.map((m) => m.params[param]), [inner.x0 + 10, inner.x1 - 10], { fewIsCategorical: true });
  const domain = paddedDomain(rows.map((m) => m.metrics[metric]));
  const y = linear(domain, [inner.y0, inner.y1]);
  yAxis(svg, inner, y, domain, metric);
  const xticks = xs.numeric ? xs.ticks.map((t) => [t, fmtNumber(t)]) : xs.cats.map((c) => [c, c]);
  for (const [value, text] of xticks) {
    svg.append(s("text", { class: "tick", x: xs.f(value), y: inner.y0 + 18, "text-anchor": "middle" }, text));
  }
  svg.append(s("text", { class: "axis-label", x: (inner.x0 + inner.x1) / 2, y: inner.y0 + 38, "text-anchor": "middle" }, param));
  for (const m of rows) {
    const dot = s("circle", { class: "point", cx: xs.f(m.params[param]), cy: y(m.metrics[metric]), r: 5,
      dataset: { modelId: m.model_id || "" } });
    dot.addEventListener("mousemove", (event) => showTooltip(event,
      h("div", { class: "tip-title" }, m.model_id || `model ${m.index}`),
      h("div", {}, `${metric} = ${fmtNumber(m.metrics[metric])}`),
      h("div", { class: "muted" }, Object.entries(m.params).map(([k, v]) => `${k}=${fmtValue(v)}`).join("  "))));
    dot.addEventListener("mouseleave", hideTooltip);
    if (onOpen && m.model_id) dot.addEventListener("click", () => onOpen(m));
    svg.append(dot);
  }
  return svg;
}

export function parallelChart(container, models, params, metric) {
  const rows = models.filter((m) => typeof m.metrics[metric] === "number");
  const dims = [...params, metric];
  const { svg, inner } = frame(container, 320);
  container.replaceChildren(svg);
  if (!rows.length || !dims.length) return svg;
  const xOf = linear([0, Math.max(dims.length - 1, 1)], [inner.x0 + 20, inner.x1 - 40]);
  const value = (m, d, k) => (k === dims.length - 1 ? m.metrics[d] : m.params?.[d]);
  const scales = dims.map((d, k) => axisScale(rows.map((m) => value(m, d, k)), [inner.y0, inner.y1 + 8],
    { fewIsCategorical: k < dims.length - 1 }));
  const metricScale = scales[dims.length - 1];
  const [lo, hi] = metricScale.domain || [0, 1];
  const lines = s("g", { class: "pc-lines" });
  const sorted = [...rows].sort((a, b) => a.metrics[metric] - b.metrics[metric]);
  for (const m of sorted) {
    const d = dims.map((dim, k) => `${k ? "L" : "M"}${xOf(k).toFixed(1)},${scales[k].f(value(m, dim, k)).toFixed(1)}`).join("");
    const path = s("path", { d, stroke: colorFor((m.metrics[metric] - lo) / (hi - lo || 1)), class: "pc-line" });
    path.addEventListener("mousemove", (event) => showTooltip(event,
      h("div", { class: "tip-title" }, m.model_id || `model ${m.index}`),
      dims.map((dim, k) => h("div", {}, `${dim} = ${fmtValue(value(m, dim, k))}`))));
    path.addEventListener("mouseleave", hideTooltip);
    lines.append(path);
  }
  svg.append(lines);
  dims.forEach((dim, k) => {
    const px = xOf(k);
    const axis = s("g", { class: "pc-axis" }, s("line", { x1: px, x2: px, y1: inner.y1 + 8, y2: inner.y0 }));
    const sc = scales[k];
    const labels = sc.numeric ? sc.ticks.map((t) => [t, fmtNumber(t)]) : sc.cats.map((c) => [c, c]);
    for (const [v, text] of labels) {
      axis.append(s("text", { class: "tick", x: px + 6, y: sc.f(v) + 4 }, text));
    }
    axis.append(s("text", { class: "axis-label", x: px, y: inner.y1 - 2, "text-anchor": "middle" }, dim));
    svg.append(axis);
  });
  return svg;
}
