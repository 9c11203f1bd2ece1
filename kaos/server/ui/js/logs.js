// A job's logs, followed while it runs (polled every second from the offset read so far).

import { enc, get } from "./api.js";
import { card, h } from "./dom.js";

export function logsCard(jobId) {
  const box = h("pre", { class: "logs", id: "logs" });
  const state = h("span", { class: "muted", id: "logs-state" });
  const element = card("Logs", {}, h("div", { class: "toolbar" }, h("span", { class: "mono" }, `job ${jobId.slice(0, 8)}`), state), box);
  let offset = 0;
  let timer = null;
  let stopped = false;
  const follow = async () => {
    const chunk = await get(`/jobs/${enc(jobId)}/logs`, { offset });
    if (chunk.text) {
      const atBottom = box.scrollTop + box.clientHeight >= box.scrollHeight - 4;
      box.append(chunk.text);
      if (atBottom) box.scrollTop = box.scrollHeight;
    }
    offset = chunk.offset;
    state.textContent = chunk.finished ? "finished" : "live";
    if (chunk.finished && timer) clearInterval(timer);
    return chunk.finished;
  };
  return {
    element,
    async start() {
      if (!(await follow()) && !stopped) timer = setInterval(follow, 1000);
    },
    stop() {
      stopped = true;
      if (timer) clearInterval(timer);
    },
  };
}
