// callbackd console: plain JavaScript over the /v1 API. Everything that comes from the API
// (partner answers included) is written with textContent, never as HTML.
// With the operator token it shows everything; with a partner token (cbk_…) only that
// partner's deliveries and endpoints, as the API itself allows nothing else.
"use strict";

const $ = (id) => document.getElementById(id);
let token = sessionStorage.getItem("callbackd-token") || "";
let cursor = null;
// What GET /v1/me answered: {"role": "operator"} or {"role": "partner", "partner_id", ...}.
let me = { role: "operator" };

// The partner view in English and Portuguese: every fixed string by key. The language
// comes from the switch, else the last choice, else the browser's language.
const STRINGS = {
  en: {
    token: "Token", token_placeholder: "operator or partner token", connect: "Connect",
    deliveries: "Deliveries", any_state: "any state", any_environment: "any environment",
    partner_id: "partner id", endpoint_id: "endpoint id", event_type: "event type",
    proposal: "proposal guid", since: "since (RFC 3339)", until: "until (RFC 3339)",
    search: "Search", created: "created", state: "state", event: "event", status: "status",
    attempts: "attempts", last_code: "last code", last_error: "last error", more: "More",
    delivery: "Delivery", click_delivery: "Click a delivery to see its attempts.",
    endpoints: "Endpoints and their health", partner: "partner", environment: "environment",
    method: "method", enabled: "enabled", last_success: "last success",
    failure_streak: "failure streak", pending: "pending", dead: "dead",
    test_callback: "test callback", send_test: "Send test", sending: "sending…",
    delivered: "delivered", failed: "failed", yes: "yes", no: "no", replay: "Replay",
    cancel: "Cancel", replayed: "replayed", canceled: "canceled",
    confirm_cancel: "Cancel this delivery? It will never be sent again.",
    n_deliveries: "deliveries", operator: "operator", next_attempt: "next attempt",
  },
  pt: {
    token: "Token", token_placeholder: "token de operador ou de parceiro", connect: "Conectar",
    deliveries: "Entregas", any_state: "qualquer estado", any_environment: "qualquer ambiente",
    partner_id: "id do parceiro", endpoint_id: "id do endpoint", event_type: "tipo de evento",
    proposal: "guid da proposta", since: "desde (RFC 3339)", until: "até (RFC 3339)",
    search: "Buscar", created: "criada", state: "estado", event: "evento", status: "status",
    attempts: "tentativas", last_code: "último código", last_error: "último erro", more: "Mais",
    delivery: "Entrega", click_delivery: "Clique numa entrega para ver as tentativas.",
    endpoints: "Endpoints e sua saúde", partner: "parceiro", environment: "ambiente",
    method: "método", enabled: "ativo", last_success: "último sucesso",
    failure_streak: "falhas seguidas", pending: "pendentes", dead: "mortas",
    test_callback: "callback de teste", send_test: "Enviar teste", sending: "enviando…",
    delivered: "entregue", failed: "falhou", yes: "sim", no: "não", replay: "Reenviar",
    cancel: "Cancelar", replayed: "reenviada", canceled: "cancelada",
    confirm_cancel: "Cancelar esta entrega? Ela nunca mais será enviada.",
    n_deliveries: "entregas", operator: "operador", next_attempt: "próxima tentativa",
  },
};
let lang = localStorage.getItem("callbackd-lang") ||
  (/^pt\b/i.test(navigator.language || "") ? "pt" : "en");

function t(key) {
  return STRINGS[lang][key] || STRINGS.en[key] || key;
}

function applyLanguage() {
  document.documentElement.lang = lang === "pt" ? "pt-BR" : "en";
  $("lang").value = lang;
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of document.querySelectorAll("[data-i18n-placeholder]")) {
    el.placeholder = t(el.dataset.i18nPlaceholder);
  }
}

function say(text, isError) {
  const m = $("message");
  m.textContent = text;
  m.style.color = isError ? "#ffb4ab" : "#c8f7c5";
}

