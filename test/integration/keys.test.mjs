// Virtual keys (issue 14, items 1, 2 and 5): keys issued through the admin API and the CLI,
// used with the official OpenAI SDK; a revoked key refused within an index interval; a
// local-only key never reaching the cloud; bad admin input answered 400 naming the field;
// /admin/ absent without server.admin_key_env.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import OpenAI from 'openai';
import { startGateway, startLocalGateway, standardBackends, KEYS, MODELS, HL_BIN, gatewayBinaryMissing, posts } from './gateway.mjs';
import { startFakeOpenAI } from '../fake/openai.mjs';
import { startFakeAnthropic } from '../fake/anthropic.mjs';
import { waitFor } from './util.mjs';

const skip = gatewayBinaryMissing();
const ADMIN = 'admin-key-0123456789abcdef';
const INTERVAL_MS = 100;

const admin = (gw, method, p, body, key = ADMIN) =>
  fetch(`${gw.url}${p}`, {
    method,
    headers: { 'content-type': 'application/json', ...(key ? { authorization: `Bearer ${key}` } : {}) },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });

const assertClose = (a, b, what) => assert.ok(Math.abs(a - b) < 1e-9, `${what}: ${a} vs ${b}`);
const client = (gw, apiKey) => new OpenAI({ apiKey, baseURL: `${gw.url}/v1`, maxRetries: 0 });
const hello = { model: 'auto', messages: [{ role: 'user', content: 'hello there' }] };

