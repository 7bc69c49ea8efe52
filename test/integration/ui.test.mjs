// The dashboard in a real browser: Debian's chromium, headless, driven by puppeteer-core.
// A gateway starts on a generated ledger (several days, cloud and local, two tenants,
// sensitive lines, errors with fallbacks, escalations, shadow comparisons with scores, a
// budget), /ui is loaded, and every chart's totals (its data-totals JSON) must equal what
// `hybridllm report --format json` (and `advise --json`) compute over the same store; a
// filter must change them to the filtered report's; the console must stay clean; the API and
// the page must refuse a client without the admin key. Screenshots go to $HL_UI_SCREENSHOTS
// (default build/ui-screenshots), printed for a person to look at.
//
// Without chromium the test is skipped, unless HL_REQUIRE_CHROMIUM=1 (scripts/test.sh sets it:
// there a missing browser fails). HL_CHROMIUM names another browser binary.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { startGateway, gatewayBinaryMissing, HL_BIN, ROOT, KEYS, PRICES } from './gateway.mjs';
import os from 'node:os';
import { waitFor } from './util.mjs';

const CHROMIUM = process.env.HL_CHROMIUM || '/usr/bin/chromium';
const ADMIN = 'hl-admin-ui-test-0123456789abcdef';
const SHOTS = path.resolve(process.env.HL_UI_SCREENSHOTS || path.join(ROOT, 'build', 'ui-screenshots'));

let puppeteer = null;
try {
  puppeteer = (await import('puppeteer-core')).default;
} catch {}

function skipReason() {
  const bin = gatewayBinaryMissing();
  if (bin) return bin;
  const missing = !fs.existsSync(CHROMIUM) ? `chromium not found at ${CHROMIUM} (apt-get install chromium, or set HL_CHROMIUM)`
    : !puppeteer ? 'puppeteer-core is not installed (npm ci)' : null;
  if (missing && process.env.HL_REQUIRE_CHROMIUM === '1') throw new Error(`HL_REQUIRE_CHROMIUM=1: ${missing}`);
  return missing;
}
const skip = skipReason();

// ---- the generated ledger ----

const DAY = 86400000;
const BACKENDS = [
  { name: 'cloud-anthropic', source: 'cloud', model: 'claude-3-5-sonnet-20241022' },
  { name: 'local', source: 'local', model: 'mistral-7b' },
];
const CLOUD_PRICE = PRICES.find((p) => p.model === 'claude-3-5-sonnet-20241022');

// A small deterministic generator (the figures must not change between runs).
function rng(seed) {
  let s = seed >>> 0;
  return () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32);
}