async function api(method, path, body) {
  const init = { method, headers: { Authorization: "Bearer " + token } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const r = await fetch(path, init);
  const data = r.status === 204 ? null : await r.json().catch(() => null);
  if (!r.ok) {
    const e = new Error((data && data.error && data.error.message) || ("HTTP " + r.status));
    e.status = r.status;
    throw e;
  }
  return data;
}

function cell(row, text, cls) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined ? "-" : String(text);
  if (cls) td.className = cls;
  row.appendChild(td);
  return td;
}

function when(t) {
  return t ? new Date(t).toLocaleString() : "-";
}

function filterQuery() {
  const params = new URLSearchParams();
  for (const el of $("filters").elements) {
    if (el.name && el.value.trim()) params.set(el.name, el.value.trim());
  }
  params.set("limit", "50");
  return params;
}

async function loadDeliveries(append) {
  const params = filterQuery();
  if (append && cursor) params.set("cursor", cursor);
  try {
    const page = await api("GET", "/v1/deliveries?" + params);
    const body = $("deliveries");
    if (!append) body.replaceChildren();
    for (const d of page.items) {
      const tr = document.createElement("tr");
      tr.className = "row";
      tr.dataset.id = d.id;
      cell(tr, when(d.created_at));
      cell(tr, d.state, "state state-" + d.state);
      cell(tr, d.event_type);
      cell(tr, d.status === null ? null : d.status + " " + (d.status_name || ""));
      cell(tr, d.attempts + (d.series > 1 ? " (series " + d.series + ")" : ""));
      cell(tr, d.last_status_code);
      cell(tr, d.last_error);
      tr.addEventListener("click", () => showDelivery(d.id));
      body.appendChild(tr);
    }
    cursor = page.next_cursor;
    $("more").hidden = !cursor;
    say(body.children.length + " " + t("n_deliveries"));
  } catch (e) {
    say(e.message, true);
  }
}

async function showDelivery(id) {
  try {
    const d = await api("GET", "/v1/deliveries/" + id);
    const box = $("detail");
    box.className = "";
    box.replaceChildren();
    const dl = document.createElement("dl");
    const pairs = [
      ["id", d.id], ["state", d.state], ["event", d.event_type + " (" + d.environment + ")"],
      ["proposal", d.proposal], ["status", d.status === null ? null : d.status + " " + (d.status_name || "")],
      ["partner", d.partner_id], ["endpoint", d.endpoint_id],
      ["attempts", d.attempts + " (series " + d.series + ")"],
      [t("next_attempt"), d.state === "pending" ? when(d.next_attempt_at) : "-"],
      ["last error", d.last_error],
    ];
    for (const [k, v] of pairs) {
      const dt = document.createElement("dt");
      dt.textContent = k;
      const dd = document.createElement("dd");
      dd.textContent = v === null || v === undefined ? "-" : String(v);
      if (k === "state") dd.id = "detail-state";
      if (k === "partner") dd.dataset.partner = v;
      if (k === "endpoint") dd.dataset.endpoint = v;
      dl.append(dt, dd);
    }
    box.appendChild(dl);
    applyNames(dl);
    const actions = document.createElement("p");
    if (d.state === "dead" || d.state === "canceled") {
      const b = document.createElement("button");
      b.id = "replay";
      b.textContent = t("replay");
      b.addEventListener("click", async () => {
        try { await api("POST", "/v1/deliveries/" + id + "/replay", {}); say(t("replayed")); }
        catch (e) { say(e.message, true); }
        showDelivery(id); loadDeliveries(false);
      });
      actions.appendChild(b);
    }
    if (d.state === "pending") {
      const b = document.createElement("button");
      b.id = "cancel";
      b.textContent = t("cancel");
      b.addEventListener("click", async () => {
        if (!confirm(t("confirm_cancel"))) return;
        try { await api("POST", "/v1/deliveries/" + id + "/cancel", {}); say(t("canceled")); }
        catch (e) { say(e.message, true); }
        showDelivery(id); loadDeliveries(false);
      });
      actions.appendChild(b);
    }
    box.appendChild(actions);
    const log = document.createElement("table");
    log.id = "attempts";
    const head = document.createElement("tr");
    for (const h of ["series", "trigger", "attempt", "started", "ms", "code", "kind", "error", "response"]) {
      const th = document.createElement("th");
      th.textContent = h;
      head.appendChild(th);
    }
    log.appendChild(head);
    for (const a of d.attempt_log) {
      const tr = document.createElement("tr");
      cell(tr, a.series); cell(tr, a.trigger); cell(tr, a.attempt); cell(tr, when(a.started_at));
      cell(tr, a.duration_ms); cell(tr, a.status_code); cell(tr, a.error_kind); cell(tr, a.error);
      const pre = document.createElement("pre");
      pre.textContent = a.response_body || "";
      cell(tr, "").replaceChildren(pre);
      log.appendChild(tr);
    }
    box.appendChild(log);
  } catch (e) {
    say(e.message, true);
  }
}