describe('virtual keys', { skip: skip ?? false }, () => {
  let anthropic, openai, local, gw, storePath;
  before(async () => {
    anthropic = await startFakeAnthropic({ key: KEYS.HL_TEST_ANTHROPIC_KEY, models: [MODELS.anthropic] });
    openai = await startFakeOpenAI({ key: KEYS.HL_TEST_OPENAI_KEY, models: [MODELS.openai] });
    local = await startFakeOpenAI({ models: [MODELS.local] });
    gw = await startGateway({
      backends: standardBackends({ anthropicUrl: anthropic.url, openaiUrl: openai.url, localUrl: local.url }),
      extraServer: { admin_key_env: 'HL_TEST_ADMIN_KEY' },
      extraLedger: { index_interval_ms: INTERVAL_MS },
      tenants: [{ name: 'team-slow', rpm: 2 }],
      env: { ...KEYS, HL_TEST_ADMIN_KEY: ADMIN },
    });
    storePath = path.join(path.dirname(gw.ledgerPath), 'ledger.db');
  });
  after(async () => {
    await gw?.stop();
    await Promise.all([anthropic, openai, local].map((f) => f?.close()));
  });

  it('the admin API wants its key', async () => {
    for (const key of [null, 'wrong-admin-key-0123456789']) {
      const r = await admin(gw, 'GET', '/admin/keys', undefined, key);
      assert.equal(r.status, 401);
      const j = await r.json();
      assert.equal(j.error.type, 'authentication_error');
    }
  });

  it('a created key works with the OpenAI SDK, decides the tenant, and is listed without its secret', async () => {
    const r = await admin(gw, 'POST', '/admin/keys', { name: 'alice', budget_day_usd: 5, rpm: 100 });
    assert.equal(r.status, 201);
    const k = await r.json();
    assert.match(k.key, /^hl-[0-9a-f]{64}$/);
    assert.equal(k.prefix, k.key.slice(0, 11));
    assert.equal(k.tenant, 'alice');
    assert.equal(k.budget_day_usd, 5);
    const res = await client(gw, k.key).chat.completions.create(hello);
    assert.ok(res.choices[0].message.content.length > 0);
    await waitFor(() => gw.ledger().some((l) => l.tenant === 'alice'), 5000, 'a ledger line for tenant alice');
    const line = gw.ledger().find((l) => l.tenant === 'alice');
    assert.equal(line.key_id, k.id);
    assert.equal(line.key_name, 'alice');
    assert.ok(!JSON.stringify(gw.ledger()).includes(k.key.slice(3)), 'the key itself is never in the ledger');
    // report --group-by key: one row for alice's key.
    await waitFor(() => {
      const csv = execFileSync(HL_BIN, ['report', '--db', storePath, '--group-by', 'key', '--format', 'csv'], { encoding: 'utf8' });
      return csv.split('\n').some((r) => r.startsWith('key,alice,1,'));
    }, 20 * INTERVAL_MS, 'a report row for key alice');

    const list = await (await admin(gw, 'GET', '/admin/keys')).json();
    assert.equal(list.object, 'list');
    const mine = list.data.find((x) => x.id === k.id);
    assert.equal(mine.name, 'alice');
    assert.equal(mine.key, undefined, 'a listed key never carries its secret');
    assert.ok(!JSON.stringify(list).includes(k.key.slice(11)));
    const one = await (await admin(gw, 'GET', `/admin/keys/${k.id}`)).json();
    assert.equal(one.name, 'alice');
    assert.equal(one.created_at.slice(0, 2), '20');
    // Its last use reaches the store at the next index pass.
    await waitFor(async () => (await (await admin(gw, 'GET', `/admin/keys/${k.id}`)).json()).last_used_at !== null, 20 * INTERVAL_MS, 'last_used_at');
    assert.equal((await admin(gw, 'GET', '/admin/keys/999999')).status, 404);

    // With keys in the store, a request without one (or with a made-up one) is refused.
    await assert.rejects(client(gw, 'hl-' + '0'.repeat(64)).chat.completions.create(hello), (e) => e.status === 401);
    const anon = await fetch(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(hello) });
    assert.equal(anon.status, 401);
    // The admin key is not a client key, and never appears in the gateway's output or ledger.
    await assert.rejects(client(gw, ADMIN).chat.completions.create(hello), (e) => e.status === 401);
    assert.ok(!gw.output().includes(ADMIN));
    assert.ok(!JSON.stringify(gw.ledger()).includes(ADMIN));
    assert.ok(!gw.output().includes(k.key));
  });

  it('bad admin input gets a 400 in the OpenAI error shape naming the field', async () => {
    const cases = [
      [{ name: 5 }, 'name'],
      [{ name: 'has space' }, 'name'],
      [{ name: 'b1', rpm: -1 }, 'rpm'],
      [{ name: 'b2', rpm: 1.5 }, 'rpm'],
      [{ name: 'b3', budget_day_usd: 'ten' }, 'budget_day_usd'],
      [{ name: 'b4', models: [] }, 'models'],
      [{ name: 'b5', models: ['a', 7] }, 'models'],
      [{ name: 'b6', cloud_allowed: 'no' }, 'cloud_allowed'],
      [{ name: 'b7', expires_at: 'soon' }, 'expires_at'],
      [{ name: 'b8', colour: 'blue' }, 'colour'],
      [{ tenant: 'x' }, 'name'],
      [{ name: 'alice' }, 'name'], // taken
    ];
    for (const [body, param] of cases) {
      const r = await admin(gw, 'POST', '/admin/keys', body);
      assert.equal(r.status, 400, JSON.stringify(body));
      const j = await r.json();
      assert.equal(j.error.type, 'invalid_request_error');
      assert.equal(j.error.param, param, JSON.stringify(body));
      assert.equal(typeof j.error.message, 'string');
    }
    for (const raw of ['{', '[1,2]', '"name"', '']) {
      const r = await admin(gw, 'POST', '/admin/keys', raw);
      assert.equal(r.status, 400, raw);
      assert.equal((await r.json()).error.type, 'invalid_request_error');
    }
    const list = await (await admin(gw, 'GET', '/admin/keys')).json();
    assert.ok(!list.data.some((x) => /^b\d$/.test(x.name)), 'no refused key was created');
  });

  it("a local-only key's requests never reach the cloud, even those routed there", async () => {
    const k = await (await admin(gw, 'POST', '/admin/keys', { name: 'private', cloud_allowed: false })).json();
    assert.equal(k.cloud_allowed, false);
    anthropic.reset();
    openai.reset();
    const c = client(gw, k.key);
    for (const task of ['code_generation', 'analysis', 'classification']) {
      const res = await c.chat.completions.create(hello, { headers: { 'x-hybridllm-task-type': task } });
      assert.ok(res.choices[0].message.content.length > 0);
    }
    // Asking for a cloud model by name is refused, not sent.
    await assert.rejects(c.chat.completions.create({ ...hello, model: MODELS.anthropic }), (e) => e.status === 403);
    assert.equal(posts(anthropic).length, 0);
    assert.equal(posts(openai).length, 0);
    await waitFor(() => gw.ledger().filter((l) => l.tenant === 'private').length >= 3, 5000, 'three ledger lines');
    for (const l of gw.ledger().filter((x) => x.tenant === 'private' && x.status !== 'error')) assert.equal(l.source, 'local');

    // The same request with a key that may use the cloud goes there: the route is real.
    const open = await (await admin(gw, 'POST', '/admin/keys', { name: 'open' })).json();
    await client(gw, open.key).chat.completions.create(hello, { headers: { 'x-hybridllm-task-type': 'code_generation' } });
    assert.equal(posts(anthropic).length, 1);
  });

  it('a key may be limited to some models', async () => {
    const k = await (await admin(gw, 'POST', '/admin/keys', { name: 'narrow', models: [MODELS.local] })).json();
    const c = client(gw, k.key);
    await c.chat.completions.create({ ...hello, model: MODELS.local });
    await assert.rejects(c.chat.completions.create({ ...hello, model: MODELS.openai }), (e) => e.status === 403 && e.param === 'model');
  });

  it('a key revoked by the CLI is refused within an index interval; one revoked by the API at once', async () => {
    const out = execFileSync(HL_BIN, ['keys', 'create', '--db', storePath, '--name', 'cli-key'], { encoding: 'utf8' }).trim();
    assert.match(out, /^hl-[0-9a-f]{64}$/);
    const c = client(gw, out);
    // Created outside the gateway: accepted once a pass reloaded the keys.
    await waitFor(async () => {
      try {
        await c.chat.completions.create(hello);
        return true;
      } catch {
        return false;
      }
    }, 20 * INTERVAL_MS, 'the CLI-created key accepted');
    const id = JSON.parse(execFileSync(HL_BIN, ['keys', 'list', '--db', storePath, '--json'], { encoding: 'utf8' })).find((x) => x.name === 'cli-key').id;
    execFileSync(HL_BIN, ['keys', 'revoke', '--db', storePath, '--id', String(id)], { stdio: ['ignore', 'pipe', 'inherit'] });
    const t0 = Date.now();
    await waitFor(async () => {
      try {
        await c.chat.completions.create(hello);
        return false;
      } catch (e) {
        return e.status === 401;
      }
    }, 20 * INTERVAL_MS, 'the revoked key refused');
    assert.ok(Date.now() - t0 < 20 * INTERVAL_MS);

    const k = await (await admin(gw, 'POST', '/admin/keys', { name: 'short-lived' })).json();
    await client(gw, k.key).chat.completions.create(hello);
    const r = await admin(gw, 'POST', `/admin/keys/${k.id}/revoke`);
    assert.equal(r.status, 200);
    assert.equal((await r.json()).revoked, true);
    await assert.rejects(client(gw, k.key).chat.completions.create(hello), (e) => e.status === 401);
  });

  it('rate limits per tenant: the keys of a tenant share its bucket, with the same 429 and headers', async () => {
    const a = await (await admin(gw, 'POST', '/admin/keys', { name: 'slow-a', tenant: 'team-slow' })).json();
    const b = await (await admin(gw, 'POST', '/admin/keys', { name: 'slow-b', tenant: 'team-slow' })).json();
    const c = await (await admin(gw, 'POST', '/admin/keys', { name: 'quick-c', tenant: 'team-quick' })).json();
    const send = (key) => fetch(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` }, body: JSON.stringify(hello) });
    for (const [key, left] of [[a.key, '1'], [b.key, '0']]) {
      const r = await send(key);
      assert.equal(r.status, 200);
      await r.json();
      assert.equal(r.headers.get('x-ratelimit-limit-requests'), '2');
      assert.equal(r.headers.get('x-ratelimit-remaining-requests'), left);
    }
    for (const key of [a.key, b.key]) {
      const r = await send(key);
      assert.equal(r.status, 429);
      const j = await r.json();
      assert.equal(j.error.code, 'rate_limit_exceeded');
      const retry = Number(r.headers.get('retry-after'));
      assert.ok(retry >= 1 && retry <= 31, `retry-after ${retry}`);
      assert.equal(r.headers.get('x-ratelimit-limit-requests'), '2');
      assert.equal(r.headers.get('x-ratelimit-remaining-requests'), '0');
    }
    // Another tenant's key is not limited by it.
    const r = await send(c.key);
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('x-ratelimit-limit-requests'), null);
    await r.json();
  });

  it('rate limits per key: 429 with retry-after and the x-ratelimit headers OpenAI clients read', async () => {
    const k = await (await admin(gw, 'POST', '/admin/keys', { name: 'slow', rpm: 3 })).json();
    const send = () => fetch(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${k.key}` }, body: JSON.stringify(hello) });
    for (let i = 0; i < 3; i++) {
      const r = await send();
      assert.equal(r.status, 200);
      await r.json();
      // Answers carry the limits too, as OpenAI's do.
      assert.equal(r.headers.get('x-ratelimit-limit-requests'), '3');
      assert.equal(r.headers.get('x-ratelimit-remaining-requests'), String(2 - i));
      assert.equal(r.headers.get('retry-after'), null);
    }
    const r = await send();
    assert.equal(r.status, 429);
    const j = await r.json();
    assert.equal(j.error.type, 'rate_limit_error');
    assert.equal(j.error.code, 'rate_limit_exceeded');
    const retry = Number(r.headers.get('retry-after'));
    assert.ok(retry >= 1 && retry <= 20, `retry-after ${retry}`);
    assert.equal(r.headers.get('x-ratelimit-limit-requests'), '3');
    assert.equal(r.headers.get('x-ratelimit-remaining-requests'), '0');
    assert.match(r.headers.get('x-ratelimit-reset-requests'), /^\d+(\.\d+)?(ms|s)$|^\d+m\d+s$/);
    // The SDK sees a RateLimitError; another key is not limited by this one's use.
    await assert.rejects(client(gw, k.key).chat.completions.create(hello), (e) => e.status === 429);
    const other = await (await admin(gw, 'POST', '/admin/keys', { name: 'fast' })).json();
    await client(gw, other.key).chat.completions.create(hello);

    // Embeddings are limited too.
    const e = await (await admin(gw, 'POST', '/admin/keys', { name: 'embedder', rpm: 1 })).json();
    const emb = () => fetch(`${gw.url}/v1/embeddings`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${e.key}` }, body: JSON.stringify({ model: MODELS.openai, input: 'hi' }) });
    const first = await emb();
    await first.text();
    assert.notEqual(first.status, 429);
    const second = await emb();
    assert.equal(second.status, 429);
    assert.equal((await second.json()).error.code, 'rate_limit_exceeded');
    assert.equal(second.headers.get('x-ratelimit-limit-requests'), '1');
    assert.ok(Number(second.headers.get('retry-after')) >= 1);

    // Tokens per minute: a 40-token allowance holds one ~30-token prompt, not two.
    const t = await (await admin(gw, 'POST', '/admin/keys', { name: 'tokens', tpm: 40 })).json();
    const long = { ...hello, messages: [{ role: 'user', content: 'x'.repeat(100) }] };
    await client(gw, t.key).chat.completions.create(long);
    const r2 = await fetch(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${t.key}` }, body: JSON.stringify(long) });
    assert.equal(r2.status, 429);
    await r2.json();
    assert.equal(r2.headers.get('x-ratelimit-limit-tokens'), '40');
    assert.equal(r2.headers.get('x-ratelimit-limit-requests'), null, 'no request limit, no request headers');
  });

  it('PATCH changes the fields given and checks them', async () => {
    const k = await (await admin(gw, 'POST', '/admin/keys', { name: 'patchy', tpm: 10 })).json();
    let r = await admin(gw, 'PATCH', `/admin/keys/${k.id}`, { budget_month_usd: 12.5, models: null });
    assert.equal(r.status, 200);
    const j = await r.json();
    assert.equal(j.budget_month_usd, 12.5);
    assert.equal(j.tpm, 10, 'fields not given keep their values');
    r = await admin(gw, 'PATCH', `/admin/keys/${k.id}`, { tpm: 'lots' });
    assert.equal(r.status, 400);
    assert.equal((await r.json()).error.param, 'tpm');
  });
});

