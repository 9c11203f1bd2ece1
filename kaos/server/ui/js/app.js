// The dashboard's entry: asks for a token when the server wants one, then routes by the hash.
//   #/                  workspaces
//   #/w/NAME            a workspace: progress, timeline, live jobs, models, endpoints
//   #/w/NAME/job/ID     a job's grid: scatter and parallel coordinates
//   #/m/MODEL_ID        a model: metrics, provenance, diff, logs, downloads

import { ApiError, Unauthorized, get, token } from "./api.js";
import { clear, errorBox, h } from "./dom.js";
import { gridPage } from "./grid.js";
import { modelPage } from "./model.js";
import { workspacePage, workspacesPage } from "./workspace.js";

const main = document.getElementById("main");
const crumbs = document.getElementById("crumbs");
let stopPage = () => {};
let health = null;

function route() {
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  if (parts[0] === "w" && parts[1] && parts[2] === "job" && parts[3]) {
    return { page: gridPage, args: [parts[1], parts[3]], trail: [["workspaces", "#/"], [parts[1], `#/w/${encodeURIComponent(parts[1])}`], [`job ${parts[3].slice(0, 8)}`]] };
  }
  if (parts[0] === "w" && parts[1]) {
    return { page: workspacePage, args: [parts[1]], trail: [["workspaces", "#/"], [parts[1]]] };
  }
  if (parts[0] === "m" && parts[1]) {
    return { page: modelPage, args: [parts.slice(1).join("/")], trail: [["workspaces", "#/"], [`model ${parts[1]}`]] };
  }
  return { page: workspacesPage, args: [], trail: [["workspaces"]] };
}

async function show() {
  stopPage();
  stopPage = () => {};
  if (health?.auth && !token.get()) return askToken();
  const { page, args, trail } = route();
  clear(crumbs, trail.map(([text, href], k) => [
    k ? h("span", { class: "sep" }, "/") : null,
    href ? h("a", { href }, text) : h("span", {}, text),
  ]));
  const root = h("div", { class: "page" });
  clear(main, root);
  try {
    stopPage = (await page(root, ...args)) || (() => {});
  } catch (error) {
    handle(error, root);
  }
}

export function handle(error, where) {
  if (error instanceof Unauthorized) {
    token.clear();
    return askToken("That token was refused; try again.");
  }
  console.error(error);
  where.append(errorBox(error instanceof ApiError ? error : { message: String(error) }));
}

// With tokens configured nothing but this prompt shows until a token is accepted.
function askToken(message) {
  stopPage();
  stopPage = () => {};
  clear(crumbs);
  document.getElementById("logout").hidden = true;
  const input = h("input", { type: "password", id: "token", name: "token", autocomplete: "off",
    placeholder: "bearer token", required: true, autofocus: true });
  const note = h("p", { class: "error-text", id: "token-error" }, message || "");
  const form = h("form", { class: "token-form card", id: "token-form" },
    h("h2", {}, "This kaos server needs a token"),
    h("p", { class: "muted" }, "It stays in this tab only (session storage) and is sent as the bearer token."),
    input, h("button", { type: "submit", class: "primary" }, "Continue"), note);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    token.set(input.value.trim());
    try {
      await get("/workspaces");
    } catch (error) {
      token.clear();
      note.textContent = error instanceof Unauthorized ? "That token was refused; try again." : error.message;
      return;
    }
    document.getElementById("logout").hidden = false;
    show();
  });
  clear(main, form);
  input.focus();
}

async function start() {
  try {
    health = await get("/health");
  } catch (error) {
    return clear(main, errorBox({ message: `cannot reach the kaos server: ${error.message}` }));
  }
  const logout = document.getElementById("logout");
  logout.hidden = !(health.auth && token.get());
  logout.addEventListener("click", () => {
    token.clear();
    show();
  });
  window.addEventListener("hashchange", show);
  show();
}

start();