function generateLedger(file) {
  const r = rng(15);
  const lines = [];
  const now = Date.now();
  // Five days back from two hours ago, but inside this UTC month, so the month's budget sees
  // some of it whatever the date.
  const monthStart = Date.UTC(new Date(now).getUTCFullYear(), new Date(now).getUTCMonth(), 1);
  const end = now - 2 * 3600000;
  const start = Math.max(end - 5 * DAY, monthStart - 3 * DAY);
  let n = 0;
  const add = (o) => lines.push(JSON.stringify(o));
  for (let t = start; t < end; t += 40 * 60000 + Math.floor(r() * 20 * 60000)) {
    n++;
    const id = `req_${String(n).padStart(24, '0')}`;
    const tenant = r() < 0.6 ? 'team-a' : 'team-b';
    const task = ['classification', 'code_generation', 'extraction'][Math.floor(r() * 3)];
    const sensitive = r() < 0.15;
    const local = sensitive || task !== 'code_generation';
    const be = BACKENDS[local ? 1 : 0];
    const inTok = 200 + Math.floor(r() * 800), outTok = 50 + Math.floor(r() * 300);
    const stream = r() < 0.5;
    const latency = (local ? 300 : 900) + Math.floor(r() * 1500);
    const cost = local ? +(latency / 3600000 * 0.05).toFixed(8)
      : +((inTok * CLOUD_PRICE.input_per_mtok + outTok * CLOUD_PRICE.output_per_mtok) / 1e6).toFixed(8);
    const base = {
      timestamp: new Date(t).toISOString(), request_id: id, attempt: 1, source: be.source, backend: be.name,
      model: be.model, route_reason: sensitive ? 'rule:privacy' : local ? 'rule:simple-task' : 'rule:complex-task',
      input_tokens: inTok, output_tokens: outTok, latency_ms: latency, cost_usd: cost, status: 'ok',
      tenant, task_type: task, sensitive, pii: sensitive ? (r() < 0.5 ? 'email:1' : 'phone:1,email:2') : null, stream,
      ttft_ms: stream ? Math.floor(latency / 4) : null,
    };
    const roll = r();
    if (!sensitive && local && roll < 0.08) {
      // a local answer below the confidence threshold, escalated to the cloud
      add({ ...base, status: 'escalated', confidence: 0.4 });
      const c = BACKENDS[0];
      add({ ...base, timestamp: new Date(t + latency).toISOString(), attempt: 2, source: 'cloud', backend: c.name, model: c.model,
        route_reason: base.route_reason + '+escalated',
        cost_usd: +((inTok * CLOUD_PRICE.input_per_mtok + outTok * CLOUD_PRICE.output_per_mtok) / 1e6).toFixed(8) });
    } else if (!sensitive && roll < 0.14) {
      // the first candidate fails; the next one answers
      add({ ...base, status: 'error', error: 'upstream 502', cost_usd: local ? base.cost_usd : 0, output_tokens: 0, ttft_ms: null });
      const o = BACKENDS[local ? 0 : 1];
      add({ ...base, timestamp: new Date(t + latency).toISOString(), attempt: 2, source: o.source, backend: o.name, model: o.model });
    } else {
      add(base);
    }
    if (!sensitive && local && r() < 0.35) {
      // a cloud shadow of the local answer, scored against it
      const score = r();
      add({ ...base, timestamp: new Date(t + latency + 5).toISOString(), attempt: 9, source: 'cloud', backend: 'cloud-anthropic',
        model: BACKENDS[0].model, status: 'ok', shadow: true, score: +score.toFixed(4), score_method: 'token_f1',
        agree: score >= 0.3, reference: 'served', ref_output_tokens: outTok, sensitive: false, pii: null,
        cost_usd: +((inTok * 3 + outTok * 15) / 1e6).toFixed(8) });
    }
  }
  fs.writeFileSync(file, lines.join('\n') + '\n');
  return lines.map((l) => JSON.parse(l));
}

// ---- the report, as the CLI prints it ----

function report(db, args) {
  const out = execFileSync(HL_BIN, ['report', '--db', db, '--format', 'json', ...args], { encoding: 'utf8' });
  return JSON.parse(out);
}
const close = (a, b, what) => {
  if (a === null || b === null) return assert.equal(a, b, what);
  assert.ok(Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(a), Math.abs(b)), `${what}: ${a} != ${b}`);
};
const groupsOf = (rep, key) => Object.fromEntries(rep.groups.map((g) => [g.group === null ? '(none)' : g.group, g[key]]));

