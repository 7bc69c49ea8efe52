// Real local servers, as the fake plays them (flavor 'llama': llama.cpp's llama-server; 'vllm'):
// a prompt over the local model's context goes to the next candidate (or gets a clear 400 when
// the request is sensitive), the context window and `model: auto` are rediscovered on every
// probe and after a failed connection, /readyz says why a backend is not ready, a stream whose
// upstream goes silent is ended (or moved to the next candidate), an Anthropic client gets
// stop_reason "stop_sequence" through an OpenAI-compatible server, and usage is counted when
// things go wrong.
import { after, afterEach, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { startFakeAnthropic } from '../fake/anthropic.mjs';
import { startFakeOpenAI } from '../fake/openai.mjs';
import { gatewayBinaryMissing, KEYS, MODELS, posts, startGateway } from './gateway.mjs';
import { freePort, sleep, waitFor } from './util.mjs';

const skip = gatewayBinaryMissing();
const chats = (fake) => posts(fake).filter((r) => r.path === '/v1/chat/completions');
const words = (n) => Array.from({ length: n }, () => 'a').join(' ');
const linesOf = (gw, rid, n) =>
  waitFor(() => {
    const l = gw.ledger().filter((x) => x.request_id === rid);
    return l.length >= n ? l : null;
  }, 5000, `${n} ledger lines for ${rid}`);
const readyz = async (gw) => (await fetch(`${gw.url}/readyz`)).json();

describe('local servers: context, failover, stops, usage', { skip: skip ?? false }, () => {
  let local, cloud, gw, oa, an;
  const localOpts = { flavor: 'llama', n_ctx: 50, models: [MODELS.local] };
  before(async () => {
    local = await startFakeOpenAI(localOpts);
    cloud = await startFakeAnthropic({ key: KEYS.HL_TEST_ANTHROPIC_KEY, models: [MODELS.anthropic] });
    const noRetry = { max_retries: 0, breaker_failures: 1000000 };
    gw = await startGateway({
      backends: [
        { name: 'local', kind: 'openai', location: 'local', base_url: `${local.url}/v1`, model: MODELS.local,
          stream_idle_timeout_ms: 400, first_token_timeout_ms: 600, ...noRetry },
        { name: 'cloud', kind: 'anthropic', location: 'cloud', base_url: cloud.url, api_key_env: 'HL_TEST_ANTHROPIC_KEY',
          model: MODELS.anthropic, ...noRetry },
      ],
      routes: [
        { name: 'privacy', when: { sensitive: true }, to: ['local'] },
        { name: 'unsure', when: { task_type: ['classification'] }, to: ['local'], escalate: { below: 0.7, to: ['cloud'] } },
        { name: 'default', to: ['local', 'cloud'] },
      ],
    });
    oa = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'unused', maxRetries: 0 });
    an = new Anthropic({ baseURL: gw.url, apiKey: 'unused', maxRetries: 0, timeout: 15000 });
  });
  after(async () => {
    await gw?.stop();
    await local?.close();
    await cloud?.close();
  });
  beforeEach(() => {
    local.reset();
    cloud.reset();
  });

  // 60 one-letter words: the gateway's estimate (~39 tokens) fits n_ctx 50, the server's count
  // (63) does not: only the server can say.
  const sneaky = words(60);

  test('the context window comes from the server (llama-server GET /props)', async () => {
    const r = await readyz(gw);
    assert.equal(r.backends[0].ready, true);
    // a prompt clearly over the 50 tokens /props reported never reaches the server
    const { response } = await oa.chat.completions.create({ model: 'auto', messages: [{ role: 'user', content: words(400) }] }).withResponse();
    assert.equal(response.headers.get('x-hybridllm-backend'), 'cloud');
    assert.equal(chats(local).length, 0);
  });

  test('near the window the prompt is counted with the server\'s tokenizer (POST /tokenize)', async () => {
    const { data, response } = await oa.chat.completions.create({ model: 'auto', messages: [{ role: 'user', content: sneaky }] }).withResponse();
    assert.equal(response.headers.get('x-hybridllm-backend'), 'cloud');
    assert.match(data.choices[0].message.content, /^echo: a a/);
    const counted = posts(local).filter((r) => r.path === '/tokenize');
    assert.equal(counted.length, 1);
    assert.equal(counted[0].body.content, sneaky);
    assert.equal(chats(local).length, 0, 'the completion was never sent');
    const l = await linesOf(gw, response.headers.get('x-request-id'), 2);
    assert.deepEqual(l.map((x) => [x.backend, x.status]), [['local', 'error'], ['cloud', 'ok']]);
    assert.match(l[0].error, /server's own tokenizer/);
    // a short prompt is not counted
    await oa.chat.completions.create({ model: 'auto', messages: [{ role: 'user', content: 'hi' }] });
    assert.equal(posts(local).filter((r) => r.path === '/tokenize').length, 1);
  });

  test('a context overflow 400 from the local server goes to the next candidate', async (t) => {
    localOpts.tokenize = false; // a server that cannot count for us
    t.after(() => delete localOpts.tokenize);
    const { data, response } = await oa.chat.completions.create({ model: 'auto', messages: [{ role: 'user', content: sneaky }] }).withResponse();
    assert.equal(response.headers.get('x-hybridllm-backend'), 'cloud');
    assert.match(data.choices[0].message.content, /^echo: a a/);
    assert.equal(chats(local).length, 1);
    assert.equal(local.requests.find((r) => r.path === '/v1/chat/completions').response.status, 400);
    const l = await linesOf(gw, response.headers.get('x-request-id'), 2);
    assert.deepEqual(l.map((x) => [x.backend, x.status]), [['local', 'error'], ['cloud', 'ok']]);
  });

  test('a sensitive prompt too long for every local backend gets a clear 400', async (t) => {
    localOpts.tokenize = false;
    t.after(() => delete localOpts.tokenize);
    const err = await oa.chat.completions
      .create({ model: 'auto', messages: [{ role: 'user', content: sneaky }] }, { headers: { 'x-hybridllm-pii': 'true' } })
      .catch((e) => e);
    assert.equal(err.status, 400);
    assert.equal(err.code, 'context_length_exceeded');
    assert.match(err.message, /too long for the context window of every local backend \('local'\).*sensitive/);
    assert.equal(posts(cloud).length, 0);
  });

  test('a stream whose upstream goes silent mid-way ends with an error event and an error line', { timeout: 10000 }, async () => {
    local.control({ silent_after_chunks: 3 });
    const t0 = Date.now();
    const stream = await oa.chat.completions.create({ model: 'auto', stream: true, messages: [{ role: 'user', content: 'one two three four five' }] });
    let text = '';
    const err = await (async () => {
      for await (const ch of stream) text += ch.choices[0]?.delta?.content ?? '';
    })().catch((e) => e);
    assert.ok(err instanceof Error, 'the stream ends with an error');
    assert.match(String(err.message), /sent nothing for 400 ms/);
    assert.equal(text, 'echo: one');
    assert.ok(Date.now() - t0 < 5000);
    const rid = stream.response?.headers?.get('x-request-id') ?? gw.ledger().at(-1).request_id;
    const [l] = await linesOf(gw, rid, 1);
    assert.equal(l.status, 'error');
    assert.match(l.error, /stream_idle_timeout_ms/);
    await waitFor(() => local.requests.find((r) => r.wentSilent)?.closed, 3000, 'the silent upstream call closed');
  });

  test('a stream silent before its first byte goes to the next candidate', { timeout: 10000 }, async () => {
    local.control({ silent_after_chunks: 0 });
    const { data: stream, response } = await oa.chat.completions
      .create({ model: 'auto', stream: true, messages: [{ role: 'user', content: 'hello there' }] })
      .withResponse();
    let text = '';
    for await (const ch of stream) text += ch.choices[0]?.delta?.content ?? '';
    assert.equal(response.headers.get('x-hybridllm-backend'), 'cloud');
    assert.equal(text, 'echo: hello there');
    const l = await linesOf(gw, response.headers.get('x-request-id'), 2);
    assert.deepEqual(l.map((x) => [x.backend, x.status]), [['local', 'error'], ['cloud', 'ok']]);
    assert.match(l[0].error, /first_token_timeout_ms/);
  });

  test('stop_sequences through an OpenAI-compatible server: stop_reason "stop_sequence" (whole answer)', async () => {
    const msg = await an.messages.create({
      model: 'auto', max_tokens: 50, stop_sequences: ['nothing', 'sky'],
      messages: [{ role: 'user', content: 'is the sky blue' }],
    });
    assert.equal(msg.stop_reason, 'stop_sequence');
    assert.equal(msg.stop_sequence, 'sky');
    assert.equal(msg.content[0].text, 'echo: is the ');
    assert.equal(chats(local)[0].body.stop, undefined, 'the gateway applies the stops itself');
  });

  test('stop_sequences in a stream: the text that may begin a stop is held back', async () => {
    const stream = an.messages.stream({
      model: 'auto', max_tokens: 50, stop_sequences: ['e sk'],
      messages: [{ role: 'user', content: 'is the sky blue' }],
    });
    let text = '';
    stream.on('text', (t) => (text += t));
    const msg = await stream.finalMessage();
    assert.equal(text, 'echo: is th');
    assert.equal(msg.stop_reason, 'stop_sequence');
    assert.equal(msg.stop_sequence, 'e sk');
    // no stop matched: the whole text, end_turn
    const plain = await an.messages.create({ model: 'auto', max_tokens: 50, stop_sequences: ['zzz'], messages: [{ role: 'user', content: 'is the sky blue' }] });
    assert.equal(plain.stop_reason, 'end_turn');
    assert.equal(plain.content[0].text, 'echo: is the sky blue');
  });

  test('usage after a failed stream: the delivered output and the templated input', async () => {
    local.control({ disconnect_after_chunks: 6 });
    const stream = await oa.chat.completions.create({ model: 'auto', stream: true, messages: [{ role: 'user', content: 'a b c d e f g h i j' }] });
    let n = 0;
    await (async () => {
      for await (const ch of stream) if (ch.choices[0]?.delta?.content) n++;
    })().catch(() => {});
    const l = gw.ledger().at(-1);
    assert.equal(l.status, 'error');
    assert.equal(l.usage_estimated, true);
    const out = l.output_tokens;
    const inp = l.input_tokens;
    assert.equal(out, n, `output counts the ${n} tokens delivered`);
    assert.ok(inp >= 10, `input ${inp} includes the chat template around the 5 tokens of text`);
  });

  test('escalation failing everywhere: the held local answer served gets an ok line', async () => {
    local.control({ logprob: -1 });
    cloud.control({ status: 500, count: 10 });
    const { data, response } = await oa.chat.completions
      .create({ model: 'auto', messages: [{ role: 'user', content: 'is the sky blue' }] }, { headers: { 'x-hybridllm-task-type': 'classification' } })
      .withResponse();
    assert.equal(data.choices[0].message.content, 'echo: is the sky blue');
    assert.equal(response.headers.get('x-hybridllm-backend'), 'local');
    const l = await linesOf(gw, response.headers.get('x-request-id'), 3);
    assert.deepEqual(l.map((x) => [x.backend, x.status]), [['local', 'escalated'], ['cloud', 'error'], ['local', 'ok']]);
    assert.ok(Math.abs(l[2].confidence - Math.exp(-1)) < 1e-3);
  });
});

