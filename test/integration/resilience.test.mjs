// Failure handling through the real gateway: retries with backoff (honouring retry-after-ms and
// x-should-retry), no retry for errors a retry cannot fix, fallback to the next candidate, and
// the per-backend circuit breaker (open, skipped, half-open probe, closed again). The upstreams
// are the fakes of test/fake; every attempt is a ledger line.
import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { startFakeOpenAI } from '../fake/openai.mjs';
import { gatewayBinaryMissing, KEYS, MODELS, posts, startGateway } from './gateway.mjs';
import { sleep, waitFor } from './util.mjs';

const skip = gatewayBinaryMissing();

function client(gw) {
  return new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'unused', maxRetries: 0 });
}

const ask = (c, model = 'auto') =>
  c.chat.completions.create({ model, messages: [{ role: 'user', content: 'hello there' }] }).withResponse();

async function attempts(gw, requestId, n) {
  return waitFor(() => {
    const lines = gw.ledger().filter((l) => l.request_id === requestId);
    return lines.length >= n ? lines : null;
  }, 5000, `${n} ledger lines for ${requestId}`);
}

describe('resilience', { skip: skip ?? false }, () => {
  let primary, secondary, gw, c;
  const retryPolicy = { max_retries: 2, retry_base_ms: 20, retry_max_ms: 200 };

  before(async () => {
    primary = await startFakeOpenAI({ key: KEYS.HL_TEST_OPENAI_KEY, models: [MODELS.openai] });
    secondary = await startFakeOpenAI({ models: [MODELS.local] });
    gw = await startGateway({
      backends: [
        { name: 'primary', kind: 'openai', location: 'cloud', base_url: `${primary.url}/v1`, api_key_env: 'HL_TEST_OPENAI_KEY',
          model: MODELS.openai, ...retryPolicy, breaker_failures: 1000 },
        { name: 'secondary', kind: 'openai', location: 'local', base_url: `${secondary.url}/v1`, model: MODELS.local,
          ...retryPolicy, breaker_failures: 1000 },
      ],
      routes: [{ name: 'chain', to: ['primary', 'secondary'] }],
      prices: [{ model: MODELS.openai, input_per_mtok: 5, output_per_mtok: 15 }],
    });
    c = client(gw);
  });
  after(async () => {
    await gw?.stop();
    await primary?.close();
    await secondary?.close();
  });
  beforeEach(() => {
    primary.reset();
    secondary.reset();
  });

  test('a 503 is retried with backoff and the retry succeeds; each attempt is a ledger line', async () => {
    primary.control({ status: 503, count: 2 });
    const { data, response } = await ask(c, 'primary');
    assert.equal(data.choices[0].message.content, 'echo: hello there');
    assert.equal(posts(primary).length, 3);
    const lines = await attempts(gw, response.headers.get('x-request-id'), 3);
    assert.deepEqual(lines.map((l) => [l.attempt, l.status, l.http_status]), [[1, 'error', 503], [2, 'error', 503], [3, 'ok', 200]]);
  });

  test('retry-after-ms from the upstream sets the wait', async () => {
    primary.control({ status: 429, count: 1, retry_after_ms: 300 });
    const t0 = Date.now();
    await ask(c, 'primary');
    const waited = Date.now() - t0;
    assert.equal(posts(primary).length, 2);
    assert.ok(waited >= 290, `waited ${waited} ms, retry-after-ms asked for 300`);
  });

  test('x-should-retry: false stops retries at once', async () => {
    primary.control({ status: 503, count: 1, should_retry: false });
    const err = await ask(c, 'primary').then(() => null, (e) => e);
    assert.ok(err && err.status >= 500, `expected a 5xx, got ${err?.status}`);
    assert.equal(posts(primary).length, 1);
  });

  test('a 400 is never retried and never sent to another backend', async () => {
    primary.control({ status: 400, count: 1 });
    const err = await ask(c).then(() => null, (e) => e);
    assert.equal(err?.status, 400);
    assert.equal(posts(primary).length, 1);
    assert.equal(posts(secondary).length, 0);
  });

  test('a spend-limit 429 (insufficient_quota) is not retried', async () => {
    primary.control({ status: 429, count: 1, error_type: 'insufficient_quota', error_code: 'insufficient_quota' });
    const err = await ask(c, 'primary').then(() => null, (e) => e);
    assert.equal(err?.status, 429);
    assert.equal(posts(primary).length, 1);
  });

  test('retries exhausted on the first candidate: the next candidate serves', async () => {
    primary.control({ status: 500, count: 3 });
    const { data, response } = await ask(c);
    assert.equal(response.headers.get('x-hybridllm-backend'), 'secondary');
    assert.equal(data.model, MODELS.local);
    assert.equal(posts(primary).length, 3);
    const lines = await attempts(gw, response.headers.get('x-request-id'), 4);
    assert.deepEqual(lines.map((l) => l.backend), ['primary', 'primary', 'primary', 'secondary']);
  });

  test('the breaker opens after repeated failures, skips the backend, then probes and closes', async () => {
    const gw3 = await startGateway({
      backends: [
        { name: 'primary', kind: 'openai', location: 'cloud', base_url: `${primary.url}/v1`, api_key_env: 'HL_TEST_OPENAI_KEY',
          model: MODELS.openai, ...retryPolicy, breaker_failures: 4, breaker_window_ms: 60000, breaker_open_ms: 400 },
        { name: 'secondary', kind: 'openai', location: 'local', base_url: `${secondary.url}/v1`, model: MODELS.local },
      ],
      routes: [{ name: 'chain', to: ['primary', 'secondary'] }],
      prices: [{ model: MODELS.openai, input_per_mtok: 5, output_per_mtok: 15 }],
    });
    try {
      const c3 = client(gw3);
      primary.control({ status: 500, count: 1000 });
      // 3 attempts for the first request, the 4th failure (second request) opens the breaker;
      // both requests still succeed on the secondary.
      assert.equal((await ask(c3)).response.headers.get('x-hybridllm-backend'), 'secondary');
      assert.equal((await ask(c3)).response.headers.get('x-hybridllm-backend'), 'secondary');
      assert.equal(posts(primary).length, 4);
      const { response } = await ask(c3);
      assert.equal(response.headers.get('x-hybridllm-backend'), 'secondary');
      assert.equal(posts(primary).length, 4, 'an open breaker sends nothing to its backend');
      const ready = await (await fetch(`${gw3.url}/readyz`)).json();
      assert.equal(ready.backends.find((b) => b.name === 'primary').breaker, 'open');
      // After breaker_open_ms one probe goes through; the primary has recovered: closed again.
      primary.reset();
      await sleep(450);
      assert.equal((await ask(c3)).response.headers.get('x-hybridllm-backend'), 'primary');
      assert.equal((await ask(c3)).response.headers.get('x-hybridllm-backend'), 'primary');
      const ready2 = await (await fetch(`${gw3.url}/readyz`)).json();
      assert.equal(ready2.backends.find((b) => b.name === 'primary').breaker, 'closed');
    } finally {
      await gw3.stop();
    }
  });

  test('an attempt that times out is retried, then the next candidate serves; the ledger says timeout', async () => {
    const gw4 = await startGateway({
      backends: [
        { name: 'slow', kind: 'openai', location: 'cloud', base_url: `${primary.url}/v1`, api_key_env: 'HL_TEST_OPENAI_KEY',
          model: MODELS.openai, timeout_ms: 150, max_retries: 1, retry_base_ms: 10, breaker_failures: 1000 },
        { name: 'secondary', kind: 'openai', location: 'local', base_url: `${secondary.url}/v1`, model: MODELS.local, warmup: false },
      ],
      routes: [{ name: 'chain', to: ['slow', 'secondary'] }],
      prices: [{ model: MODELS.openai, input_per_mtok: 5, output_per_mtok: 15 }],
    });
    try {
      primary.control({ delay_ms: 1000 });
      const { response } = await ask(client(gw4));
      assert.equal(response.headers.get('x-hybridllm-backend'), 'secondary');
      const lines = await attempts(gw4, response.headers.get('x-request-id'), 3);
      assert.deepEqual(lines.map((l) => [l.backend, l.status]), [['slow', 'error'], ['slow', 'error'], ['secondary', 'ok']]);
      assert.match(lines[0].error, /timed? ?out|timeout/i);
      // With nowhere else to go, the client gets a 504.
      const only = await startGateway({
        backends: [{ name: 'slow', kind: 'openai', location: 'cloud', base_url: `${primary.url}/v1`, api_key_env: 'HL_TEST_OPENAI_KEY',
          model: MODELS.openai, timeout_ms: 150, max_retries: 0 }],
        routes: [{ name: 'only', to: ['slow'] }],
      });
      try {
        const err = await ask(client(only)).then(() => null, (e) => e);
        assert.equal(err?.status, 504);
      } finally {
        await only.stop();
      }
    } finally {
      await gw4.stop();
    }
  });

  test('a connection reset before any content is retried, then reported as a 502', async () => {
    primary.control({ disconnect_after_chunks: 0 }); // headers, then the socket is destroyed
    const err = await c.chat.completions
      .create({ model: 'primary', stream: true, messages: [{ role: 'user', content: 'hello there' }] })
      .then(() => null, (e) => e);
    assert.equal(err?.status, 502, 'nothing was streamed yet: a proper HTTP error');
    assert.equal(posts(primary).length, 3, 'retried twice');
    primary.reset();
    const stream = await c.chat.completions.create({ model: 'primary', stream: true, messages: [{ role: 'user', content: 'hello there' }] });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
    assert.equal(text, 'echo: hello there');
  });

  test('connection refused is retried, then falls back', async () => {
    const dead = await startFakeOpenAI({});
    const deadUrl = dead.url;
    await dead.close();
    const gw2 = await startGateway({
      backends: [
        { name: 'gone', kind: 'openai', location: 'local', base_url: `${deadUrl}/v1`, model: 'm', max_retries: 1, retry_base_ms: 10 },
        { name: 'secondary', kind: 'openai', location: 'local', base_url: `${secondary.url}/v1`, model: MODELS.local },
      ],
      routes: [{ name: 'chain', to: ['gone', 'secondary'] }],
    });
    try {
      // The probe at start marks an unreachable local backend not ready: it is skipped.
      const { response } = await ask(client(gw2));
      assert.equal(response.headers.get('x-hybridllm-backend'), 'secondary');
    } finally {
      await gw2.stop();
    }
  });
});