// The partners whose endpoints to show: every one for the operator, its own for a partner
// (whose token the partner list refuses).
async function visiblePartners() {
  if (me.role === "partner") {
    return [await api("GET", "/v1/partners/" + me.partner_id)];
  }
  try {
    return (await api("GET", "/v1/partners")).items;
  } catch (e) {
    if ((e.status === 403 || e.status === 404) && me.partner_id) {
      return [await api("GET", "/v1/partners/" + me.partner_id)];
    }
    throw e;
  }
}

async function testEndpoint(e, out) {
  out.textContent = t("sending");
  try {
    const r = await api("POST", "/v1/endpoints/" + e.id + "/test", {});
    out.textContent = (r.delivered ? t("delivered") : t("failed")) +
      (r.status_code ? " " + r.status_code : "") + (r.error ? " (" + r.error + ")" : "") +
      ", " + r.duration_ms + " ms";
    out.className = r.delivered ? "state-delivered" : "state-dead";
    // What the partner's server answered, and what to check (the hint in this language).
    const extra = document.createElement("div");
    if (r.response_body) {
      const pre = document.createElement("pre");
      pre.textContent = r.response_body;
      extra.appendChild(pre);
    }
    if (r.hint) {
      const hint = document.createElement("div");
      hint.className = "hint";
      hint.textContent = r.error_kind + ": " + r.hint[lang];
      extra.appendChild(hint);
    }
    out.appendChild(extra);
  } catch (err) {
    out.textContent = err.message;
    out.className = "state-dead";
  }
}

async function loadEndpoints() {
  try {
    const partners = await visiblePartners();
    const body = $("endpoints");
    body.replaceChildren();
    for (const p of partners) {
      const eps = await api("GET", "/v1/partners/" + p.id + "/endpoints");
      for (const e of eps.items) {
        const h = e.health || {};
        const tr = document.createElement("tr");
        tr.dataset.endpoint = e.id;
        cell(tr, p.name); cell(tr, e.environment); cell(tr, e.method); cell(tr, e.url + filters(e));
        cell(tr, e.enabled ? t("yes") : t("no")); cell(tr, when(h.last_success_at));
        cell(tr, h.failure_streak); cell(tr, h.pending); cell(tr, h.dead, h.dead > 0 ? "state-dead" : "");
        const b = document.createElement("button");
        b.textContent = t("send_test");
        b.className = "test-endpoint";
        const out = document.createElement("span");
        out.className = "muted";
        b.addEventListener("click", () => testEndpoint(e, out));
        const td = cell(tr, "");
        td.replaceChildren(b, document.createTextNode(" "), out);
        body.appendChild(tr);
      }
    }
  } catch (e) {
    say(e.message, true);
  }
}

// The endpoint's status filters, in a notation that reads the same in both languages.
function filters(e) {
  let out = "";
  if (e.statuses) out += " · status ∈ {" + e.statuses.join(", ") + "}";
  if (e.schedule_types) out += " · TipoEvento ∈ {" + e.schedule_types.join(", ") + "}";
  return out;
}