describe('the admin API without server.admin_key_env', { skip: skip ?? false }, () => {
  let local, gw;
  before(async () => {
    ({ local, gw } = await startLocalGateway());
  });
  after(async () => {
    await gw?.stop();
    await local?.close();
  });

  it('answers 404 for every /admin path, with or without a key', async () => {
    for (const [m, p] of [['GET', '/admin/keys'], ['POST', '/admin/keys'], ['GET', '/admin'], ['GET', '/admin/keys/1']]) {
      const r = await admin(gw, m, p, m === 'POST' ? { name: 'x' } : undefined);
      assert.equal(r.status, 404, `${m} ${p}`);
    }
  });
});

describe('wrong admin keys are bounded per address', { skip: skip ?? false }, () => {
  let local, gw;
  before(async () => {
    ({ local, gw } = await startLocalGateway({ extraServer: { admin_key_env: 'HL_TEST_ADMIN_KEY' }, env: { HL_TEST_ADMIN_KEY: ADMIN } }));
  });
  after(async () => {
    await gw?.stop();
    await local?.close();
  });

  const login = (key) =>
    fetch(`${gw.url}/ui/login`, { method: 'POST', body: 'key=' + encodeURIComponent(key), headers: { 'content-type': 'application/x-www-form-urlencoded' }, redirect: 'manual' });

  it('ten wrong keys (admin API and dashboard together), then even the right one gets 429 with retry-after', async () => {
    for (let i = 0; i < 5; i++) assert.equal((await admin(gw, 'GET', '/admin/keys', undefined, `wrong-admin-key-${i}-0123456789`)).status, 401);
    for (let i = 0; i < 5; i++) assert.equal((await login(`wrong-admin-key-${i}-0123456789`)).status, 401);
    // no key at all is not a wrong key: still 401, and it does not count
    assert.equal((await admin(gw, 'GET', '/admin/keys', undefined, null)).status, 401);
    for (const r of [await admin(gw, 'GET', '/admin/keys'), await login(ADMIN),
      await fetch(`${gw.url}/api/summary`, { headers: { authorization: `Bearer ${ADMIN}` } })]) {
      assert.equal(r.status, 429);
      const retry = Number(r.headers.get('retry-after'));
      assert.ok(retry >= 1 && retry <= 60, `retry-after ${r.headers.get('retry-after')}`);
      const j = await r.json();
      assert.equal(j.error.type, 'rate_limit_error');
      assert.equal(j.error.code, 'too_many_wrong_keys');
    }
    // the gateway's own API is not the admin key's: it still answers
    const r = await fetch(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(hello) });
    assert.equal(r.status, 200);
  });
});

