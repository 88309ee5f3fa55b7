// The dashboard: hash routes (#/, #/jobs?state=..., #/job/<id>), views drawn with DOM calls
// (text only through textContent: nothing from the API is ever parsed as HTML), live updates
// from /events, a login form when the API wants a token.

import { api, followEvents, token, Unauthorized } from "./api.js";
import { drawChart } from "./chart.js";

const STATES = ["queued", "running", "delayed", "failed", "completed", "cancelled", "dead"];
const HISTORY_KEY = "jobqueue.history";
const HOUR_MS = 3600 * 1000;
const MIN_WINDOW_MS = 60 * 1000;
const SAMPLE_MS = 2000; // at most one rate sample per queue every 2 s, kept for an hour
const POLL_MS = 5000; // the overview's refresh (its rates), and every view's while /events is down
const SLOW_POLL_EVERY = 3; // other views: every 3rd tick, since a job starting to run is no event
const EVENT_THROTTLE_MS = 300;

const $ = (id) => document.getElementById(id);

// ---- DOM helpers --------------------------------------------------------------------------

function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (key in el && !key.includes("-")) el[key] = value;
    else el.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function fmtNumber(v) {
  return v === null || v === undefined ? "-" : String(v);
}

function fmtRate(v) {
  return v === null || v === undefined ? "-" : (Math.round(v * 100) / 100).toString();
}

function fmtAge(seconds) {
  if (seconds === null || seconds === undefined) return "-";
  if (seconds < 60) return `${Math.round(seconds)} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(seconds / 3600)} h ${Math.floor((seconds % 3600) / 60)} min`;
}

function fmtTime(iso) {
  if (!iso) return "-";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : d.toLocaleString();
}

function ago(iso) {
  if (!iso) return "-";
  const d = typeof iso === "number" ? new Date(iso * 1000) : new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return `${fmtAge(Math.max(0, (Date.now() - d.getTime()) / 1000))} ago`;
}

function lastLine(text) {
  // A traceback's last line says what failed; the job's page shows all of it.
  const lines = (text || "").split("\n").filter((l) => l.trim());
  return lines.length ? lines[lines.length - 1].trim() : "";
}

function json(value) {
  return value === undefined ? "" : JSON.stringify(value, null, 2);
}

function toast(text, kind = "ok") {
  const el = $("toast");
  el.textContent = text;
  el.className = kind;
  el.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => (el.hidden = true), 4000);
}

function confirmAction(text) {
  const dialog = $("confirm");
  $("confirm-text").textContent = text;
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
  });
}

// ---- rate history (the overview's charts) --------------------------------------------------

function loadHistory() {
  try {
    return JSON.parse(sessionStorage.getItem(HISTORY_KEY)) || {};
  } catch {
    return {};
  }
}

const history = loadHistory();

function recordSamples(queues) {
  const now = Date.now();
  for (const q of queues) {
    const samples = (history[q.name] ||= []);
    const last = samples[samples.length - 1];
    if (last && now - last.t < SAMPLE_MS) continue;
    samples.push({
      t: now,
      enqueued: q.rates?.enqueued_per_s ?? 0,
      completed: q.rates?.completed_per_s ?? 0,
      failed: q.rates?.failed_per_s ?? 0,
    });
    while (samples.length && samples[0].t < now - HOUR_MS) samples.shift();
  }
  try {
    sessionStorage.setItem(HISTORY_KEY, JSON.stringify(history));
  } catch {
    // storage full: the charts still work from memory
  }
}

// ---- views ---------------------------------------------------------------------------------

function field(label, value, name) {
  return h("div", { class: "stat" }, h("span", { class: "label" }, label),
    h("span", { class: "value", "data-field": name }, value));
}

