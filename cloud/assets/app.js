// gridtwin cloud dashboard: vanilla JS, no external requests. The bearer token lives in sessionStorage (or
// comes in the URL fragment as #token=...); live updates are server-sent events read through fetch.
'use strict';
const $ = (id) => document.getElementById(id);
// lmus: key 'gateway/lmu' -> latest view; sorted: the views in id order (null: re-sort), at: key -> index in
// sorted; changed: keys updated since the last render; newest: latest reading time seen.
const S = { token: null, user: null, lmus: new Map(), sorted: null, at: new Map(), changed: new Set(), newest: 0,
  faults: [], faultsDirty: true, series: [], selected: null, counters: {}, kpis: null, page: 0, shown: '', rows: new Map() };
const MAX_SERIES = 5000, MAX_FAULTS = 300, MAX_ROWS = 100, MAX_ONELINE = 120;
// Responsiveness as measured by the page itself (read by tests through data attributes on <body>):
// data-first-render-ms: performance.now() when the operator view was first drawn with every LMU;
// data-apply-ms: time from an update's arrival (its SSE event parsed) to the frame that shows it;
// data-applied-at: wall clock (ms) of that frame.

function authHeaders() { return { 'Authorization': 'Bearer ' + S.token }; }
async function api(path, opts = {}) {
  const r = await fetch(path, { ...opts, headers: { ...(opts.headers || {}), ...authHeaders(), 'Content-Type': 'application/json' } });
  const body = await r.json().catch(() => ({}));
  if (r.status === 401) { logout(); throw new Error(body.error || 'unauthorised'); }
  if (!r.ok) throw new Error(body.error || ('HTTP ' + r.status));
  return body;
}
function fmtTime(ms) {
  if (ms > 1e12) return new Date(ms).toLocaleTimeString();
  const m = Math.floor(ms / 60000), h = Math.floor(m / 60);
  return h + ':' + String(m % 60).padStart(2, '0');
}
const fix = (x, n) => (x == null || isNaN(x)) ? '-' : Number(x).toFixed(n);
function el(tag, cls, text) { const e = document.createElement(tag); if (cls) e.className = cls; if (text != null) e.textContent = text; return e; }

// ---------- login ----------
async function login(ev) {
  ev.preventDefault();
  $('login-error').textContent = '';
  try {
    const r = await fetch('/api/login', { method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ user: $('login-user').value, password: $('login-password').value }) });
    const b = await r.json();
    if (!r.ok) throw new Error(b.error || 'login failed');
    S.token = b.token; sessionStorage.setItem('gt_token', b.token);
    start();
  } catch (e) { $('login-error').textContent = e.message; }
}
function logout() {
  if (S.token) fetch('/api/logout', { method: 'POST', headers: authHeaders() }).catch(() => {});
  S.token = null; sessionStorage.removeItem('gt_token');
  for (const id of ['operator', 'customer', 'producer']) $(id).classList.add('hidden');
  $('login').classList.remove('hidden'); $('logout').classList.add('hidden'); $('who').textContent = '';
}

async function start() {
  let me;
  try { me = await api('/api/me'); } catch (e) { return; }
  S.user = me.user;
  $('login').classList.add('hidden'); $('logout').classList.remove('hidden');
  $('who').textContent = me.user.name + ' (' + me.user.group + ')';
  // One badge: a finished run says so; a live service shows its stream's state (live / reconnecting).
  if (me.mode === 'serve') { $('mode').textContent = 'finished run'; $('mode').classList.remove('hidden'); $('live-state').classList.add('hidden'); }
  if (me.user.group === 'operator') await startOperator();
  else if (me.user.group === 'customer') await startCustomer();
  else await startProducer();
  if (me.mode === 'live' && me.user.group !== 'producer') stream();
}