describe('the dashboard in a browser', { skip: skip ?? false }, () => {
  let gw, browser, dbPath, records, configPath;
  const consoleErrors = [];

  before(async () => {
    fs.mkdirSync(SHOTS, { recursive: true });
    const dir = fs.mkdtempSync(path.join(fs.realpathSync('/tmp'), 'hl-ui-'));
    const ledgerPath = path.join(dir, 'ledger.jsonl');
    records = generateLedger(ledgerPath);
    gw = await startGateway({
      backends: [
        { name: 'cloud-anthropic', kind: 'anthropic', location: 'cloud', base_url: 'http://127.0.0.1:9', api_key_env: 'HL_TEST_ANTHROPIC_KEY', model: 'claude-3-5-sonnet-20241022' },
        { name: 'local', kind: 'openai', location: 'local', base_url: 'http://127.0.0.1:9/v1', model: 'mistral-7b', hourly_cost_usd: 0.05 },
      ],
      routes: [{ name: 'default', to: ['local'] }],
      ledgerPath,
      budgets: [{ name: 'monthly-cloud', period: 'month', limit_usd: 5, action: 'local' }],
      extraServer: { admin_key_env: 'HL_TEST_ADMIN_KEY' },
      extraLedger: { index_interval_ms: 50 },
      env: { ...KEYS, HL_TEST_ADMIN_KEY: ADMIN },
    });
    configPath = gw.configPath;
    dbPath = ledgerPath.replace(/\.jsonl$/, '.db');
    // The store has indexed every line once the API counts them all.
    const attempts = records.filter((l) => !l.shadow).length;
    await waitFor(async () => {
      const r = await fetch(`${gw.url}/api/spend`, { headers: { authorization: `Bearer ${ADMIN}` } });
      return r.ok && (await r.json()).all.total.attempts === attempts;
    }, 15000, 'the store to index the generated ledger');
    browser = await puppeteer.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run', '--disable-extensions'],
    });
  });

  after(async () => {
    await browser?.close();
    console.log(`# dashboard screenshots: ${SHOTS}`);
    // a clean exit: under ASan, no leak from the dashboard's queries and sessions
    if (gw) assert.equal((await gw.stop()).code, 0, gw.output().slice(-3000));
  });

  // Each page in a context of its own: no cookie carried from one to the next.
  async function openPage() {
    const page = await (await browser.createBrowserContext()).newPage();
    await page.setViewport({ width: 1400, height: 1800 });
    page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
    page.on('pageerror', (e) => consoleErrors.push(String(e)));
    return page;
  }

  async function login(page) {
    await page.goto(`${gw.url}/ui`, { waitUntil: 'load' });
    await page.type('input[name=key]', ADMIN);
    await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.click('button[type=submit]')]);
  }

  async function totals(page) {
    await page.waitForFunction(() => document.body.dataset.ready === 'true', { timeout: 15000 });
    const status = await page.$eval('#status', (e) => e.textContent);
    assert.doesNotMatch(status, /Cannot load/, status);
    return page.$$eval('figure.chart', (els) => Object.fromEntries(els.map((e) => [e.id, JSON.parse(e.dataset.totals ?? 'null')])));
  }

  function checkAgainstReport(t, args) {
    const cp = ['--cloud-model', CLOUD_PRICE.model, '--config', configPath];
    const all = report(dbPath, ['--group-by', 'day', ...cp, ...args]);
    const bySource = report(dbPath, ['--group-by', 'source', ...cp, ...args]);
    const src = Object.fromEntries(bySource.groups.map((g) => [g.group, g]));
    close(t['chart-spend'].cost_usd, all.total.cost_usd, 'spend: cost');
    close(t['chart-spend'].cloud_usd, src.cloud?.cost_usd ?? 0, 'spend: cloud');
    close(t['chart-spend'].local_usd, src.local?.cost_usd ?? 0, 'spend: local');
    close(t['chart-spend'].cloud_equiv_usd, all.total.cloud_equiv_usd, 'spend: all-cloud');
    close(t['chart-spend'].savings_usd, all.total.savings_usd, 'spend: savings');
    assert.equal(t['chart-spend'].days, all.groups.length, 'spend: days');

    const byReason = report(dbPath, ['--group-by', 'route_reason', ...args]);
    assert.deepEqual(t['chart-route-reason'].groups, groupsOf(byReason, 'requests'), 'requests by route reason');
    assert.equal(t['chart-route-reason'].requests, byReason.total.requests);
    const byBackend = report(dbPath, ['--group-by', 'backend', ...args]);
    assert.deepEqual(t['chart-backend'].groups, groupsOf(byBackend, 'requests'), 'requests by backend');
    close(t['chart-rates'].error_rate, byBackend.total.error_rate, 'error rate');
    close(t['chart-rates'].escalation_rate, byBackend.total.escalation_rate, 'escalation rate');
    for (const g of byBackend.groups) {
      const l = t['chart-latency'][g.group];
      for (const k of ['latency_p50_ms', 'latency_p95_ms', 'latency_p99_ms', 'ttft_p50_ms']) close(l[k], g[k], `${g.group} ${k}`);
    }
    const byTask = report(dbPath, ['--group-by', 'task_type', ...args]);
    const scored = byTask.groups.filter((g) => g.scored > 0);
    assert.deepEqual(Object.keys(t['chart-agreement']).sort(), scored.map((g) => g.group).sort(), 'agreement: task types');
    for (const g of scored) {
      const a = t['chart-agreement'][g.group];
      assert.equal(a.scored, g.scored);
      for (const k of ['agreement', 'agreement_lo', 'agreement_hi']) close(a[k], g[k], `${g.group} ${k}`);
    }
    return { all, byBackend, byTask };
  }

  it('refuses a client without the admin key', async () => {
    let r = await fetch(`${gw.url}/api/spend`);
    assert.equal(r.status, 401);
    assert.equal((await r.json()).error.code, 'invalid_admin_key');
    r = await fetch(`${gw.url}/api/spend`, { headers: { authorization: 'Bearer wrong-key-wrong-key-wrong' } });
    assert.equal(r.status, 401);
    r = await fetch(`${gw.url}/ui/app.js`);
    assert.equal(r.status, 401);
    r = await fetch(`${gw.url}/api/spend`, { headers: { cookie: 'hl_ui_session=' + '0'.repeat(64) } });
    assert.equal(r.status, 401, 'a made-up session');
    r = await fetch(`${gw.url}/ui`, { redirect: 'manual' });
    assert.equal(r.status, 303);
    assert.equal(r.headers.get('location'), '/ui/login');
    r = await fetch(`${gw.url}/ui/login`);
    assert.equal(r.status, 200);
    assert.match(await r.text(), /name="key"/, 'the login form');
    r = await fetch(`${gw.url}/ui/login`, { method: 'POST', body: 'key=nope', headers: { 'content-type': 'application/x-www-form-urlencoded' }, redirect: 'manual' });
    assert.equal(r.status, 401);
    assert.equal(r.headers.get('set-cookie'), null);
    r = await fetch(`${gw.url}/ui/login`, { method: 'POST', body: 'key=' + encodeURIComponent(ADMIN), headers: { 'content-type': 'application/x-www-form-urlencoded' }, redirect: 'manual' });
    assert.equal(r.status, 303);
    const cookie = r.headers.get('set-cookie');
    assert.match(cookie, /^hl_ui_session=[0-9a-f]{64}; Path=\/; Max-Age=\d+; HttpOnly; SameSite=Strict$/);
    assert.ok(!cookie.includes(ADMIN));
    const session = cookie.split(';')[0];
    r = await fetch(`${gw.url}/api/filters`, { headers: { cookie: session } });
    assert.equal(r.status, 200, 'the session opens the API');
    r = await fetch(`${gw.url}/ui/logout`, { method: 'POST', headers: { cookie: session }, redirect: 'manual' });
    assert.equal(r.status, 303);
    r = await fetch(`${gw.url}/api/filters`, { headers: { cookie: session } });
    assert.equal(r.status, 401, 'the session ends at logout');
  });

  it('answers a bad query parameter with a 400 in the OpenAI shape', async () => {
    const h = { authorization: `Bearer ${ADMIN}` };
    for (const [qs, param] of [['from=yesterday', 'from'], ['colour=red', 'colour'], ['tenant=a&tenant=b', 'tenant'],
      ['from=2026-02-01&to=2026-01-01', 'from']]) {
      const r = await fetch(`${gw.url}/api/spend?${qs}`, { headers: h });
      assert.equal(r.status, 400, qs);
      const body = await r.json();
      assert.equal(body.error.type, 'invalid_request_error');
      assert.equal(body.error.param, param, qs);
      assert.equal(typeof body.error.message, 'string');
    }
    const r = await fetch(`${gw.url}/api/nothing`, { headers: h });
    assert.equal(r.status, 404);
  });

  it('shows the report\'s totals in every chart, and the filtered report\'s after a filter', async () => {
    const page = await openPage();
    await login(page);
    let t = await totals(page);
    const { all } = checkAgainstReport(t, []);
    assert.ok(all.total.cost_usd > 0 && t['chart-spend'].local_usd > 0 && t['chart-spend'].cloud_usd > 0);

    // privacy: from the ledger itself
    const sens = records.filter((l) => l.sensitive);
    assert.ok(sens.length > 0);
    assert.equal(t['chart-privacy'].attempts_sensitive, sens.length);
    assert.equal(t['chart-privacy'].cloud_calls_sensitive, 0, 'no sensitive request went to the cloud');
    assert.equal(t['chart-privacy'].by_type.email, sens.filter((l) => /email/.test(l.pii)).length);
    assert.equal(t['chart-privacy'].by_type.phone, sens.filter((l) => /phone/.test(l.pii)).length);
    assert.equal(await page.$eval('#privacy-cloud', (e) => e.textContent), '0');

    // budgets: the month's cloud spend so far
    const now = new Date();
    const monthStart = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1);
    const cloudMonth = records.filter((l) => l.source === 'cloud' && Date.parse(l.timestamp) >= monthStart)
      .reduce((s, l) => s + l.cost_usd, 0);
    const b = t['chart-budgets'].find((x) => x.name === 'monthly-cloud');
    assert.equal(b.limit_usd, 5);
    close(b.spent_usd, cloudMonth, 'budget: month-to-date cloud spend');
    assert.ok(b.forecast_usd >= b.spent_usd, 'the forecast runs to the month\'s end');

    // the advisor, as `advise --ledger` computes it
    const adv = JSON.parse(execFileSync(HL_BIN, ['advise', '--ledger', gw.ledgerPath, '--config', configPath,
      '--cloud-model', CLOUD_PRICE.model, '--json'], { encoding: 'utf8' }));
    close(t['chart-advise'].cloud_usd_per_month, adv.cloud.usd_per_month, 'advise: cloud $/month');
    close(t['chart-advise'].local_usd_per_month, adv.local.usd_per_month, 'advise: local $/month');
    assert.equal(t['chart-advise'].advice, adv.decision.advice);
    await page.screenshot({ path: path.join(SHOTS, 'dashboard.png'), fullPage: true });

    // a filter: one tenant and one task type; the charts follow the filtered report
    await page.select('select[name=tenant]', 'team-b');
    await page.select('select[name=task_type]', 'classification');
    const loads = await page.$eval('body', (e) => e.dataset.loads);
    await page.click('#filters button[type=submit]');
    await page.waitForFunction((n) => document.body.dataset.loads !== n && document.body.dataset.ready === 'true', {}, loads);
    const f = await totals(page);
    assert.ok(f['chart-spend'].cost_usd < t['chart-spend'].cost_usd, 'the filter narrows the spend');
    // the CLI's report has no tenant filter yet: the filtered figures are checked against the
    // API's own report for the same filter, and that against the raw lines
    const served = records.filter((l) => !l.shadow && l.tenant === 'team-b' && l.task_type === 'classification');
    const spend = records.filter((l) => l.tenant === 'team-b' && l.task_type === 'classification').reduce((s, l) => s + l.cost_usd, 0);
    close(f['chart-spend'].cost_usd, spend, 'filtered spend from the lines');
    assert.equal(f['chart-route-reason'].requests, new Set(served.map((l) => l.request_id)).size, 'filtered requests');
    assert.deepEqual(Object.keys(f['chart-backend'].groups).sort(), [...new Set(served.map((l) => l.backend))].sort());
    await page.screenshot({ path: path.join(SHOTS, 'dashboard-filtered.png'), fullPage: true });

    // a time range: the CLI's --from/--to
    const days = all.groups.map((g) => g.group);
    const from = days[1], to = days[days.length - 1];
    await page.select('select[name=tenant]', '');
    await page.select('select[name=task_type]', '');
    await page.$eval('input[name=from]', (e, v) => { e.value = v; }, from);
    await page.$eval('input[name=to]', (e, v) => { e.value = v; }, to);
    const loads2 = await page.$eval('body', (e) => e.dataset.loads);
    await page.click('#filters button[type=submit]');
    await page.waitForFunction((n) => document.body.dataset.loads !== n && document.body.dataset.ready === 'true', {}, loads2);
    const r2 = await totals(page);
    checkAgainstReport(r2, ['--from', from, '--to', to]);
    assert.ok(r2['chart-spend'].days < t['chart-spend'].days);
    await page.screenshot({ path: path.join(SHOTS, 'dashboard-range.png'), fullPage: true });
    await page.browserContext().close();
    assert.deepEqual(consoleErrors, [], 'no console errors');
  });

  it('shows the login form to a browser without a session', async () => {
    const page = await openPage();
    const resp = await page.goto(`${gw.url}/ui`, { waitUntil: 'load' });
    assert.equal(resp.status(), 200);
    assert.equal(new URL(page.url()).pathname, '/ui/login');
    assert.ok(await page.$('input[name=key]'));
    assert.equal(await page.$('#chart-spend'), null, 'no dashboard before the login');
    await page.type('input[name=key]', 'not-the-admin-key');
    await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.click('button[type=submit]')]);
    assert.ok(await page.$('#login-error'));
    await page.screenshot({ path: path.join(SHOTS, 'login-failed.png') });
    await page.browserContext().close();
    // a 401 page load is reported by chromium as a console error: those are expected here
    consoleErrors.splice(0, consoleErrors.length, ...consoleErrors.filter((e) => !/401/.test(e)));
    assert.deepEqual(consoleErrors, []);
  });
});

