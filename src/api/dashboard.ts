/**
 * The built-in HMI page served at `/`: one self-contained HTML file (no build step, no external assets — the
 * industrial PC has no internet). It logs in through `POST /api/auth/login`, keeps the token in sessionStorage,
 * reads `GET /api/tags` once and then follows `pipeline_result` over the WebSocket. It shows what the daemon
 * really has: live tag values against their bands, MIK-1 inspection counts, every pipeline stage with its status
 * (including "unavailable" and why), a few physics features and the quarantine counts.
 */
export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>glassd — Glass AI Edge</title>
<style>
  :root { --bg:#0f1419; --panel:#182029; --text:#e6edf3; --muted:#8b98a5; --ok:#3fb950; --warn:#d29922; --bad:#f85149; --accent:#58a6ff; }
  * { box-sizing: border-box; }
  body { margin:0; font:14px/1.4 system-ui, sans-serif; background:var(--bg); color:var(--text); }
  header { display:flex; gap:16px; align-items:center; padding:10px 16px; background:var(--panel); border-bottom:1px solid #2d3742; }
  header h1 { font-size:16px; margin:0; }
  .pill { padding:2px 8px; border-radius:10px; font-size:12px; background:#2d3742; }
  .pill.ok { background:#1f3d2a; color:var(--ok); } .pill.bad { background:#44201f; color:var(--bad); } .pill.warn { background:#3d3218; color:var(--warn); }
  main { padding:16px; display:grid; gap:16px; grid-template-columns: repeat(auto-fit, minmax(360px, 1fr)); }
  section { background:var(--panel); border-radius:8px; padding:12px 14px; }
  section h2 { font-size:13px; text-transform:uppercase; letter-spacing:.05em; color:var(--muted); margin:0 0 8px; }
  table { width:100%; border-collapse:collapse; }
  td, th { padding:3px 4px; text-align:left; border-bottom:1px solid #222c36; font-variant-numeric: tabular-nums; }
  th { color:var(--muted); font-weight:normal; }
  td.num { text-align:right; }
  .out { color:var(--bad); font-weight:600; } .unavailable { color:var(--warn); } .error { color:var(--bad); }
  .band { position:relative; height:6px; background:#2d3742; border-radius:3px; min-width:80px; }
  .band i { position:absolute; top:-2px; width:3px; height:10px; background:var(--accent); }
  .band b { position:absolute; top:0; height:6px; background:#1f3d2a; }
  #login { max-width:320px; margin:80px auto; background:var(--panel); padding:20px; border-radius:8px; }
  #login input, #login button { width:100%; margin:6px 0; padding:8px; border-radius:4px; border:1px solid #2d3742; background:#0f1419; color:var(--text); }
  #login button { background:#238636; border:none; cursor:pointer; }
  #banner { display:none; padding:8px 16px; background:#44201f; color:var(--bad); }
  .muted { color:var(--muted); }
</style>
</head>
<body>
<div id="login">
  <h2>glassd — log in</h2>
  <form id="login-form">
    <input id="username" name="username" placeholder="username" autocomplete="username" required>
    <input id="password" name="password" type="password" placeholder="password" autocomplete="current-password" required>
    <button type="submit">Log in</button>
    <div id="login-error" class="error"></div>
  </form>
</div>
<div id="app" hidden>
  <header>
    <h1>glassd <span id="line" class="muted"></span></h1>
    <span id="health" class="pill">health …</span>
    <span id="ws" class="pill">live …</span>
    <span id="tick" class="muted"></span>
    <span style="flex:1"></span>
    <span id="who" class="muted"></span>
  </header>
  <div id="banner"></div>
  <main>
    <section><h2>Line tags</h2><p id="graphwhy" class="muted"></p><table id="tags"><thead><tr><th>tag</th><th class="num">value</th><th>unit</th><th>normal band</th><th class="num">age s</th><th class="num" title="sensor-graph model: probability that this sensor is faulty">sensor fault p</th></tr></thead><tbody></tbody></table></section>
    <section><h2>MIK-1 inspection (last hour)</h2><div id="inspection"></div><table id="defects"><tbody></tbody></table></section>
    <section><h2>Defect risk (models)</h2><p id="riskwhy" class="muted"></p><table id="risk"><thead><tr><th>class</th><th class="num">risk</th><th class="num">p +15 min</th><th class="num">p +60 min</th><th class="num">p +240 min</th><th class="num">± (60 min)</th><th class="num">vision, 15 min</th></tr></thead><tbody></tbody></table></section>
    <section><h2>Pipeline stages</h2><table id="stages"><thead><tr><th>stage</th><th>status</th><th class="num">ms</th><th>note</th></tr></thead><tbody></tbody></table></section>
    <section><h2>Glass physics</h2><table id="physics"><tbody></tbody></table></section>
    <section><h2>Ingest</h2><table id="ingest"><tbody></tbody></table></section>
  </main>
</div>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
const fmt = (v, d = 2) => (v === null || v === undefined || Number.isNaN(v) ? "—" : Number(v).toFixed(d));
let token = sessionStorage.getItem("glassd_token");
let tags = [];

async function api(path, init = {}) {
  const res = await fetch(path, { ...init, headers: { ...(init.headers || {}), authorization: "Bearer " + token } });
  if (res.status === 401) { logout(); throw new Error("session expired"); }
  return res;
}
function logout() { sessionStorage.removeItem("glassd_token"); token = null; $("app").hidden = true; $("login").hidden = false; }

$("login-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  $("login-error").textContent = "";
  const res = await fetch("/api/auth/login", { method: "POST", headers: { "content-type": "application/json" },
    body: JSON.stringify({ username: $("username").value, password: $("password").value }) });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) { $("login-error").textContent = body.message || ("login failed: " + res.status); return; }
  token = body.token; sessionStorage.setItem("glassd_token", token);
  $("who").textContent = $("username").value + " (" + body.role + ")";
  start();
});

async function start() {
  $("login").hidden = true; $("app").hidden = false;
  const t = await (await api("/api/tags")).json();
  tags = t.tags; $("line").textContent = t.line_id;
  const latest = await api("/api/pipeline/latest");
  if (latest.ok) render(await latest.json());
  connect(); health(); setInterval(health, 5000);
}

async function health() {
  const h = await (await fetch("/health")).json();
  const el = $("health");
  el.textContent = "health: " + h.status; el.className = "pill " + (h.status === "ok" ? "ok" : h.status === "safe_mode" ? "bad" : "warn");
  const b = $("banner");
  if (h.safe_mode) { b.style.display = "block"; b.textContent = "SAFE MODE — invalid configuration: " + h.config_errors.map((i) => i.path + ": " + i.message).join("; "); }
  else b.style.display = "none";
}

function connect() {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(proto + "//" + location.host + "/ws?token=" + encodeURIComponent(token));
  const el = $("ws");
  ws.onopen = () => { el.textContent = "live"; el.className = "pill ok"; };
  ws.onclose = () => { el.textContent = "disconnected — retrying"; el.className = "pill bad"; if (token) setTimeout(connect, 2000); };
  ws.onmessage = (m) => { const msg = JSON.parse(m.data); if (msg.type === "pipeline_result") render(msg.data); };
}

function band(t, v) {
  const lo = t.limits.min, hi = t.limits.max, span = hi - lo || 1;
  const l = ((t.normal.min - lo) / span) * 100, w = ((t.normal.max - t.normal.min) / span) * 100;
  const x = v === null ? -10 : Math.min(100, Math.max(0, ((v - lo) / span) * 100));
  return '<div class="band" title="normal ' + t.normal.min + "–" + t.normal.max + ", limits " + lo + "–" + hi + '"><b style="left:' + l + "%;width:" + w + '%"></b><i style="left:' + x + '%"></i></div>';
}

function render(r) {
  $("tick").textContent = "tick " + r.tick + " · " + r.timestamp + " · " + fmt(r.performance_metrics.total_latency_ms, 2) + " ms";
  // Sensor graph: per-sensor fault probability next to each tag, the process-anomaly probability above; or why not.
  const pr = r.predictions || {};
  const sg = pr.sensor_graph && pr.sensor_graph.status === "ok" ? pr.sensor_graph : null;
  $("graphwhy").textContent = sg ? sg.model + " · process anomaly p " + (typeof sg.graph_score === "number" ? (sg.graph_score * 100).toFixed(1) + " %" : "—") : pr.sensor_graph && pr.sensor_graph.reason ? "sensor graph: " + pr.sensor_graph.reason : "";
  const fp = (id) => { const x = sg && sg.node_scores ? sg.node_scores[id] : undefined; return typeof x === "number" ? '<td class="num ' + (x >= 0.5 ? "out" : "") + '">' + (x * 100).toFixed(1) + " %</td>" : '<td class="num">—</td>'; };
  $("tags").tBodies[0].innerHTML = tags.map((t) => {
    const v = r.sensor_data[t.id];
    const out = v !== null && (v < t.normal.min || v > t.normal.max);
    return '<tr data-tag="' + esc(t.id) + '"><td>' + esc(t.id) + '</td><td class="num ' + (out ? "out" : "") + '">' + fmt(v, 2) + "</td><td>" + esc(t.unit) + "</td><td>" + band(t, v) + '</td><td class="num">' + fmt(r.sensor_age_s[t.id], 0) + "</td>" + fp(t.id) + "</tr>";
  }).join("");
  const i = r.inspection;
  $("inspection").innerHTML = "<p>" + i.items_inspected + " items, " + i.defective_items + " defective (" + (i.defect_rate === null ? "—" : (i.defect_rate * 100).toFixed(2) + " %") + "), quality " + fmt(i.quality_score, 3) + "</p>";
  $("defects").tBodies[0].innerHTML = Object.entries(i.defects_per_class).map(([c, n]) => "<tr><td>" + esc(c) + '</td><td class="num">' + n + "</td></tr>").join("");
  $("stages").tBodies[0].innerHTML = Object.entries(r.stages).map(([s, x]) => '<tr data-stage="' + esc(s) + '"><td>' + esc(s) + '</td><td class="' + esc(x.status) + '">' + esc(x.status) + '</td><td class="num">' + fmt(x.latency_ms, 3) + "</td><td class=muted>" + esc(x.reason || "") + "</td></tr>").join("");
  // Models: the ensemble's calibrated risk and the forecaster's per-item probability per horizon; otherwise why not.
  const p = r.predictions || {};
  const fc = p.forecast && p.forecast.status === "ok" ? p.forecast : null;
  const rk = p.risk && p.risk.status === "ok" ? p.risk : null;
  const vi = p.vision && p.vision.status === "ok" ? p.vision : null;
  $("riskwhy").textContent = [rk ? rk.model + (rk.calibrated ? " (calibrated)" : "") : "", fc ? fc.model : "", vi ? vi.model + " on " + vi.frames + " frames" : "", p.reason || ""].filter(Boolean).join(" · ");
  const classes = fc ? Object.keys(fc.probability["60"] || {}) : rk ? Object.keys(rk.per_class) : vi ? Object.keys(vi.rate) : [];
  const pct = (v) => (typeof v === "number" ? (v * 100).toFixed(2) + " %" : "—");
  $("risk").tBodies[0].innerHTML = classes.map((c) => '<tr data-class="' + esc(c) + '"><td>' + esc(c) + '</td><td class="num">' + pct(rk && rk.per_class[c]) + '</td><td class="num">' + pct(fc && fc.probability["15"] && fc.probability["15"][c]) + '</td><td class="num">' + pct(fc && fc.probability["60"] && fc.probability["60"][c]) + '</td><td class="num">' + pct(fc && fc.probability["240"] && fc.probability["240"][c]) + '</td><td class="num muted">' + pct(fc && fc.uncertainty && fc.uncertainty["60"] && fc.uncertainty["60"][c]) + '</td><td class="num">' + pct(vi && vi.rate[c]) + "</td></tr>").join("");
  const f = r.engineered_features;
  const phys = [["viscosity log10 η (Pa·s)", "domain.viscosity_log10", 2], ["furnace→mold gradient °C", "domain.gradient_furnace_mold_c", 0], ["annealing score", "domain.annealing_score", 3], ["cooling stress MPa", "domain.cooling_stress_mpa", 3], ["process stability index", "domain.stability_index", 3]];
  $("physics").tBodies[0].innerHTML = phys.map(([l, k, d]) => "<tr><td>" + l + '</td><td class="num">' + fmt(f[k], d) + "</td></tr>").join("");
  const g = r.ingest;
  $("ingest").tBodies[0].innerHTML = "<tr><td>accepted this tick</td><td class=num>" + g.accepted + "</td></tr><tr><td>rejected this tick</td><td class=num>" + g.rejected + "</td></tr>" +
    Object.entries(g.rejected_by_reason).map(([k, n]) => "<tr><td class=muted>" + esc(k) + "</td><td class=num>" + n + "</td></tr>").join("");
}

if (token) start().catch(logout);
</script>
</body>
</html>
`;