// ---------- live stream ----------
async function stream() {
  try {
    const r = await fetch('/api/stream' + (S.streamS ? '?max_s=' + S.streamS : ''), { headers: authHeaders() });
    if (!r.ok) throw new Error('HTTP ' + r.status);
    $('live-state').textContent = 'live'; $('live-state').classList.add('on');
    const rd = r.body.getReader(), dec = new TextDecoder();
    let buf = '';
    for (;;) {
      const { value, done } = await rd.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let i;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const chunk = buf.slice(0, i); buf = buf.slice(i + 2);
        const data = chunk.split('\n').filter(l => l.startsWith('data:')).map(l => l.slice(5).replace(/^ /, '')).join('\n');
        if (data) { if (S.arrived == null) S.arrived = performance.now(); onUpdate(JSON.parse(data)); }
      }
    }
  } catch (e) { /* reconnect below */ }
  $('live-state').textContent = 'reconnecting'; $('live-state').classList.remove('on');
  if (S.token) setTimeout(stream, 2000);
}
let pending = false;
function setLmu(v) {
  const k = v.gateway + '/' + v.lmu;
  if (!S.lmus.has(k)) S.sorted = null;
  else if (S.sorted) S.sorted[S.at.get(k)] = v;
  S.lmus.set(k, v); S.changed.add(k);
  if (v.generated_ms > S.newest) S.newest = v.generated_ms;
}
function sortedLmus() {
  if (!S.sorted) {
    S.sorted = [...S.lmus.values()].sort((a, b) => a.lmu - b.lmu || a.gateway.localeCompare(b.gateway));
    S.at = new Map(S.sorted.map((v, i) => [v.gateway + '/' + v.lmu, i]));
  }
  return S.sorted;
}
function onUpdate(u) {
  for (const v of u.lmus || []) {
    setLmu(v);
    if (S.selected === v.lmu) { S.series.push({ t: v.generated_ms, v: v.v_v }); if (S.series.length > MAX_SERIES) S.series.shift(); S.seriesDirty = true; }
  }
  for (const f of u.faults || []) { S.faults.push(f); if (S.faults.length > MAX_FAULTS) S.faults.shift(); S.faultsDirty = true; }
  if (u.counters) S.counters = u.counters;
  if (u.kpis) S.kpis = u.kpis;
  // A page opened before the first reading picks the first LMU for the time series once one reports.
  if (S.selected == null && S.user && S.user.group === 'operator' && S.lmus.size) {
    S.selected = sortedLmus()[0].lmu;
    selectLmu(S.selected).catch(() => {});
  }
  S.updates = (S.updates || 0) + 1;
  document.body.dataset.updates = S.updates;
  if (!pending) { pending = true; requestAnimationFrame(() => { pending = false; render(); }); }
}
function render() {
  if (!S.user) return;
  if (S.user.group === 'operator') renderOperator(); else if (S.user.group === 'customer') renderCustomer();
  if (S.arrived != null) {
    document.body.dataset.applyMs = (performance.now() - S.arrived).toFixed(1);
    document.body.dataset.appliedAt = Date.now();
    S.arrived = null;
  }
}

