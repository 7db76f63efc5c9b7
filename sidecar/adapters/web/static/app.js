// compose-sidecar dashboard. Plain JS, no build step, nothing fetched but the daemon's API:
//   GET  v1/status    the whole picture, re-read (throttled) when an event says it changed
//   GET  v1/events    Server-Sent Events, read through fetch so the token can go along
//                     (EventSource cannot send headers); resumed with Last-Event-ID
//   POST v1/commands  rebuild / redeploy / scale, with the token
// Every URL is relative, so the page also works behind a path prefix.
"use strict";
(() => {
  const TOKEN_KEY = "sidecar-token";
  const BACKLOG = 300; // events replayed on the first connection: the log, the chart, the jobs
  const STATUS_THROTTLE_MS = 200; // a burst of events (a rollout) costs one status read
  // No event for this long: read the status anyway. The heartbeat key lives 10 s by default,
  // so a daemon that died quietly shows within about 10 s + this.
  const LIVENESS_MS = 10000;
  const RETRY_MS = [500, 1000, 2000, 5000, 10000]; // reconnect backoff of the event stream
  // The server writes a keepalive comment every 15 s: a stream silent for three of them is
  // dead (a half-open connection never ends by itself) and is reconnected.
  // (window.sidecarStallMs, set before the page loads, shortens it: the browser tests)
  const STALL_MS = Number(window.sidecarStallMs) || 45000;
  const LOG_MAX = 500;
  const CHART_MAX = 20; // bars per service
  const JOBS_MAX = 15;
  const JOB_KINDS = new Set(["build", "rollout", "converge", "up"]);
  const NOT_RUNNING = new Set(["die", "kill", "stop", "oom", "destroy", "gone"]);
  // Events after which the status has nothing new to say.
  const QUIET_KINDS = new Set(["sync-started", "exec-finished"]);

  const $ = (id) => document.getElementById(id);
  const state = {
    status: null,
    statusError: "",
    stream: "connecting", // connecting | live | down
    streamError: "",
    retryAt: 0,
    lastId: "",
    open: new Map(), // service -> the job (or sync) running now, from the events
    history: new Map(), // service -> finished builds/rollouts/syncs, oldest first
    recent: [], // finished jobs for the table, newest first
    pending: new Set(), // commands in flight ("action:service")
    tokenDeclined: false,
    paused: new Set(), // followed from command-ok events (see pausedSet)
  };

  // ---------------------------------------------------------------- formatting
  const esc = (v) =>
    String(v ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  const num = (v) => {
    const n = parseFloat(v);
    return Number.isFinite(n) ? n : null;
  };
  function secs(s) {
    if (s == null || !Number.isFinite(s)) return "-";
    if (s < 10) return `${s.toFixed(2)} s`;
    if (s < 60) return `${s.toFixed(1)} s`;
    return `${Math.floor(s / 60)}m ${Math.round(s % 60)}s`;
  }
  function ago(at) {
    const t = num(at);
    if (t == null) return "never";
    const d = Math.max(0, Date.now() / 1000 - t);
    if (d < 5) return "just now";
    if (d < 120) return `${Math.round(d)}s ago`;
    if (d < 7200) return `${Math.round(d / 60)}m ago`;
    return `${Math.round(d / 3600)}h ago`;
  }
  const agoSpan = (at) => `<span data-ago="${esc(at)}">${esc(ago(at))}</span>`;
  function clock(at) {
    const d = new Date((num(at) ?? Date.now() / 1000) * 1000);
    const p = (n, w = 2) => String(n).padStart(w, "0");
    return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
  }
  const lastLine = (text) => String(text || "").trim().split("\n").pop() || "";
  // fetch's TypeError ("Failed to fetch") means no answer at all
  const why = (e) => (e instanceof TypeError ? "the daemon does not answer" : e.message || String(e));

  // ---------------------------------------------------------------- token and API
  const token = () => sessionStorage.getItem(TOKEN_KEY) || "";
  function withAuth(headers) {
    const h = { ...(headers || {}) };
    const t = token();
    if (t) h.Authorization = `Bearer ${t}`;
    return h;
  }

  let tokenAsk = null;
  let tokenResolve = null;
  function askToken(why) {
    if (tokenAsk) return tokenAsk;
    tokenAsk = new Promise((resolve) => {
      tokenResolve = resolve;
    });
    $("token-why").textContent = why;
    $("token-input").value = "";
    $("token-dialog").showModal();
    $("token-input").focus();
    return tokenAsk;
  }
  function tokenDone(saved) {
    const dlg = $("token-dialog");
    if (dlg.open) dlg.close();
    const resolve = tokenResolve;
    tokenAsk = tokenResolve = null;
    if (saved) state.tokenDeclined = false;
    renderTokenButton();
    if (resolve) resolve(saved);
  }
  function setupTokenDialog() {
    $("token-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const v = $("token-input").value.trim();
      if (v) sessionStorage.setItem(TOKEN_KEY, v);
      else sessionStorage.removeItem(TOKEN_KEY);
      tokenDone(true);
    });
    $("token-cancel").addEventListener("click", () => tokenDone(false));
    $("token-dialog").addEventListener("cancel", (e) => {
      e.preventDefault();
      tokenDone(false);
    });
    $("token-button").addEventListener("click", async () => {
      if (await askToken("Set the daemon's API token (empty: forget it). Kept in this tab only.")) {
        refreshSoon(0);
        if (state.stream !== "live") reconnectNow();
      }
    });
  }
  function renderTokenButton() {
    $("token-button").textContent = token() ? "Token \u2713" : "Set token";
  }

  // fetch with the token; a 401 asks for the token (again) and retries. `interactive`: the
  // user asked for this (a command); background reads stop asking once the user declined.
  async function api(path, init = {}, interactive = false) {
    for (let tries = 0; ; tries++) {
      const res = await fetch(path, { ...init, headers: withAuth(init.headers), cache: "no-store" });
      if (res.status !== 401 || tries >= 3 || (!interactive && state.tokenDeclined)) return res;
      const why = token()
        ? "The daemon refused this token. Enter it again:"
        : "The daemon asks for its API token (setting http_token):";
      if (!(await askToken(why))) {
        if (!interactive) state.tokenDeclined = true;
        return res;
      }
    }
  }

  // ---------------------------------------------------------------- status
  let statusTimer = null;
  let statusBusy = false;
  let statusAgain = false;
  let livenessTimer = null;
  function refreshSoon(delay = STATUS_THROTTLE_MS) {
    if (delay === 0) {
      clearTimeout(statusTimer);
      statusTimer = null;
      loadStatus();
    } else if (!statusTimer) {
      statusTimer = setTimeout(() => {
        statusTimer = null;
        loadStatus();
      }, delay);
    }
  }
  async function loadStatus() {
    if (statusBusy) {
      statusAgain = true;
      return;
    }
    statusBusy = true;
    clearTimeout(livenessTimer);
    try {
      const res = await api("v1/status");
      if (!res.ok) throw new Error(res.status === 401 ? "the daemon wants the API token" : `HTTP ${res.status}`);
      state.status = await res.json();
      state.statusError = "";
    } catch (e) {
      state.statusError = why(e);
    } finally {
      statusBusy = false;
      livenessTimer = setTimeout(loadStatus, LIVENESS_MS);
    }
    render();
    if (statusAgain) {
      statusAgain = false;
      refreshSoon();
    }
  }

  // ---------------------------------------------------------------- event stream
  let wake = null; // resolves the reconnect wait early
  function reconnectNow() {
    if (wake) wake();
  }
  function setStream(kind, error = "") {
    state.stream = kind;
    state.streamError = error;
    renderConn();
    renderBanner();
  }

  // Server-Sent Events parsed by hand (the WHATWG rules: lines end in \n, \r\n or \r; a blank
  // line dispatches; `:` starts a comment; one optional space after the colon).
  async function readEvents(body, onMessage, onBytes) {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let buf = "";
    let id = null;
    let event = "";
    let data = [];
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      onBytes();
      buf += decoder.decode(value, { stream: true });
      for (;;) {
        const m = /\r\n|\r|\n/.exec(buf);
        if (!m) break;
        if (m[0] === "\r" && m.index === buf.length - 1) break; // maybe \r\n split across chunks
        const line = buf.slice(0, m.index);
        buf = buf.slice(m.index + m[0].length);
        if (line === "") {
          if (data.length) onMessage({ id, event: event || "message", data: data.join("\n") });
          id = null;
          event = "";
          data = [];
          continue;
        }
        if (line[0] === ":") continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let val = colon < 0 ? "" : line.slice(colon + 1);
        if (val[0] === " ") val = val.slice(1);
        if (field === "data") data.push(val);
        else if (field === "event") event = val;
        else if (field === "id") id = val;
      }
    }
  }

  async function stream() {
    let failures = 0;
    for (;;) {
      const abort = new AbortController();
      let stall = null;
      const alive = () => {
        clearTimeout(stall);
        stall = setTimeout(() => abort.abort(new Error("the event stream went silent")), STALL_MS);
      };
      try {
        const headers = { Accept: "text/event-stream" };
        if (state.lastId) headers["Last-Event-ID"] = state.lastId;
        // no event seen yet (first connection, or none came before it dropped): the backlog,
        // else exactly what came after the last one
        const query = state.lastId ? "" : `?backlog=${BACKLOG}`;
        alive();
        const res = await api(`v1/events${query}`, { headers, signal: abort.signal });
        if (!res.ok || !res.body) throw new Error(res.status === 401 ? "the daemon wants the API token" : `HTTP ${res.status}`);
        failures = 0;
        setStream("live");
        refreshSoon(0); // whatever happened while the stream was away
        await readEvents(res.body, onMessage, alive);
        throw new Error("the daemon closed the stream");
      } catch (e) {
        clearTimeout(stall);
        const wait = RETRY_MS[Math.min(failures, RETRY_MS.length - 1)];
        failures += 1;
        state.retryAt = Date.now() + wait;
        setStream("down", why(e));
        refreshSoon(0);
        await new Promise((resolve) => {
          wake = resolve;
          setTimeout(resolve, wait);
        });
        wake = null;
        setStream("connecting", state.streamError);
      }
    }
  }

  // Redis stream ids "ms-seq": a replay after a resume may repeat what we have.
  function newer(id, than) {
    if (!than) return true;
    const [a, b] = id.split("-").map(Number);
    const [c, d] = than.split("-").map(Number);
    return a > c || (a === c && b > d);
  }

  function onMessage(msg) {
    if (msg.id) {
      if (!newer(msg.id, state.lastId)) return;
      state.lastId = msg.id;
    }
    let fields;
    try {
      fields = JSON.parse(msg.data);
    } catch {
      fields = { detail: msg.data };
    }
    if (typeof fields !== "object" || fields === null) fields = { detail: String(fields) };
    const ev = {
      id: msg.id,
      kind: String(fields.event || msg.event),
      service: String(fields.service || ""),
      at: num(fields.at) ?? Date.now() / 1000,
      f: fields,
    };
    track(ev);
    appendLog(ev);
    if (!QUIET_KINDS.has(ev.kind)) refreshSoon();
    renderHistorySoon();
  }

  // ---------------------------------------------------------------- jobs from events
  function finish(service, row) {
    const list = state.history.get(service) || [];
    list.push(row);
    while (list.length > CHART_MAX) list.shift();
    state.history.set(service, list);
    state.recent.unshift(row);
    if (state.recent.length > JOBS_MAX) state.recent.length = JOBS_MAX;
  }

  function track(ev) {
    const { kind, f, at } = ev;
    const services = ev.service ? ev.service.split(",") : [];
    if (kind === "ready" || kind === "stopped") {
      state.open.clear(); // a job cut off by a restart never finishes
      return;
    }
    const [svc] = services;
    if (kind.endsWith("-started") && JOB_KINDS.has(kind.slice(0, -8))) {
      state.open.set(svc, { service: svc, kind: kind.slice(0, -8), start: at, reason: f.reason || "", build: null, live: null });
    } else if (kind === "sync-started") {
      if (!state.open.has(svc)) state.open.set(svc, { service: svc, kind: "sync", start: at });
    } else if (kind === "built" || kind === "build-succeeded" || kind === "build-failed" || kind === "build-cancelled") {
      // `built`: a served service's image is ready and its rollout begins (build-succeeded
      // only comes with the job's end)
      const job = state.open.get(svc);
      if (job && (kind === "built" || job.build == null)) job.build = num(f.seconds) ?? at - job.start;
    } else if (kind === "deployed") {
      for (const s of services) {
        const job = state.open.get(s);
        if (job) job.live = at - job.start;
      }
    } else if (kind === "synced" || kind === "sync-failed") {
      const job = state.open.get(svc);
      if (job && job.kind === "sync") state.open.delete(svc);
      const ok = kind === "synced";
      const files = f.files ? `${f.files} files` : "";
      finish(svc, { service: svc, kind: "sync", at, result: ok ? "ok" : "failed", sync: num(f.seconds), note: ok ? files : lastLine(f.error) });
    } else if (kind === "job-finished" && f.job !== "sync") {
      const job = state.open.get(svc);
      state.open.delete(svc);
      const took = job ? at - job.start : null;
      finish(svc, {
        service: svc,
        kind: f.job || (job && job.kind) || "job",
        at,
        result: f.result || "?",
        build: job ? job.build : null,
        live: job ? job.live : null,
        took,
        note: job ? job.reason : "",
      });
    } else if (kind === "command-ok") {
      followPause({ ...f, service: ev.service });
    } else if (kind === "converged") {
      finish(svc, { service: svc, kind: "repair", at, result: f.result || "ok", note: f.reason || "" });
    }
  }

  // ---------------------------------------------------------------- log
  const OK_KINDS = /^(built|build-succeeded|deployed|synced|converged|ready|command-ok|docker-reconnected|restarted)$/;
  const BAD_KINDS = /(failed|invalid|unhealthy|died|error|disconnected)$/;
  const WARN_KINDS = /(cancelled|fallback|removed)$/;
  const DETAIL_FIELDS = ["reason", "job", "result", "action", "message", "files", "deleted", "containers", "instances", "instance", "exit_code", "watches", "stale", "actions"];
  function detailOf(ev) {
    const f = ev.f;
    const parts = [];
    if (f.seconds != null) parts.push(secs(num(f.seconds)));
    for (const k of DETAIL_FIELDS) if (f[k] != null && f[k] !== "") parts.push(`${k}=${f[k]}`);
    if (f.error) parts.push(lastLine(f.error));
    else if (f.detail && ev.kind !== "deployed") parts.push(lastLine(f.detail));
    return parts.join("  ");
  }
  function appendLog(ev) {
    const log = $("log");
    const li = document.createElement("li");
    const failed = ev.f.result && ev.f.result !== "ok";
    const cls = failed || BAD_KINDS.test(ev.kind) ? "bad" : OK_KINDS.test(ev.kind) || ev.f.result === "ok" ? "ok" : WARN_KINDS.test(ev.kind) ? "warn" : "";
    li.dataset.kind = ev.kind;
    li.dataset.service = ev.service;
    li.title = JSON.stringify(ev.f, null, 1);
    li.innerHTML =
      `<span class="t">${esc(clock(ev.at))}</span><span class="kind ${cls}">${esc(ev.kind)}</span>` +
      `<span class="svc">${esc(ev.service || "\u00b7")}</span><span class="detail">${esc(detailOf(ev))}</span>`;
    if (!matchesFilter(li)) li.classList.add("hidden");
    log.appendChild(li);
    while (log.children.length > LOG_MAX) log.firstChild.remove();
    if ($("log-follow").checked) log.scrollTop = log.scrollHeight;
  }
  function matchesFilter(li) {
    const q = $("log-filter").value.trim().toLowerCase();
    return !q || `${li.dataset.kind} ${li.dataset.service}`.toLowerCase().includes(q);
  }

  // ---------------------------------------------------------------- services
  // The paused set as the daemon keeps it (names, or `*` with `!name` for a service resumed
  // since): from the status when it carries one, else followed from pause/resume results.
  function pausedSet() {
    const st = state.status || {};
    return Array.isArray(st.paused) ? new Set(st.paused.map(String)) : state.paused;
  }
  function followPause(f) {
    const p = state.paused;
    const svc = f.service || "";
    if (f.action === "pause" && svc) {
      p.add(svc);
      p.delete(`!${svc}`);
    } else if (f.action === "pause") {
      p.clear();
      p.add("*");
    } else if (f.action === "resume" && svc) {
      p.delete(svc);
      if (p.has("*")) p.add(`!${svc}`);
    } else if (f.action === "resume") {
      p.clear();
    }
  }
  function isPaused(name, info, paused) {
    if (info.paused === "1" || info.paused === true) return true;
    if (paused.has(`!${name}`)) return false;
    return paused.has(name) || paused.has("*");
  }
  function serviceState(name, info, paused) {
    const job = state.open.get(name);
    if (job) {
      if (job.kind === "sync") return "syncing";
      return job.kind === "build" && job.build == null ? "building" : "deploying";
    }
    if (isPaused(name, info, paused)) return "paused";
    if (info.state === "failed" || info.last_build_result === "failed" || info.last_sync_result === "failed") return "failed";
    return "ok";
  }
  function running(info) {
    return Object.entries(info.instances || {}).reduce((n, [s, c]) => n + (NOT_RUNNING.has(s) ? 0 : Number(c) || 0), 0);
  }
  function shortName(name, project) {
    const n = String(name || "");
    return project && n.startsWith(`${project}-`) ? n.slice(project.length + 1) : n;
  }
  function instancesOf(info) {
    const rotation = new Set(info.rotation || []);
    if (Array.isArray(info.instance_list)) {
      return info.instance_list
        .map((i) => ({ ...i, serving: rotation.has(i.url) }))
        .sort((a, b) => String(a.name).localeCompare(String(b.name), undefined, { numeric: true }));
    }
    // older daemons: only the rotation's URLs are known
    return [...rotation].map((url) => ({ name: url, url, state: "serving", serving: true }));
  }
  function latestVersion(info) {
    const versions = Array.isArray(info.versions) ? info.versions : [];
    let best = null;
    for (const v of versions) {
      const n = num(typeof v === "object" && v ? v.version ?? v.n : v);
      if (n != null && (best == null || n > best)) best = n;
    }
    return best;
  }

  function buildFact(info) {
    if (!info.last_build_at) return '<span class="muted">none yet</span>';
    const r = info.last_build_result || "?";
    const reason = info.last_build_reason ? ` \u00b7 ${esc(info.last_build_reason)}` : "";
    return `<span class="res-${esc(r)}">${esc(r)}</span> in ${esc(secs(num(info.last_build_duration)))} \u00b7 ${agoSpan(info.last_build_at)}${reason}`;
  }
  function syncFact(info) {
    if (!info.last_sync_at) return "";
    const r = info.last_sync_result || "?";
    return (
      `<div class="fact"><div class="k">last sync</div><div class="v" data-testid="last-sync">` +
      `<span class="res-${esc(r)}">${esc(r)}</span> ${esc(info.last_sync_files || 0)} files in ` +
      `${esc(secs(num(info.last_sync_seconds)))} \u00b7 ${agoSpan(info.last_sync_at)}</div></div>`
    );
  }
  function button(action, name, label, extra = "", disabled = false) {
    const busy = state.pending.has(`${action}:${name}`) || disabled;
    return `<button type="button" data-action="${action}" data-service="${esc(name)}" ${extra}${busy ? " disabled" : ""}>${label}</button>`;
  }
  function countsHtml(name, info) {
    const desired = num(info.desired) ?? num(info.replicas) ?? running(info);
    const serving = (info.rotation || []).length;
    const count = (k, n, id) => `<div class="count"><div class="n" data-testid="${id}">${esc(n)}</div><div class="k">${k}</div></div>`;
    const scaling = state.pending.has(`scale:${name}`);
    return (
      `<div class="counts">${count("desired", desired, "desired")}${count("running", running(info), "running")}` +
      `${count("serving", serving, "serving")}<div class="scale">` +
      button("scale", name, "\u2212", `data-replicas="${desired - 1}" aria-label="scale down" data-testid="scale-down"`, scaling || desired <= 1) +
      button("scale", name, "+", `data-replicas="${desired + 1}" aria-label="scale up" data-testid="scale-up"`, scaling) +
      "</div></div>"
    );
  }
  function instancesHtml(info, project) {
    const list = instancesOf(info);
    if (!list.length) return '<div class="instances muted">no instances</div>';
    const chips = list.map((i) => {
      const title = `${i.name}\n${i.url || ""}\n${i.state || ""}${i.since ? ` since ${ago(i.since)}` : ""}${i.serving ? "\nin the rotation" : ""}`;
      return (
        `<span class="inst" data-testid="instance" data-serving="${i.serving ? 1 : 0}" data-state="${esc(i.state)}" ` +
        `data-url="${esc(i.url)}" title="${esc(title)}"><span class="dot"></span>${esc(shortName(i.name, project))}` +
        `<span class="st">${esc(i.serving ? "serving" : i.state || "?")}</span></span>`
      );
    });
    return `<div class="instances" data-testid="instances">${chips.join("")}</div>`;
  }
  function relContext(ctx) {
    const ws = String((state.status && state.status.project_info && state.status.project_info.workspace) || "");
    const c = String(ctx || "");
    if (ws && c === ws) return ".";
    return ws && c.startsWith(`${ws}/`) ? `./${c.slice(ws.length + 1)}` : c;
  }
  function deployFact(info) {
    const versions = Array.isArray(info.versions) ? info.versions.filter((v) => v && typeof v === "object") : [];
    if (!versions.length) return "";
    const v = versions.reduce((a, b) => (Number(b.version) > Number(a.version) ? b : a));
    const reason = v.reason ? ` \u00b7 ${esc(v.reason)}` : "";
    return `<div class="fact"><div class="k">last deploy</div><div class="v" data-testid="last-deploy">v${esc(v.version)} \u00b7 ${agoSpan(v.at)}${reason}</div></div>`;
  }
  function cardHtml(name, info, project, paused) {
    const st = serviceState(name, info, paused);
    const served = info.served === "1";
    const built = Boolean(info.context);
    const version = latestVersion(info);
    const job = state.open.get(name);
    const doing = job ? ` <span class="muted">${esc(job.kind)}${job.reason ? `: ${esc(job.reason)}` : ""}</span>` : "";
    const failure =
      st === "failed"
        ? `<pre class="error" data-testid="error">${esc(
            (info.last_build_result === "failed" && info.last_build_error) || info.failed_reason || info.last_sync_error || "failed",
          ).trim().split("\n").slice(-8).join("\n")}</pre>`
        : "";
    return (
      `<article class="card" data-testid="service-${esc(name)}" data-service="${esc(name)}" data-state="${st}">` +
      `<div class="card-head"><span class="name">${esc(name)}</span><span class="badge ${st}" data-testid="state">${st}</span>` +
      `<span class="tag" title="${served ? "zero-downtime rollouts behind the proxy" : "recreated in place, as compose does"}">${served ? "served" : "plain"}</span>` +
      `${doing}<span class="image">${esc(info.image || "")}${version != null ? ` \u00b7 v${version}` : ""}</span>` +
      `<div class="actions">${built ? button("rebuild", name, "Rebuild", 'data-testid="rebuild"') : ""}` +
      `${button("redeploy", name, "Redeploy", 'data-testid="redeploy"')}</div></div>` +
      `<div class="facts"><div class="fact"><div class="k">last build</div><div class="v" data-testid="last-build">` +
      `${built ? buildFact(info) : '<span class="muted">image only, not built</span>'}</div></div>${deployFact(info)}${syncFact(info)}` +
      `${built ? `<div class="fact"><div class="k">context</div><div class="v" title="${esc(info.context)}">${esc(relContext(info.context))} \u00b7 ${esc(info.files || 0)} files</div></div>` : ""}</div>` +
      `${served ? countsHtml(name, info) + instancesHtml(info, project) : ""}${failure}</article>`
    );
  }

  const cards = new Map(); // name -> the HTML it was last drawn with (unchanged cards stay put)
  function renderServices() {
    const box = $("services");
    const st = state.status;
    if (!st) return;
    const services = st.services || {};
    const names = Object.keys(services).sort();
    const paused = pausedSet();
    if (!names.length) {
      box.innerHTML = '<p class="muted empty">No services in the project.</p>';
      cards.clear();
      return;
    }
    if (box.querySelector(".empty")) box.innerHTML = "";
    for (const name of [...cards.keys()]) {
      if (!services[name]) {
        box.querySelector(`[data-service="${CSS.escape(name)}"]`)?.remove();
        cards.delete(name);
      }
    }
    const tally = {};
    let prev = null;
    for (const name of names) {
      const html = cardHtml(name, services[name], st.project, paused);
      const s = serviceState(name, services[name], paused);
      tally[s] = (tally[s] || 0) + 1;
      let el = box.querySelector(`:scope > [data-service="${CSS.escape(name)}"]`);
      if (cards.get(name) !== html || !el) {
        const tpl = document.createElement("template");
        tpl.innerHTML = html;
        const fresh = tpl.content.firstElementChild;
        if (el) el.replaceWith(fresh);
        else box.insertBefore(fresh, prev ? prev.nextSibling : box.firstChild);
        el = fresh;
        cards.set(name, html);
      }
      prev = el;
    }
    const parts = Object.entries(tally).map(([k, n]) => `${n} ${k}`);
    $("summary").textContent = `${names.length} service${names.length === 1 ? "" : "s"} \u00b7 ${parts.join(" \u00b7 ")}`;
  }

  // ---------------------------------------------------------------- chart (inline SVG)
  // One band per service for its builds and rollouts (a bar to live, the build inside it) and
  // one for its syncs, which are two orders of magnitude shorter; each band has its own scale.
  function chartBands() {
    const bands = [];
    for (const name of [...state.history.keys()].sort()) {
      const rows = state.history.get(name);
      const jobs = rows.filter((r) => r.kind !== "sync" && (r.live ?? r.took ?? r.build) != null);
      const syncs = rows.filter((r) => r.kind === "sync" && r.sync != null);
      if (jobs.length) bands.push({ name, label: name, rows: jobs, value: (r) => r.live ?? r.took ?? r.build });
      if (syncs.length) bands.push({ name, label: jobs.length ? "sync" : `${name} sync`, rows: syncs, value: (r) => r.sync });
    }
    return bands;
  }
  function barsOf(band, x0, y0, h, barW) {
    const max = Math.max(...band.rows.map(band.value), 0.001);
    const scale = (v) => Math.max((v / max) * h, 1.5);
    return band.rows.map((r, j) => {
      const x = x0 + j * barW + 1;
      const w = Math.max(barW - 3, 2);
      const v = band.value(r);
      const tip =
        `${r.kind} ${r.result} ${clock(r.at)}` +
        (r.build != null ? `\nbuild ${secs(r.build)}` : "") +
        (r.live != null ? `\nedit to deployed ${secs(r.live)}` : "") +
        (r.sync != null ? `\nsync ${secs(r.sync)}` : "") +
        (r.took != null ? `\njob ${secs(r.took)}` : "");
      const failed = r.result !== "ok";
      const cls = failed ? "failed" : r.kind === "sync" ? "sync" : "live";
      let out = `<rect class="${cls}" data-kind="${r.kind === "sync" ? "sync" : "bar"}" x="${x}" y="${y0 - scale(v)}" width="${w}" height="${scale(v)}"><title>${esc(tip)}</title></rect>`;
      if (r.build != null && r.kind !== "sync" && !failed && r.live != null) {
        out += `<rect class="build" x="${x + w / 4}" y="${y0 - scale(r.build)}" width="${w / 2}" height="${scale(r.build)}"><title>${esc(tip)}</title></rect>`;
      }
      return out;
    });
  }
  function renderChart() {
    const box = $("chart");
    const bands = chartBands();
    if (!bands.length) {
      box.innerHTML = '<p class="muted empty">No builds yet.</p>';
      return;
    }
    const W = 520;
    const band = 50;
    const left = 86;
    const right = 96;
    const barW = (W - left - right) / CHART_MAX;
    const h = band - 16;
    const parts = [];
    let group = "";
    bands.forEach((b, i) => {
      const y0 = i * band + band - 6;
      if (b.name !== group) {
        if (group) parts.push("</g>");
        parts.push(`<g data-testid="chart-${esc(b.name)}">`);
        group = b.name;
      }
      const values = b.rows.map(b.value).sort((x, y) => x - y);
      const last = b.value(b.rows[b.rows.length - 1]);
      parts.push(`<text class="${b.label === b.name ? "svc" : ""}" x="0" y="${y0 - h / 2 + 4}">${esc(b.label)}</text>`);
      parts.push(`<line class="axis" x1="${left}" x2="${W - right}" y1="${y0}" y2="${y0}"/>`);
      parts.push(...barsOf(b, left, y0, h, barW));
      parts.push(`<text x="${W - right + 8}" y="${y0 - h + 10}">last ${esc(secs(last))}</text>`);
      parts.push(`<text x="${W - right + 8}" y="${y0 - h + 26}">median ${esc(secs(values[Math.floor(values.length / 2)]))}</text>`);
      parts.push(`<text x="${left - 6}" y="${y0 - h + 8}" text-anchor="end">${esc(secs(values[values.length - 1]))}</text>`);
    });
    parts.push("</g>");
    box.innerHTML = `<svg viewBox="0 0 ${W} ${bands.length * band}" role="img" aria-label="recent durations per service">${parts.join("")}</svg>`;
  }

  function renderJobs() {
    const rows = state.recent.map((r) => {
      const took = r.kind === "sync" ? secs(r.sync) : r.live != null ? `${r.build != null ? `${secs(r.build)} build, ` : ""}${secs(r.live)} to deployed` : secs(r.took);
      return (
        `<tr data-testid="job" data-kind="${esc(r.kind)}" data-service="${esc(r.service)}" title="${esc(r.note || "")}">` +
        `<td>${agoSpan(r.at)}</td><td>${esc(r.service)}</td><td>${esc(r.kind)}</td>` +
        `<td class="res-${esc(r.result)}">${esc(r.result)}</td><td class="num">${esc(took)}</td></tr>`
      );
    });
    $("jobs").innerHTML = rows.join("") || '<tr><td colspan="5" class="muted">nothing yet</td></tr>';
  }

  let historyTimer = null;
  function renderHistorySoon() {
    if (historyTimer) return;
    historyTimer = setTimeout(() => {
      historyTimer = null;
      renderChart();
      renderJobs();
      renderServices(); // a job started or finished changes a card's state
    }, 100);
  }

  // ---------------------------------------------------------------- header and banner
  function renderConn() {
    const el = $("conn");
    el.dataset.state = state.stream;
    el.querySelector(".label").textContent = { live: "live", down: "disconnected", connecting: "connecting" }[state.stream];
  }
  function renderHeader() {
    const st = state.status;
    if (!st) return;
    $("project").textContent = st.project || "?";
    document.title = `${st.project || "?"} \u00b7 compose-sidecar`;
    const beat = st.heartbeat;
    const el = $("daemon");
    el.classList.toggle("down", !st.alive);
    if (beat) {
      const up = num(beat.started) != null ? ` \u00b7 up ${ago(beat.started).replace(" ago", "")}` : "";
      el.textContent = `daemon ${st.alive ? "alive" : "unhealthy"} \u00b7 pid ${beat.pid} on ${beat.host} \u00b7 v${beat.version}${up}`;
    } else {
      el.textContent = "daemon not running";
    }
  }
  function renderBanner() {
    const lines = [];
    let severe = false;
    const st = state.status;
    if (state.statusError) {
      lines.push(`Cannot read the status from the daemon: ${state.statusError}.`);
      severe = true;
    } else if (st && !st.alive) {
      severe = true;
      const bad = Object.entries(st.threads || {}).filter(([, s]) => s !== "running");
      if (!st.heartbeat) lines.push("The daemon is not running: no heartbeat in Redis. Nothing is being built or healed.");
      else lines.push(`The daemon is unhealthy: ${bad.map(([n, s]) => `thread ${n} ${s}`).join("; ") || "a thread is not running"}.`);
    }
    if (state.stream === "down" || (state.stream === "connecting" && state.streamError)) {
      const wait = Math.max(0, Math.round((state.retryAt - Date.now()) / 1000));
      const when = state.stream === "down" ? `reconnecting in ${wait} s` : "reconnecting";
      const resume = state.lastId ? `, resuming after event ${state.lastId}` : "";
      lines.push(`Live events lost (${state.streamError}): ${when}${resume}.`);
    }
    const el = $("banner");
    el.hidden = !lines.length;
    el.classList.toggle("warn", !severe);
    el.dataset.kind = severe ? "daemon" : lines.length ? "stream" : "";
    el.innerHTML = lines.map((l) => `<div>${esc(l)}</div>`).join("");
  }
  function render() {
    renderHeader();
    renderBanner();
    renderServices();
  }

  // ---------------------------------------------------------------- commands
  function toast(kind, text) {
    const el = document.createElement("div");
    el.className = `toast ${kind}`;
    el.dataset.testid = "toast";
    el.textContent = text;
    $("toasts").appendChild(el);
    setTimeout(() => el.remove(), kind === "bad" ? 9000 : 5000);
  }
  async function command(body) {
    const key = `${body.action}:${body.service}`;
    if (state.pending.has(key)) return;
    state.pending.add(key);
    cards.clear();
    renderServices();
    const what = `${body.action} ${body.service}${body.replicas ? ` to ${body.replicas}` : ""}`;
    try {
      if (!token() && !(await askToken("Commands need the daemon's API token (setting http_token):"))) return;
      const res = await api(
        "v1/commands",
        { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) },
        true,
      );
      const doc = await res.json().catch(() => ({}));
      if (res.status === 200) toast(doc.ok ? "ok" : "bad", `${what}: ${doc.message || (doc.ok ? "done" : "refused")}`);
      else if (res.status === 202) toast("pending", `${what}: accepted, still running (command ${doc.id})`);
      else if (res.status === 401) toast("bad", `${what}: not authorized (the token was refused)`);
      else toast("bad", `${what}: HTTP ${res.status} ${doc.message || doc.error || ""}`);
    } catch (e) {
      toast("bad", `${what}: ${why(e)}`);
    } finally {
      state.pending.delete(key);
      cards.clear();
      renderServices();
      refreshSoon();
    }
  }
  function setupCommands() {
    $("services").addEventListener("click", (e) => {
      const b = e.target.closest("button[data-action]");
      if (!b || b.disabled) return;
      const body = { action: b.dataset.action, service: b.dataset.service };
      if (b.dataset.replicas) body.replicas = b.dataset.replicas;
      command(body);
    });
  }

  // ---------------------------------------------------------------- start
  function tick() {
    for (const el of document.querySelectorAll("[data-ago]")) el.textContent = ago(el.dataset.ago);
    if (state.stream === "down") renderBanner();
  }
  function start() {
    setupTokenDialog();
    setupCommands();
    renderTokenButton();
    $("log-filter").addEventListener("input", () => {
      for (const li of $("log").children) li.classList.toggle("hidden", !matchesFilter(li));
    });
    setInterval(tick, 1000); // relative times and the reconnect countdown only: no request
    loadStatus();
    stream();
  }
  start();
})();
