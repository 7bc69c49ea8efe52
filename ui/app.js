// The dashboard's script: reads the views from /api/ (src/ui/hl_ui.h) with the filters in
// the header, and draws them with Chart.js (Debian's, compiled into the binary). Each chart's
// figure element carries the totals it shows as JSON in data-totals, the same numbers that
// `hybridllm report --format json` prints, so that a test (or a person) can check them.
'use strict';

const charts = {};
const VIEWS = ['spend', 'requests', 'latency', 'privacy', 'budgets', 'advise', 'agreement'];
const COLORS = ['#3366cc', '#dc3912', '#ff9900', '#109618', '#990099', '#0099c6', '#dd4477', '#66aa00'];

function query() {
  const f = new FormData(document.getElementById('filters'));
  const q = new URLSearchParams();
  for (const [k, v] of f) if (v) q.set(k, v);
  return q.toString();
}

async function getView(name, qs) {
  let r;
  // 503 "busy": the gateway runs a few queries at a time; the rest wait their turn here
  for (let i = 0; ; i++) {
    r = await fetch('/api/' + name + (qs ? '?' + qs : ''), { credentials: 'same-origin' });
    if (r.status !== 503 || i >= 50) break;
    await new Promise((ok) => setTimeout(ok, 100 + Math.random() * 200));
  }
  const body = await r.json();
  if (!r.ok) throw new Error(body.error ? body.error.message : 'HTTP ' + r.status);
  return body;
}

function draw(id, config, totals) {
  const fig = document.getElementById(id);
  fig.dataset.totals = JSON.stringify(totals);
  if (charts[id]) charts[id].destroy();
  config.options = Object.assign({ animation: false, responsive: true, maintainAspectRatio: false }, config.options);
  charts[id] = new Chart(fig.querySelector('canvas'), config);
}

const label = (g) => (g === null ? '(none)' : g);
const byGroup = (report, key) => Object.fromEntries(report.groups.map((g) => [label(g.group), g[key]]));
const usd = (x) => (x === null || x === undefined ? '–' : '$' + Number(x).toFixed(x < 1 ? 4 : 2));

function fillSelect(name, report) {
  const sel = document.querySelector(`select[name="${name}"]`);
  const keep = sel.value;
  sel.length = 1;
  for (const g of report.groups) {
    if (g.group === null) continue;
    sel.add(new Option(g.group, g.group));
  }
  sel.value = keep;
}

function drawSpend(v) {
  const days = [...new Set([...v.all.groups, ...v.cloud.groups, ...v.local.groups].map((g) => g.group))].sort();
  const at = (rep, key) => { const m = byGroup(rep, key); return days.map((d) => m[d] ?? 0); };
  draw('chart-spend', {
    type: 'bar',
    data: {
      labels: days,
      datasets: [
        { label: 'cloud $', data: at(v.cloud, 'cost_usd'), backgroundColor: COLORS[0], stack: 'spend' },
        { label: 'local $', data: at(v.local, 'cost_usd'), backgroundColor: COLORS[3], stack: 'spend' },
        { type: 'line', label: 'all-cloud $', data: at(v.all, 'cloud_equiv_usd'), borderColor: COLORS[1] },
        { type: 'line', label: 'saved $', data: at(v.all, 'savings_usd'), borderColor: COLORS[2] },
      ],
    },
    options: { scales: { x: { stacked: true }, y: { stacked: false, beginAtZero: true } } },
  }, {
    days: days.length,
    cost_usd: v.all.total.cost_usd,
    cloud_usd: v.cloud.total.cost_usd,
    local_usd: v.local.total.cost_usd,
    cloud_equiv_usd: v.all.total.cloud_equiv_usd,
    savings_usd: v.all.total.savings_usd,
  });
  document.getElementById('cloud-model').textContent = v.all.cloud_price ? v.all.cloud_price.model : 'no price';
  const dl = document.getElementById('totals-spend');
  dl.replaceChildren();
  for (const [k, x] of [['spend', v.all.total.cost_usd], ['cloud', v.cloud.total.cost_usd],
    ['local', v.local.total.cost_usd], ['all-cloud', v.all.total.cloud_equiv_usd], ['saved', v.all.total.savings_usd]]) {
    const dt = document.createElement('dt'); dt.textContent = k;
    const dd = document.createElement('dd'); dd.textContent = usd(x);
    dl.append(dt, dd);
  }
}