const LOCAL_ONLY = [{ name: 'local', kind: 'openai', location: 'local', base_url: 'http://127.0.0.1:9/v1', model: 'mistral-7b' }];

describe('the dashboard without an admin key', { skip: gatewayBinaryMissing() ?? false }, () => {
  it('answers loopback clients with no key', async () => {
    const gw = await startGateway({ backends: LOCAL_ONLY, routes: [{ name: 'default', to: ['local'] }] });
    try {
      let r = await fetch(`${gw.url}/api/filters`);
      assert.equal(r.status, 200);
      const j = await r.json();
      assert.equal(j.object, 'dashboard.filters');
      r = await fetch(`${gw.url}/ui`);
      assert.equal(r.status, 200);
      assert.match(r.headers.get('content-security-policy'), /script-src 'self'/);
      assert.match(await r.text(), /chart-spend/);
      r = await fetch(`${gw.url}/ui/chart.js`);
      assert.equal(r.status, 200);
      assert.match(await r.text(), /Chart\.js v3/, 'Debian\'s Chart.js, compiled in');
    } finally {
      await gw.stop();
    }
  });

  // A peer on this machine's own non-loopback address is not loopback: refused.
  const lan = Object.values(os.networkInterfaces()).flat().find((a) => a && a.family === 'IPv4' && !a.internal);
  it('refuses a peer that is not loopback', { skip: lan ? false : 'no non-loopback IPv4 address here' }, async () => {
    const gw = await startGateway({ backends: LOCAL_ONLY, routes: [{ name: 'default', to: ['local'] }],
      listenHost: '0.0.0.0' });
    const port = gw.port;
    try {
      let r = await fetch(`http://${lan.address}:${port}/api/filters`);
      assert.equal(r.status, 403);
      assert.equal((await r.json()).error.code, 'loopback_only');
      r = await fetch(`http://${lan.address}:${port}/ui`);
      assert.equal(r.status, 403);
      r = await fetch(`http://127.0.0.1:${port}/api/filters`);
      assert.equal(r.status, 200, 'the same gateway answers loopback');
    } finally {
      await gw.stop();
    }
  });

  it('is closed when admin_key_env names an unset variable', async () => {
    const gw = await startGateway({ backends: LOCAL_ONLY, routes: [{ name: 'default', to: ['local'] }], extraServer: { admin_key_env: 'HL_TEST_UNSET_ADMIN' }, unsetEnv: ['HL_TEST_UNSET_ADMIN'] });
    try {
      const r = await fetch(`${gw.url}/api/filters`);
      assert.equal(r.status, 403);
      assert.equal((await r.json()).error.code, 'dashboard_closed');
    } finally {
      await gw.stop();
    }
  });
});
