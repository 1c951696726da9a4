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
      dl.append(dt, dd);
    }
    box.appendChild(dl);
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
        cell(tr, p.name); cell(tr, e.environment); cell(tr, e.method); cell(tr, e.url);
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
if (token) connect();