function barOf(id, report, key, title) {
  draw(id, {
    type: 'bar',
    data: { labels: report.groups.map((g) => label(g.group)),
      datasets: [{ label: title, data: report.groups.map((g) => g[key]), backgroundColor: COLORS[0] }] },
    options: { plugins: { legend: { display: false } }, scales: { y: { beginAtZero: true } } },
  }, { requests: report.total.requests, attempts: report.total.attempts, groups: byGroup(report, key) });
}

function drawRequests(v) {
  barOf('chart-route-reason', v.by_route_reason, 'requests', 'requests');
  barOf('chart-backend', v.by_backend, 'requests', 'requests');
  const t = v.rates;
  const rates = { error_rate: t.error_rate, fallback_rate: t.fallback_rate, escalation_rate: t.escalation_rate };
  draw('chart-rates', {
    type: 'bar',
    data: { labels: ['errors', 'fallbacks', 'escalations'],
      datasets: [{ label: 'rate', data: [rates.error_rate, rates.fallback_rate, rates.escalation_rate],
        backgroundColor: [COLORS[1], COLORS[2], COLORS[4]] }] },
    options: { plugins: { legend: { display: false } }, scales: { y: { beginAtZero: true, suggestedMax: 0.1 } } },
  }, rates);
}

function drawLatency(v) {
  const days = [...new Set(v.backends.flatMap((b) => b.by_day.groups.map((g) => g.group)))].sort();
  const datasets = [];
  v.backends.forEach((b, i) => {
    const c = COLORS[i % COLORS.length];
    for (const [key, name, dash] of [['latency_p50_ms', 'p50', []], ['latency_p95_ms', 'p95', [6, 3]],
      ['latency_p99_ms', 'p99', [2, 2]], ['ttft_p50_ms', 'TTFT p50', [10, 4, 2, 4]]]) {
      const m = byGroup(b.by_day, key);
      datasets.push({ label: `${b.backend} ${name}`, data: days.map((d) => m[d] ?? null), borderColor: c,
        borderDash: dash, spanGaps: true });
    }
  });
  const totals = {};
  for (const g of v.by_backend.groups) {
    totals[label(g.group)] = { latency_p50_ms: g.latency_p50_ms, latency_p95_ms: g.latency_p95_ms,
      latency_p99_ms: g.latency_p99_ms, ttft_p50_ms: g.ttft_p50_ms };
  }
  draw('chart-latency', { type: 'line', data: { labels: days, datasets },
    options: { scales: { y: { beginAtZero: true, title: { display: true, text: 'ms' } } } } }, totals);
  const tb = document.querySelector('#table-latency tbody');
  tb.replaceChildren();
  for (const [b, t] of Object.entries(totals)) {
    const tr = tb.insertRow();
    for (const x of [b, t.latency_p50_ms, t.latency_p95_ms, t.latency_p99_ms, t.ttft_p50_ms])
      tr.insertCell().textContent = x === null ? '–' : typeof x === 'number' ? x.toFixed(0) : x;
  }
}

function drawPrivacy(v) {
  const types = Object.keys(v.by_type).sort();
  draw('chart-privacy', {
    type: 'bar',
    data: { labels: types, datasets: [{ label: 'sensitive attempts', data: types.map((t) => v.by_type[t]),
      backgroundColor: COLORS[4] }] },
    options: { plugins: { legend: { display: false } }, scales: { y: { beginAtZero: true } } },
  }, { attempts_sensitive: v.attempts_sensitive, cloud_calls_sensitive: v.cloud_calls_sensitive, by_type: v.by_type });
  const el = document.getElementById('privacy-cloud');
  el.textContent = String(v.cloud_calls_sensitive);
  el.className = v.cloud_calls_sensitive ? 'error' : '';
}

function drawBudgets(v) {
  const names = v.budgets.map((b) => `${b.kind === 'config' ? '' : b.kind + ' '}${b.name} (${b.period})`);
  draw('chart-budgets', {
    type: 'bar',
    data: { labels: names, datasets: [
      { label: 'spent $', data: v.budgets.map((b) => b.spent_usd), backgroundColor: COLORS[0] },
      { label: 'forecast $', data: v.budgets.map((b) => b.forecast_usd), backgroundColor: COLORS[2] },
      { label: 'limit $', data: v.budgets.map((b) => b.limit_usd), backgroundColor: COLORS[1] },
    ] },
    options: { indexAxis: 'y', scales: { x: { beginAtZero: true } } },
  }, v.budgets.map((b) => ({ kind: b.kind, name: b.name, period: b.period, limit_usd: b.limit_usd,
    spent_usd: b.spent_usd, forecast_usd: b.forecast_usd })));
}

