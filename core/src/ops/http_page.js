/* The status page's script (http_page.html), served as /page.js so that the page's
 * Content-Security-Policy allows no inline script. */
"use strict";
const initial = JSON.parse(document.getElementById("initial").textContent);
let data = null, offset = 0, received = 0, lastError = "";

function el(tag, attrs, ...kids) {
  const e = tag.startsWith("svg:")
    ? document.createElementNS("http://www.w3.org/2000/svg", tag.slice(4))
    : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v != null) e.setAttribute(k, v);
  for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  return e;
}
function dur(s) {
  s = Math.max(0, Math.round(s));
  if (s < 60) return s + "s";
  if (s < 3600) return Math.floor(s / 60) + "m" + (s % 60 ? " " + (s % 60) + "s" : "");
  if (s < 86400) return Math.floor(s / 3600) + "h" + (s % 3600 >= 60 ? " " + Math.floor(s % 3600 / 60) + "m" : "");
  return Math.floor(s / 86400) + "d" + (s % 86400 >= 3600 ? " " + Math.floor(s % 86400 / 3600) + "h" : "");
}
/* server time now, from the document's "now" and the time since it arrived */
function now() { return Date.now() / 1000 + offset; }
function rel(t) {
  const d = t - now();
  return d >= 0 ? "in " + dur(d) : dur(-d) + " ago";
}
/* an absolute time, with its zone: "2026-11-23 08:41:25 UTC" */
function abs(t) { return new Date(t * 1000).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC"); }
function color(state) { return "var(--" + state + ", var(--idle))"; }
function badge(state) {
  return el("span", {class: "badge state", style: "background:" + color(state) +
    (state === "disabled" ? ";color:#1d2330" : "")}, state.replace("_", " "));
}

/* The strip of a job's last runs, oldest left, newest right, one cell a run coloured by its
 * outcome (Airflow's grid); hovering a cell tells its times and run id. */
const STRIP = 10;
function strip(j) {
  const runs = (j.recent_runs || []).slice(0, STRIP).reverse();
  const cells = runs.map(r => el("span", {class: "cell run-" + r.status, "data-status": r.status,
    "data-runid": r.runid, style: "background:" + color(r.status),
    title: r.status.replace("_", " ") + " · " + abs(r.ended_at_unix) + " · " +
      (r.duration_ms / 1000).toFixed(2) + "s" + (r.attempt > 1 ? " · attempt " + r.attempt : "") +
      (r.runid ? " · run " + r.runid : "")}));
  while (cells.length < STRIP) cells.unshift(el("span", {class: "cell empty"}));
  return el("span", {class: "strip", "aria-label": runs.length + " last runs"}, ...cells);
}
function runid(id) {
  return id ? el("span", {class: "runid", title: "pgcrond history --run " + id}, " · run " + id) : "";
}

/* A job's freshness (docs/freshness.md): its lag, the age of the oldest change of its sources
 * not yet reflected, against its SLA, red past it; counted on live from that change; or how
 * long its sources have been as its last success found them. Nothing without freshness. */
function freshness(fr) {
  if (!fr) return "";
  const lag = fr.changed_since_unix ? Math.max(0, now() - fr.changed_since_unix) : fr.lag_s || 0;
  const f = el("span", {class: "freshness" + (lag > fr.sla_s ? " bad" : ""),
    title: fr.changed_since_unix ? "sources changed since " + abs(fr.changed_since_unix) : null},
    "lag " + dur(lag) + " of " + dur(fr.sla_s) + " SLA");
  if (fr.unchanged_since_unix && !fr.changed_since_unix) {
    /* the time of day alone when it is today's (UTC) */
    const t = abs(fr.unchanged_since_unix), today = abs(now()).slice(0, 10);
    f.append(el("span", {class: "muted", title: t},
      " · sources unchanged since " + (t.startsWith(today) ? t.slice(11) : t)));
  }
  if (fr.fallback) f.append(el("span", {class: "muted"}, " · runs every period: " + fr.fallback));
  return f;
}

function jobRow(j) {
  const state = el("td", null, badge(j.state));
  if (j.running) {
    state.append(" " + dur(now() - j.running.since_unix));
    if (j.running.backend_pid) state.append(el("span", {class: "muted"}, " pid " + j.running.backend_pid));
  }
  if (j.retry) state.append(el("span", {class: "muted"}, " attempt " + j.retry.attempt +
    (j.retry.next_try_unix ? ", next " + rel(j.retry.next_try_unix) : "")));
  if (j.debounce) state.append(el("span", {class: "muted"}, " " + j.debounce.payloads + " payload(s)"));
  if (j.paused && j.state !== "paused") state.append(el("span", {class: "muted"}, " (paused)"));
  const sched = j.schedule ? el("code", null, j.schedule)
    : j.after && j.after.length ? el("span", {class: "muted"}, "after " + j.after.join(", "))
    : j.listen ? el("span", {class: "muted"}, "listen " + j.listen)
    : j.freshness ? el("span", {class: "muted"}, "freshness " + dur(j.freshness.sla_s))
    : el("span", {class: "muted"}, "—");
  const planned = j.freshness && j.freshness.next_run_unix;
  const next = j.next_fire_unix
    ? el("span", {title: rel(j.next_fire_unix), class: "abs"}, abs(j.next_fire_unix))
    : planned ? el("span", {title: "planned by freshness, " + rel(planned), class: "abs"}, abs(planned))
    : el("span", {class: "muted"}, "—");
  let last = el("span", {class: "muted"}, "—");
  if (j.last_result) {
    const r = j.last_result;
    last = el("span", {class: "last"},
      el("span", {title: r.message, class: r.status === "succeeded" ? "good" : "bad"},
        r.status + " " + abs(r.ended_at_unix) + " (" + (r.duration_ms / 1000).toFixed(2) + "s)"),
      runid(r.runid));
    if (j.consecutive_failures > 1) last.append(" ×" + j.consecutive_failures);
  }
  /* a view's age, for the jobs that maintain a view (plugin jobs) only */
  let age = el("span", {class: "muted"}, j.plugin && j.max_staleness_s ? "never succeeded" : "");
  if (j.plugin && j.last_success_unix) {
    age = el("span", {class: j.stale ? "bad" : "", title: "last success " + j.last_success},
      dur(now() - j.last_success_unix));
  }
  if (j.plugin && j.stale) age.append(" stale (max " + dur(j.max_staleness_s) + ")");
  const fresh = freshness(j.freshness);
  const settings = [j.owner ? "role " + j.owner : "pgcrond's role"];
  if (j.retries != null) settings.push(j.retries + " retries");
  settings.push(j.timeout_ms ? "timeout " + dur(j.timeout_ms / 1000) : "no timeout");
  if (j.overlap) settings.push("overlap " + j.overlap);
  return el("tr", {id: "job-" + j.name, "data-state": j.state},
    el("td", null, el("strong", {class: "job-name"}, j.name),
      el("span", {class: "muted job-kind"}, " " + (j.plugin ? "plugin " + j.plugin : j.kind)),
      /* the name its owner gave it in SQL (any text: a text node, never markup) */
      j.cron_name != null && j.cron_name !== j.name
        ? el("span", {class: "muted cron-name", title: "jobid " + j.jobid + " in cron.job"},
             " “" + j.cron_name + "”") : ""),
    state, el("td", null, sched), el("td", null, next),
    el("td", {class: "runs"}, strip(j), el("br"), last),
    el("td", {class: "view-age"}, age, fresh && age.textContent ? el("br") : "", fresh),
    el("td", null, j.database || ""),
    el("td", {class: "settings"}, settings.join(" · ")));
}

/* Layered drawing: a job's column is the longest chain of upstreams before it; edges run
 * from upstream to downstream, left to right. */
function drawGraph(jobs) {
  const svg = document.getElementById("graph");
  svg.replaceChildren();
  const byName = new Map(jobs.map(j => [j.name, j]));
  const layer = new Map();
  function depth(j, seen) {
    if (layer.has(j.name)) return layer.get(j.name);
    if (seen.has(j.name)) return 0;
    seen.add(j.name);
    let d = 0;
    for (const u of j.after || []) if (byName.has(u)) d = Math.max(d, depth(byName.get(u), seen) + 1);
    layer.set(j.name, d);
    return d;
  }
  jobs.forEach(j => depth(j, new Set()));
  const cols = [];
  for (const j of jobs) (cols[layer.get(j.name)] ||= []).push(j);
  const row = new Map();
  cols.forEach(c => {
    const bary = j => {
      const ups = (j.after || []).filter(u => row.has(u));
      return ups.length ? ups.reduce((s, u) => s + row.get(u), 0) / ups.length : 0;
    };
    c.sort((p, q) => bary(p) - bary(q));
    c.forEach((j, i) => row.set(j.name, i));
  });
  const W = 190, H = 30, GX = 70, GY = 14, pos = new Map();
  cols.forEach((c, x) => c.forEach((j, y) => pos.set(j.name, {x: 10 + x * (W + GX), y: 10 + y * (H + GY)})));
  const rows = Math.max(1, ...cols.map(c => c.length));
  const width = 20 + cols.length * (W + GX) - GX, height = 20 + rows * (H + GY);
  svg.setAttribute("width", width);
  svg.setAttribute("height", height);
  svg.setAttribute("viewBox", "0 0 " + width + " " + height);
  const defs = el("svg:defs", null, el("svg:marker", {id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5,
    markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse"}, el("svg:path", {d: "M0 0L10 5L0 10z", fill: "#98a2b3"})));
  svg.append(defs);
  for (const j of jobs) for (const u of j.after || []) {
    const a = pos.get(u), b = pos.get(j.name);
    if (!a || !b) continue;
    const x1 = a.x + W, y1 = a.y + H / 2, x2 = b.x, y2 = b.y + H / 2, m = (x1 + x2) / 2;
    const la = layer.get(u), lb = layer.get(j.name);
    let d = `M${x1} ${y1}C${m} ${y1} ${m} ${y2} ${x2} ${y2}`;
    if (lb - la > 1) {
      /* across columns in between: below their nodes, not through them */
      const below = Math.max(...cols.slice(la + 1, lb).map(c => c.length));
      const yd = 10 + below * (H + GY) - GY / 2, q = GX / 2;
      d = `M${x1} ${y1}C${x1 + q} ${y1} ${x1 + q} ${yd} ${x1 + GX} ${yd}` +
          `L${x2 - GX} ${yd}C${x2 - q} ${yd} ${x2 - q} ${y2} ${x2} ${y2}`;
    }
    svg.append(el("svg:path", {class: "edge", "data-from": u, "data-to": j.name, d,
      "marker-end": "url(#arrow)"}));
  }
  for (const j of jobs) {
    const p = pos.get(j.name);
    const failed = j.last_result && j.last_result.status === "failed";
    const g = el("svg:g", {class: "node", "data-job": j.name, "data-state": j.state,
      transform: `translate(${p.x},${p.y})`},
      el("svg:title", null, j.name + ": " + j.state),
      el("svg:rect", {width: W, height: H, rx: 6, fill: color(j.state),
        stroke: failed ? "var(--failed)" : "none", "stroke-width": 3}),
      el("svg:text", {x: 10, y: H / 2 + 4, style: j.state === "disabled" ? "fill:#1d2330" : null}, (j.name.length > 26 ? j.name.slice(0, 25) + "…" : j.name)));
    svg.append(g);
  }
}

function legend() {
  const l = document.getElementById("legend");
  if (l.dataset.done) return;
  l.dataset.done = "1";
  for (const s of ["succeeded", "failed", "skipped", "upstream_failed"])
    l.append(el("span", {class: "cell", style: "background:" + color(s)}), s.replace("_", " "));
}

function render() {
  const st = data;
  if (!st) return;
  legend();
  document.getElementById("meta").textContent =
    "v" + st.version + " · " + st.instance + " · up " + dur(st.uptime_s + (now() - st.now_unix)) +
    " · " + st.running + " running, " + st.queued + " queued (max " + st.max_running + ")" +
    (st.draining ? " · shutting down" : "");
  const age = document.getElementById("age");
  age.textContent = (lastError ? "refresh failed (" + lastError + "); " : "") +
    "data " + dur(Date.now() / 1000 - received) + " old";
  age.className = "age" + (lastError ? " bad" : "");
  /* what is down, at the top: a database no connection reaches, the history not written */
  const down = (st.databases || []).filter(d => d.reachable === false).map(d =>
    el("p", null, "Database " + d.name + " is unreachable" + (d.last_error ? ": " + d.last_error : "")));
  if (st.history && st.history.database && !st.history.connected)
    down.push(el("p", null, "The history database " + st.history.database + " is not connected: " +
      st.history.pending + " run record(s) wait to be written."));
  const refused = Object.entries(st.refused || {});
  for (const [id, r] of refused.slice(0, 10))
    down.push(el("p", {class: "refused", "data-jobid": id}, r.said ||
      "Job " + r.name + " (jobid " + id + ") is not run (why is shown with http.token_file only)."));
  if (refused.length > 10)
    down.push(el("p", null, (refused.length - 10) + " more jobs made in SQL are not run: pgcrond status lists them."));
  const banner = document.getElementById("banner");
  banner.replaceChildren(...down);
  banner.hidden = down.length === 0;
  document.querySelector("#jobs tbody").replaceChildren(...st.jobs.map(jobRow));
  drawGraph(st.jobs);
  const f = document.getElementById("failures");
  const fails = st.recent_failures || [];
  f.replaceChildren(...(fails.length ? fails.map(x => el("article", {class: "failure", "data-job": x.job},
    el("div", null, el("strong", null, x.job), " ",
      el("span", {class: "muted", title: rel(x.ended_at_unix)}, abs(x.ended_at_unix)),
      x.sqlstate ? el("span", {class: "muted"}, " · SQLSTATE " + x.sqlstate) : "",
      x.runid ? el("span", {class: "muted"}, " · ", el("code", {class: "runid"},
        "pgcrond history --run " + x.runid)) : ""),
    x.message == null ? el("p", {class: "muted"}, "(the text is shown with http.token_file only)")
      : el("pre", null, x.message))) : [el("p", {class: "muted"}, "No failed runs in the history's recent past.")]));
  document.querySelector("#dbs tbody").replaceChildren(...(st.databases || []).map(d => el("tr", null,
    el("td", null, d.name), el("td", null, d.pool), el("td", null, d.open), el("td", null, d.busy),
    el("td", null, d.idle), el("td", null, d.connecting), el("td", null, d.waiting),
    el("td", {class: d.reachable === false ? "bad" : ""},
       d.reachable === false ? "no" : d.reachable === true ? "yes" : "not yet"),
    el("td", {class: "wrap muted"}, d.last_error || ""))));
  const h = st.history;
  document.getElementById("history").textContent = h
    ? "History database " + h.database + ": " + (h.connected ? "connected" : "NOT connected") + ", " +
      h.pending + " record(s) waiting to be written, " + h.written + " written, " + h.dropped + " dropped."
    : "No history database.";
}

function accept(st) {
  data = st;
  received = Date.now() / 1000;
  offset = (st.now_unix || received) - received;
  lastError = "";
  render();
}

/* A listener with a token: the page came without state; the token is asked for once and
 * kept for this tab only (sessionStorage), sent as Authorization: Bearer. */
function login(message) {
  const form = document.getElementById("login");
  form.hidden = false;
  document.getElementById("login-error").textContent = message || "";
  form.onsubmit = ev => {
    ev.preventDefault();
    sessionStorage.setItem("pgcrond-token", document.getElementById("token").value);
    form.hidden = true;
    refresh();
  };
}

async function refresh() {
  const token = sessionStorage.getItem("pgcrond-token");
  try {
    const r = await fetch("status.json", {cache: "no-store",
      headers: token ? {Authorization: "Bearer " + token} : {}});
    if (r.status === 401) {
      sessionStorage.removeItem("pgcrond-token");
      login(token ? "that token was refused" : "");
      return;
    }
    if (!r.ok) throw new Error("HTTP " + r.status);
    accept(await r.json());
  } catch (e) {
    lastError = e.message;
    render();
  }
}

if (initial) accept(initial);
else refresh();
setInterval(refresh, 5000);
setInterval(render, 1000);

/* ---- acting as a PostgreSQL role (POST /login): every action is SQL run as that role ---- */
let session = null, editing = null;
const $ = id => document.getElementById(id);
/* a session serves one request at a time: the poll and an action go one after the other */
let queue = Promise.resolve();
const serial = f => (queue = queue.then(f, f));

async function post(path, fields) {
  const body = new URLSearchParams(fields);
  if (session) body.set("csrf", session.csrf);
  const r = await serial(() => fetch(path, {method: "POST", body, cache: "no-store"}));
  let j = {};
  try { j = await r.json(); } catch (e) { j = {error: "HTTP " + r.status}; }
  if (r.status === 401 && path !== "login") showSignin("the session ended; log in again");
  return {ok: r.ok, j};
}
function say(text, bad) {
  const p = $("act-result");
  p.textContent = text;
  p.className = bad ? "bad" : "good";
}
function showSignin(message) {
  session = null;
  $("session").hidden = true;
  $("signin").hidden = false;
  $("signin-error").textContent = message || "";
}
/* a few plain forms written into the field as the cron they mean */
function plainToCron(t) {
  t = t.trim().toLowerCase();
  let m;
  const hm = (h, mi) => Number(mi) + " " + Number(h);
  if ((m = t.match(/^every (\d+) minutes?$/))) return "*/" + m[1] + " * * * *";
  if (t === "every minute") return "* * * * *";
  if (t === "every hour") return "0 * * * *";
  if ((m = t.match(/^every (\d+) hours?$/))) return "0 */" + m[1] + " * * *";
  if ((m = t.match(/^every day at (\d\d?):(\d\d)$/))) return hm(m[1], m[2]) + " * * *";
  if ((m = t.match(/^every weekday at (\d\d?):(\d\d)$/))) return hm(m[1], m[2]) + " * * 1-5";
  if ((m = t.match(/^every (sun|mon|tue|wed|thu|fri|sat)\w* at (\d\d?):(\d\d)$/)))
    return hm(m[2], m[3]) + " * * " + m[1];
  return null;
}
let firesTimer = 0;
/* a fire [Unix seconds, the zone's offset then] as the zone's wall clock: "2026-12-01 06:00:00 +01:00" */
function local([t, off]) {
  const a = Math.abs(off), pad = n => String(n).padStart(2, "0");
  return abs(t + off).slice(0, 19) + " " + (off < 0 ? "-" : "+") + pad(Math.floor(a / 3600)) + ":" +
    pad(Math.floor(a % 3600 / 60));
}
/* the next five fires as typed (a plain form: of the cron it means, written into the field
 * when the field is left) */
function scheduleTyped() {
  const f = $("newjob").elements.schedule, cron = plainToCron(f.value) || f.value;
  clearTimeout(firesTimer);
  firesTimer = setTimeout(async () => {
    if (!cron.trim() || $("session").hidden) { $("fires").textContent = ""; return; }
    const r = await fetch("schedule.json?schedule=" + encodeURIComponent(cron), {cache: "no-store"});
    const j = await r.json();
    if ((plainToCron(f.value) || f.value) !== cron) return; /* typed on meanwhile */
    $("fires").className = j.error ? "bad" : "";
    $("fires").textContent = (cron !== f.value ? "“" + f.value + "” is " + cron + ". " : "") +
      (j.error ? j.error : j.fires.length ? "Next fires (" + j.zone + "): " + j.fires.map(local).join(", ")
        : "It never fires.");
  }, 250);
}
function schedulePlain() {
  const f = $("newjob").elements.schedule, cron = plainToCron(f.value);
  if (cron) f.value = cron;
  scheduleTyped();
}
function editJob(j) {
  editing = j.name;
  const f = $("newjob").elements;
  f.name.value = j.cron_name || j.name;
  f.name.disabled = true;
  f.schedule.value = j.schedule || "";
  f.command.value = j.command || "";
  f.database.value = j.database || "";
  $("save").textContent = "Save " + j.name;
  $("cancel").hidden = false;
  scheduleTyped();
}
function stopEditing() {
  editing = null;
  clearTimeout(firesTimer);
  $("fires").textContent = "";
  $("newjob").reset();
  $("newjob").elements.name.disabled = false;
  $("newjob").elements.csrf.value = session ? session.csrf : "";
  $("save").textContent = "Create job";
  $("cancel").hidden = true;
}
async function act(j, action) {
  if (action === "edit") return editJob(j);
  if (action === "unschedule" && !confirm("Unschedule " + j.name + "?")) return;
  const r = await post("jobs/" + encodeURIComponent(j.name) + "/" + action, {});
  const what = action === "trigger" ? "run now" : action;
  say(r.ok ? what + " " + j.name + ": done" + (/^(trigger|drop)$/.test(action) ? " (request " + r.j.value + ")" : "") : what + " " + j.name + ": " + r.j.error +
      (r.j.hint ? " (" + r.j.hint + ")" : ""), !r.ok);
  refreshSession();
}
function renderSession() {
  $("signin").hidden = true;
  $("session").hidden = false;
  $("whoami").textContent = "logged in as " + session.role + (session.operator ? " (operator)" : "");
  const f = $("newjob");
  f.elements.csrf.value = session.csrf;
  f.hidden = !session.may_create && !editing;
  const last = new Map();
  for (const q of session.requests) if (!last.has(q.job)) last.set(q.job, q);
  $("myjobs").querySelector("tbody").replaceChildren(...session.jobs.map(j => {
    const q = last.get(j.name);
    return el("tr", {"data-job": j.name, "data-active": String(j.active)},
      el("td", null, el("strong", null, j.name),
        j.cron_name && j.cron_name !== j.name ? el("span", {class: "muted"}, " “" + j.cron_name + "”") : ""),
      el("td", null, el("code", null, j.schedule || "")),
      el("td", {class: "wrap"}, el("code", null, j.command || "")),
      el("td", null, j.active ? (j.paused ? "paused" : "yes") : "no"),
      el("td", null, j.database),
      el("td", {class: "outcome"}, q ? q.action + " #" + q.id + ": " + (q.outcome || "waiting") : ""),
      el("td", null, ...j.actions.map(a => {
        const b = el("button", {type: "button", "data-action": a}, a === "trigger" ? "run now" : a);
        b.onclick = () => act(j, a);
        return b;
      })));
  }));
}
async function refreshSession() {
  const r = await serial(() => fetch("session.json", {cache: "no-store"}));
  if (r.status === 401) { if (session || $("signin").hidden) showSignin(); return; }
  if (!r.ok) return;
  const text = await r.text();
  /* drawn again only when it changed: a row's buttons stay the ones under the pointer */
  if (session && text === session.text) return;
  session = JSON.parse(text);
  session.text = text;
  renderSession();
}
$("signin").onsubmit = async ev => {
  ev.preventDefault();
  const f = ev.target.elements;
  const r = await post("login", {role: f.role.value, password: f.password.value});
  f.password.value = "";
  if (!r.ok) { $("signin-error").textContent = r.j.error; return; }
  $("signin-error").textContent = "";
  refreshSession();
};
$("logout").onclick = async () => {
  await post("logout", {});
  showSignin();
};
$("newjob").onsubmit = async ev => {
  ev.preventDefault();
  schedulePlain();
  const f = ev.target.elements;
  const fields = {schedule: f.schedule.value, command: f.command.value, database: f.database.value};
  const r = editing ? await post("jobs/" + encodeURIComponent(editing) + "/edit", fields)
    : await post("jobs", Object.assign({name: f.name.value}, fields));
  say(r.ok ? (editing ? "saved " + editing : "created " + f.name.value + " (jobid " + r.j.value + ")")
    : r.j.error + (r.j.detail ? ": " + r.j.detail : "") + (r.j.hint ? " (" + r.j.hint + ")" : ""), !r.ok);
  if (r.ok) stopEditing();
  refreshSession();
};
$("cancel").onclick = stopEditing;
$("newjob").elements.schedule.addEventListener("input", scheduleTyped);
$("newjob").elements.schedule.addEventListener("change", schedulePlain);
$("plain").onchange = ev => {
  if (ev.target.value) $("newjob").elements.schedule.value = ev.target.value;
  ev.target.value = "";
  scheduleTyped();
};
refreshSession();
setInterval(() => { if (session) refreshSession(); }, 2000);
