// azfn dashboard: a page of the app itself over the durable management API (no libraries).
"use strict";

const API = document.body.dataset.api; // e.g. /api/orchestrators
const CODE = document.body.dataset.code; // the function key the page was opened with, if any
const view = document.getElementById("view");
let refreshTimer = null;
// The answer to the last action on an instance, kept across the redraw that follows it.
let lastAnswer = { id: null, text: "" };

/** The URL of an API path with its query, carrying the key. */
function apiUrl(path, query = {}) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null && v !== "") q.set(k, v);
  if (CODE) q.set("code", CODE);
  const s = q.toString();
  return `${API}/${path}${s ? "?" + s : ""}`;
}

/** Calls the API; answers {status, body, headers}; never throws for an HTTP error. */
async function call(method, path, query, body) {
  const init = { method, headers: {} };
  if (body !== undefined) { init.body = JSON.stringify(body); init.headers["content-type"] = "application/json"; }
  if (query && query.__token) { init.headers["x-ms-continuation-token"] = query.__token; delete query.__token; }
  const res = await fetch(apiUrl(path, query), init);
  const text = await res.text();
  let parsed = text;
  try { parsed = text ? JSON.parse(text) : null; } catch (_) { /* not JSON */ }
  return { status: res.status, body: parsed, headers: res.headers };
}

/** Builds an element: el("td", {class: "x"}, "text", child...). */
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) e.append(c instanceof Node ? c : String(c));
  return e;
}

const json = (v) => el("pre", {}, v === undefined ? "" : JSON.stringify(v, null, 2));
const time = (t) => (t ? new Date(t).toLocaleString() : "");
const statusCell = (s) => el("span", { class: `status status-${s}` }, s);

function show(...nodes) {
  view.replaceChildren(...nodes);
}

function errorBox(what, res) {
  const msg = res && res.body && res.body.error ? `${res.body.error.kind}: ${res.body.error.message}` : `HTTP ${res && res.status}`;
  return el("p", { class: "error", role: "alert" }, `${what} failed: ${msg}`);
}

// ---- Instances -------------------------------------------------------------------------------

const listState = { filters: {}, tokens: [null], page: 0 };

async function instancesView(params) {
  const f = { ...listState.filters, ...params };
  listState.filters = f;
  const form = el("form", { class: "filters", "aria-label": "Filters" },
    el("label", {}, "Status",
      el("select", { name: "runtimeStatus" },
        ["", "Pending", "Running", "Completed", "Failed", "Terminated", "Suspended"].map((s) =>
          el("option", { value: s, selected: (f.runtimeStatus || "") === s }, s || "any")))),
    el("label", {}, "Name starts with", el("input", { name: "namePrefix", value: f.namePrefix || "" })),
    el("label", {}, "Created from", el("input", { name: "createdTimeFrom", type: "datetime-local", value: f.createdTimeFrom || "" })),
    el("label", {}, "Created to", el("input", { name: "createdTimeTo", type: "datetime-local", value: f.createdTimeTo || "" })),
    el("label", {}, "Per page", el("input", { name: "top", type: "number", min: 1, max: 1000, value: f.top || 50 })),
    el("button", { type: "submit" }, "Apply filters"),
    el("label", {}, "Auto-refresh", el("input", { type: "checkbox", name: "auto", checked: !!f.auto })));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const data = Object.fromEntries(new FormData(form));
    data.auto = form.elements.auto.checked;
    listState.tokens = [null];
    listState.page = 0;
    instancesView(data);
  });
  form.elements.auto.addEventListener("change", () => {
    listState.filters.auto = form.elements.auto.checked;
    scheduleRefresh();
  });

  const query = {
    runtimeStatus: f.runtimeStatus,
    namePrefix: f.namePrefix,
    createdTimeFrom: f.createdTimeFrom ? new Date(f.createdTimeFrom).toISOString() : "",
    createdTimeTo: f.createdTimeTo ? new Date(f.createdTimeTo).toISOString() : "",
    top: f.top || 50,
    __token: listState.tokens[listState.page],
  };
  const res = await call("GET", "instances", query);
  if (res.status !== 200) { show(el("h2", {}, "Instances"), form, errorBox("Listing instances", res)); return; }
  const next = res.headers.get("x-ms-continuation-token");
  const rows = res.body.map((i) => el("tr", {},
    el("td", {}, i.name),
    el("td", {}, i.version || ""),
    el("td", { class: "mono" }, el("a", { href: `#/instance/${encodeURIComponent(i.instanceId)}` }, i.instanceId)),
    el("td", {}, statusCell(i.runtimeStatus)),
    el("td", {}, time(i.createdTime)),
    el("td", {}, time(i.lastUpdatedTime))));
  const table = el("table", { "aria-label": "Instances" },
    el("thead", {}, el("tr", {}, ["Name", "Version", "Instance id", "Status", "Created", "Last updated"].map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, rows.length ? rows : el("tr", {}, el("td", { colspan: 6 }, "No instances match."))));
  const pager = el("div", { class: "pager" },
    el("button", { type: "button", disabled: listState.page === 0, onclick: () => { listState.page--; instancesView({}); } }, "Previous page"),
    el("span", {}, `Page ${listState.page + 1}`),
    el("button", { type: "button", disabled: !next, onclick: () => { listState.tokens[listState.page + 1] = next; listState.page++; instancesView({}); } }, "Next page"));
  show(el("h2", {}, "Instances"), await retentionLine(), form, table, pager);
  scheduleRefresh();
}