// ---------- operator ----------
async function startOperator() {
  $('operator').classList.remove('hidden');
  const [l, s, f, mesh, market] = await Promise.all([api('/api/lmus'), api('/api/summary?per_lmu=0'), api('/api/faults'), api('/api/mesh'), api('/api/market')]);
  S.lmus = new Map(); S.sorted = null;
  for (const v of l.lmus) setLmu(v);
  S.faults = f.faults.slice(-MAX_FAULTS);
  S.counters = s.counters; S.kpis = s.kpis; S.mesh = mesh.nodes; S.market = market;
  if (S.lmus.size && S.selected == null) await selectLmu(sortedLmus()[0].lmu);
  $('lmu-filter').addEventListener('input', () => { S.page = 0; renderTable(true); });
  $('page-prev').addEventListener('click', () => { S.page = Math.max(0, S.page - 1); renderTable(true); });
  $('page-next').addEventListener('click', () => { S.page += 1; renderTable(true); });
  drawMarket();
  renderOperator(true);
  document.body.dataset.firstRenderMs = performance.now().toFixed(0);
}
async function selectLmu(lmu) {
  S.selected = lmu;
  const r = await api('/api/readings?lmu=' + lmu + '&limit=' + MAX_SERIES);
  S.series = r.readings.map(x => ({ t: x.generated_ms, v: x.v_cv.map(c => c / 100) }));
  $('series-title').textContent = 'LMU ' + lmu;
  drawSeries($('series'), S.series);
}
function renderKpis() {
  const c = S.counters || {}, k = S.kpis || {};
  $('kpi-lmus').textContent = S.lmus.size;
  $('kpi-readings').textContent = c.readings_inserted ?? 0;
  $('kpi-dups').textContent = c.duplicates_ignored ?? 0;
  $('kpi-malformed').textContent = c.malformed ?? 0;
  $('kpi-commands').textContent = c.commands_sent ?? 0;
  $('kpi-saifi').textContent = fix(k.saifi, 3);
  $('kpi-saidi').textContent = fix(k.saidi_min, k.saidi_min < 10 ? 3 : 1);
  // The share fits the box at any scale; the counts go in the label.
  $('kpi-en50160').textContent = k.lmus ? fix(100 * k.en50160_compliant / k.lmus, 1) + ' %' : '-';
  $('kpi-en50160-n').textContent = k.lmus ? '(' + k.en50160_compliant + ' of ' + k.lmus + ' LMUs)' : '';
}
function lmuState(v, newest) {
  if (v.open) return 'open';
  if (S.counters && newest - v.generated_ms > 3 * 15 * 60000) return 'stale';
  // Reporting, contactor closed, but no phase above half the nominal 230 V: the LMU's section lost supply.
  if (Array.isArray(v.v_v) && v.v_v.length && v.v_v.every(x => x < 115)) return 'nosupply';
  return 'closed';
}
// Redraws what the updates since the last frame touched: the map (one canvas, one path per state) always, the
// one-line and the table's rows only where a shown LMU changed, the fault list only when it grew.
function renderOperator(all) {
  renderKpis();
  const list = sortedLmus(), newest = S.newest;
  drawMesh(list, newest);
  const changed = S.changed; S.changed = new Set();
  const oneLine = list.slice(0, MAX_ONELINE);
  if (all || oneLine.some(v => changed.has(v.gateway + '/' + v.lmu)) || $('oneline').childElementCount !== Math.min(list.length, MAX_ONELINE) + (list.length > MAX_ONELINE)) renderOneLine(list, newest);
  renderTable(all, changed);
  if (all || S.faultsDirty) { renderFaults($('faults'), S.faults); S.faultsDirty = false; }
  if (all || S.seriesDirty) { drawSeries($('series'), S.series); S.seriesDirty = false; }
}
function renderOneLine(all, newest) {
  const box = $('oneline'); box.textContent = '';
  for (const v of all.slice(0, MAX_ONELINE)) {
    const st = lmuState(v, newest);
    const n = el('div', 'node ' + st);
    n.id = 'one-' + v.lmu;
    n.appendChild(el('div', 'sym', st === 'open' ? '⊸' : '●'));
    n.appendChild(el('div', null, 'LMU ' + v.lmu));
    n.appendChild(el('div', 'v', fix(v.v_v[0], 1) + ' V'));
    n.title = 'contactor ' + (v.open ? 'open' : 'closed');
    n.addEventListener('click', () => selectLmu(v.lmu));
    box.appendChild(n);
  }
  if (all.length > MAX_ONELINE) box.appendChild(el('div', 'node muted', '+' + (all.length - MAX_ONELINE) + ' more (table below)'));
}
// The table shows one page of MAX_ROWS LMUs; rows are built when the page's LMUs change and otherwise updated
// in place (so a button under the pointer stays the same element while updates stream in).
function renderTable(force, changed) {
  const q = $('lmu-filter').value.trim();
  const all = sortedLmus();
  const rows = q ? all.filter(v => String(v.lmu) === q || v.gateway.includes(q)) : all;
  const pages = Math.max(1, Math.ceil(rows.length / MAX_ROWS));
  S.page = Math.min(S.page, pages - 1);
  const page = rows.slice(S.page * MAX_ROWS, (S.page + 1) * MAX_ROWS);
  $('lmu-count').textContent = rows.length > MAX_ROWS
    ? ((S.page * MAX_ROWS + 1) + '–' + (S.page * MAX_ROWS + page.length) + ' of ' + rows.length + ' LMUs')
    : (rows.length + ' LMUs');
  $('page-prev').disabled = S.page === 0; $('page-next').disabled = S.page >= pages - 1;
  $('pager').classList.toggle('hidden', pages <= 1);
  const keys = page.map(v => v.gateway + '/' + v.lmu).join(',');
  if (!force && keys === S.shown) {
    for (const v of page) { const k = v.gateway + '/' + v.lmu; if (changed && changed.has(k)) fillRow(S.rows.get(k), v); }
    return;
  }
  S.shown = keys; S.rows = new Map();
  const tb = $('lmu-table').tBodies[0];
  const frag = document.createDocumentFragment();
  for (const v of page) {
    const tr = el('tr'); tr.id = 'lmu-' + v.lmu;
    for (let i = 0; i < 10; i++) tr.appendChild(el('td'));
    const cmd = el('td');
    const b = (label, action, cls) => { const x = el('button', cls, label); x.dataset.action = action; x.dataset.lmu = v.lmu; x.addEventListener('click', () => sendCommand(tr.view, action)); return x; };
    cmd.append(b('Open', 'open', 'danger'), ' ', b('Close', 'close'), ' ', b('Auto', 'auto', 'neutral'), ' ');
    const per = el('input'); per.type = 'number'; per.min = 1; per.max = 86400; per.placeholder = 's'; per.title = 'reporting period (s)';
    const pb = el('button', 'neutral', 'Set period'); pb.addEventListener('click', () => sendCommand(tr.view, 'report_every', Number(per.value)));
    cmd.append(per, ' ', pb);
    tr.appendChild(cmd);
    fillRow(tr, v);
    S.rows.set(v.gateway + '/' + v.lmu, tr);
    frag.appendChild(tr);
  }
  tb.textContent = ''; tb.appendChild(frag);
}
function fillRow(tr, v) {
  tr.view = v;
  const c = tr.cells, set = (i, text, cls) => { c[i].textContent = text; c[i].className = cls || ''; };
  set(0, String(v.lmu));
  set(1, v.gateway);
  set(2, fmtTime(v.generated_ms));
  set(3, v.v_v.map(x => fix(x, 1)).join(' / '), (v.en50160_ok ? '' : 'bad ') + 'volt');
  set(4, v.i_a.map(x => fix(x, 2)).join(' / '));
  set(5, String(v.p_w));
  set(6, v.open ? 'open' : 'closed', v.open ? 'open contactor' : 'closed contactor');
  set(7, fix(v.pq_ok_pct, 1) + ' %', v.en50160_ok ? '' : 'bad');
  set(8, String(v.interruptions));
  set(9, fix(v.minutes_lost, 1));
}
async function sendCommand(v, action, seconds) {
  try {
    const r = await api('/api/command', { method: 'POST', body: JSON.stringify({ lmu: v.lmu, gateway: v.gateway, action, seconds }) });
    $('command-result').textContent = 'sent "' + r.payload + '" to ' + r.topic;
  } catch (e) { $('command-result').textContent = 'command refused: ' + e.message; }
}
function renderFaults(ol, faults) {
  ol.textContent = '';
  for (const f of faults.slice().reverse().slice(0, 200)) {
    const li = el('li');
    li.appendChild(el('span', 't', fmtTime(f.generated_ms)));
    const good = /restored|cleared|reset|back in band/.test(f.what);
    li.appendChild(el('span', good ? 'good' : 'bad', 'LMU ' + f.lmu + ': ' + f.what));
    ol.appendChild(li);
  }
  if (!faults.length) ol.appendChild(el('li', 'muted', 'no faults so far'));
}