function queueCard(q, workers) {
  const mine = workers.filter((w) => w.queue === q.name);
  const busy = mine.filter((w) => w.busy).length;
  const ready = q.ready || {};
  // The charts span the history this tab has seen: at least a minute, at most the hour.
  const samples = history[q.name] || [];
  const seen = samples.length ? Date.now() - samples[0].t : 0;
  const windowMs = Math.min(HOUR_MS, Math.max(MIN_WINDOW_MS, seen));
  const span = windowMs >= HOUR_MS ? "hour" : `${Math.round(windowMs / 60000)} min`;
  const throughput = h("canvas", { class: "chart", "data-chart": "throughput" });
  const failures = h("canvas", { class: "chart", "data-chart": "failures" });
  const card = h(
    "section",
    { class: "card queue", "data-queue": q.name },
    h("h2", {}, q.name, q.pool ? h("span", { class: "pool" }, `pool ${q.pool}`) : null),
    h(
      "div",
      { class: "stats" },
      field("ready · high", fmtNumber(ready.high), "ready.high"),
      field("ready · normal", fmtNumber(ready.normal), "ready.normal"),
      field("ready · low", fmtNumber(ready.low), "ready.low"),
      field("in flight", fmtNumber(q.in_flight), "in_flight"),
      field("delayed", fmtNumber(q.delayed), "delayed"),
      field("dead", fmtNumber(q.dead), "dead"),
      field("oldest waiting", fmtAge(q.oldest_age_seconds), "oldest_age_seconds"),
      field("workers", `${mine.length} (${busy} busy)`, "workers"),
    ),
    h(
      "div",
      { class: "stats rates" },
      field("enqueued/s", fmtRate(q.rates?.enqueued_per_s), "rates.enqueued_per_s"),
      field("completed/s", fmtRate(q.rates?.completed_per_s), "rates.completed_per_s"),
      field("failed/s", fmtRate(q.rates?.failed_per_s), "rates.failed_per_s"),
    ),
    h(
      "div",
      { class: "charts" },
      h("figure", {}, throughput, h("figcaption", {}, `Throughput, last ${span}`)),
      h("figure", {}, failures, h("figcaption", {}, `Failures, last ${span}`)),
    ),
    h(
      "p",
      { class: "links" },
      ...["queued", "running", "dead"].map((s) =>
        h("a", { href: `#/jobs?state=${s}&queue=${encodeURIComponent(q.name)}` }, `${s} jobs`),
      ),
    ),
  );
  requestAnimationFrame(() => {
    drawChart(throughput, samples, ["enqueued", "completed"], { windowMs });
    drawChart(failures, samples, ["failed"], { windowMs });
  });
  return card;
}

function workersTable(workers) {
  if (!workers.length) return h("p", { class: "muted" }, "No worker has sent a heartbeat.");
  return h(
    "table",
    { class: "workers" },
    h("thead", {}, h("tr", {}, ["worker", "queue", "pool", "busy", "in flight", "last seen"].map((t) => h("th", {}, t)))),
    h(
      "tbody",
      {},
      workers.map((w) =>
        h(
          "tr",
          { "data-worker": w.id },
          h("td", {}, w.id),
          h("td", {}, w.queue),
          h("td", {}, w.pool ?? "-"),
          h("td", {}, w.busy ? "yes" : "no"),
          h("td", {}, fmtNumber(w.in_flight)),
          h("td", {}, ago(w.last_seen)),
        ),
      ),
    ),
  );
}

async function overview() {
  const [queues, workers] = await Promise.all([api.queues(), api.workers()]);
  recordSamples(queues);
  return h(
    "div",
    { id: "overview" },
    h("h1", {}, "Queues"),
    h("div", { class: "cards" }, queues.map((q) => queueCard(q, workers))),
    h("h1", {}, "Workers"),
    workersTable(workers),
  );
}

let cursorStack = []; // the cursors of the pages before this one (the Previous button)
let queueNames = [];

function jobsHash(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v) q.set(k, v);
  return `#/jobs?${q}`;
}

function jobRow(job) {
  return h(
    "tr",
    { "data-job-id": job.id, "data-status": job.status },
    h("td", {}, h("a", { href: `#/job/${encodeURIComponent(job.id)}`, class: "mono" }, job.id)),
    h("td", {}, job.type),
    h("td", {}, job.queue ?? "-"),
    h("td", {}, h("span", { class: `badge ${job.status}` }, job.status)),
    h("td", {}, job.priority),
    h("td", {}, `${job.attempts}/${job.max_retries + 1}`),
    h("td", {}, h("progress", { max: 100, value: job.progress ?? 0 })),
    h("td", {}, fmtTime(job.finished_at || job.started_at || job.created_at)),
    h("td", { class: "error-cell", title: job.error || "" }, lastLine(job.error)),
  );
}

