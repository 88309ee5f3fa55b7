// The API as the dashboard sees it: fetch with the bearer token from sessionStorage, the
// SSE stream of /events read with fetch (EventSource cannot send an Authorization header).

const TOKEN_KEY = "jobqueue.token";

export class Unauthorized extends Error {}

export class ApiError extends Error {
  constructor(status, detail) {
    super(`${status}: ${detail}`);
    this.status = status;
    this.detail = detail;
  }
}

export const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY),
  set: (value) => sessionStorage.setItem(TOKEN_KEY, value),
  clear: () => sessionStorage.removeItem(TOKEN_KEY),
};

function headers(extra = {}) {
  const h = { Accept: "application/json", ...extra };
  const t = token.get();
  if (t) h.Authorization = `Bearer ${t}`;
  return h;
}

function detailOf(body) {
  if (body && typeof body.detail === "string") return body.detail;
  if (body && Array.isArray(body.detail)) {
    return body.detail.map((e) => `${(e.loc || []).join(".")}: ${e.msg}`).join("; ");
  }
  return JSON.stringify(body);
}

// The API lives at the origin's root: the dashboard is served at <api>/ui/.
const base = new URL("..", document.baseURI);

export async function request(method, path, { params, body } = {}) {
  // "./" first: a path such as "dlq:retry-all" would otherwise read as a URL scheme.
  const url = new URL(`./${path.replace(/^\//, "")}`, base);
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== "") url.searchParams.set(k, v);
  }
  const init = { method, headers: headers(), cache: "no-store", credentials: "omit" };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  const response = await fetch(url, init);
  if (response.status === 401) throw new Unauthorized("missing or invalid token");
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = text;
  }
  if (!response.ok) throw new ApiError(response.status, detailOf(data));
  return data;
}

export const api = {
  queues: () => request("GET", "/queues").then((d) => d.queues),
  workers: () => request("GET", "/workers").then((d) => d.workers),
  jobs: (params) => request("GET", "/jobs", { params }),
  job: (id) => request("GET", `/jobs/${encodeURIComponent(id)}`),
  cancel: (id) => request("POST", `/jobs/${encodeURIComponent(id)}/cancel`),
  retryDead: (id) => request("POST", `/dlq/${encodeURIComponent(id)}/retry`),
  deleteDead: (id) => request("DELETE", `/dlq/${encodeURIComponent(id)}`),
  retryAllDead: () => request("POST", "/dlq:retry-all"),
  purgeDead: () => request("DELETE", "/dlq"),
};

// Reads /events until `signal` aborts, calling onEvent(parsed data) for every event and
// onState("live" | "reconnecting" | "unauthorized") as the stream comes and goes. Reconnects
// with a capped backoff.
export async function followEvents(onEvent, onState, signal) {
  let delay = 500;
  while (!signal.aborted) {
    try {
      const response = await fetch(new URL("events", base), {
        headers: headers({ Accept: "text/event-stream" }),
        cache: "no-store",
        credentials: "omit",
        signal,
      });
      if (response.status === 401) {
        onState("unauthorized");
        return;
      }
      if (!response.ok || !response.body) throw new Error(`events: ${response.status}`);
      onState("live");
      delay = 500;
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value.replace(/\r\n?/g, "\n");
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const data = block
            .split("\n")
            .filter((line) => line.startsWith("data:"))
            .map((line) => line.slice(5).replace(/^ /, ""))
            .join("\n");
          if (!data) continue; // a comment (keep-alive) or an event without data
          let parsed = data;
          try {
            parsed = JSON.parse(data);
          } catch {
            // not JSON: hand the text over
          }
          onEvent(parsed);
        }
      }
    } catch (err) {
      if (signal.aborted) return;
    }
    onState("reconnecting");
    await new Promise((resolve) => setTimeout(resolve, delay));
    delay = Math.min(delay * 2, 10000);
  }
}