// ---- Names: partner and endpoint names where ids appear (the id on hover) ----

const names = { partners: new Map(), endpoints: new Map() };

async function loadNames() {
  try {
    for (const p of await visiblePartners()) {
      names.partners.set(p.id, p.name);
      const eps = await api("GET", "/v1/partners/" + p.id + "/endpoints");
      for (const e of eps.items) {
        names.endpoints.set(e.id, p.name + " · " + e.environment + " " + e.method + " " + e.url);
      }
    }
  } catch (e) {
    say(e.message, true);
  }
}

function named(el, id, name) {
  if (!id || !name) return;
  el.textContent = name;
  el.title = id + " (click to copy)";
  el.classList.add("named");
  el.onclick = (ev) => {
    ev.stopPropagation();
    if (navigator.clipboard) navigator.clipboard.writeText(id).catch(() => {});
    say("copied " + id);
  };
}

function applyNames(root) {
  for (const el of root.querySelectorAll("[data-partner]")) named(el, el.dataset.partner, names.partners.get(el.dataset.partner));
  for (const el of root.querySelectorAll("[data-endpoint]")) {
    if (el.tagName === "TR") continue;
    named(el, el.dataset.endpoint, names.endpoints.get(el.dataset.endpoint));
  }
}

// ---- Overview: attempts per minute by outcome, per-endpoint success and latency ----

const OUTCOME_COLORS = [["delivered", "#1b7f3b"], ["failed_attempt", "#e0a100"], ["dead", "#b3261e"]];

function duration(s) {
  if (s < 1) return "nothing waiting";
  if (s < 90) return Math.round(s) + " s";
  if (s < 5400) return Math.round(s / 60) + " min";
  return (s / 3600).toFixed(1) + " h";
}

async function loadOverview() {
  if (me.role === "partner") { $("overview-section").hidden = true; return; }
  try {
    const t = await api("GET", "/v1/stats/timeline?window=" + encodeURIComponent($("window").value));
    drawTimeline(t);
    $("oldest-age").textContent = duration(t.oldest_due_age_s);
    const body = $("endpoint-stats");
    body.replaceChildren();
    for (const e of t.endpoints) {
      const tr = document.createElement("tr");
      tr.dataset.statsEndpoint = e.endpoint_id;
      named(cell(tr, e.endpoint_id), e.endpoint_id, e.partner_name + " · " + e.environment + " " + e.url);
      const pct = Math.round(e.success_rate * 100);
      const td = cell(tr, "");
      const bar = document.createElement("span");
      bar.className = "rate";
      bar.style.width = Math.max(1, pct * 0.6) + "px";
      if (pct < 90) bar.style.background = pct < 50 ? "#b3261e" : "#e0a100";
      td.replaceChildren(bar, document.createTextNode(pct + " %"));
      cell(tr, e.attempts);
      cell(tr, e.p50_ms === null ? null : Math.round(e.p50_ms) + " ms");
      cell(tr, e.p95_ms === null ? null : Math.round(e.p95_ms) + " ms");
      cell(tr, duration(e.oldest_due_age_s));
      body.appendChild(tr);
    }
  } catch (e) {
    say(e.message, true);
  }
}