// ---------- drawing ----------
function ctx2d(c) {
  const dpr = window.devicePixelRatio || 1, w = c.clientWidth || c.width, h = Math.round(w * c.height / c.width) || c.height;
  if (c._w !== w) { c._w = w; c._h = h; c.width = w * dpr; c.height = h * dpr; }
  const g = c.getContext('2d'); g.setTransform(dpr, 0, 0, dpr, 0, 0); g.clearRect(0, 0, c._w, c._h);
  return [g, c._w, c._h];
}
const COL = { ok: '#3fb950', open: '#f85149', stale: '#6e7681', nosupply: '#d29922', coord: '#e3b341', a: '#58a6ff', b: '#f0883e', c: '#bc8cff', grid: '#30363d', text: '#8b97a3' };
// A finished run's mesh (mesh_nodes.csv), north up. Up to BIG_MESH nodes: parent links coloured by delivery
// ratio and a dot per node; above it (a city), squares of CELL_PX coloured by their LMUs' mean delivery ratio,
// failed nodes and coordinators on top: a route and a label per node would cover the canvas. Squares of one
// colour share one path, so a city costs a few fills.
const BIG_MESH = 3000, CELL_PX = 4, LABELS_MAX = 200;
function drawRunMesh(g, w, h, byId, newest) {
  const m = S.mesh, N = m.length;
  let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
  for (const n of m) {
    if (!isFinite(n.x_m) || !isFinite(n.y_m)) continue;
    x0 = Math.min(x0, n.x_m); x1 = Math.max(x1, n.x_m); y0 = Math.min(y0, n.y_m); y1 = Math.max(y1, n.y_m);
  }
  if (!(x1 >= x0)) { x0 = x1 = y0 = y1 = 0; }
  const s = Math.min((w - 40) / Math.max(1, x1 - x0), (h - 40) / Math.max(1, y1 - y0));
  const ox = (w - (x1 - x0) * s) / 2, oy = (h - (y1 - y0) * s) / 2;
  const P = n => [ox + (n.x_m - x0) * s, h - oy - (n.y_m - y0) * s];
  const pdrCol = q => q >= 0.99 ? COL.ok : q >= 0.9 ? COL.nosupply : COL.open;
  const dots = (list, r, colour) => {
    const p = new Path2D();
    for (const [x, y] of list) { p.moveTo(x + r, y); p.arc(x, y, r, 0, 2 * Math.PI); }
    g.fillStyle = colour; g.fill(p);
  };
  const coords = [], failed = [];
  for (const n of m) {
    if (!isFinite(n.x_m) || !isFinite(n.y_m)) continue;
    if (n.coordinator === true) coords.push(P(n)); else if (n.alive === false) failed.push(P(n));
  }
  if (N > BIG_MESH) {
    $('mesh-note').textContent = N + ' nodes by area: each square by its LMUs\' mean delivery ratio (green ≥ 99 %, amber ≥ 90 %, red below); grey dots failed, yellow coordinators';
    const nx = Math.ceil(w / CELL_PX), ny = Math.ceil(h / CELL_PX);
    const sum = new Float64Array(nx * ny), cnt = new Uint32Array(nx * ny);
    for (const n of m) {
      if (n.coordinator === true || n.alive === false || typeof n.pdr !== 'number' || !isFinite(n.x_m)) continue;
      const [x, y] = P(n);
      const c = Math.min(ny - 1, Math.max(0, Math.floor(y / CELL_PX))) * nx + Math.min(nx - 1, Math.max(0, Math.floor(x / CELL_PX)));
      sum[c] += n.pdr; cnt[c]++;
    }
    // One path per colour: tens of thousands of squares cost three fills.
    const paths = new Map();
    for (let c = 0; c < nx * ny; c++) {
      if (!cnt[c]) continue;
      const col = pdrCol(sum[c] / cnt[c]);
      let p = paths.get(col); if (!p) { p = new Path2D(); paths.set(col, p); }
      p.rect((c % nx) * CELL_PX, Math.floor(c / nx) * CELL_PX, CELL_PX, CELL_PX);
    }
    for (const [col, p] of paths) { g.fillStyle = col; g.fill(p); }
    dots(failed, 1.5, COL.stale);
    dots(coords, 3, COL.coord);
    return;
  }
  $('mesh-note').textContent = 'positions and parent links from the run; link colour = delivery ratio';
  const ids = new Map(m.map(n => [n.id, n]));
  g.lineWidth = N > LABELS_MAX ? 1 : 2;
  for (const n of m) {
    const p = ids.get(n.parent); if (!p) continue;
    g.strokeStyle = pdrCol(n.pdr == null ? 1 : n.pdr);
    const [a, b] = [P(n), P(p)]; g.beginPath(); g.moveTo(a[0], a[1]); g.lineTo(b[0], b[1]); g.stroke();
  }
  const r = N > LABELS_MAX ? 3 : 6;
  for (const n of m) {
    const v = byId.get(n.id); const st = n.coordinator ? 'coord' : !n.alive ? 'stale' : v ? lmuState(v, newest) : 'ok';
    const [x, y] = P(n); g.fillStyle = COL[st === 'closed' ? 'ok' : st]; g.beginPath(); g.arc(x, y, r, 0, 7); g.fill();
    if (N <= LABELS_MAX) { g.fillStyle = COL.text; g.font = '10px sans-serif'; g.fillText(n.coordinator ? 'coord' : String(n.id), x - 6, y - 9); }
  }
}
function drawMesh(all, newest) {
  const c = $('mesh'), [g, w, h] = ctx2d(c);
  const byId = new Map(all.map(v => [v.lmu, v]));
  if (S.mesh && S.mesh.length) { drawRunMesh(g, w, h, byId, newest); return; }
  $('mesh-note').textContent = all.length ? 'LMUs in id order (no positions in a live feed); colour = state' : 'waiting for readings';
  const n = all.length, cols = Math.max(1, Math.ceil(Math.sqrt(n * w / h))), cw = w / cols, rows = Math.ceil(n / cols), ch = h / Math.max(1, rows);
  const r = Math.max(1.5, Math.min(cw, ch) * 0.35);
  // One path per state: thousands of LMUs cost a few fills, not one per dot.
  const paths = new Map();
  all.forEach((v, i) => {
    const st = lmuState(v, newest), x = (i % cols + 0.5) * cw, y = (Math.floor(i / cols) + 0.5) * ch;
    let p = paths.get(st); if (!p) { p = new Path2D(); paths.set(st, p); }
    p.moveTo(x + r, y); p.arc(x, y, r, 0, 2 * Math.PI);
  });
  for (const [st, p] of paths) { g.fillStyle = COL[st === 'closed' ? 'ok' : st]; g.fill(p); }
  if (r > 8) {
    g.fillStyle = '#0d1117'; g.font = '10px sans-serif'; g.textAlign = 'center';
    all.forEach((v, i) => g.fillText(String(v.lmu), (i % cols + 0.5) * cw, (Math.floor(i / cols) + 0.5) * ch + 3));
    g.textAlign = 'start';
  }
}
function axes(g, w, h, t0, t1, y0, y1, unit) {
  g.strokeStyle = COL.grid; g.fillStyle = COL.text; g.font = '10px sans-serif'; g.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const y = 10 + (h - 30) * i / 4; g.beginPath(); g.moveTo(40, y); g.lineTo(w - 5, y); g.stroke();
    g.fillText(fix(y1 - (y1 - y0) * i / 4, 1), 2, y + 3);
  }
  for (let i = 0; i <= 4; i++) { const t = t0 + (t1 - t0) * i / 4; g.fillText(fmtTime(t), 40 + (w - 60) * i / 4, h - 5); }
  g.fillText(unit, w - 30, 20);
}
function drawSeries(c, pts) {
  const [g, w, h] = ctx2d(c);
  if (!pts.length) { g.fillStyle = COL.text; g.fillText('no readings yet', 50, h / 2); return; }
  const t0 = pts[0].t, t1 = Math.max(pts[pts.length - 1].t, t0 + 1);
  let lo = Infinity, hi = -Infinity;
  for (const p of pts) for (const v of p.v) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  lo = Math.min(lo, 207); hi = Math.max(hi, 253);
  axes(g, w, h, t0, t1, lo, hi, 'V');
  const X = t => 40 + (w - 45) * (t - t0) / (t1 - t0), Y = v => 10 + (h - 30) * (hi - v) / (hi - lo);
  g.setLineDash([4, 4]); g.strokeStyle = '#d29922';
  for (const lim of [207, 253]) { g.beginPath(); g.moveTo(40, Y(lim)); g.lineTo(w - 5, Y(lim)); g.stroke(); }
  g.setLineDash([]);
  ['a', 'b', 'c'].forEach((ph, k) => {
    g.strokeStyle = COL[ph]; g.lineWidth = 1.5; g.beginPath();
    pts.forEach((p, i) => { const x = X(p.t), y = Y(p.v[k]); if (i) g.lineTo(x, y); else g.moveTo(x, y); });
    g.stroke();
  });
}
function drawMarket() {
  const c = $('market'), [g, w, h] = ctx2d(c), m = S.market || {};
  if (!m.exists || !m.prices.length) { $('market-note').textContent = 'no market data in this deployment'; g.fillStyle = COL.text; g.fillText('no market data', 50, h / 2); return; }
  $('market-note').textContent = m.prices.length + ' slots';
  const pr = m.prices.map(r => [r.t_s * 1000, Object.values(r)[1]]);
  const vol = (m.volumes || []).map(r => [r.t_s * 1000, r.p2p_kwh]);
  const t0 = pr[0][0], t1 = pr[pr.length - 1][0] || t0 + 1;
  const hi = Math.max(1, ...pr.map(p => p[1] || 0), ...vol.map(p => p[1] || 0));
  axes(g, w, h, t0, t1, 0, hi, '');
  const X = t => 40 + (w - 45) * (t - t0) / Math.max(1, t1 - t0), Y = v => 10 + (h - 30) * (hi - v) / hi;
  g.fillStyle = COL.b + '99';
  for (const [t, v] of vol) g.fillRect(X(t) - 1.5, Y(v || 0), 3, Y(0) - Y(v || 0));
  g.strokeStyle = COL.a; g.lineWidth = 1.5; g.beginPath();
  pr.forEach(([t, v], i) => { if (i) g.lineTo(X(t), Y(v || 0)); else g.moveTo(X(t), Y(v || 0)); }); g.stroke();
}