async function jobsView(params) {
  const state = STATES.includes(params.get("state")) ? params.get("state") : "queued";
  const filters = {
    state,
    type: params.get("type") || "",
    queue: params.get("queue") || "",
    limit: params.get("limit") || "25",
    cursor: params.get("cursor") || "",
  };
  const [page, queues] = await Promise.all([
    api.jobs(filters),
    queueNames.length ? null : api.queues().catch(() => []),
  ]);
  if (queues) queueNames = queues.map((q) => q.name);
  const typeInput = h("input", { name: "type", value: filters.type, placeholder: "any type" });
  const queueSelect = h(
    "select",
    { name: "queue" },
    h("option", { value: "" }, "every queue"),
    queueNames.map((n) => h("option", { value: n, selected: n === filters.queue }, n)),
  );
  const limitSelect = h(
    "select",
    { name: "limit" },
    ["10", "25", "50", "100"].map((n) => h("option", { value: n, selected: n === filters.limit }, n)),
  );
  const form = h(
    "form",
    {
      class: "filters",
      id: "filters",
      onsubmit: (e) => {
        e.preventDefault();
        cursorStack = [];
        location.hash = jobsHash({
          state, type: typeInput.value.trim(), queue: queueSelect.value, limit: limitSelect.value,
        });
      },
    },
    h("label", {}, "Type ", typeInput),
    h("label", {}, "Queue ", queueSelect),
    h("label", {}, "Per page ", limitSelect),
    h("button", { type: "submit" }, "Filter"),
  );
  const tabs = h(
    "nav",
    { class: "tabs" },
    STATES.map((s) =>
      h("a", {
        href: jobsHash({ ...filters, state: s, cursor: "" }),
        class: s === state ? "active" : "",
        "data-state": s,
        onclick: () => (cursorStack = []),
      }, s),
    ),
  );
  const actions = state === "dead"
    ? h(
        "div",
        { class: "actions" },
        h("button", { id: "retry-all", type: "button", onclick: () => act(
          "Re-enqueue every dead job?", api.retryAllDead, (r) => `retried ${r.retried}`) }, "Retry all"),
        h("button", { id: "purge", type: "button", class: "danger", onclick: () => act(
          "Delete every dead job? This cannot be undone.", api.purgeDead, (r) => `purged ${r.purged}`) }, "Purge"),
      )
    : null;
  const pager = h(
    "div",
    { class: "pager" },
    h("button", {
      id: "first-page", type: "button", disabled: !filters.cursor,
      onclick: () => { cursorStack = []; location.hash = jobsHash({ ...filters, cursor: "" }); },
    }, "First page"),
    h("button", {
      id: "prev-page", type: "button", disabled: !filters.cursor,
      onclick: () => { location.hash = jobsHash({ ...filters, cursor: cursorStack.pop() || "" }); },
    }, "Previous"),
    h("button", {
      id: "next-page", type: "button", disabled: !page.next_cursor,
      onclick: () => {
        cursorStack.push(filters.cursor);
        location.hash = jobsHash({ ...filters, cursor: page.next_cursor });
      },
    }, "Next"),
  );
  const rows = page.jobs.length
    ? h(
        "table",
        { class: "jobs", id: "jobs" },
        h("thead", {}, h("tr", {}, ["id", "type", "queue", "status", "priority", "attempts", "progress", "time", "error"].map((t) => h("th", {}, t)))),
        h("tbody", {}, page.jobs.map(jobRow)),
      )
    : h("p", { class: "muted", id: "no-jobs" }, page.next_cursor
      ? "Nothing matched on this stretch of the queue: more may follow (Next)."
      : `No ${state} jobs.`);
  return h("div", { id: "jobs-view", "data-state": state }, h("h1", {}, "Jobs"), tabs, form, actions, rows, pager);
}

async function act(question, fn, describe) {
  if (!(await confirmAction(question))) return;
  try {
    const result = await fn();
    toast(describe(result));
  } catch (err) {
    if (err instanceof Unauthorized) return showLogin();
    toast(err.message, "error");
  }
  refresh();
}

function actionsFor(job) {
  const id = job.id;
  const buttons = [];
  if (["queued", "failed", "processing"].includes(job.status)) {
    buttons.push(h("button", { id: "cancel-job", type: "button", class: "danger", onclick: () => act(
      `Cancel job ${id}?${job.status === "processing" ? " It is running: its task is asked to stop." : ""}`,
      () => api.cancel(id), (j) => `job ${id} ${j.status}`) }, "Cancel"));
  }
  if (job.status === "dead") {
    buttons.push(h("button", { id: "retry-job", type: "button", onclick: () => act(
      `Retry job ${id} with a fresh attempt budget?`, () => api.retryDead(id), () => `job ${id} re-enqueued`) }, "Retry"));
    buttons.push(h("button", { id: "delete-job", type: "button", class: "danger", onclick: () => act(
      `Delete dead job ${id}? This cannot be undone.`, () => api.deleteDead(id), () => {
        location.hash = "#/jobs?state=dead";
        return `job ${id} deleted`;
      }) }, "Delete"));
  }
  return h("div", { class: "actions" }, buttons);
}