// Stacked bars, one per bucket, scaled to attempts per minute. Drawn as SVG elements
// (no library, nothing fetched).
function drawTimeline(t) {
  const svg = $("timeline-chart");
  const NS = "http://www.w3.org/2000/svg";
  const W = 600, H = 180, left = 40, bottom = 20;
  svg.setAttribute("viewBox", "0 0 " + W + " " + H);
  svg.replaceChildren();
  const perMinute = 60 / t.bucket_s;
  const totals = t.buckets.map((b) => (b.delivered + b.failed_attempt + b.dead) * perMinute);
  const max = Math.max(1, ...totals);
  const bw = (W - left) / Math.max(1, t.buckets.length);
  const el = (name, attrs, text) => {
    const e = document.createElementNS(NS, name);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    svg.appendChild(e);
    return e;
  };
  el("line", { x1: left, y1: H - bottom, x2: W, y2: H - bottom, stroke: "#c4c9d2" });
  el("text", { x: 2, y: 12, "font-size": 10, fill: "#6b7385" }, max.toFixed(max < 10 ? 1 : 0) + "/min");
  el("text", { x: 2, y: H - bottom, "font-size": 10, fill: "#6b7385" }, "0");
  t.buckets.forEach((b, i) => {
    let y = H - bottom;
    for (const [key, color] of OUTCOME_COLORS) {
      const h = (b[key] * perMinute / max) * (H - bottom - 16);
      if (h <= 0) continue;
      y -= h;
      const r = el("rect", { x: left + i * bw + 0.5, y: y, width: Math.max(1, bw - 1), height: h, fill: color, "class": "bar-" + key });
      const title = document.createElementNS(NS, "title");
      title.textContent = new Date(b.t).toLocaleTimeString() + " " + key + ": " + b[key];
      r.appendChild(title);
    }
  });
  el("text", { x: left, y: H - 4, "font-size": 10, fill: "#6b7385" }, new Date(t.since).toLocaleTimeString());
  el("text", { x: W - 60, y: H - 4, "font-size": 10, fill: "#6b7385" }, new Date(t.until).toLocaleTimeString());
}

// ---- Bulk replay of the current filter, after a confirmation that shows the count ----

async function bulkReplay() {
  const params = filterQuery();
  const state = params.get("state") || "dead";
  if (state !== "dead" && state !== "canceled") {
    say("bulk replay takes dead or canceled deliveries: set the state filter", true);
    return;
  }
  params.set("state", state);
  params.set("limit", "500");
  try {
    let count = 0;
    let next = null;
    do {
      if (next) params.set("cursor", next);
      const page = await api("GET", "/v1/deliveries?" + params);
      count += page.items.length;
      next = page.next_cursor;
    } while (next);
    if (count === 0) { say("no " + state + " delivery matches the filters"); return; }
    if (!confirm("Replay " + count + " " + state + " deliveries matching the filters?")) return;
    const body = {};
    for (const [k, v] of params) if (k !== "limit" && k !== "cursor") body[k] = v;
    const r = await api("POST", "/v1/deliveries/replay", body);
    say("replayed " + r.replayed);
    loadDeliveries(false);
  } catch (e) {
    say(e.message, true);
  }
}

// Which view this token gets: GET /v1/me (a server without it: the operator view).
async function whoAmI() {
  try {
    me = await api("GET", "/v1/me");
  } catch (e) {
    me = { role: "operator" };
    if (e.status === 401) throw e;
  }
  const partner = me.role === "partner";
  $("who").textContent = partner
    ? t("partner") + ": " + ((me.partner && me.partner.name) || me.partner_id)
    : t("operator");
  const filter = $("filters").elements.namedItem("partner_id");
  filter.hidden = partner;
  if (partner) filter.value = "";
}

async function connect() {
  token = $("token").value.trim() || token;
  sessionStorage.setItem("callbackd-token", token);
  try {
    await whoAmI();
  } catch (e) {
    $("who").textContent = "";
    say(e.message, true);
    return;
  }
  loadDeliveries(false);
  loadEndpoints();
  loadNames().then(() => { applyNames(document); loadOverview(); });
}

applyLanguage();
$("lang").addEventListener("change", () => {
  lang = $("lang").value;
  localStorage.setItem("callbackd-lang", lang);
  applyLanguage();
  if (token) connect();
});
$("token").value = token;
$("use-token").addEventListener("click", connect);
$("filters").addEventListener("submit", (ev) => { ev.preventDefault(); loadDeliveries(false); });
$("more").addEventListener("click", () => loadDeliveries(true));
$("window").addEventListener("change", loadOverview);
$("bulk-replay").addEventListener("click", bulkReplay);
if (token) connect();