// ---------- customer ----------
async function startCustomer() {
  $('customer').classList.remove('hidden');
  const u = S.user;
  if (u.lmu != null) {
    S.selected = u.lmu;
    try { const l = await api('/api/lmus/' + u.lmu); for (const v of l.lmu) setLmu(v); S.faults = l.faults; } catch (e) { $('c-supply').textContent = 'no data'; }
    const r = await api('/api/readings?lmu=' + u.lmu + '&limit=' + MAX_SERIES);
    S.series = r.readings.map(x => ({ t: x.generated_ms, v: x.v_cv.map(c => c / 100) }));
  }
  if (u.account) {
    const a = await api('/api/accounts/' + encodeURIComponent(u.account));
    const box = $('c-origin'); box.textContent = '';
    if (!a.wallet) box.appendChild(el('p', 'muted', 'no wallet data in this deployment'));
    else {
      $('c-pref').textContent = 'supply preferences met: ' + fix(a.wallet.preference_share_pct, 1) + ' %';
      const srcs = ['solar', 'wind', 'hydro', 'biogas', 'conventional', 'nuclear'];
      const tot = Math.max(1, ...srcs.map(s => a.wallet[s + '_wh'] || 0));
      for (const s of srcs) {
        const row = el('div', 'row'); row.appendChild(el('span', 'name', s));
        const bar = el('span', 'bar'); bar.style.width = (300 * (a.wallet[s + '_wh'] || 0) / tot) + 'px'; row.appendChild(bar);
        row.appendChild(el('span', 'muted', fix((a.wallet[s + '_wh'] || 0) / 1000, 2) + ' kWh'));
        box.appendChild(row);
      }
    }
  }
  renderCustomer();
}
function renderCustomer() {
  const v = [...S.lmus.values()].find(x => x.lmu === S.user.lmu);
  $('c-lmu').textContent = S.user.lmu ?? '-';
  if (v) {
    $('c-supply').textContent = v.open ? 'interrupted' : 'on';
    $('c-volt').textContent = v.v_v.map(x => fix(x, 0)).join(' / ');
    $('c-int').textContent = v.interruptions; $('c-min').textContent = fix(v.minutes_lost, 1);
    $('c-pq').textContent = fix(v.pq_ok_pct, 1) + ' %' + (v.en50160_ok ? ' ✓' : ' ✗');
  }
  drawSeries($('c-series'), S.series);
  renderFaults($('c-faults'), S.faults);
}