function drawAdvise(v) {
  const text = document.getElementById('advise-text');
  if (!v.advise) {
    draw('chart-advise', { type: 'line', data: { datasets: [] } }, null);
    text.textContent = 'No advice yet: ' + (v.why || 'no served request in the ledger');
    return;
  }
  const a = v.advise;
  const be = a.break_even.break_even_tokens_per_month;
  const tokens = a.workload.tokens_per_month;
  const top = Math.max(tokens, be || 0) * 2 || 1e6;
  const pts = [0, 0.25, 0.5, 0.75, 1].map((f) => f * top);
  draw('chart-advise', {
    type: 'line',
    data: { datasets: [
      { label: `cloud $/month (${a.cloud.model})`, data: pts.map((t) => ({ x: t, y: a.cloud.blended_per_mtok * t / 1e6 })),
        borderColor: COLORS[0] },
      { label: 'local $/month', data: pts.map((t) => ({ x: t, y: a.local.usd_per_month })), borderColor: COLORS[3] },
      { label: 'your tokens/month', data: [{ x: tokens, y: 0 }, { x: tokens, y: a.cloud.usd_per_month }],
        borderColor: COLORS[1], borderDash: [4, 4] },
    ] },
    options: { scales: { x: { type: 'linear', title: { display: true, text: 'tokens per month' } },
      y: { beginAtZero: true, title: { display: true, text: '$ per month' } } } },
  }, { tokens_per_month: tokens, cloud_usd_per_month: a.cloud.usd_per_month, local_usd_per_month: a.local.usd_per_month,
    break_even_tokens_per_month: be, saving_usd_per_month: a.break_even.saving_usd_per_month, advice: a.decision.advice });
  text.textContent = `Advice: ${a.decision.advice}. Cloud ${usd(a.cloud.usd_per_month)}/month against local ` +
    `${usd(a.local.usd_per_month)}/month at ${Math.round(tokens).toLocaleString()} tokens/month` +
    (be ? `; break-even at ${Math.round(be).toLocaleString()} tokens/month.` : '.');
}

function drawAgreement(v) {
  const rows = v.by_task_type.groups.filter((g) => g.scored > 0);
  draw('chart-agreement', {
    type: 'bar',
    data: { labels: rows.map((g) => label(g.group)), datasets: [
      { type: 'line', label: 'agreement', data: rows.map((g) => g.agreement), borderColor: COLORS[0],
        backgroundColor: COLORS[0], showLine: false, pointRadius: 6, order: 0 },
      { label: '95% interval', data: rows.map((g) => [g.agreement_lo, g.agreement_hi]), backgroundColor: '#c6d4f0',
        order: 1 },
    ] },
    options: { scales: { y: { min: 0, max: 1 } } },
  }, Object.fromEntries(rows.map((g) => [label(g.group), { scored: g.scored, agreement: g.agreement,
    agreement_lo: g.agreement_lo, agreement_hi: g.agreement_hi }])));
}

const DRAW = { spend: drawSpend, requests: drawRequests, latency: drawLatency, privacy: drawPrivacy,
  budgets: drawBudgets, advise: drawAdvise, agreement: drawAgreement };

async function load() {
  const status = document.getElementById('status');
  document.body.dataset.ready = 'false';
  status.className = '';
  status.textContent = 'Loading…';
  const qs = query();
  try {
    const timeOnly = new URLSearchParams(qs);
    for (const k of ['tenant', 'backend', 'task_type']) timeOnly.delete(k);
    const f = await getView('filters', timeOnly.toString());
    fillSelect('tenant', f.tenant);
    fillSelect('backend', f.backend);
    fillSelect('task_type', f.task_type);
    // three at a time: the gateway runs a few dashboard queries at once (more get a 503)
    const views = new Array(VIEWS.length);
    let next = 0;
    const worker = async () => { while (next < VIEWS.length) { const i = next++; views[i] = await getView(VIEWS[i], qs); } };
    await Promise.all([worker(), worker(), worker()]);
    VIEWS.forEach((n, i) => DRAW[n](views[i]));
    status.textContent = `Updated ${new Date().toLocaleTimeString()}` + (qs ? ` (${decodeURIComponent(qs)})` : '');
  } catch (err) {
    status.className = 'error';
    status.textContent = 'Cannot load the dashboard: ' + err.message;
  }
  document.body.dataset.loads = String(Number(document.body.dataset.loads || 0) + 1);
  document.body.dataset.ready = 'true';
}

document.getElementById('filters').addEventListener('submit', (ev) => {
  ev.preventDefault();
  load();
});
load();