async function jobView(id) {
  const job = await api.job(id);
  const row = (label, value, name) => h("tr", {}, h("th", {}, label), h("td", { "data-field": name }, value));
  return h(
    "div",
    { id: "job-view", "data-job-id": job.id, "data-status": job.status },
    h("h1", {}, "Job ", h("span", { class: "mono" }, job.id), " ", h("span", { class: `badge ${job.status}`, id: "job-status" }, job.status)),
    actionsFor(job),
    h(
      "table",
      { class: "fields" },
      row("type", job.type, "type"),
      row("queue", job.queue ?? "-", "queue"),
      row("priority", job.priority, "priority"),
      row("attempts", `${job.attempts} of ${job.max_retries + 1} (max retries ${job.max_retries})`, "attempts"),
      row("progress", h("span", {}, h("progress", { max: 100, value: job.progress ?? 0 }), ` ${job.progress ?? 0}%`), "progress"),
      row("created", fmtTime(job.created_at), "created_at"),
      row("started", fmtTime(job.started_at), "started_at"),
      row("finished", fmtTime(job.finished_at), "finished_at"),
      row("due", fmtTime(job.run_at), "run_at"),
    ),
    h("h2", {}, "Payload"),
    h("pre", { id: "job-payload" }, json(job.payload)),
    h("h2", {}, "Result"),
    h("pre", { id: "job-result" }, job.result === null || job.result === undefined ? "-" : json(job.result)),
    h("h2", {}, "Error"),
    h("pre", { id: "job-error", class: job.error ? "error" : "" }, job.error || "-"),
  );
}

// ---- routing, refresh, login ---------------------------------------------------------------

let live = false;
let rendering = null;
let pendingRefresh = false;
let pendingForced = false;
let events = null;

function route() {
  const hash = location.hash.replace(/^#/, "") || "/";
  const [path, query = ""] = hash.split("?");
  const params = new URLSearchParams(query);
  if (path.startsWith("/job/")) return { name: "job", render: () => jobView(decodeURIComponent(path.slice(5))) };
  if (path === "/jobs") {
    return { name: params.get("state") === "dead" ? "dlq" : "jobs", render: () => jobsView(params) };
  }
  return { name: "overview", render: overview };
}

// Redraws the current view; a live redraw (not a navigation) waits while the user is typing
// in the filters. Calls during a redraw are folded into one more redraw after it.
async function refresh(event) {
  const forced = event === true || event?.type === "hashchange";
  if (!forced && document.activeElement?.closest?.("#filters")) return;
  if (rendering) {
    pendingRefresh = true;
    pendingForced ||= forced;
    return rendering;
  }
  const hash = location.hash;
  const current = route();
  for (const a of document.querySelectorAll("[data-nav]")) {
    a.classList.toggle("active", a.dataset.nav === current.name);
  }
  rendering = (async () => {
    try {
      const view = await current.render();
      if (location.hash === hash) $("view").replaceChildren(view); // else: a newer one follows
    } catch (err) {
      if (err instanceof Unauthorized) showLogin();
      else $("view").replaceChildren(h("p", { class: "error", id: "view-error" }, err.message));
    }
  })();
  await rendering;
  rendering = null;
  if (pendingRefresh) {
    const again = pendingForced;
    pendingRefresh = false;
    pendingForced = false;
    refresh(again);
  }
}

// A burst of events (a batch of jobs finishing) becomes one refresh per EVENT_THROTTLE_MS.
let throttle = null;
function onEvent() {
  if (throttle) return;
  throttle = setTimeout(() => {
    throttle = null;
    refresh();
  }, EVENT_THROTTLE_MS);
}

function setLive(state) {
  live = state === "live";
  const el = $("live");
  el.textContent = state;
  el.dataset.state = state;
  if (state === "unauthorized") showLogin();
}

function startEvents() {
  if (events) events.abort();
  events = new AbortController();
  followEvents(onEvent, setLive, events.signal);
}

function showLogin(message) {
  if (events) events.abort();
  events = null;
  const dialog = $("login");
  const error = $("login-error");
  error.hidden = !message;
  error.textContent = message || "";
  if (!dialog.open) dialog.showModal();
  $("login-token").focus();
}

async function login(e) {
  e.preventDefault();
  const value = $("login-token").value.trim();
  if (!value) return;
  token.set(value);
  try {
    await api.queues();
  } catch (err) {
    token.clear();
    showLogin(err instanceof Unauthorized ? "The API refused this token." : err.message);
    return;
  }
  $("login-token").value = "";
  $("login").close();
  $("logout").hidden = false;
  startEvents();
  refresh();
}

function logout() {
  token.clear();
  $("logout").hidden = true;
  $("view").replaceChildren();
  showLogin();
}

function init() {
  $("login-form").addEventListener("submit", login);
  $("login").addEventListener("cancel", (e) => e.preventDefault()); // Escape keeps it open
  $("logout").addEventListener("click", logout);
  $("logout").hidden = !token.get();
  window.addEventListener("hashchange", refresh);
  // Leaving the page ends the /events stream now, so the API never waits on it when it stops.
  window.addEventListener("pagehide", () => events && events.abort());
  let tick = 0;
  setInterval(() => {
    tick += 1;
    if ($("login").open) return;
    if (route().name === "overview" || !live || tick % SLOW_POLL_EVERY === 0) refresh();
    if (route().name !== "overview") api.queues().then(recordSamples, () => {}); // the charts
  }, POLL_MS);
  startEvents();
  refresh();
}

init();
