// The tributary console: polls the one shared snapshot, draws it, and sends admin actions with
// the token kept in this variable only (never a cookie, the URL or storage).
"use strict";
(function () {
  let token = null;
  let snapshot = null;
  let cursor = null;
  let dryRunFilter = null;
  const $ = (id) => document.getElementById(id);

  function text(el, value) { el.textContent = value == null ? "" : String(value); }
  function cell(tr, value, cls) { const td = document.createElement("td"); text(td, value); if (cls) td.className = cls; tr.appendChild(td); return td; }
  function duration(s) {
    s = Math.floor(s);
    const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
    return (d ? d + "d " : "") + (d || h ? h + "h " : "") + m + "m " + (s % 60) + "s";
  }
  function ago(iso) {
    if (!iso) return "never";
    const s = (Date.now() - Date.parse(iso)) / 1000;
    return s < 1 ? "just now" : duration(s) + " ago";
  }
  function setBadge(el, label, cls) { text(el, label); el.className = "badge " + cls; }

  async function api(method, path, body) {
    const headers = {};
    if (token) headers.Authorization = "Bearer " + token;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: "no-store" });
    let data = null;
    try { data = await r.json(); } catch (_) { data = null; }
    return { status: r.status, data };
  }
  function refused(r) { return "HTTP " + r.status + ": " + (r.data && r.data.error ? r.data.error : "no answer"); }

  function draw(canvas, series, lines) {
    const ctx = canvas.getContext("2d");
    const w = canvas.width, h = canvas.height, pad = 22;
    ctx.clearRect(0, 0, w, h);
    const css = getComputedStyle(document.documentElement);
    const color = (name) => css.getPropertyValue(name).trim();
    ctx.strokeStyle = color("--line");
    ctx.strokeRect(pad, 4, w - pad - 4, h - pad - 4);
    if (series.length < 2) return;
    const t0 = series[0].t, t1 = series[series.length - 1].t;
    const max = Math.max(1, ...series.flatMap((p) => lines.map((l) => p[l.key])));
    ctx.fillStyle = color("--muted");
    ctx.font = "11px system-ui, sans-serif";
    ctx.fillText(String(Math.round(max)), 2, 14);
    ctx.fillText("0", 2, h - pad);
    for (const l of lines) {
      ctx.strokeStyle = color(l.color);
      ctx.lineWidth = 2;
      ctx.beginPath();
      series.forEach((p, i) => {
        const x = pad + (w - pad - 4) * ((p.t - t0) / Math.max(1, t1 - t0));
        const y = 4 + (h - pad - 4) * (1 - p[l.key] / max);
        if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
      });
      ctx.stroke();
    }
  }

  function render(s) {
    snapshot = s;
    const st = s.status;
    setBadge($("ready"), st.ready ? "ready" : "not ready", st.ready ? "ok" : "bad");
    text($("reasons"), st.ready ? "" : "Not ready: " + (st.reasons || []).join("; "));
    setBadge($("breaker"), st.breaker.open ? "breaker open" : "breaker closed", st.breaker.open ? "bad" : "ok");
    setBadge($("paused"), st.paused ? "paused" : "consuming", st.paused ? "warn" : "ok");
    text($("version"), "version " + st.version);
    text($("uptime"), "up " + duration(st.uptime_seconds));
    $("stale").hidden = Date.now() - Date.parse(s.at) < 10000;

    const parts = $("partitions").tBodies[0];
    parts.replaceChildren();
    for (const p of st.partitions) {
      const tr = document.createElement("tr");
      [p.topic, p.partition, p.next_offset, p.high_watermark, p.lag].forEach((v) => cell(tr, v));
      cell(tr, ago(p.last_commit));
      cell(tr, "this instance (" + st.group_id + ")");
      parts.appendChild(tr);
    }
    if (!st.partitions.length) { const tr = document.createElement("tr"); cell(tr, "no partition assigned to this instance").colSpan = 7; parts.appendChild(tr); }

    const reached = $("tables-reached");
    reached.replaceChildren();
    const templates = Object.entries(st.tables_reached || {});
    if (!templates.length) { const li = document.createElement("li"); text(li, "none (no template projection has written a table)"); reached.appendChild(li); }
    for (const [projection, tables] of templates) { const li = document.createElement("li"); text(li, projection + ": " + tables.join(", ")); reached.appendChild(li); }

    const actors = $("actors").tBodies[0];
    actors.replaceChildren();
    for (const [name, a] of Object.entries(st.actors)) {
      const tr = document.createElement("tr");
      cell(tr, name); cell(tr, a.state); cell(tr, a.restarts); cell(tr, a.last_error || "", "wrap");
      const td = document.createElement("td");
      const b = document.createElement("button");
      b.type = "button"; b.dataset.admin = ""; b.dataset.actor = name;
      text(b, "Restart"); b.setAttribute("aria-label", "restart " + name);
      b.addEventListener("click", () => restart(name));
      td.appendChild(b); tr.appendChild(td); actors.appendChild(tr);
    }

    const reasons = $("by-reason");
    reasons.replaceChildren();
    const entries = Object.entries(s.dead_letters_by_reason || {});
    if (!entries.length) { const li = document.createElement("li"); text(li, "none"); reasons.appendChild(li); }
    for (const [reason, n] of entries) { const li = document.createElement("li"); text(li, reason + " " + n); reasons.appendChild(li); }

    const series = s.series || [];
    const last = series[series.length - 1] || {};
    text($("rate-now"), last.events_per_s == null ? "–" : last.events_per_s.toFixed(0));
    text($("dead-now"), last.dead_letters_per_s == null ? "–" : last.dead_letters_per_s.toFixed(1));
    text($("lag-now"), last.lag == null ? "–" : last.lag);
    const lat = s.commit_latency_ms || {};
    text($("p50"), lat.p50 == null ? "–" : "≤ " + lat.p50 + " ms");
    text($("p99"), lat.p99 == null ? "–" : "≤ " + lat.p99 + " ms");
    draw($("rate-chart"), series, [{ key: "events_per_s", color: "--ev" }, { key: "dead_letters_per_s", color: "--dl" }]);
    draw($("lag-chart"), series, [{ key: "lag", color: "--lag" }]);
    gate();
  }

  // Admin controls: off (and saying why) without a configured token, or until one is given.
  function gate() {
    const configured = snapshot ? snapshot.admin : false;
    $("admin-off").hidden = configured;
    $("token-form").hidden = !configured;
    for (const el of document.querySelectorAll("[data-admin]")) {
      if (el.id === "redrive-real") { el.disabled = !(configured && token && dryRunFilter); continue; }
      if (el.id === "dl-next") { el.disabled = !(configured && token && cursor); continue; }
      el.disabled = !(configured && token);
      el.title = configured ? (token ? "" : "give the admin token first") : "no http.admin_token configured";
    }
  }

  async function poll() {
    try {
      const r = await fetch("/console/snapshot", { cache: "no-store" });
      if (r.ok) render(await r.json());
    } catch (_) { $("stale").hidden = false; }
  }

  async function restart(name) {
    const r = await api("POST", "/actors/" + encodeURIComponent(name) + "/restart");
    text($("admin-answer"), r.status === 202 ? "restarting " + name : refused(r));
  }

  async function setPaused(paused) {
    const r = await api("POST", paused ? "/pause" : "/resume");
    text($("admin-answer"), r.status === 200 ? (paused ? "paused" : "resumed") : refused(r));
    poll();
  }

  function filter() {
    const f = {};
    const reason = $("f-reason").value.trim(), topic = $("f-topic").value.trim(), partition = $("f-partition").value.trim();
    if (reason) f.reason = reason;
    if (topic) f.topic = topic;
    if (partition) f.partition = Number(partition);
    return f;
  }

  async function list(after) {
    const q = new URLSearchParams(Object.entries(filter()).map(([k, v]) => [k, String(v)]));
    q.set("limit", "50");
    if (after) q.set("after", after);
    const r = await api("GET", "/dead-letters?" + q.toString());
    const body = $("dead-letters").tBodies[0];
    body.replaceChildren();
    if (r.status !== 200) { const tr = document.createElement("tr"); cell(tr, refused(r)).colSpan = 6; body.appendChild(tr); cursor = null; gate(); return; }
    for (const d of r.data.items) {
      const tr = document.createElement("tr");
      tr.className = "link"; tr.tabIndex = 0;
      const key = d.topic + "/" + d.partition + "/" + d.offset;
      [key, d.reason, d.sqlstate || "", d.failed_at, d.payload_bytes, d.redriven_at || ""].forEach((v) => cell(tr, v));
      const open = () => one(d.topic, d.partition, d.offset);
      tr.addEventListener("click", open);
      tr.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); open(); } });
      body.appendChild(tr);
    }
    if (!r.data.items.length) { const tr = document.createElement("tr"); cell(tr, "no dead letter matches").colSpan = 6; body.appendChild(tr); }
    cursor = r.data.next;
    gate();
  }

  let payload = null;
  let decoded = null;
  function showPayload() {
    const view = $("dl-view").value;
    if (view === "decoded") {
      if (!decoded) { text($("dl-payload"), "(not in the schema registry's wire format, or no registry configured)"); return; }
      const head = "schema " + decoded.schema_id + (decoded.schema_type ? " (" + decoded.schema_type + ")" : "") +
        (decoded.subjects.length ? ", registered as " + decoded.subjects.join(", ") : "");
      text($("dl-payload"), head + "\n\n" + (decoded.error ? "does not decode: " + decoded.error : JSON.stringify(decoded.value, null, 2)));
      return;
    }
    if (payload == null) { text($("dl-payload"), "(no payload)"); return; }
    const bytes = Uint8Array.from(atob(payload), (c) => c.charCodeAt(0));
    if (view === "hex") {
      const lines = [];
      for (let i = 0; i < bytes.length; i += 16) {
        const row = Array.from(bytes.slice(i, i + 16));
        lines.push(i.toString(16).padStart(8, "0") + "  " + row.map((b) => b.toString(16).padStart(2, "0")).join(" "));
      }
      text($("dl-payload"), lines.join("\n"));
      return;
    }
    const decoded = new TextDecoder("utf-8", { fatal: false }).decode(bytes);
    if (view === "json") {
      try { text($("dl-payload"), JSON.stringify(JSON.parse(decoded), null, 2)); } catch (e) { text($("dl-payload"), "not JSON (" + e.message + ")\n\n" + decoded); }
      return;
    }
    text($("dl-payload"), decoded);
  }

  async function one(topic, partition, offset) {
    const r = await api("GET", "/dead-letters/" + encodeURIComponent(topic) + "/" + partition + "/" + offset);
    $("dl-one").hidden = false;
    text($("dl-one-h"), topic + "/" + partition + "/" + offset);
    if (r.status !== 200) { text($("dl-detail"), refused(r)); return; }
    const d = r.data;
    text($("dl-reason"), d.reason);
    text($("dl-detail"), d.detail);
    text($("dl-sqlstate"), d.sqlstate || "–");
    text($("dl-headers"), JSON.stringify(d.headers, null, 2));
    payload = d.payload_base64;
    decoded = d.decoded || null;
    let json = false;
    try { JSON.parse(new TextDecoder().decode(Uint8Array.from(atob(payload || ""), (c) => c.charCodeAt(0)))); json = true; } catch (_) { json = false; }
    $("dl-view").value = decoded ? "decoded" : json ? "json" : "text";
    showPayload();
    $("dl-one-h").scrollIntoView({ block: "nearest" });
  }

  async function redrive(dryRun) {
    const f = dryRun ? filter() : dryRunFilter;
    const r = await api("POST", "/dead-letters/redrive", Object.assign({}, f, { dry_run: dryRun }));
    text($("redrive-answer"), (dryRun ? "Dry run: " : "Redriven: ") + (r.status === 200 ? JSON.stringify(r.data, null, 2) : refused(r)));
    dryRunFilter = dryRun && r.status === 200 ? f : null;
    gate();
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("token-form").addEventListener("submit", (e) => {
      e.preventDefault();
      token = $("token").value || null;
      $("token").value = "";
      text($("token-state"), token ? "token set for this tab" : "no token");
      gate();
    });
    $("pause").addEventListener("click", () => setPaused(true));
    $("resume").addEventListener("click", () => setPaused(false));
    $("dl-filter").addEventListener("submit", (e) => { e.preventDefault(); list(null); });
    $("dl-next").addEventListener("click", () => list(cursor));
    $("dl-view").addEventListener("change", showPayload);
    $("redrive-dry").addEventListener("click", () => redrive(true));
    $("redrive-real").addEventListener("click", () => redrive(false));
    gate();
    poll();
    setInterval(poll, 2000);
  });
})();