// The retention policy (AZFN_DURABLE_RETENTION) and what its last pass in this process purged.
async function retentionLine() {
  const res = await call("GET", "retention");
  const line = el("p", { class: "retention", "aria-label": "Retention" });
  if (res.status !== 200) { line.textContent = `Retention: unknown (HTTP ${res.status})`; return line; }
  const { policy, every, lastPass, error } = res.body;
  if (!policy) {
    line.textContent = error ? `Retention: off (${error})` : "Retention: off (set AZFN_DURABLE_RETENTION to purge finished instances)";
    return line;
  }
  const kept = Object.entries(policy).map(([status, span]) => `${status} ${span}`).join(", ");
  const last = lastPass
    ? `last pass ${time(lastPass.started)}: ${lastPass.purged} purged, ${lastPass.kept} kept${lastPass.error ? ` (stopped: ${lastPass.error})` : ""}`
    : "no pass yet in this process";
  line.textContent = `Retention: ${kept}, checked every ${every}; ${last}`;
  return line;
}

function scheduleRefresh() {
  clearTimeout(refreshTimer);
  if (listState.filters.auto && location.hash.replace(/^#\/?/, "") === "") {
    refreshTimer = setTimeout(() => instancesView({}), 5000);
  }
}

// ---- One instance ----------------------------------------------------------------------------

/** Bars of the timeline: one per activity call, sub-orchestration, timer, entity call or lock. */
function bars(history) {
  const open = new Map();
  const out = [];
  for (const e of history) {
    const t = e.timestamp ? Date.parse(e.timestamp) : NaN;
    switch (e.eventType) {
      case "TaskScheduled": open.set(e.id, { label: e.name, kind: "activity", start: t }); break;
      case "SubOrchestrationInstanceCreated": open.set(e.id, { label: `${e.name} (${e.instanceId})`, kind: "sub", start: t }); break;
      case "TimerCreated": open.set(e.id, { label: `timer until ${time(e.fireAt)}`, kind: "timer", start: t }); break;
      case "EntityOperationCalled": open.set(e.id, { label: `${e.operation} on ${e.entity}`, kind: "entity", start: t }); break;
      case "EntityLockRequested": open.set(e.id, { label: `lock ${e.locks.map((l) => l.entity).join(", ")}`, kind: "entity", start: t }); break;
      case "EventRaised": out.push({ label: `event ${e.name}`, kind: "event", start: t, end: t, ok: true }); break;
      case "TaskCompleted": case "TaskFailed": case "TimerFired":
      case "SubOrchestrationInstanceCompleted": case "SubOrchestrationInstanceFailed": {
        const b = open.get(e.id);
        if (b) { open.delete(e.id); out.push({ ...b, end: t, ok: !/Failed$/.test(e.eventType) }); }
        break;
      }
      default: break;
    }
  }
  for (const b of open.values()) out.push({ ...b, end: Date.now(), ok: null });
  return out.filter((b) => !Number.isNaN(b.start)).sort((a, b) => a.start - b.start);
}

function timeline(history) {
  const list = bars(history);
  if (!list.length) return el("p", {}, "Nothing scheduled yet.");
  const t0 = Math.min(...list.map((b) => b.start));
  const t1 = Math.max(...list.map((b) => b.end), t0 + 1);
  const width = 900, label = 260, row = 22;
  const scale = (t) => label + ((t - t0) / (t1 - t0)) * (width - label - 10);
  const NS = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("class", "timeline");
  svg.setAttribute("viewBox", `0 0 ${width} ${list.length * row + 24}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `Timeline of ${list.length} steps over ${((t1 - t0) / 1000).toFixed(2)} s`);
  list.forEach((b, i) => {
    const y = i * row + 4;
    const g = document.createElementNS(NS, "g");
    g.setAttribute("data-kind", b.kind);
    const text = document.createElementNS(NS, "text");
    text.setAttribute("x", 4); text.setAttribute("y", y + 14);
    text.textContent = b.label;
    const rect = document.createElementNS(NS, "rect");
    const x = scale(b.start);
    rect.setAttribute("x", x); rect.setAttribute("y", y);
    rect.setAttribute("width", Math.max(2, scale(b.end) - x)); rect.setAttribute("height", row - 6);
    const cls = b.kind === "timer" ? "bar-timer" : b.kind === "event" ? "bar-event" : b.ok === null ? "bar-open" : b.ok ? "bar-ok" : "bar-bad";
    rect.setAttribute("class", cls);
    const title = document.createElementNS(NS, "title");
    title.textContent = `${b.label}: ${((b.end - b.start) / 1000).toFixed(3)} s${b.ok === false ? " (failed)" : b.ok === null ? " (still running)" : ""}`;
    rect.append(title);
    g.append(text, rect);
    svg.append(g);
  });
  const axis = document.createElementNS(NS, "text");
  axis.setAttribute("x", label); axis.setAttribute("y", list.length * row + 18);
  axis.textContent = `0 s … ${((t1 - t0) / 1000).toFixed(2)} s`;
  svg.append(axis);
  return svg;
}

async function instanceView(id) {
  clearTimeout(refreshTimer);
  const res = await call("GET", `instances/${encodeURIComponent(id)}`, { showHistory: "true" });
  if (res.status !== 200 && res.status !== 202) { show(el("h2", {}, `Instance ${id}`), errorBox("Reading the instance", res)); return; }
  const s = res.body;
  const answer = el("p", { class: "answer", role: "status" }, lastAnswer.id === id ? lastAnswer.text : "");
  const tell = (text) => { lastAnswer = { id, text }; answer.textContent = text; };
  const act = (label, method, path, query, body, confirmText, cls) => el("button", {
    type: "button", class: cls,
    onclick: async () => {
      if (confirmText && !window.confirm(confirmText)) return;
      const r = await call(method, path, query, body);
      tell(`${label}: HTTP ${r.status}${r.body ? " " + JSON.stringify(r.body) : ""}`);
      if (r.status < 300 && method !== "DELETE") setTimeout(() => instanceView(id), 800);
    },
  }, label);
  const base = `instances/${encodeURIComponent(id)}`;
  const eventName = el("input", { name: "eventName", "aria-label": "Event name", placeholder: "event name" });
  const eventData = el("input", { name: "eventData", "aria-label": "Event data (JSON)", placeholder: "JSON data", value: "null" });
  const raise = el("button", {
    type: "button",
    onclick: async () => {
      let data;
      try { data = JSON.parse(eventData.value || "null"); } catch (e) { tell(`The event data is not JSON: ${e.message}`); return; }
      const r = await call("POST", `${base}/raiseEvent/${encodeURIComponent(eventName.value)}`, {}, data);
      tell(`Raise event: HTTP ${r.status}${r.body ? " " + JSON.stringify(r.body) : ""}`);
    },
  }, "Raise event");
  const history = s.historyEvents || [];
  const error = s.runtimeStatus === "Failed" || s.runtimeStatus === "Terminated" ? s.output : null;
  show(
    el("h2", {}, `${s.name} `, el("span", { class: "mono" }, s.instanceId)),
    el("div", { class: "fields" },
      el("span", {}, "Status"), statusCell(s.runtimeStatus),
      el("span", {}, "Version"), el("span", {}, s.version || "none"),
      el("span", {}, "Created"), el("span", {}, time(s.createdTime)),
      el("span", {}, "Last updated"), el("span", {}, time(s.lastUpdatedTime)),
      el("span", {}, "Input"), json(s.input),
      el("span", {}, "Output"), json(error === null ? s.output : null),
      el("span", {}, "Custom status"), json(s.customStatus),
      el("span", {}, "Error"), el("span", { class: error ? "error" : "" }, error === null ? "none" : String(typeof error === "string" ? error : JSON.stringify(error)))),
    el("div", { class: "actions", role: "group", "aria-label": "Actions" },
      act("Terminate", "POST", `${base}/terminate`, { reason: "terminated from the dashboard" }, undefined, `Terminate ${id}?`, "danger"),
      act("Suspend", "POST", `${base}/suspend`),
      act("Resume", "POST", `${base}/resume`),
      act("Restart", "POST", `${base}/restart`, { restartWithNewInstanceId: "true" }),
      s.runtimeStatus === "Failed"
        ? act("Rewind", "POST", `${base}/rewind`, { reason: "rewound from the dashboard" }, undefined,
          `Rewind ${id}? Its failed activities and sub-orchestrations run again; what succeeded is kept.`)
        : null,
      act("Purge", "DELETE", base, {}, undefined, `Purge ${id} and its history? This cannot be undone.`, "danger"),
      eventName, eventData, raise),
    answer,
    el("h2", {}, "Timeline"), timeline(history),
    el("h2", {}, "History"),
    el("table", { "aria-label": "History" },
      el("thead", {}, el("tr", {}, ["#", "Time", "Event", "Details"].map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, history.map((e, i) => {
        const { eventType, timestamp, ...rest } = e;
        return el("tr", {}, el("td", {}, i), el("td", {}, time(timestamp)), el("td", {}, eventType), el("td", { class: "mono" }, JSON.stringify(rest)));
      }))));
}

// ---- Entities and poison -----------------------------------------------------------------------

const entityState = { name: "", top: 50, tokens: [null], page: 0 };

async function entitiesView(params) {
  clearTimeout(refreshTimer);
  if (params) Object.assign(entityState, params);
  const form = el("form", { class: "filters", "aria-label": "Entity filters" },
    el("label", {}, "Entity name", el("input", { name: "name", value: entityState.name })),
    el("label", {}, "Per page", el("input", { name: "top", type: "number", min: 1, max: 1000, value: entityState.top })),
    el("button", { type: "submit" }, "Apply filters"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const data = Object.fromEntries(new FormData(form));
    entitiesView({ name: data.name, top: data.top || 50, tokens: [null], page: 0 });
  });
  const res = await call("GET", "entities", { name: entityState.name, top: entityState.top, __token: entityState.tokens[entityState.page] });
  if (res.status !== 200) { show(el("h2", {}, "Entities"), form, errorBox("Listing entities", res)); return; }
  const next = res.headers.get("x-ms-continuation-token");
  const pager = el("div", { class: "pager" },
    el("button", { type: "button", disabled: entityState.page === 0, onclick: () => { entityState.page--; entitiesView(); } }, "Previous page"),
    el("span", {}, `Page ${entityState.page + 1}`),
    el("button", { type: "button", disabled: !next, onclick: () => { entityState.tokens[entityState.page + 1] = next; entityState.page++; entitiesView(); } }, "Next page"));
  show(el("h2", {}, "Entities"), form,
    el("table", { "aria-label": "Entities" },
      el("thead", {}, el("tr", {}, ["Name", "Key", "Last operation", "State"].map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, res.body.length ? res.body.map((e) => el("tr", {},
        el("td", {}, e.entityId.name), el("td", { class: "mono" }, e.entityId.key),
        el("td", {}, time(e.lastOperationTime)), el("td", {}, json(e.state))))
        : el("tr", {}, el("td", { colspan: 4 }, "No entities.")))),
    pager);
}

async function poisonView() {
  clearTimeout(refreshTimer);
  const res = await call("GET", "poison");
  if (res.status !== 200) { show(el("h2", {}, "Poison"), errorBox("Reading the poison queues", res)); return; }
  const answer = el("p", { class: "answer", role: "status" });
  // {"azfn-control-poison": {approximateCount, messages: [{id, insertionTime, body}]}, ...}
  const items = Object.entries(res.body).flatMap(([queue, q]) => (q.messages || []).map((m) => ({ queue, ...m })));
  show(el("h2", {}, "Poison"),
    el("div", { class: "actions" }, el("button", {
      type: "button",
      onclick: async () => {
        const r = await call("POST", "poison/redrive");
        answer.textContent = `Redrive: HTTP ${r.status} ${JSON.stringify(r.body)}`;
        setTimeout(poisonView, 800);
      },
    }, "Redrive")),
    answer,
    el("table", { "aria-label": "Parked messages" },
      el("thead", {}, el("tr", {}, ["Queue", "Parked", "Message"].map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, items.length ? items.map((m) => el("tr", {}, el("td", {}, m.queue), el("td", {}, time(m.insertionTime)), el("td", {}, json(m.body))))
        : el("tr", {}, el("td", { colspan: 3 }, "Nothing is parked.")))));
}

// ---- Orchestrators: versions and schedules --------------------------------------------------------

async function orchestratorsView() {
  clearTimeout(refreshTimer);
  const answer = el("p", { class: "answer", role: "status" });
  const [versions, schedules] = await Promise.all([call("GET", "versions"), call("GET", "schedules")]);
  const versionTable = versions.status !== 200 ? errorBox("Reading the versions", versions) : el("table", { "aria-label": "Versions" },
    el("thead", {}, el("tr", {}, ["Orchestrator", "Version", "Code here", "New starts", "In flight", "Old code"].map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, versions.body.versions.map((v) => el("tr", {},
      el("td", {}, v.name), el("td", {}, v.version || "(none)"),
      el("td", {}, v.registered ? "yes" : "no"), el("td", {}, v.startsNew ? "yes" : ""),
      el("td", {}, String(v.inFlight)),
      el("td", {}, v.removable ? "can be removed: no instance left" : v.startsNew ? "" : "keep: instances still run it")))));
  const scheduleAct = (label, method, path, confirmText) => el("button", {
    type: "button", class: method === "DELETE" ? "danger" : undefined,
    onclick: async () => {
      if (confirmText && !window.confirm(confirmText)) return;
      const r = await call(method, path);
      answer.textContent = `${label}: HTTP ${r.status}${r.body ? " " + JSON.stringify(r.body) : ""}`;
      setTimeout(orchestratorsView, 800);
    },
  }, label);
  const scheduleRows = schedules.status !== 200 ? [] : schedules.body.map((s) => {
    const path = `schedules/${encodeURIComponent(s.id)}`;
    return el("tr", {},
      el("td", { class: "mono" }, s.id), el("td", {}, s.orchestrator),
      el("td", {}, s.interval ? `every ${s.interval}` : `cron ${s.cron}${s.timeZone ? ` (${s.timeZone})` : " (UTC)"}`),
      el("td", {}, s.status), el("td", {}, s.nextRun ? time(s.nextRun) : "ended"),
      el("td", { class: "mono" }, s.lastInstanceId ? el("a", { href: `#/instance/${encodeURIComponent(s.lastInstanceId)}` }, s.lastInstanceId) : ""),
      el("td", {}, s.status === "Active" ? scheduleAct("Pause", "POST", `${path}/pause`) : scheduleAct("Resume", "POST", `${path}/resume`),
        " ", scheduleAct("Delete", "DELETE", path, `Delete schedule ${s.id}? Its instances stay.`)));
  });
  const scheduleTable = schedules.status !== 200 ? errorBox("Reading the schedules", schedules) : el("table", { "aria-label": "Schedules" },
    el("thead", {}, el("tr", {}, ["Schedule", "Orchestrator", "When", "Status", "Next run", "Last instance", "Actions"].map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, scheduleRows.length ? scheduleRows : el("tr", {}, el("td", { colspan: 7 }, "No schedules."))));
  const form = el("form", { class: "filters", "aria-label": "New schedule" },
    el("label", {}, "Schedule id", el("input", { name: "id", required: true })),
    el("label", {}, "Orchestrator", el("input", { name: "orchestrator", required: true })),
    el("label", {}, "Interval or cron", el("input", { name: "when", placeholder: "15m, 00:15:00 or 0 0 9 * * MON-FRI", required: true })),
    el("label", {}, "Input (JSON)", el("input", { name: "input", value: "null" })),
    el("button", { type: "submit" }, "Create schedule"));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const data = Object.fromEntries(new FormData(form));
    let input;
    try { input = JSON.parse(data.input || "null"); } catch (e) { answer.textContent = `The input is not JSON: ${e.message}`; return; }
    const when = data.when.trim();
    const spec = { orchestrator: data.orchestrator.trim(), input, ...(when.split(/\s+/).length === 6 ? { cron: when } : { interval: when }) };
    const r = await call("POST", `schedules/${encodeURIComponent(data.id.trim())}`, {}, spec);
    answer.textContent = `Create schedule: HTTP ${r.status}${r.body && r.body.error ? " " + r.body.error.message : ""}`;
    if (r.status < 300) setTimeout(orchestratorsView, 800);
  });
  const dflt = versions.status === 200 && versions.body.defaultVersion ? `New starts take version ${versions.body.defaultVersion} where an orchestrator has it (AZFN_DURABLE_DEFAULT_VERSION).` : "New starts take each orchestrator's highest version (set AZFN_DURABLE_DEFAULT_VERSION to pin one).";
  show(el("h2", {}, "Versions"), el("p", { class: "answer" }, dflt), versionTable,
    el("h2", {}, "Schedules"), scheduleTable, form, answer);
}

// ---- Routing -----------------------------------------------------------------------------------

function route() {
  const hash = location.hash.replace(/^#\/?/, "");
  if (hash.startsWith("instance/")) return instanceView(decodeURIComponent(hash.slice("instance/".length)));
  if (hash === "entities") return entitiesView();
  if (hash === "poison") return poisonView();
  if (hash === "orchestrators") return orchestratorsView();
  return instancesView({});
}

window.addEventListener("hashchange", route);
route();