describe("a key's budget under a burst", { skip: skip ?? false }, () => {
  let anthropic, openai, local, gw;
  before(async () => {
    anthropic = await startFakeAnthropic({ key: KEYS.HL_TEST_ANTHROPIC_KEY, models: [MODELS.anthropic] });
    openai = await startFakeOpenAI({ key: KEYS.HL_TEST_OPENAI_KEY, models: [MODELS.openai] });
    local = await startFakeOpenAI({ models: [MODELS.local] });
    gw = await startGateway({
      backends: standardBackends({ anthropicUrl: anthropic.url, openaiUrl: openai.url, localUrl: local.url }),
      extraServer: { admin_key_env: 'HL_TEST_ADMIN_KEY', key_reserve_max_tokens: 20 },
      extraLedger: { index_interval_ms: INTERVAL_MS },
      env: { ...KEYS, HL_TEST_ADMIN_KEY: ADMIN },
    });
  });
  after(async () => {
    await gw?.stop();
    await Promise.all([anthropic, openai, local].map((f) => f?.close()));
  });

  it('without max_tokens, server.key_reserve_max_tokens is what a request reserves', async () => {
    const body = { model: MODELS.openai, messages: [{ role: 'user', content: 'hi' }] };
    // Here 20 tokens are reserved: a $0.01 budget holds it.
    const k = await (await admin(gw, 'POST', '/admin/keys', { name: 'capped', budget_day_usd: 0.01 })).json();
    await client(gw, k.key).chat.completions.create(body);
    // The same without the setting reserves 4096 tokens ($0.06 at gpt-4o's output price): refused.
    const other = await startGateway({
      backends: standardBackends({ anthropicUrl: anthropic.url, openaiUrl: openai.url, localUrl: local.url }),
      extraServer: { admin_key_env: 'HL_TEST_ADMIN_KEY' },
      env: { ...KEYS, HL_TEST_ADMIN_KEY: ADMIN },
    });
    try {
      const k2 = await (await admin(other, 'POST', '/admin/keys', { name: 'capped', budget_day_usd: 0.01 })).json();
      await assert.rejects(client(other, k2.key).chat.completions.create(body), (e) => e.status === 429 && e.code === 'budget_exceeded');
      await client(other, k2.key).chat.completions.create({ ...body, max_tokens: 50 });
    } finally {
      await other.stop();
    }
  });

  it('a stream whose upstream sends no usage counts against the key at its counted tokens, never $0', async () => {
    const k = await (await admin(gw, 'POST', '/admin/keys', { name: 'streamer', budget_month_usd: 1 })).json();
    openai.control({ stream_usage: 'never' });
    try {
      const stream = await client(gw, k.key).chat.completions.create({ model: MODELS.openai, max_tokens: 20, stream: true, messages: [{ role: 'user', content: 'tell me something' }] });
      let text = '';
      for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
      assert.ok(text.length > 0);
    } finally {
      openai.reset();
    }
    await waitFor(() => gw.ledger().some((l) => l.key_name === 'streamer'), 5000, 'the stream in the ledger');
    const line = gw.ledger().find((l) => l.key_name === 'streamer');
    assert.equal(line.usage_estimated, true);
    assert.ok(line.cost_usd > 0);
    const sp = await (await admin(gw, 'GET', `/admin/keys/${k.id}/spend`)).json();
    assertClose(sp.month_usd, line.cost_usd, 'the key spent what the ledger says');
    assertClose(sp.remaining_month_usd, 1 - line.cost_usd, 'and has the rest');
  });

  it('200 concurrent requests never spend more than the cap plus one reservation', async () => {
    const CAP = 0.002;
    const k = await (await admin(gw, 'POST', '/admin/keys', { name: 'burst', budget_day_usd: CAP })).json();
    const c = client(gw, k.key);
    const body = { model: MODELS.openai, max_tokens: 20, messages: [{ role: 'user', content: 'hello there, please answer' }] };
    const results = await Promise.all(
      Array.from({ length: 200 }, () => c.chat.completions.create(body).then(() => 200, (e) => e.status)),
    );
    const ok = results.filter((s) => s === 200).length;
    const refused = results.filter((s) => s === 429).length;
    assert.equal(ok + refused, 200, `only 200s and 429s: ${[...new Set(results)]}`);
    assert.ok(refused > 0, 'the cap refused some');
    assert.ok(ok > 0, 'the cap admitted some');
    await waitFor(() => gw.ledger().filter((l) => l.key_name === 'burst').length >= ok, 5000, 'every answer in the ledger');
    const spent = gw.ledger().filter((l) => l.key_name === 'burst').reduce((s, l) => s + (l.cost_usd ?? 0), 0);
    // One request's reservation: its prompt (estimated at 4 bytes a token) plus max_tokens at gpt-4o's prices.
    const prompt = Math.ceil(JSON.stringify(body.messages).length / 4) + 16;
    const reservation = (prompt * 5 + body.max_tokens * 15) / 1e6;
    if (process.env.HL_TEST_VERBOSE_KEYS) console.error({ ok, refused, spent, reservation });
    assert.ok(spent <= CAP + reservation, `spent ${spent} <= cap ${CAP} + one reservation ${reservation}`);
    const sp = await (await admin(gw, 'GET', `/admin/keys/${k.id}/spend`)).json();
    assert.equal(sp.object, 'api_key.spend');
    assertClose(sp.day_usd, spent, 'spend today, as the ledger says');
    assertClose(sp.month_usd, spent, 'spend this month');
    assert.equal(sp.budget_day_usd, CAP);
    assertClose(sp.remaining_day_usd, Math.max(0, CAP - spent), 'what is left');
    assert.equal(sp.remaining_month_usd, null, 'no month budget, nothing to be left');
    // Requests that would cost nothing in the cloud still go: a local model is not refused.
    const res = await c.chat.completions.create({ ...hello, model: MODELS.local });
    assert.ok(res.choices[0].message.content.length > 0);
  });
});

