// The dashboard's only way to the server: the public JSON API, with the tab's bearer token.
// The token lives in sessionStorage (this tab only); no cookies are ever sent.

const TOKEN_KEY = "kaos.token";

export class Unauthorized extends Error {}

export class ApiError extends Error {
  constructor(status, message, fix) {
    super(message);
    this.status = status;
    this.fix = fix;
  }
}

export const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY),
  set: (value) => sessionStorage.setItem(TOKEN_KEY, value),
  clear: () => sessionStorage.removeItem(TOKEN_KEY),
};

export function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value === undefined || value === null || value === "") continue;
    for (const one of Array.isArray(value) ? value : [value]) search.append(key, one);
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

export async function request(path, { method = "GET", raw = false, signal } = {}) {
  const headers = {};
  const bearer = token.get();
  if (bearer) headers.Authorization = `Bearer ${bearer}`;
  const response = await fetch(path, { method, headers, credentials: "omit", signal });
  if (response.status === 401) throw new Unauthorized("this server needs a token");
  if (!response.ok) {
    let body = {};
    try {
      body = await response.json();
    } catch {
      /* not JSON: keep the status text */
    }
    throw new ApiError(response.status, body.detail || response.statusText, body.fix);
  }
  return raw ? response : response.json();
}

export const get = (path, params = {}, options = {}) => request(path + query(params), options);

// A download: without a token the browser fetches the link itself and streams it to disk;
// with one, through fetch (so the bearer token goes with it), then handed to the browser.
export async function download(path, filename) {
  if (!token.get()) {
    const link = Object.assign(document.createElement("a"), { href: path, download: filename });
    document.body.append(link);
    link.click();
    link.remove();
    return;
  }
  const response = await request(path, { raw: true });
  const url = URL.createObjectURL(await response.blob());
  const link = Object.assign(document.createElement("a"), { href: url, download: filename });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

export const enc = encodeURIComponent;