// ---------- producer ----------
async function startProducer() {
  $('producer').classList.remove('hidden');
  const p = await api('/api/producers/' + encodeURIComponent(S.user.account));
  const tb = $('p-table').tBodies[0]; tb.textContent = '';
  const k = x => fix((x || 0) / 1000, 2);
  for (const r of p.plants) {
    const tr = el('tr');
    const rev = (r.p2p_revenue_mc || 0) + (r.trader_revenue_mc || 0) + (r.market_revenue_mc || 0) + (r.feed_in_revenue_mc || 0);
    for (const c of [r.plant, r.tech, k(r.produced_wh), k(r.self_wh), k(r.p2p_wh), k(r.trader_wh), k(r.market_wh), k(r.feed_in_wh), k(r.unsold_wh), fix(rev / 1e5, 2) + ' EUR']) tr.appendChild(el('td', null, String(c)));
    tb.appendChild(tr);
  }
  $('p-note').textContent = p.plants.length ? 'energy in kWh; revenue from millicents' : 'no sales data for ' + p.producer + ' in this deployment';
}

// ---------- boot ----------
window.addEventListener('DOMContentLoaded', () => {
  $('login-form').addEventListener('submit', login);
  $('logout').addEventListener('click', logout);
  const m = location.hash.match(/token=([0-9a-f]{64})/);
  const ms = location.hash.match(/stream_s=([0-9]+)/);
  if (ms) S.streamS = Number(ms[1]);
  if (m) { sessionStorage.setItem('gt_token', m[1]); history.replaceState(null, '', location.pathname); }
  S.token = sessionStorage.getItem('gt_token');
  if (S.token) start();
});