describe('local servers: rediscovery and readiness', { skip: skip ?? false }, () => {
  let fakes = [];
  afterEach(async () => {
    for (const f of fakes) await f.close().catch(() => {});
    fakes = [];
  });

  test('model: auto is rediscovered on every probe; a dead server is not ready, and says why', async () => {
    const opts = { flavor: 'vllm', n_ctx: 2048, models: ['model-one'] };
    const fake = await startFakeOpenAI(opts);
    fakes.push(fake);
    const gw = await startGateway({
      backends: [{ name: 'local', kind: 'openai', location: 'local', base_url: `${fake.url}/v1`, model: 'auto', warmup: false, max_retries: 0 }],
      routes: [{ name: 'default', to: ['local'] }],
      extraServer: { health_interval_ms: 200 },
    });
    try {
      const ask = () => fetch(`${gw.url}/v1/chat/completions`, { method: 'POST', body: JSON.stringify({ model: 'auto', messages: [{ role: 'user', content: 'hi' }] }) });
      let r = await ask();
      assert.equal(r.headers.get('x-hybridllm-model'), 'model-one');
      opts.models = ['model-two']; // restarted with another model
      await waitFor(async () => (await readyz(gw)).backends[0].model === 'model-two', 5000, 'the new model');
      r = await ask();
      assert.equal(r.headers.get('x-hybridllm-model'), 'model-two');
      const l = await waitFor(() => gw.ledger().find((x) => x.model === 'model-two'), 5000, 'a ledger line with the new model');
      assert.equal(l.status, 'ok');
      await fake.close();
      fakes = [];
      const st = await waitFor(async () => {
        const b = (await readyz(gw)).backends[0];
        return b.ready === false ? b : null;
      }, 5000, 'the dead server to be not ready');
      assert.match(st.status, /no server answered/);
    } finally {
      await gw.stop();
    }
  });

  test('after a failed connection the server is probed at once (restarted with another model)', async () => {
    const port = await freePort();
    const fake = await startFakeOpenAI({ port, models: ['old-model'] });
    const gw = await startGateway({
      backends: [{ name: 'local', kind: 'openai', location: 'local', base_url: `http://127.0.0.1:${port}/v1`, model: 'auto', warmup: false, max_retries: 0 }],
      routes: [{ name: 'default', to: ['local'] }],
      extraServer: { health_interval_ms: 600000 }, // the periodic probe would not come in time
    });
    try {
      const ask = () => fetch(`${gw.url}/v1/chat/completions`, { method: 'POST', body: JSON.stringify({ model: 'auto', messages: [{ role: 'user', content: 'hi' }] }) });
      assert.equal((await ask()).headers.get('x-hybridllm-model'), 'old-model');
      await fake.close();
      const down = await ask();
      assert.equal(down.status, 502);
      const fresh = await startFakeOpenAI({ port, models: ['new-model'] });
      fakes.push(fresh);
      // the failed connection made the health thread probe: no request needed to find out
      await waitFor(async () => (await readyz(gw)).backends[0].model === 'new-model', 5000, 'the new model');
      assert.equal((await ask()).headers.get('x-hybridllm-model'), 'new-model');
    } finally {
      await gw.stop();
    }
  });

  test('/readyz: a backend whose circuit breaker is open is not ready, and says so', async () => {
    const fake = await startFakeOpenAI({ models: [MODELS.local] });
    fakes.push(fake);
    const gw = await startGateway({
      backends: [{ name: 'local', kind: 'openai', location: 'local', base_url: `${fake.url}/v1`, model: MODELS.local, warmup: false,
        max_retries: 0, breaker_failures: 1, breaker_open_ms: 60000 }],
      routes: [{ name: 'default', to: ['local'] }],
    });
    try {
      assert.equal((await readyz(gw)).backends[0].ready, true);
      fake.control({ status: 500 });
      const r = await fetch(`${gw.url}/v1/chat/completions`, { method: 'POST', body: JSON.stringify({ model: 'auto', messages: [{ role: 'user', content: 'hi' }] }) });
      assert.equal(r.status, 502);
      const b = (await readyz(gw)).backends[0];
      assert.equal(b.breaker, 'open');
      assert.equal(b.ready, false);
      assert.match(b.status, /circuit breaker open/);
    } finally {
      await gw.stop();
    }
  });
});
