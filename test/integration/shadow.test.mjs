// Shadow comparisons through the real gateway (a route's `shadow:`): after the client has its
// answer, the same request goes to another backend and the two answers are scored; the ledger
// gets one `shadow: true` line per shadow call with the score. The fakes plant agreement rates
// per task type (test/fake/planted.mjs); the ledger must recover them. Shadows never delay the
// client, never take a sensitive request to the cloud, stop when the budget is spent, and are
// dropped (counted) when the scheduler is full.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import OpenAI from 'openai';
import { startFakeOpenAI } from '../fake/openai.mjs';
import { RATES } from '../fake/planted.mjs';
import { gatewayBinaryMissing, HL_BIN, KEYS, MODELS, posts, ROOT, startGateway, toYAML } from './gateway.mjs';
import { sleep, waitFor } from './util.mjs';

const skip = gatewayBinaryMissing();
const MODELS_DIR = process.env.HL_MODELS_DIR ?? path.join(ROOT, '..', 'shared', 'models');
const STORIES = path.join(MODELS_DIR, 'stories260K.gguf');
const noModel = fs.existsSync(STORIES) || process.env.HL_REQUIRE_MODELS === '1' ? false : `SKIP: test models not found at ${MODELS_DIR}`;

const cloudBackend = (fake) => ({ name: 'cloud', kind: 'openai', location: 'cloud', base_url: `${fake.url}/v1`,
  api_key_env: 'HL_TEST_OPENAI_KEY', model: MODELS.openai, max_retries: 0 });
const localBackend = (fake, name = 'local') => ({ name, kind: 'openai', location: 'local', base_url: `${fake.url}/v1`,
  model: MODELS.local, max_retries: 0, warmup: false });

async function shadowCounts(gw) {
  const text = await (await fetch(`${gw.url}/metrics`)).text();
  const out = {};
  for (const m of text.matchAll(/^hybridllm_shadow_total\{result="(\w+)"\} (\d+)$/gm)) out[m[1]] = Number(m[2]);
  return out;
}

// Runs fn over items with `concurrency` at a time.
async function pool(items, concurrency, fn) {
  let next = 0;
  const out = new Array(items.length);
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i], i);
    }
  }));
  return out;
}

const median = (v) => {
  const s = [...v].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
};

