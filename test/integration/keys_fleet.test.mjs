// Virtual keys' budgets beyond one key on one gateway (issue 14, what keys.test.mjs does not
// cover): tenant budgets shared by the tenant's keys, embeddings reserving like chat, a
// backend's max_tokens as the reservation of a request without one, and budgets exact across
// two gateways on one PostgreSQL (leases in the store), including a dead gateway's lease
// coming back.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import OpenAI from 'openai';
import { startGateway, KEYS, MODELS, PRICES, gatewayBinaryMissing, posts } from './gateway.mjs';
import { startFakeOpenAI } from '../fake/openai.mjs';
import { waitFor } from './util.mjs';

const skip = gatewayBinaryMissing();
const ADMIN = 'admin-key-0123456789abcdef';
const INTERVAL_MS = 100;
const EMBED = 'text-embedding-3-small';
const EMBED_PRICE = 100; // USD per 1M input tokens: dear, so a few reservations fill a budget

const admin = (gw, method, p, body) =>
  fetch(`${gw.url}${p}`, {
    method,
    headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN}` },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
const newKey = async (gw, spec) => {
  const r = await admin(gw, 'POST', '/admin/keys', spec);
  assert.equal(r.status, 201);
  return r.json();
};
const client = (gw, apiKey) => new OpenAI({ apiKey, baseURL: `${gw.url}/v1`, maxRetries: 0, timeout: 20000 });

// A chat request whose answer costs about what it reserves: 200 output tokens reserved, 200
// words answered (the fake counts words as tokens), so the output dominates and the prompt's
// estimate hardly matters.
const REPLY = Array.from({ length: 200 }, (_, i) => `w${i}`).join(' ');
const CHAT = { model: MODELS.openai, max_tokens: 200, messages: [{ role: 'user', content: 'hello there, please answer' }] };
// One request's reservation, at most: its prompt (at most 4 bytes a token of its JSON, plus
// the template's 16) plus max_tokens, at gpt-4o's prices. At least: the output alone. Caps
// below are set in these so that how many fit is the same for both bounds.
const RESERVATION = ((Math.ceil(JSON.stringify(CHAT.messages).length / 4) + 16) * 5 + CHAT.max_tokens * 15) / 1e6;
const RESERVATION_MIN = (CHAT.max_tokens * 15) / 1e6;
assert.equal(Math.floor(8 * RESERVATION / RESERVATION_MIN), 8);
assert.equal(Math.floor(2.5 * RESERVATION / RESERVATION_MIN), 2);

// Outcome of a call: 200, or the error's status and code.
const outcome = (p) => p.then(() => ({ status: 200 }), (e) => ({ status: e.status, code: e.code, message: e.message }));

const backendsFor = (openai, extra = {}) => [
  { name: 'cloud-openai', kind: 'openai', location: 'cloud', base_url: `${openai.url}/v1`, api_key_env: 'HL_TEST_OPENAI_KEY', model: MODELS.openai, models: [EMBED], max_retries: 0, breaker_failures: 1000000, ...extra },
];
const ROUTES = [{ name: 'default', to: ['cloud-openai'] }];
const PRICES_E = [...PRICES, { model: EMBED, input_per_mtok: EMBED_PRICE, output_per_mtok: 0 }];

describe('tenant budgets, embeddings and backend max_tokens (one gateway)', { skip: skip ?? false }, () => {
  let openai, gw;
  before(async () => {
    openai = await startFakeOpenAI({ key: KEYS.HL_TEST_OPENAI_KEY, models: [MODELS.openai, EMBED] });
    gw = await startGateway({
      backends: backendsFor(openai),
      routes: ROUTES,
      prices: PRICES_E,
      tenants: [{ name: 'team-x', budget_day_usd: 2.5 * RESERVATION }, { name: 'team-y', rpm: 1000 }],
      extraServer: { admin_key_env: 'HL_TEST_ADMIN_KEY' },
      extraLedger: { index_interval_ms: INTERVAL_MS },
      env: { ...KEYS, HL_TEST_ADMIN_KEY: ADMIN },
    });
  });
  after(async () => {
    await gw?.stop();
    await openai?.close();
  });

  it("a tenant's budget holds all its keys together: two reservations fit, a third is refused naming the tenant", async () => {
    const k1 = await newKey(gw, { name: 'x1', tenant: 'team-x' });
    const k2 = await newKey(gw, { name: 'x2', tenant: 'team-x', budget_day_usd: 10 });
    const ky = await newKey(gw, { name: 'y1', tenant: 'team-y' });
    openai.control({ delay_ms: 400, reply: REPLY }); // all in flight at once
    try {
      const results = await Promise.all(Array.from({ length: 10 }, (_, i) =>
        outcome(client(gw, i % 2 ? k1.key : k2.key).chat.completions.create(CHAT))));
      const ok = results.filter((r) => r.status === 200).length;
      assert.equal(ok, 2, JSON.stringify(results));
      for (const r of results.filter((x) => x.status !== 200)) {
        assert.equal(r.status, 429);
        assert.equal(r.code, 'budget_exceeded');
        assert.match(r.message, /budget of this API key's tenant/);
      }
      // Another tenant's key is not held by team-x's budget.
      const other = await Promise.all(Array.from({ length: 4 }, () => outcome(client(gw, ky.key).chat.completions.create(CHAT))));
      assert.deepEqual(other.map((r) => r.status), [200, 200, 200, 200]);
    } finally {
      openai.reset();
    }
  });

  it('embeddings reserve against the budget as chat does: a burst cannot pass it', async () => {
    const input = Array.from({ length: 80 }, (_, i) => `word${i}`).join(' ');
    const k = await newKey(gw, { name: 'embedder', budget_day_usd: 1 });
    // One first, alone, to learn what an answer costs: about what it reserves.
    const one = await client(gw, k.key).embeddings.create({ model: EMBED, input, encoding_format: 'float' });
    assert.equal(one.data.length, 1);
    const capped = await newKey(gw, { name: 'embed-capped', budget_day_usd: 0.035 });
    openai.control({ delay_ms: 400 });
    try {
      const results = await Promise.all(Array.from({ length: 10 }, () =>
        outcome(client(gw, capped.key).embeddings.create({ model: EMBED, input, encoding_format: 'float' }))));
      const ok = results.filter((r) => r.status === 200).length;
      const refused = results.filter((r) => r.status === 429 && r.code === 'budget_exceeded').length;
      assert.equal(ok + refused, 10, JSON.stringify(results));
      // Without reservations all ten would pass (nothing is spent while they are in flight).
      assert.ok(ok >= 1 && ok <= 4, `admitted ${ok}`);
    } finally {
      openai.reset();
    }
    await waitFor(() => gw.ledger().filter((l) => l.key_name === 'embed-capped').length >= 1, 5000, 'the ledger lines');
    await new Promise((r) => setTimeout(r, 300));
    const spent = gw.ledger().filter((l) => l.key_name === 'embed-capped').reduce((s, l) => s + l.cost_usd, 0);
    assert.ok(spent > 0 && spent <= 0.035, `spent ${spent} within the budget`);
  });

  it("without max_tokens a request reserves its backend's max_tokens, which is sent upstream", async () => {
    const body = { model: MODELS.openai, messages: [{ role: 'user', content: 'hi' }] };
    // With server.key_reserve_max_tokens (4096 at $15/1M: $0.06) a $0.005 budget refuses it.
    const k = await newKey(gw, { name: 'default-capped', budget_day_usd: 0.005 });
    await assert.rejects(client(gw, k.key).chat.completions.create(body), (e) => e.status === 429 && e.code === 'budget_exceeded');
    const gw2 = await startGateway({
      backends: backendsFor(openai, { max_tokens: 50 }),
      routes: ROUTES,
      extraServer: { admin_key_env: 'HL_TEST_ADMIN_KEY' },
      env: { ...KEYS, HL_TEST_ADMIN_KEY: ADMIN },
    });
    try {
      openai.reset();
      const k2 = await newKey(gw2, { name: 'default-capped', budget_day_usd: 0.005 });
      const res = await client(gw2, k2.key).chat.completions.create(body);
      assert.ok(res.choices[0].message.content.length > 0);
      const up = posts(openai).filter((r) => r.path === '/v1/chat/completions');
      assert.equal(up.at(-1).body.max_tokens, 50, "the backend's max_tokens went upstream");
      // A request's own max_tokens wins over the backend's.
      await client(gw2, k2.key).chat.completions.create({ ...body, max_tokens: 7 });
      assert.equal(posts(openai).at(-1).body.max_tokens, 7);
    } finally {
      await gw2.stop();
    }
  });
});

const PG = process.env.HL_TEST_PG;
describe('budgets exact across two gateways on PostgreSQL', { skip: skip ?? (PG ? false : 'HL_TEST_PG is not set (eval "$(bash scripts/pg.sh start)" gives one)') }, () => {
  let openai, a, b, db, uri;
  const psql = (sql) => execFileSync('psql', [uri ?? PG, '-v', 'ON_ERROR_STOP=1', '-Atqc', sql], { encoding: 'utf8', env: { ...process.env, PGOPTIONS: '-c client_min_messages=warning' } }).trim();
  const gateway = () => startGateway({
    backends: backendsFor(openai),
    routes: ROUTES,
    prices: PRICES_E,
    tenants: [{ name: 'team-f', budget_day_usd: 4.5 * RESERVATION }],
    extraServer: { admin_key_env: 'HL_TEST_ADMIN_KEY' },
    extraLedger: { store: uri, index_interval_ms: INTERVAL_MS },
    env: { ...KEYS, HL_TEST_ADMIN_KEY: ADMIN },
  });
  // Waits until gateway gw accepts key (its keys are reloaded after each index pass): a request
  // for a model that does not exist answers 404 (nothing spent), an unknown key 401.
  const accepted = (gw, key) => waitFor(async () => {
    const r = await fetch(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` }, body: JSON.stringify({ ...CHAT, model: 'not-allowed' }) });
    await r.text();
    return r.status === 404;
  }, 50 * INTERVAL_MS, 'the key accepted by the other gateway');
  before(async () => {
    db = `hl_fleet_${process.pid}`;
    psql(`DROP DATABASE IF EXISTS ${db}`);
    psql(`CREATE DATABASE ${db}`);
    uri = `${PG}${PG.includes('?') ? '&' : '?'}dbname=${db}`;
    openai = await startFakeOpenAI({ key: KEYS.HL_TEST_OPENAI_KEY, models: [MODELS.openai, EMBED] });
    a = await gateway();
    b = await gateway();
  });
  after(async () => {
    await a?.stop();
    await b?.stop();
    await openai?.close();
    if (db) execFileSync('psql', [PG, '-Atqc', `DROP DATABASE IF EXISTS ${db} WITH (FORCE)`]);
  });

  it('200 concurrent requests split across both: spend never passes the cap by more than one reservation', async () => {
    const CAP = 8 * RESERVATION;
    const k = await newKey(a, { name: 'fleet-burst', budget_day_usd: CAP, models: [MODELS.openai] });
    await accepted(b, k.key);
    openai.control({ delay_ms: 300, reply: REPLY });
    let results;
    try {
      results = await Promise.all(Array.from({ length: 200 }, (_, i) =>
        outcome(client(i % 2 ? a : b, k.key).chat.completions.create(CHAT))));
    } finally {
      openai.reset();
    }
    const ok = results.filter((r) => r.status === 200).length;
    const refused = results.filter((r) => r.status === 429 && r.code === 'budget_exceeded').length;
    assert.equal(ok + refused, 200, `only 200s and budget 429s: ${JSON.stringify([...new Set(results.map((r) => `${r.status} ${r.code}`))])}`);
    assert.ok(ok > 0 && refused > 0, `admitted ${ok}, refused ${refused}`);
    // Each gateway alone would admit the cap's worth: without leases the two pass it twice over.
    assert.ok(ok <= 8, `admitted ${ok} of at most 8 reservations`);
    await waitFor(() => Number(psql(`SELECT count(*) FROM inferences WHERE key_id = ${k.id}`)) >= ok, 50 * INTERVAL_MS, 'every answer indexed');
    const spent = Number(psql(`SELECT coalesce(sum(cost_usd), 0) FROM inferences WHERE key_id = ${k.id}`));
    if (process.env.HL_TEST_VERBOSE_KEYS) console.error({ ok, refused, spent, CAP, RESERVATION });
    assert.ok(spent <= CAP + RESERVATION, `spent ${spent} <= cap ${CAP} + one reservation ${RESERVATION}`);
    // What the store holds: spend and the leases still out never pass the cap.
    const leased = Number(psql(`SELECT coalesce(sum(amount), 0) FROM budget_leases WHERE subject = 'key:${k.id}'`));
    assert.ok(spent + leased <= CAP + 1e-9, `spent ${spent} + leased ${leased} <= cap ${CAP}`);
  });

  it("a tenant's budget is exact across the fleet too", async () => {
    const k1 = await newKey(a, { name: 'f1', tenant: 'team-f' });
    const k2 = await newKey(b, { name: 'f2', tenant: 'team-f' });
    await accepted(b, k1.key);
    await accepted(a, k2.key);
    openai.control({ delay_ms: 300, reply: REPLY });
    let results;
    try {
      results = await Promise.all(Array.from({ length: 40 }, (_, i) =>
        outcome(client(i % 2 ? a : b, i % 4 < 2 ? k1.key : k2.key).chat.completions.create(CHAT))));
    } finally {
      openai.reset();
    }
    const ok = results.filter((r) => r.status === 200).length;
    assert.ok(ok >= 1 && ok <= 4, `admitted ${ok} of at most 4 reservations: ${JSON.stringify(results.filter((r) => r.status !== 200).slice(0, 2))}`);
    for (const r of results.filter((x) => x.status !== 200)) {
      assert.equal(r.code, 'budget_exceeded');
      assert.match(r.message, /tenant/);
    }
  });

  it("a dead gateway's lease expires and its budget returns to the others", async () => {
    // Room for one reservation: while gateway c holds it, a cannot admit.
    const k = await newKey(a, { name: 'fleet-dead', budget_day_usd: 1.5 * RESERVATION });
    const c = await gateway();
    try {
      await accepted(c, k.key);
      openai.control({ delay_ms: 5000, reply: REPLY });
      const inflight = outcome(client(c, k.key).chat.completions.create(CHAT));
      await waitFor(() => Number(psql(`SELECT count(*) FROM budget_leases WHERE subject = 'key:${k.id}' AND instance LIKE '%:${c.port}' AND amount > 0`)) === 1, 50 * INTERVAL_MS, "c's lease in the store");
      openai.reset();
      c.proc.kill('SIGKILL'); // dies with its lease held and its request in flight
      await inflight;
      await assert.rejects(client(a, k.key).chat.completions.create(CHAT), (e) => e.status === 429 && e.code === 'budget_exceeded');
      await waitFor(() => Number(psql(`SELECT count(*) FROM budget_leases WHERE instance LIKE '%:${c.port}'`)) === 0, 100 * INTERVAL_MS, "c's leases gone");
      const res = await client(a, k.key).chat.completions.create(CHAT);
      assert.ok(res.choices[0].message.content.length > 0);
    } finally {
      await c.stop();
    }
  });
});