// Two gateways on one PostgreSQL: a key created on one works on the other, and a revocation on
// one reaches the other within an index interval.
const PG = process.env.HL_TEST_PG;
describe('keys across a fleet on PostgreSQL', { skip: skip ?? (PG ? false : 'HL_TEST_PG is not set (eval "$(bash scripts/pg.sh start)" gives one)') }, () => {
  let local, a, b, db;
  const psql = (uri, sql) => execFileSync('psql', [uri, '-v', 'ON_ERROR_STOP=1', '-Atqc', sql], { encoding: 'utf8', env: { ...process.env, PGOPTIONS: '-c client_min_messages=warning' } });
  before(async () => {
    db = `hl_keys_${process.pid}`;
    psql(PG, `DROP DATABASE IF EXISTS ${db}`);
    psql(PG, `CREATE DATABASE ${db}`);
    const uri = `${PG}${PG.includes('?') ? '&' : '?'}dbname=${db}`;
    local = await startFakeOpenAI({ models: [MODELS.local] });
    const gw = () => startGateway({
      backends: [{ name: 'local', kind: 'openai', location: 'local', base_url: `${local.url}/v1`, model: MODELS.local, max_retries: 0 }],
      routes: [{ name: 'default', to: ['local'] }],
      extraServer: { admin_key_env: 'HL_TEST_ADMIN_KEY' },
      extraLedger: { store: uri, index_interval_ms: INTERVAL_MS },
      env: { ...KEYS, HL_TEST_ADMIN_KEY: ADMIN },
    });
    a = await gw();
    b = await gw();
  });
  after(async () => {
    await a?.stop();
    await b?.stop();
    await local?.close();
    if (db) psql(PG, `DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
  });

  it('create on one, use on both, revoke on one: refused by the other within an interval', async () => {
    const k = await (await admin(a, 'POST', '/admin/keys', { name: 'fleet-key' })).json();
    await client(a, k.key).chat.completions.create(hello);
    const cb = client(b, k.key);
    await waitFor(async () => {
      try {
        await cb.chat.completions.create(hello);
        return true;
      } catch {
        return false;
      }
    }, 20 * INTERVAL_MS, 'the key accepted by the other gateway');
    const r = await admin(a, 'POST', `/admin/keys/${k.id}/revoke`);
    assert.equal(r.status, 200);
    await assert.rejects(client(a, k.key).chat.completions.create(hello), (e) => e.status === 401);
    const t0 = Date.now();
    await waitFor(async () => {
      try {
        await cb.chat.completions.create(hello);
        return false;
      } catch (e) {
        return e.status === 401;
      }
    }, 20 * INTERVAL_MS, 'the revocation reaching the other gateway');
    assert.ok(Date.now() - t0 < 20 * INTERVAL_MS);
  });

  it('rate limits are shared among the live gateways: each of two admits half', async () => {
    const uri = `${PG}${PG.includes('?') ? '&' : '?'}dbname=${db}`;
    // Both gateways have recorded a heartbeat, and each has made an index pass since.
    await waitFor(() => Number(psql(uri, `SELECT count(*) FROM instances WHERE last_seen >= (extract(epoch from now()) * 1000)::bigint - ${2 * INTERVAL_MS}`).trim()) === 2, 50 * INTERVAL_MS, 'two live instances');
    await new Promise((r) => setTimeout(r, 3 * INTERVAL_MS));
    const k = await (await admin(a, 'POST', '/admin/keys', { name: 'fleet-rpm', rpm: 10 })).json();
    const send = (gw) => fetch(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${k.key}` }, body: JSON.stringify(hello) });
    const statuses = [];
    for (let i = 0; i < 7; i++) {
      const r = await send(a);
      await r.json();
      statuses.push(r.status);
      if (r.status === 200) assert.equal(r.headers.get('x-ratelimit-limit-requests'), '5');
    }
    assert.deepEqual(statuses, [200, 200, 200, 200, 200, 429, 429]);
    // The other gateway has its own half.
    await waitFor(async () => {
      const r = await send(b);
      await r.json();
      return r.status === 200 && r.headers.get('x-ratelimit-limit-requests') === '5';
    }, 20 * INTERVAL_MS, 'the key admitted by the other gateway with half the limit');
  });
});