describe('shadow comparisons', { skip: skip ?? false }, () => {
  test('the ledger recovers the planted agreement rates per task type', async () => {
    const cloud = await startFakeOpenAI({ key: KEYS.HL_TEST_OPENAI_KEY, models: [MODELS.openai], planted: { role: 'reference' } });
    const local = await startFakeOpenAI({ models: [MODELS.local], planted: { role: 'candidate' } });
    const gw = await startGateway({
      backends: [cloudBackend(cloud), localBackend(local)],
      routes: [{ name: 'default', to: ['cloud'], shadow: { rate: 1, to: ['local'] } }],
      shadow: { max_concurrent: 8, max_queue: 10000 },
    });
    try {
      const c = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'unused', maxRetries: 0 });
      const N = 250; // per task type: the interval below is about +/- 0.1 at p = 0.6
      const tasks = Object.keys(RATES);
      const jobs = [];
      for (const task of tasks) for (let i = 0; i < N; i++) jobs.push({ task, text: `[${task}] item ${i} of the planted set` });
      await pool(jobs, 8, ({ task, text }) => c.chat.completions.create({
        model: 'auto', messages: [{ role: 'user', content: text }], metadata: { task_type: task },
      }));
      const lines = await waitFor(() => {
        const l = gw.ledger().filter((x) => x.shadow === true);
        return l.length >= jobs.length ? l : null;
      }, 30000, `${jobs.length} shadow lines`);
      const served = gw.ledger().filter((x) => !x.shadow);
      assert.equal(served.length, jobs.length);
      const methods = { classification: 'exact', extraction: 'json', text: 'rouge_l' };
      for (const task of tasks) {
        const l = lines.filter((x) => x.task_type === task);
        assert.equal(l.length, N, task);
        for (const x of l) {
          assert.equal(x.backend, 'local');
          assert.equal(x.source, 'local');
          assert.equal(x.status, 'ok');
          assert.equal(x.attempt, 2);
          assert.equal(x.reference, 'served');
          assert.equal(x.score_method, methods[task]);
          assert.ok(x.score >= 0 && x.score <= 1);
          assert.ok(Number.isInteger(x.ref_output_tokens) && x.ref_output_tokens > 0);
          assert.equal(x.route_reason, 'rule:default+shadow');
          assert.ok(!('text' in x) && !JSON.stringify(x).includes('planted set'), 'no texts in the ledger');
          // The local side's planted confidence: >= 0.8 exactly when they agree.
          assert.equal(x.confidence >= 0.8, x.agree, `confidence ${x.confidence} agree ${x.agree}`);
          // and the other signals as planted: min = c, first-token margin = c - (1 - c) / 2
          assert.ok(Math.abs(x.confidence_min - x.confidence) < 1e-3, `min ${x.confidence_min}`);
          assert.ok(Math.abs(x.confidence_margin - (x.confidence - (1 - x.confidence) / 2)) < 1e-3, `margin ${x.confidence_margin}`);
        }
        const p = RATES[task];
        const got = l.filter((x) => x.agree).length / N;
        // 99.9% binomial interval (normal approximation, with continuity correction).
        const half = 3.29 * Math.sqrt((p * (1 - p)) / N) + 1 / (2 * N);
        console.log(`# ${task}: agreement ${got.toFixed(3)} (planted ${p}, interval +/- ${half.toFixed(3)}, n=${N})`);
        assert.ok(Math.abs(got - p) <= half, `${task}: ${got} vs planted ${p} +/- ${half}`);
      }
      // `report` over this ledger gives the same agreement per task type, with intervals that
      // hold the planted rates; `calibrate` finds the planted threshold (confidence 0.8: the
      // local answer agrees exactly when its confidence reaches it).
      const db = path.join(os.tmpdir(), `hl-shadow-report-${process.pid}.db`);
      try {
        const rep = spawnSync(HL_BIN, ['report', '--db', db, '--journal', gw.ledgerPath, '--group-by', 'task_type',
          '--format', 'json'], { encoding: 'utf8' });
        assert.equal(rep.status, 0, rep.stderr);
        const rows = JSON.parse(rep.stdout).groups;
        for (const task of tasks) {
          const row = rows.find((r) => r.group === task);
          const l = lines.filter((x) => x.task_type === task);
          assert.equal(row.scored, N, task);
          assert.ok(Math.abs(row.agreement - l.filter((x) => x.agree).length / N) < 1e-9, task);
          assert.ok(row.agreement_lo <= RATES[task] + 0.03 && RATES[task] - 0.03 <= row.agreement_hi,
            `${task}: planted ${RATES[task]} near [${row.agreement_lo}, ${row.agreement_hi}]`);
          assert.equal(row.requests, N, `${task}: shadows are not requests`);
        }
      } finally {
        for (const f of [db, `${db}-wal`, `${db}-shm`]) fs.rmSync(f, { force: true });
      }
      // (target 1: at 0.99 it may rightly keep the few disagreeing answers just under 0.65 local)
      const cal = spawnSync(HL_BIN, ['calibrate', '--ledger', gw.ledgerPath, '--target', '1', '--format', 'json'],
        { encoding: 'utf8' });
      assert.equal(cal.status, 0, cal.stderr);
      for (const t of JSON.parse(cal.stdout).task_types) {
        const th = t.chosen.threshold;
        console.log(`# calibrate ${t.task_type}: ${t.signal} threshold ${th}`);
        assert.ok(th > 0.65 && th < 0.85, `threshold ${th} separates the planted 0.35-0.65 from 0.80-0.99`);
      }
      // Every shadow went to the local fake, none to the cloud twice.
      assert.equal(posts(cloud).length, jobs.length);
      assert.equal(posts(local).length, jobs.length);
      assert.ok(posts(local).every((r) => r.body.logprobs === true && r.body.stream === undefined));
      assert.equal((await shadowCounts(gw)).compared, jobs.length);
    } finally {
      await gw.stop();
      await cloud.close();
      await local.close();
    }
  });

  describe('never on the critical path', () => {
    let local, shadowFake, gw, c;
    before(async () => {
      local = await startFakeOpenAI({ models: [MODELS.local], planted: { role: 'reference' } });
      shadowFake = await startFakeOpenAI({ models: [MODELS.local], planted: { role: 'candidate' } });
      gw = await startGateway({
        backends: [localBackend(local), localBackend(shadowFake, 'shadow-local')],
        routes: [
          { name: 'plain', when: { task_type: 'plain' }, to: ['local'] },
          { name: 'default', to: ['local'], shadow: { rate: 1, to: ['shadow-local'] } },
        ],
        shadow: { max_concurrent: 64, max_queue: 1000 },
      });
      c = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'unused', maxRetries: 0 });
    });
    after(async () => {
      await gw?.stop();
      await local?.close();
      await shadowFake?.close();
    });

    for (const stream of [false, true]) {
      test(`the client has its whole answer while the shadow is still held (${stream ? 'streamed' : 'whole'})`, async () => {
        shadowFake.reset();
        shadowFake.control({ hold: true });
        const before = gw.ledger().filter((x) => x.shadow).length;
        const text = `[classification] hold ${stream ? 's' : 'w'}`;
        let answer = '';
        if (stream) {
          const s = await c.chat.completions.create({ model: 'auto', stream: true, messages: [{ role: 'user', content: text }],
            metadata: { task_type: 'classification' } });
          for await (const ch of s) answer += ch.choices[0]?.delta?.content ?? '';
        } else {
          answer = (await c.chat.completions.create({ model: 'auto', messages: [{ role: 'user', content: text }],
            metadata: { task_type: 'classification' } })).choices[0].message.content;
        }
        assert.ok(answer.length > 0);
        // The shadow call reached its backend and is being held there; the client is done.
        await waitFor(() => shadowFake.held === 1, 5000, 'the shadow call held');
        assert.equal(gw.ledger().filter((x) => x.shadow).length, before, 'no shadow line before the release');
        assert.equal(posts(shadowFake)[0].body.stream, undefined, 'the shadow call is not streamed');
        shadowFake.release();
        const l = await waitFor(() => {
          const v = gw.ledger().filter((x) => x.shadow);
          return v.length > before ? v[v.length - 1] : null;
        }, 5000, 'the shadow line');
        assert.equal(l.backend, 'shadow-local');
        assert.equal(l.score_method, 'exact');
        assert.equal(typeof l.agree, 'boolean');
        // The served answer was local: it was asked with logprobs for its confidence, which the
        // client (that did not ask) never saw.
        assert.equal(posts(local).at(-1).body.logprobs, true);
      });
    }

    test('a streamed local answer is served without logprobs the client did not ask for', async () => {
      shadowFake.reset();
      const s = await c.chat.completions.create({ model: 'auto', stream: true, messages: [{ role: 'user', content: '[text] no logprobs for me' }] });
      for await (const ch of s) assert.ok(!ch.choices[0]?.logprobs, 'no logprobs in the stream');
      const r = await c.chat.completions.create({ model: 'auto', messages: [{ role: 'user', content: '[text] nor here' }] });
      assert.equal(r.choices[0].logprobs, null);
      // A client that asks for logprobs gets the alternatives it asked for (none here), not the
      // two the gateway asked for its own confidence; the served line has all three signals.
      const s2 = await c.chat.completions.create({ model: 'auto', stream: true, logprobs: true,
        messages: [{ role: 'user', content: '[text] my own logprobs' }] }).withResponse();
      let entries = 0;
      for await (const ch of s2.data) {
        for (const e of ch.choices[0]?.logprobs?.content ?? []) {
          entries++;
          assert.deepEqual(e.top_logprobs, []);
        }
      }
      assert.ok(entries > 0, 'the client got its logprobs');
      assert.equal(posts(local).at(-1).body.top_logprobs, 2);
      const rid = s2.response.headers.get('x-hybridllm-request-id');
      const served = await waitFor(() => gw.ledger().find((x) => x.request_id === rid && !x.shadow), 5000, 'served line');
      assert.ok(served.confidence > 0 && served.confidence_margin > 0 && served.confidence_min > 0);
    });

    test('client latency with and without shadowing, measured side by side (printed)', async () => {
      shadowFake.reset();
      shadowFake.control({ delay_ms: 40 }); // a slow shadow backend
      const n = 40;
      const plain = [], shadowed = [];
      for (let i = 0; i < n; i++) {
        for (const [task, out] of [['plain', plain], ['text', shadowed]]) {
          const t0 = performance.now();
          await c.chat.completions.create({ model: 'auto', messages: [{ role: 'user', content: `[text] latency ${i}` }],
            metadata: { task_type: task } });
          out.push(performance.now() - t0);
        }
      }
      console.log(`# client latency median: without shadow ${median(plain).toFixed(2)} ms, with shadow ${median(shadowed).toFixed(2)} ms ` +
        `(ratio ${(median(shadowed) / median(plain)).toFixed(2)}; the shadow backend takes 40 ms)`);
      await waitFor(() => posts(shadowFake).length >= n, 10000, 'the shadows ran');
      shadowFake.control({ delay_ms: 0 });
    });
  });

  test('a sensitive request is never shadowed to the cloud (property: a generated mix of texts)', async () => {
    const cloud = await startFakeOpenAI({ key: KEYS.HL_TEST_OPENAI_KEY, models: [MODELS.openai] });
    const local = await startFakeOpenAI({ models: [MODELS.local] });
    const gw = await startGateway({
      backends: [cloudBackend(cloud), localBackend(local)],
      routes: [{ name: 'default', to: ['local'], shadow: { rate: 1, to: ['cloud'], cloud: true } }],
      shadow: { max_concurrent: 8, max_queue: 1000 },
    });
    try {
      const c = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'unused', maxRetries: 0 });
      let seed = 12345;
      const rnd = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 4294967296);
      const pick = (v) => v[Math.floor(rnd() * v.length)];
      const words = ['order', 'status', 'please', 'check', 'the', 'invoice', 'shipping', 'delay', 'refund', 'today'];
      const secrets = () => pick([
        `jane.doe${Math.floor(rnd() * 1000)}@example.com`,
        `+1 415 555 ${String(1000 + Math.floor(rnd() * 8999))}`,
        `SSN 123-45-${String(1000 + Math.floor(rnd() * 8999))}`,
        `card 4111 1111 1111 1111`,
      ]);
      const cases = [];
      for (let i = 0; i < 80; i++) {
        const kind = pick(['clean', 'clean', 'pii', 'declared']);
        const body = Array.from({ length: 6 + Math.floor(rnd() * 6) }, () => pick(words));
        const secret = kind === 'pii' ? secrets() : null;
        if (secret) body.splice(Math.floor(rnd() * body.length), 0, secret);
        cases.push({ kind, secret, text: `case ${i}: ${body.join(' ')}` });
      }
      await pool(cases, 6, ({ kind, text }) => c.chat.completions.create(
        { model: 'auto', messages: [{ role: 'user', content: text }] },
        kind === 'declared' ? { headers: { 'x-hybridllm-pii': 'true' } } : {}));
      const clean = cases.filter((x) => x.kind === 'clean');
      const counts = await waitFor(async () => {
        const m = await shadowCounts(gw);
        return (m.compared ?? 0) + (m.failed ?? 0) >= clean.length ? m : null;
      }, 15000, 'the clean shadows');
      await sleep(200); // anything else in flight would land now
      const sent = posts(cloud).map((r) => JSON.stringify(r.body));
      for (const x of cases.filter((k) => k.kind !== 'clean'))
        assert.ok(!sent.some((b) => b.includes(JSON.stringify(x.text).slice(1, -1))), `sensitive case reached the cloud: ${x.text}`);
      for (const x of clean)
        assert.ok(sent.some((b) => b.includes(JSON.stringify(x.text).slice(1, -1))), `clean case shadowed: ${x.text}`);
      for (const x of cases.filter((k) => k.secret))
        assert.ok(!sent.some((b) => b.includes(x.secret)), `PII reached the cloud: ${x.secret}`);
      assert.equal(posts(cloud).length, clean.length, 'every clean request was shadowed to the cloud');
      assert.equal(counts.dropped_privacy, cases.length - clean.length);
      assert.equal(counts.compared, clean.length);
      const sh = gw.ledger().filter((x) => x.shadow);
      assert.ok(sh.every((x) => x.sensitive === false && x.source === 'cloud'));
    } finally {
      await gw.stop();
      await cloud.close();
      await local.close();
    }
  });

  test("a virtual key whose traffic stays local is never shadowed to the cloud", async () => {
    const ADMIN = 'admin-key-0123456789abcdef';
    const cloud = await startFakeOpenAI({ key: KEYS.HL_TEST_OPENAI_KEY, models: [MODELS.openai] });
    const local = await startFakeOpenAI({ models: [MODELS.local] });
    const gw = await startGateway({
      backends: [cloudBackend(cloud), localBackend(local)],
      routes: [{ name: 'default', to: ['local'], shadow: { rate: 1, to: ['cloud'], cloud: true } }],
      extraServer: { admin_key_env: 'HL_TEST_ADMIN_KEY' },
      extraLedger: { index_interval_ms: 100 },
      env: { ...KEYS, HL_TEST_ADMIN_KEY: ADMIN },
    });
    try {
      const mk = async (body) => (await fetch(`${gw.url}/admin/keys`, { method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN}` }, body: JSON.stringify(body) })).json();
      const priv = await mk({ name: 'private', cloud_allowed: false });
      const open = await mk({ name: 'open' });
      const ask = (key, text) => new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: key, maxRetries: 0 })
        .chat.completions.create({ model: 'auto', messages: [{ role: 'user', content: text }] });
      await ask(priv.key, 'from the private key');
      await waitFor(async () => (await shadowCounts(gw)).dropped_privacy === 1, 5000, 'dropped for privacy');
      await ask(open.key, 'from the open key');
      await waitFor(async () => (await shadowCounts(gw)).compared === 1, 5000, 'compared');
      const sent = posts(cloud).map((r) => JSON.stringify(r.body));
      assert.equal(sent.length, 1);
      assert.ok(sent[0].includes('from the open key'));
      const [line] = gw.ledger().filter((x) => x.shadow);
      assert.equal(line.key_name, 'open');
    } finally {
      await gw.stop();
      await cloud.close();
      await local.close();
    }
  });

  test('shadows to the cloud stop when the budget is spent; their spend is counted', async () => {
    const cloud = await startFakeOpenAI({ key: KEYS.HL_TEST_OPENAI_KEY, models: [MODELS.openai] });
    const local = await startFakeOpenAI({ models: [MODELS.local] });
    const gw = await startGateway({
      backends: [cloudBackend(cloud), localBackend(local)],
      prices: [{ model: MODELS.openai, input_per_mtok: 5000, output_per_mtok: 15000 }],
      budgets: [{ name: 'cap', period: 'month', limit_usd: 0.5, action: 'local' }],
      routes: [{ name: 'default', to: ['local'], shadow: { rate: 1, to: ['cloud'], cloud: true } }],
    });
    try {
      const c = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'unused', maxRetries: 0 });
      let dropped = 0;
      for (let i = 0; i < 30 && dropped < 3; i++) {
        const before = await shadowCounts(gw);
        await c.chat.completions.create({ model: 'auto', messages: [{ role: 'user', content: `budget probe number ${i}` }] });
        const m = await waitFor(async () => {
          const x = await shadowCounts(gw);
          return x.compared + x.dropped_budget > before.compared + before.dropped_budget ? x : null;
        }, 5000, 'the shadow');
        dropped = m.dropped_budget;
      }
      assert.equal(dropped, 3, 'shadows were dropped once the cap was reached');
      const sh = gw.ledger().filter((x) => x.shadow);
      const spent = sh.reduce((a, x) => a + x.cost_usd, 0);
      assert.ok(spent >= 0.5, `shadow spend ${spent} reached the cap`);
      const last = sh.at(-1).cost_usd;
      assert.ok(spent - last < 0.5, 'no shadow started once the cap was reached');
      assert.equal(posts(cloud).length, sh.length);
      const ready = await (await fetch(`${gw.url}/readyz`)).json();
      assert.ok(ready.budgets[0].spent_usd >= 0.5, 'the budget counts shadow spend');
    } finally {
      await gw.stop();
      await cloud.close();
      await local.close();
    }
  });

  test("a virtual key's budget holds shadows to the cloud: reserved at their worst case, never passed", async () => {
    const ADMIN = 'admin-key-0123456789abcdef';
    const cloud = await startFakeOpenAI({ key: KEYS.HL_TEST_OPENAI_KEY, models: [MODELS.openai] });
    const local = await startFakeOpenAI({ models: [MODELS.local] });
    const gw = await startGateway({
      backends: [cloudBackend(cloud), localBackend(local)],
      prices: [{ model: MODELS.openai, input_per_mtok: 5000, output_per_mtok: 15000 }],
      routes: [{ name: 'default', to: ['local'], shadow: { rate: 1, to: ['cloud'], cloud: true } }],
      extraServer: { admin_key_env: 'HL_TEST_ADMIN_KEY' },
      env: { ...KEYS, HL_TEST_ADMIN_KEY: ADMIN },
    });
    try {
      const made = await (await fetch(`${gw.url}/admin/keys`, { method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN}` },
        body: JSON.stringify({ name: 'capped', budget_month_usd: 0.5 }) })).json();
      const c = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: made.key, maxRetries: 0 });
      let dropped = 0;
      for (let i = 0; i < 30 && dropped < 2; i++) {
        const before = await shadowCounts(gw);
        // served locally (nothing to reserve), shadowed to the priced cloud: each shadow reserves
        // its worst case, 10 output tokens at $15,000 per 1M = $0.15 plus the prompt
        await c.chat.completions.create({ model: 'auto', max_tokens: 10,
          messages: [{ role: 'user', content: `key budget probe ${i}` }] });
        const m = await waitFor(async () => {
          const x = await shadowCounts(gw);
          return x.compared + x.dropped_budget > before.compared + before.dropped_budget ? x : null;
        }, 5000, 'the shadow');
        dropped = m.dropped_budget;
      }
      assert.equal(dropped, 2, 'shadows were dropped once the key could not hold another');
      const sh = gw.ledger().filter((x) => x.shadow);
      assert.ok(sh.length >= 1 && sh.every((x) => x.key_name === 'capped'));
      const spent = sh.reduce((a, x) => a + x.cost_usd, 0);
      assert.ok(spent <= 0.5, `the key's shadow spend ${spent} stays within its $0.50 budget`);
      assert.equal(posts(cloud).length, sh.length, 'no dropped shadow reached the cloud');
    } finally {
      await gw.stop();
      await cloud.close();
      await local.close();
    }
  });

  test('dropped when busy: no free slot and no queue (counted)', async () => {
    const local = await startFakeOpenAI({ models: [MODELS.local] });
    const other = await startFakeOpenAI({ models: [MODELS.local] });
    const gw = await startGateway({
      backends: [localBackend(local), localBackend(other, 'other')],
      extraServer: { threads: 1 },
      routes: [{ name: 'default', to: ['local'], shadow: { rate: 1, to: ['other'] } }],
      shadow: { max_concurrent: 1, max_queue: 0 },
    });
    try {
      const c = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'unused', maxRetries: 0 });
      other.control({ hold: true });
      await c.chat.completions.create({ model: 'auto', messages: [{ role: 'user', content: 'first' }] });
      await waitFor(() => other.held === 1, 5000, 'the first shadow held');
      for (let i = 0; i < 3; i++)
        await c.chat.completions.create({ model: 'auto', messages: [{ role: 'user', content: `busy ${i}` }] });
      assert.equal((await shadowCounts(gw)).dropped_busy, 3);
      assert.equal(posts(other).length, 1);
      other.release();
      await waitFor(async () => (await shadowCounts(gw)).compared === 1, 5000, 'the first compared');
      other.control({ hold: false });
      await c.chat.completions.create({ model: 'auto', messages: [{ role: 'user', content: 'free again' }] });
      await waitFor(async () => (await shadowCounts(gw)).compared === 2, 5000, 'a slot is free again');
    } finally {
      await gw.stop();
      await local.close();
      await other.close();
    }
  });

  test('failed shadows, answers over the capture cap, and the optional sample store', async () => {
    const local = await startFakeOpenAI({ models: [MODELS.local] });
    const other = await startFakeOpenAI({ models: [MODELS.local] });
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hlsamples-'));
    const samples = path.join(dir, 'samples.jsonl');
    const gw = await startGateway({
      backends: [localBackend(local), localBackend(other, 'other')],
      routes: [{ name: 'default', to: ['local'], shadow: { rate: 1, to: ['other'] } }],
      shadow: { max_capture_bytes: 1024, samples },
    });
    try {
      const c = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'unused', maxRetries: 0 });
      // compared: both texts go to the sample file (0600), never to the ledger
      other.control({ reply: 'a shadow reply to review' });
      await c.chat.completions.create({ model: 'auto', messages: [{ role: 'user', content: 'sample me please' }] });
      await waitFor(async () => (await shadowCounts(gw)).compared === 1, 5000, 'compared');
      const [sample] = fs.readFileSync(samples, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
      assert.equal(sample.served_text, 'echo: sample me please');
      assert.equal(sample.shadow_text, 'a shadow reply to review');
      assert.equal(sample.shadow_backend, 'other');
      assert.equal(fs.statSync(samples).mode & 0o777, 0o600);
      assert.ok(!fs.readFileSync(gw.ledgerPath, 'utf8').includes('review'), 'no texts in the ledger');
      // failed: the shadow backend errs; an error line, no score
      other.control({ status: 500, count: 1 });
      const r = await c.chat.completions.create({ model: 'auto', messages: [{ role: 'user', content: 'fail it' }] }).withResponse();
      assert.equal(r.data.choices[0].message.content, 'echo: fail it');
      await waitFor(async () => (await shadowCounts(gw)).failed === 1, 5000, 'failed');
      const rid = r.response.headers.get('x-hybridllm-request-id');
      const [err] = gw.ledger().filter((x) => x.request_id === rid && x.shadow);
      assert.deepEqual([err.status, err.http_status, err.score ?? null], ['error', 500, null]);
      // skipped_size: a served answer over max_capture_bytes, whole or streamed
      local.control({ reply: 'word '.repeat(400) });
      await c.chat.completions.create({ model: 'auto', messages: [{ role: 'user', content: 'long one' }] });
      const st = await c.chat.completions.create({ model: 'auto', stream: true, messages: [{ role: 'user', content: 'long two' }] });
      for await (const _ of st);
      await waitFor(async () => (await shadowCounts(gw)).skipped_size === 2, 5000, 'skipped twice');
      assert.equal(posts(other).length, 2, 'no shadow call for the long answers');
    } finally {
      await gw.stop();
      await local.close();
      await other.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('an LLM judge, asked twice with the answers swapped, cancels its order bias', async () => {
    const local = await startFakeOpenAI({ models: [MODELS.local] });
    const other = await startFakeOpenAI({ models: [MODELS.local] });
    const judge = await startFakeOpenAI({ models: [MODELS.local] });
    const gw = await startGateway({
      backends: [localBackend(local), localBackend(other, 'other'), localBackend(judge, 'judge')],
      routes: [{ name: 'default', to: ['local'], shadow: { rate: 1, to: ['other'], compare: 'judge', judge: 'judge', threshold: 0.5 } }],
    });
    try {
      const c = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'unused', maxRetries: 0 });
      other.control({ reply: 'a different shadow answer' });
      const cases = [['A', 0.5], ['B', 0.5], ['TIE', 0.5]];
      // A judge that always picks one position: the swap gives each answer one win.
      for (const [reply, want] of cases) {
        judge.control({ reply });
        const r = await c.chat.completions.create({ model: 'auto', messages: [{ role: 'user', content: `judge me ${reply}` }] }).withResponse();
        const rid = r.response.headers.get('x-hybridllm-request-id');
        const l = await waitFor(() => {
          const v = gw.ledger().filter((x) => x.request_id === rid && x.shadow);
          return v.length >= 3 ? v : null;
        }, 5000, 'the shadow and judge lines');
        const line = l.find((x) => x.score_method);
        assert.equal(line.score, want, `judge always ${reply}`);
        assert.equal(line.agree, true);
        assert.deepEqual(l.filter((x) => x.route_reason === 'rule:default+judge').map((x) => x.attempt).sort(), [3, 4]);
      }
      const asked = posts(judge).slice(-2).map((p) => p.body.messages.at(-1).content);
      assert.ok(asked[0].indexOf('echo: judge me TIE') < asked[0].indexOf('Answer B'), 'round 1: the served answer is A');
      assert.ok(asked[1].indexOf('echo: judge me TIE') > asked[1].indexOf('Answer B'), 'round 2: the served answer is B');
    } finally {
      await gw.stop();
      await local.close();
      await other.close();
      await judge.close();
    }
  });

  test('embeddings: the cosine of both answers, through the embeddings backend', async () => {
    const cloud = await startFakeOpenAI({ key: KEYS.HL_TEST_OPENAI_KEY, models: [MODELS.openai], planted: { role: 'reference' } });
    const local = await startFakeOpenAI({ models: [MODELS.local], planted: { role: 'candidate' } });
    const emb = await startFakeOpenAI({ embed_dims: 16 });
    const gw = await startGateway({
      backends: [cloudBackend(cloud), localBackend(local), localBackend(emb, 'emb')],
      routes: [{ name: 'default', to: ['cloud'], shadow: { rate: 1, to: ['local'], compare: 'embedding', embeddings: 'emb', threshold: 0.99 } }],
    });
    try {
      const c = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'unused', maxRetries: 0 });
      const n = 20;
      for (let i = 0; i < n; i++)
        await c.chat.completions.create({ model: 'auto', messages: [{ role: 'user', content: `[text] embed ${i}` }] });
      const lines = await waitFor(() => {
        const v = gw.ledger().filter((x) => x.shadow && x.score_method);
        return v.length >= n ? v : null;
      }, 10000, 'the scored lines');
      assert.ok(lines.every((x) => x.score_method === 'embedding'));
      // Equal texts embed equally (cosine 1); the planted variants use other words.
      assert.ok(lines.some((x) => x.agree && x.score > 0.999));
      assert.ok(lines.some((x) => !x.agree && x.score < 0.99));
      const embLines = gw.ledger().filter((x) => x.route_reason === 'rule:default+embed');
      assert.equal(embLines.length, n);
      assert.ok(posts(emb).every((p) => p.path === '/v1/embeddings' && p.body.input.length === 2));
    } finally {
      await gw.stop();
      await cloud.close();
      await local.close();
      await emb.close();
    }
  });

  test('a builtin engine with an idle sequence is shadowed; its confidence signals are recorded', { skip: noModel }, async () => {
    const cloud = await startFakeOpenAI({ key: KEYS.HL_TEST_OPENAI_KEY, models: [MODELS.openai] });
    const gw = await startGateway({
      backends: [cloudBackend(cloud),
        { name: 'embedded', kind: 'builtin', location: 'local', model_path: STORIES, model: 'stories260K', threads: 1, max_sequences: 1, warmup: false }],
      routes: [{ name: 'default', to: ['cloud'], shadow: { rate: 1, to: ['embedded'], compare: 'token_f1' } }],
    });
    try {
      const c = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'unused', maxRetries: 0 });
      const n = 4;
      let lines = [];
      // One at a time: a shadow finds the engine's only sequence idle only once the previous
      // shadow is done (else it is dropped busy, as the clients come first).
      for (let i = 0; i < n; i++) {
        await c.chat.completions.create({ model: 'auto', max_tokens: 16, temperature: 0, messages: [{ role: 'user', content: `Once upon a time ${i}` }] });
        lines = await waitFor(() => {
          const v = gw.ledger().filter((x) => x.shadow && x.score_method);
          return v.length > i ? v : null;
        }, 20000, `builtin shadow ${i}`);
      }
      assert.equal((await shadowCounts(gw)).dropped_busy, 0);
      for (const x of lines) {
        assert.equal(x.backend, 'embedded');
        assert.equal(x.score_method, 'token_f1');
        assert.ok(x.output_tokens > 0 && x.output_tokens <= 16);
        assert.ok(x.confidence > 0 && x.confidence <= 1, `confidence ${x.confidence}`);
        assert.ok(x.confidence_margin >= 0 && x.confidence_min > 0 && x.confidence_min <= x.confidence);
      }
    } finally {
      await gw.stop();
      await cloud.close();
    }
  });

  test('config errors name the file, the line and the key', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hlshadow-'));
    const base = {
      server: { listen: '127.0.0.1:1' },
      backends: [
        { name: 'local', kind: 'openai', location: 'local', base_url: 'http://127.0.0.1:9/v1', model: 'm' },
        { name: 'cloud', kind: 'openai', location: 'cloud', base_url: 'https://api.example.com/v1', model: 'm' },
      ],
    };
    const cases = [
      [{ rate: 0.1, to: ['nowhere'] }, /shadow\.to\[0\]: unknown backend 'nowhere'/],
      [{ rate: 0.1, to: ['cloud'] }, /shadow\.to: backend 'cloud' is a cloud backend: set shadow\.cloud: true/],
      [{ rate: 2, to: ['local'] }, /shadow\.rate: must be in \[0, 1\]/],
      [{ rate: 0.1, to: ['local'], compare: 'embedding' }, /shadow\.embeddings: compare: embedding needs embeddings/],
    ];
    try {
      for (const [shadow, re] of cases) {
        const file = path.join(dir, 'bad.yaml');
        fs.writeFileSync(file, toYAML({ ...base, routes: [{ name: 'r', to: ['local'], shadow }] }));
        const r = spawnSync(HL_BIN, ['serve', '--config', file], { encoding: 'utf8', timeout: 10000 });
        assert.notEqual(r.status, 0);
        const err = r.stderr + r.stdout;
        assert.match(err, new RegExp(`${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}:\\d+: routes\\[0\\]\\.`));
        assert.match(err, re);
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
