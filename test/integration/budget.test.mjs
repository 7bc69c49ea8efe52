// Cloud spend caps through the real gateway, under concurrent load: at the cap, requests are
// refused (action reject: 429 budget_exceeded) or go local (action local). The documented bound:
// a burst overshoots by at most one request per in-flight slot. Totals survive a restart
// (rebuilt from the ledger).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import OpenAI from 'openai';
import { startFakeOpenAI } from '../fake/openai.mjs';
import { gatewayBinaryMissing, KEYS, MODELS, posts, startGateway } from './gateway.mjs';

const skip = gatewayBinaryMissing();
const PRICE = { model: MODELS.openai, input_per_mtok: 5000, output_per_mtok: 15000 }; // big, so a few requests hit the cap

async function burst(c, n, concurrency, extra = {}) {
  const results = [];
  let next = 0;
  async function worker() {
    while (next < n) {
      next++;
      results.push(await c.chat.completions
        .create({ model: 'auto', messages: [{ role: 'user', content: 'how much is it' }], ...extra })
        .withResponse()
        .then(({ response }) => ({ ok: true, backend: response.headers.get('x-hybridllm-backend') }),
              (e) => ({ ok: false, status: e.status, code: e.code })));
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker));
  return results;
}

describe('budgets', { skip: skip ?? false }, () => {
  let cloud, local;
  before(async () => {
    cloud = await startFakeOpenAI({ key: KEYS.HL_TEST_OPENAI_KEY, models: [MODELS.openai] });
    local = await startFakeOpenAI({ models: [MODELS.local] });
  });
  after(async () => {
    await cloud?.close();
    await local?.close();
  });

  const backends = () => [
    { name: 'cloud', kind: 'openai', location: 'cloud', base_url: `${cloud.url}/v1`, api_key_env: 'HL_TEST_OPENAI_KEY', model: MODELS.openai, max_retries: 0 },
    { name: 'local', kind: 'openai', location: 'local', base_url: `${local.url}/v1`, model: MODELS.local, max_retries: 0 },
  ];

  test('action reject: at the cap cloud requests get 429; overshoot bounded by the in-flight requests', async () => {
    cloud.reset();
    const gw = await startGateway({
      backends: backends(),
      routes: [{ name: 'default', to: ['cloud'] }],
      prices: [PRICE],
      budgets: [{ name: 'cap', period: 'month', limit_usd: 0.25, action: 'reject' }],
    });
    try {
      const c = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'unused', maxRetries: 0 });
      const concurrency = 4;
      const results = await burst(c, 30, concurrency);
      const served = results.filter((r) => r.ok).length;
      const refused = results.filter((r) => !r.ok);
      assert.ok(refused.length > 0, 'the cap refused something');
      for (const r of refused) assert.deepEqual([r.status, r.code], [429, 'budget_exceeded']);
      const cost = gw.ledger().filter((l) => l.status === 'ok').map((l) => l.cost_usd);
      const total = cost.reduce((a, b) => a + b, 0);
      const one = Math.max(...cost);
      assert.equal(served, posts(cloud).length);
      assert.ok(total <= 0.25 + concurrency * one + 1e-9,
        `spent ${total} over a 0.25 cap with ${concurrency} in flight of ${one} each`);
      // The gateway says where it stands.
      const ready = await (await fetch(`${gw.url}/readyz`)).json();
      assert.ok(ready.budgets[0].spent_usd >= 0.25);
    } finally {
      await gw.stop();
    }
  });

  test('action local: at the cap requests go local; the total survives a restart', async () => {
    cloud.reset();
    local.reset();
    const ledgerPath = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'hlbudget-')), 'ledger.jsonl');
    const opts = {
      ledgerPath,
      backends: backends(),
      routes: [{ name: 'default', to: ['cloud'] }],
      prices: [PRICE],
      budgets: [{ name: 'cap', period: 'day', limit_usd: 0.25, action: 'local' }],
    };
    const gw = await startGateway(opts);
    try {
      const c = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'unused', maxRetries: 0 });
      const results = await burst(c, 20, 1);
      assert.ok(results.every((r) => r.ok), JSON.stringify(results.filter((r) => !r.ok)));
      const firstLocal = results.findIndex((r) => r.backend === 'local');
      assert.ok(firstLocal > 0, 'some requests went to the cloud first');
      assert.ok(results.slice(firstLocal).every((r) => r.backend === 'local'), 'after the cap, only local');
    } finally {
      await gw.stop();
    }
    // A new gateway on the same ledger starts at the cap.
    cloud.reset();
    const gw2 = await startGateway(opts);
    try {
      const c2 = new OpenAI({ baseURL: `${gw2.url}/v1`, apiKey: 'unused', maxRetries: 0 });
      const { response } = await c2.chat.completions.create({ model: 'auto', messages: [{ role: 'user', content: 'again' }] }).withResponse();
      assert.equal(response.headers.get('x-hybridllm-backend'), 'local');
      assert.equal(response.headers.get('x-hybridllm-route-reason'), 'rule:default+budget-local');
      assert.equal(posts(cloud).length, 0);
    } finally {
      await gw2.stop();
      fs.rmSync(path.dirname(ledgerPath), { recursive: true, force: true });
    }
  });
});
