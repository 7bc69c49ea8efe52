// End-to-end tests of the hybridllm gateway binary against fake upstreams.
//
//   npm run test:integration                         # everything (fakes + gateway)
//   node --test test/integration/gateway.test.mjs    # just these
//   node --test --test-name-pattern='privacy' test/integration/gateway.test.mjs
//   HL_BIN=/path/to/hybridllm HL_TEST_VERBOSE=1 HL_TEST_KEEP=1 node --test test/integration/gateway.test.mjs
//
// The binary (build/hybridllm, or $HL_BIN) runs as `hybridllm serve --config <tmp.yaml>`; the
// suite is skipped when it is missing. If the gateway fails to start, the first test reports why
// (with the gateway's output) and the rest of that group is skipped.
import { describe, it as nodeIt, before, after, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import {
  HL_BIN, KEYS, MODELS,
  gatewayBinaryMissing, startGateway, startStack, standardBackends,
  posts, fakeUsage, ledgerLine, assertCloseTo, expectedCloudCost, checkLedger,
  BACKEND_MODEL, BACKEND_SOURCE,
} from './gateway.mjs';
import { freePort, parseSSE, rawHttp, waitFor } from './util.mjs';
import { startFakeOpenAI } from '../fake/openai.mjs';
import { startFakeAnthropic } from '../fake/anthropic.mjs';

// Every test gets a deadline, so a hung gateway fails the test instead of hanging the suite.
const TEST_TIMEOUT_MS = 30000;
const it = (name, fn) => nodeIt(name, { timeout: TEST_TIMEOUT_MS }, fn);

const missing = gatewayBinaryMissing();
if (missing) console.log(`# SKIP gateway tests: ${missing}`);
const suiteOpts = missing ? { skip: missing } : {};

const user = (content) => [{ role: 'user', content }];

function client(gw, opts = {}) {
  return new OpenAI({ baseURL: gw.url + '/v1', apiKey: 'unused', maxRetries: 0, timeout: 15000, ...opts });
}

function checkRouteHeaders(headers, { backend, reason }) {
  const rid = headers.get('x-request-id');
  assert.ok(rid && rid.length > 0, 'x-request-id header is set');
  assert.equal(headers.get('x-hybridllm-backend'), backend, 'x-hybridllm-backend');
  const rr = headers.get('x-hybridllm-route-reason');
  if (reason instanceof RegExp) assert.match(String(rr), reason, 'x-hybridllm-route-reason');
  else assert.equal(rr, reason, 'x-hybridllm-route-reason');
  return rid;
}

// An OpenAI-shaped error body: {"error": {"message": string, "type": string, ...}}.
function checkErrorBody(body, ctx = '') {
  assert.equal(typeof body, 'object', `error body is JSON ${ctx}`);
  assert.ok(body && body.error && typeof body.error === 'object', `body has an "error" object ${ctx}: ${JSON.stringify(body)}`);
  assert.equal(typeof body.error.message, 'string', `error.message ${ctx}`);
  assert.ok(body.error.message.length > 0, `error.message is not empty ${ctx}`);
  assert.equal(typeof body.error.type, 'string', `error.type ${ctx}`);
}

// POSTs a streaming request with fetch and reads the whole SSE body, tolerating a broken
// connection. Returns {status, headers, text, error}.
async function rawStream(gw, body, headers = {}) {
  const res = await fetch(gw.url + '/v1/chat/completions', {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ stream: true, ...body }),
    signal: AbortSignal.timeout(15000),
  });
  let text = '';
  let error = null;
  try {
    const dec = new TextDecoder();
    for await (const chunk of res.body) text += dec.decode(chunk, { stream: true });
  } catch (e) {
    error = e;
  }
  return { status: res.status, headers: res.headers, text, error };
}

// Reads an SDK stream fully; returns the chunks.
async function drain(stream) {
  const chunks = [];
  for await (const c of stream) chunks.push(c);
  return chunks;
}

function checkStreamChunks(chunks, { model, text }) {
  assert.ok(chunks.length >= 3, `several chunks (${chunks.length})`);
  const idset = new Set(chunks.map((c) => `${c.id}|${c.created}|${c.model}`));
  assert.equal(idset.size, 1, `same id/created/model on every chunk: ${[...idset].join(', ')}`);
  assert.ok(chunks.every((c) => c.object === 'chat.completion.chunk'), 'object is chat.completion.chunk');
  assert.equal(chunks[0].model, model, 'model is the upstream model');
  const roles = chunks.flatMap((c) => c.choices.filter((ch) => ch.delta?.role).map((ch) => ch.delta.role));
  assert.deepEqual(roles, ['assistant'], 'exactly one delta carries role "assistant"');
  const got = chunks.flatMap((c) => c.choices.map((ch) => ch.delta?.content ?? '')).join('');
  assert.equal(got, text);
  const finishes = chunks.flatMap((c) => c.choices.filter((ch) => ch.finish_reason).map((ch) => ch.finish_reason));
  assert.deepEqual(finishes, ['stop'], 'one finish_reason "stop"');
  const last = chunks.at(-1);
  assert.deepEqual(last.choices, [], 'the final usage chunk has empty choices');
  assert.ok(last.usage && typeof last.usage.prompt_tokens === 'number' && typeof last.usage.completion_tokens === 'number', `usage on the final chunk: ${JSON.stringify(last)}`);
  assert.equal(last.usage.total_tokens, last.usage.prompt_tokens + last.usage.completion_tokens, 'total_tokens');
  for (const c of chunks.slice(0, -1)) assert.equal(c.usage ?? null, null, 'usage is null on the other chunks');
  return last.usage;
}

describe('gateway: main stack (3 fakes, standard config)', suiteOpts, () => {
  let stack;
  let startError;
  let gw;
  let api;
  let stopped = false;
  let deathReported = false; // by the afterEach hook
  let tailShown = false; // by ready()
  const ready = (t) => {
    if (!stack) {
      t.skip('gateway did not start (see the first test)');
      return false;
    }
    if (gw.exitInfo && !stopped) {
      const tail = tailShown ? '' : `\n--- gateway output (tail) ---\n${gw.output().slice(-4000)}`;
      tailShown = true;
      throw new Error(`gateway is not running: it exited (code ${gw.exitInfo.code}, signal ${gw.exitInfo.signal}) during an earlier test${tail}`);
    }
    return true;
  };
  const cloudRequests = () => [...posts(stack.anthropic), ...posts(stack.openai)];

  before(async () => {
    try {
      stack = await startStack({ extraServer: { max_body_bytes: 65536 } });
      gw = stack.gw;
      api = client(gw);
    } catch (e) {
      startError = e;
    }
  });
  after(async () => {
    if (stack && !stopped) await stack.close();
  });
  beforeEach(() => stack?.resetFakes());
  // A crash is reported on the test during which it happened, with the gateway's last output.
  afterEach(() => {
    if (gw?.exitInfo && !stopped && !deathReported) {
      deathReported = true;
      throw new Error(`the gateway exited during this test (code ${gw.exitInfo.code}, signal ${gw.exitInfo.signal})\n--- gateway output (tail) ---\n${gw.output().slice(-4000)}`);
    }
  });

  it('starts; GET /healthz is 200 and GET /readyz becomes 200', async () => {
    if (startError) throw startError;
    const h = await fetch(gw.url + '/healthz');
    assert.equal(h.status, 200);
    await waitFor(async () => (await fetch(gw.url + '/readyz')).status === 200, 5000, 'GET /readyz == 200');
  });

  it('GET /v1/models lists auto, the backends and their models (OpenAI list shape)', async (t) => {
    if (!ready(t)) return;
    const r = await fetch(gw.url + '/v1/models');
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type') ?? '', /application\/json/);
    const body = await r.json();
    assert.equal(body.object, 'list');
    assert.ok(Array.isArray(body.data));
    for (const m of body.data) {
      assert.equal(typeof m.id, 'string');
      assert.equal(m.object, 'model');
      assert.equal(typeof m.created, 'number');
      assert.equal(typeof m.owned_by, 'string');
    }
    const ids = body.data.map((m) => m.id);
    for (const want of ['auto', 'cloud-anthropic', 'cloud-openai', 'local', MODELS.anthropic, MODELS.openai, MODELS.local]) {
      assert.ok(ids.includes(want), `${want} in ${JSON.stringify(ids)}`);
    }
    const page = await api.models.list();
    assert.ok(page.data.some((m) => m.id === 'auto'));
  });

  describe('routing by rules (model "auto")', () => {
    const cases = [
      { name: 'header task type code_generation -> cloud-anthropic', headers: { 'x-hybridllm-task-type': 'code_generation' }, backend: 'cloud-anthropic', reason: 'rule:complex-task' },
      { name: 'metadata.task_type analysis -> cloud-anthropic', metadata: { task_type: 'analysis' }, backend: 'cloud-anthropic', reason: 'rule:complex-task' },
      { name: 'header task type reasoning -> cloud-anthropic', headers: { 'x-hybridllm-task-type': 'reasoning' }, backend: 'cloud-anthropic', reason: 'rule:complex-task' },
      { name: 'header task type classification -> local', headers: { 'x-hybridllm-task-type': 'classification' }, backend: 'local', reason: 'rule:simple-task' },
      { name: 'metadata.task_type extraction -> local', metadata: { task_type: 'extraction' }, backend: 'local', reason: 'rule:simple-task' },
      { name: 'no task type -> default -> local', backend: 'local', reason: 'rule:default' },
      { name: 'unlisted task type -> default -> local', metadata: { task_type: 'poetry' }, backend: 'local', reason: 'rule:default' },
      { name: 'metadata is_regulated "false" does not count as sensitive', metadata: { task_type: 'code_generation', is_regulated: 'false' }, backend: 'cloud-anthropic', reason: 'rule:complex-task' },
    ];
    for (const c of cases) {
      it(c.name, async (t) => {
        if (!ready(t)) return;
        const body = { model: 'auto', messages: user(`route case ${c.backend} please`) };
        if (c.metadata) body.metadata = c.metadata;
        const { data, response } = await api.chat.completions.create(body, { headers: c.headers ?? {} }).withResponse();
        assert.equal(data.choices[0].message.content, `echo: route case ${c.backend} please`);
        assert.equal(data.choices[0].finish_reason, 'stop');
        assert.equal(data.model, BACKEND_MODEL[c.backend], 'response model is the upstream model');
        const rid = checkRouteHeaders(response.headers, c);
        const costHeader = Number(response.headers.get('x-hybridllm-cost-usd'));
        assert.ok(Number.isFinite(costHeader) && costHeader >= 0, `x-hybridllm-cost-usd: ${response.headers.get('x-hybridllm-cost-usd')}`);

        const fake = { 'cloud-anthropic': stack.anthropic, 'cloud-openai': stack.openai, local: stack.local }[c.backend];
        const others = Object.values({ a: stack.anthropic, o: stack.openai, l: stack.local }).filter((f) => f !== fake);
        assert.equal(posts(fake).length, 1, 'the chosen upstream got exactly one request');
        for (const o of others) assert.equal(posts(o).length, 0, `${o.name} fake got nothing`);
        const rec = posts(fake)[0];
        assert.equal(rec.body.model, BACKEND_MODEL[c.backend], 'upstream got its own model name');
        if (c.backend === 'cloud-anthropic') {
          assert.ok(!rec.body.metadata || Object.keys(rec.body.metadata).every((k) => k === 'user_id'), 'hybridllm metadata stripped');
        } else {
          assert.ok(!('metadata' in rec.body), `metadata stripped before the upstream: ${JSON.stringify(rec.body)}`);
        }
        const usage = fakeUsage(rec);
        assert.equal(data.usage.prompt_tokens, usage.input);
        assert.equal(data.usage.completion_tokens, usage.output);

        const line = await ledgerLine(gw, rid);
        checkLedger(line, { requestId: rid, backend: c.backend, reason: c.reason, stream: false, usage });
        if (BACKEND_SOURCE[c.backend] === 'cloud') {
          assertCloseTo(costHeader, expectedCloudCost(BACKEND_MODEL[c.backend], usage.input, usage.output), 1e-6, 'x-hybridllm-cost-usd');
        }
      });
    }
  });

  describe('forcing a backend by name or by model', () => {
    const cases = [
      { model: 'cloud-openai', backend: 'cloud-openai' },
      { model: 'gpt-4o', backend: 'cloud-openai' },
      { model: 'cloud-anthropic', backend: 'cloud-anthropic' },
      { model: MODELS.anthropic, backend: 'cloud-anthropic' },
      { model: 'local', backend: 'local' },
      { model: 'mistral-7b', backend: 'local' },
    ];
    for (const c of cases) {
      it(`model "${c.model}" -> ${c.backend}`, async (t) => {
        if (!ready(t)) return;
        // A task type that would route elsewhere must not matter when the model is forced.
        const { data, response } = await api.chat.completions
          .create({ model: c.model, messages: user('forced hello') }, { headers: { 'x-hybridllm-task-type': c.backend === 'local' ? 'analysis' : 'classification' } })
          .withResponse();
        assert.equal(data.choices[0].message.content, 'echo: forced hello');
        assert.equal(data.model, BACKEND_MODEL[c.backend]);
        const rid = checkRouteHeaders(response.headers, { backend: c.backend, reason: /^forced/ });
        const line = await ledgerLine(gw, rid);
        const fake = { 'cloud-anthropic': stack.anthropic, 'cloud-openai': stack.openai, local: stack.local }[c.backend];
        checkLedger(line, { requestId: rid, backend: c.backend, reason: response.headers.get('x-hybridllm-route-reason'), stream: false, usage: fakeUsage(posts(fake)[0]) });
      });
    }

    it('unknown model -> 404 model_not_found, nothing sent upstream', async (t) => {
      if (!ready(t)) return;
      await assert.rejects(api.chat.completions.create({ model: 'no-such-model', messages: user('x') }), (e) => {
        assert.equal(e.status, 404);
        assert.equal(e.code, 'model_not_found');
        assert.equal(typeof e.error?.message, 'string');
        assert.ok(e.headers.get('x-request-id'), 'x-request-id on errors too');
        return true;
      });
      assert.equal(cloudRequests().length + posts(stack.local).length, 0);
    });
  });

  describe('privacy: sensitive requests never reach a cloud backend', () => {
    const markers = [
      { name: 'header x-hybridllm-regulated: true', headers: { 'x-hybridllm-regulated': 'true' } },
      { name: 'header x-hybridllm-pii: true', headers: { 'x-hybridllm-pii': 'true' } },
      { name: 'metadata is_regulated "true"', metadata: { is_regulated: 'true' } },
      { name: 'metadata pii_present "true"', metadata: { pii_present: 'true' } },
      { name: 'metadata is_regulated true (boolean)', metadata: { is_regulated: true } },
      { name: 'metadata pii_present true (boolean)', metadata: { pii_present: true } },
    ];
    for (const m of markers) {
      it(`${m.name} + task code_generation -> local (rule:privacy)`, async (t) => {
        if (!ready(t)) return;
        const body = { model: 'auto', messages: user('my SSN is 078-05-1120'), metadata: { task_type: 'code_generation', ...(m.metadata ?? {}) } };
        const { data, response } = await api.chat.completions.create(body, { headers: m.headers ?? {} }).withResponse();
        assert.equal(data.choices[0].message.content, 'echo: my SSN is 078-05-1120');
        const rid = checkRouteHeaders(response.headers, { backend: 'local', reason: 'rule:privacy' });
        assert.equal(cloudRequests().length, 0, 'no cloud fake received anything');
        assert.equal(posts(stack.local).length, 1);
        assert.ok(!('metadata' in posts(stack.local)[0].body), 'metadata stripped');
        const line = await ledgerLine(gw, rid);
        checkLedger(line, { requestId: rid, backend: 'local', reason: 'rule:privacy', stream: false, usage: fakeUsage(posts(stack.local)[0]) });
      });
    }

    it('sensitive + streaming -> local', async (t) => {
      if (!ready(t)) return;
      const { data: stream, response } = await api.chat.completions
        .create({ model: 'auto', stream: true, stream_options: { include_usage: true }, messages: user('secret stuff') }, { headers: { 'x-hybridllm-pii': 'true', 'x-hybridllm-task-type': 'reasoning' } })
        .withResponse();
      checkRouteHeaders(response.headers, { backend: 'local', reason: 'rule:privacy' });
      const chunks = await drain(stream);
      checkStreamChunks(chunks, { model: MODELS.local, text: 'echo: secret stuff' });
      assert.equal(cloudRequests().length, 0);
    });

    for (const model of ['cloud-openai', 'gpt-4o', 'cloud-anthropic', MODELS.anthropic]) {
      it(`sensitive request forced to "${model}" -> 403 privacy_violation, cloud gets nothing`, async (t) => {
        if (!ready(t)) return;
        for (const opts of [{ headers: { 'x-hybridllm-regulated': 'true' } }, { metadata: { pii_present: 'true' } }]) {
          const body = { model, messages: user('regulated data'), ...(opts.metadata ? { metadata: opts.metadata } : {}) };
          await assert.rejects(api.chat.completions.create(body, { headers: opts.headers ?? {} }), (e) => {
            assert.equal(e.status, 403, `status for ${JSON.stringify(opts)}`);
            assert.equal(e.type, 'invalid_request_error');
            assert.equal(e.code, 'privacy_violation');
            assert.ok(e.headers.get('x-request-id'));
            return true;
          });
        }
        assert.equal(cloudRequests().length, 0, 'no cloud fake received anything');
      });
    }

    it('sensitive request forced to "local" is fine', async (t) => {
      if (!ready(t)) return;
      const r = await api.chat.completions.create({ model: 'local', messages: user('ok here') }, { headers: { 'x-hybridllm-regulated': 'true' } });
      assert.equal(r.choices[0].message.content, 'echo: ok here');
      assert.equal(cloudRequests().length, 0);
    });
  });

  describe('translation to the Anthropic Messages API', () => {
    it('system message -> top-level system; max_tokens -> max_tokens, finish_reason "length"', async (t) => {
      if (!ready(t)) return;
      const r = await api.chat.completions.create(
        { model: 'cloud-anthropic', max_tokens: 2, messages: [{ role: 'system', content: 'You are terse.' }, { role: 'user', content: 'one two three four' }] },
      );
      assert.equal(r.choices[0].message.content, 'echo: one');
      assert.equal(r.choices[0].finish_reason, 'length');
      const rec = posts(stack.anthropic)[0];
      assert.equal(rec.response.status, 200, `upstream accepted the translated body: ${JSON.stringify(rec.response)}`);
      assert.equal(rec.body.max_tokens, 2);
      assert.ok(rec.body.messages.every((m) => m.role === 'user' || m.role === 'assistant'));
      const sys = typeof rec.body.system === 'string' ? rec.body.system : (rec.body.system ?? []).map((b) => b.text).join('');
      assert.match(sys, /You are terse\./);
      assert.ok(rec.headers['anthropic-version'], 'anthropic-version sent');
      assert.ok(rec.headers['x-api-key'] === KEYS.HL_TEST_ANTHROPIC_KEY || rec.headers.authorization === `Bearer ${KEYS.HL_TEST_ANTHROPIC_KEY}`, 'key sent');
    });

    it('no max_tokens from the client -> the gateway still sends an integer max_tokens', async (t) => {
      if (!ready(t)) return;
      const r = await api.chat.completions.create({ model: 'cloud-anthropic', messages: user('defaults') });
      assert.equal(r.choices[0].message.content, 'echo: defaults');
      assert.ok(Number.isInteger(posts(stack.anthropic)[0].body.max_tokens));
    });
  });

  describe('streaming (stream_options.include_usage)', () => {
    const cases = [
      { name: 'anthropic backend (translated)', model: 'auto', headers: { 'x-hybridllm-task-type': 'code_generation' }, backend: 'cloud-anthropic', reason: 'rule:complex-task' },
      { name: 'anthropic backend, message_delta carrying full cumulative usage', model: 'auto', headers: { 'x-hybridllm-task-type': 'analysis' }, backend: 'cloud-anthropic', reason: 'rule:complex-task', control: { delta_usage_full: true } },
      { name: 'local openai-kind backend', model: 'auto', backend: 'local', reason: 'rule:default' },
      { name: 'cloud openai backend (forced)', model: 'cloud-openai', backend: 'cloud-openai', reason: /^forced/ },
    ];
    for (const c of cases) {
      it(c.name, async (t) => {
        if (!ready(t)) return;
        const fake = { 'cloud-anthropic': stack.anthropic, 'cloud-openai': stack.openai, local: stack.local }[c.backend];
        if (c.control) fake.control(c.control);
        const prompt = 'please stream these five words';
        const { data: stream, response } = await api.chat.completions
          .create({ model: c.model, stream: true, stream_options: { include_usage: true }, messages: user(prompt) }, { headers: c.headers ?? {} })
          .withResponse();
        assert.match(response.headers.get('content-type') ?? '', /^text\/event-stream/);
        const rid = checkRouteHeaders(response.headers, c);
        const chunks = await drain(stream);
        const clientUsage = checkStreamChunks(chunks, { model: BACKEND_MODEL[c.backend], text: `echo: ${prompt}` });
        assert.equal(posts(fake).length, 1);
        const rec = posts(fake)[0];
        assert.equal(rec.body.stream, true, 'upstream request is streamed');
        const usage = fakeUsage(rec);
        assert.equal(clientUsage.prompt_tokens, usage.input, 'client usage prompt_tokens = upstream input');
        assert.equal(clientUsage.completion_tokens, usage.output, 'client usage completion_tokens = upstream output (final, not summed)');
        const line = await ledgerLine(gw, rid);
        checkLedger(line, { requestId: rid, backend: c.backend, reason: response.headers.get('x-hybridllm-route-reason'), stream: true, usage });
      });
    }

    it('raw SSE framing: data: frames, usage chunk right before data: [DONE]', async (t) => {
      if (!ready(t)) return;
      for (const headers of [{}, { 'x-hybridllm-task-type': 'code_generation' }]) {
        const r = await rawStream(gw, { model: 'auto', stream_options: { include_usage: true }, messages: user('raw frames') }, headers);
        assert.equal(r.status, 200);
        assert.equal(r.error, null, `stream read cleanly (${r.error})`);
        assert.match(r.headers.get('content-type') ?? '', /^text\/event-stream/);
        assert.ok(r.text.endsWith('data: [DONE]\n\n'), `ends with data: [DONE]: ${JSON.stringify(r.text.slice(-80))}`);
        const events = parseSSE(r.text).filter((e) => e.data !== '');
        assert.equal(events.filter((e) => e.data === '[DONE]').length, 1, 'one [DONE]');
        const json = events.slice(0, -1).map((e) => JSON.parse(e.data));
        assert.ok(json.every((j) => !j.error), 'no error frames');
        assert.deepEqual(json.at(-1).choices, [], 'usage chunk is last before [DONE]');
        assert.ok(json.at(-1).usage);
      }
    });

    it('stream without include_usage: text arrives, ledger line is ok with tokens', async (t) => {
      if (!ready(t)) return;
      const { data: stream, response } = await api.chat.completions
        .create({ model: 'local', stream: true, messages: user('no usage asked') })
        .withResponse();
      const chunks = await drain(stream);
      assert.equal(chunks.flatMap((c) => c.choices.map((ch) => ch.delta?.content ?? '')).join(''), 'echo: no usage asked');
      const rid = response.headers.get('x-request-id');
      const line = await ledgerLine(gw, rid);
      assert.equal(line.status, 'ok');
      assert.equal(line.stream, true);
      assert.ok(line.output_tokens > 0, `output_tokens counted: ${JSON.stringify(line)}`);
      const rec = posts(stack.local)[0];
      if (rec.body.stream_options?.include_usage) {
        // the gateway asked the upstream for usage: then the ledger must hold exactly that
        assert.equal(line.output_tokens, fakeUsage(rec).output);
        assert.equal(line.input_tokens, fakeUsage(rec).input);
      }
    });

    it('local server that never sends stream usage (Ollama-like): ledger still counts tokens', async (t) => {
      if (!ready(t)) return;
      stack.local.control({ stream_usage: 'never' });
      const { data: stream, response } = await api.chat.completions
        .create({ model: 'local', stream: true, stream_options: { include_usage: true }, messages: user('count these words please') })
        .withResponse();
      const chunks = await drain(stream);
      assert.equal(chunks.flatMap((c) => c.choices.map((ch) => ch.delta?.content ?? '')).join(''), 'echo: count these words please');
      const line = await ledgerLine(gw, response.headers.get('x-request-id'));
      assert.equal(line.status, 'ok');
      assert.ok(line.output_tokens > 0 && line.input_tokens > 0, `estimated tokens recorded: ${JSON.stringify(line)}`);
    });
  });

  it('local cost = latency_ms / 3600000 * hourly_cost_usd (0.05)', async (t) => {
    if (!ready(t)) return;
    stack.local.control({ delay_ms: 300 });
    const { response } = await api.chat.completions.create({ model: 'local', messages: user('slow local') }).withResponse();
    const rid = response.headers.get('x-request-id');
    const line = await ledgerLine(gw, rid);
    assert.ok(line.latency_ms >= 290, `latency_ms includes the upstream's 300 ms: ${line.latency_ms}`);
    checkLedger(line, { requestId: rid, backend: 'local', reason: /^forced/, stream: false, usage: fakeUsage(posts(stack.local)[0]) });
    assert.ok(line.cost_usd > 0);
    const hdr = Number(response.headers.get('x-hybridllm-cost-usd'));
    assertCloseTo(hdr, line.cost_usd, 1e-6, 'x-hybridllm-cost-usd vs ledger');
  });

  describe('bad input: right status, OpenAI-shaped error, server keeps serving', () => {
    const json = (obj) => JSON.stringify(obj);
    const post = (body, extra = '') => {
      const b = Buffer.from(body);
      return [`POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${b.length}\r\nConnection: close\r\n${extra}\r\n`, b];
    };
    const big = json({ model: 'auto', messages: user('x'.repeat(70000)) });
    const cases = [
      { name: 'malformed JSON -> 400', payload: post('{"model": "auto", "messages": [{"role": "user", '), status: 400 },
      { name: 'messages not an array -> 400', payload: post(json({ model: 'auto', messages: 'hello' })), status: 400 },
      { name: 'messages missing -> 400', payload: post(json({ model: 'auto' })), status: 400 },
      { name: 'missing model -> 400', payload: post(json({ messages: user('x') })), status: 400 },
      { name: 'body is a JSON array -> 400', payload: post('[1,2,3]'), status: 400 },
      { name: 'body over max_body_bytes (65536) -> 413', payload: post(big), status: 413 },
      { name: 'garbage request line -> 400', payload: 'GARBAGE\r\n\r\n', status: 400, noRequestId: true },
      { name: 'unknown path -> 404', payload: 'GET /v1/nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', status: 404 },
      { name: 'wrong method on /v1/chat/completions -> 405', payload: 'GET /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', status: 405 },
    ];
    for (const c of cases) {
      it(c.name, async (t) => {
        if (!ready(t)) return;
        const r = await rawHttp(gw.port, c.payload);
        assert.equal(
          r.status,
          c.status,
          `status line of ${JSON.stringify(r.raw.slice(0, 300))}${r.status === null && c.status === 413
            ? ' (no response read: if the gateway closes the socket with unread request bytes, the kernel sends RST and the client loses the 413; drain the body or shutdown(SHUT_WR) and linger before close())'
            : ''}`,
        );
        if (!c.noRequestId) assert.ok(r.headers['x-request-id'], 'x-request-id header');
        assert.match(r.headers['content-type'] ?? '', /application\/json/);
        let body;
        try {
          body = JSON.parse(r.body);
        } catch {
          assert.fail(`error body is not JSON: ${JSON.stringify(r.body.slice(0, 300))}`);
        }
        checkErrorBody(body, c.name);
        assert.equal(cloudRequests().length + posts(stack.local).length, 0, 'nothing reached an upstream');
        // still serving
        const ok = await api.chat.completions.create({ model: 'local', messages: user('still alive') });
        assert.equal(ok.choices[0].message.content, 'echo: still alive');
      });
    }
  });

  describe('upstream errors', () => {
    // After the upstream is healthy again, requests succeed again (allowing a gateway a few
    // seconds to close a circuit breaker or re-probe the backend).
    const recovers = (model, headers = {}) =>
      waitFor(async () => {
        const ok = await api.chat.completions.create({ model, messages: user('recovered') }, { headers });
        assert.equal(ok.choices[0].message.content, 'echo: recovered');
        return true;
      }, 5000, `a request to ${model} to succeed again`, 100);
    const cases = [
      { name: 'anthropic 529 overloaded -> 5xx', fake: 'anthropic', status: 529, model: 'auto', headers: { 'x-hybridllm-task-type': 'code_generation' }, backend: 'cloud-anthropic', expect: (s) => s >= 500 },
      { name: 'anthropic 500 -> 5xx', fake: 'anthropic', status: 500, model: 'cloud-anthropic', backend: 'cloud-anthropic', expect: (s) => s >= 500 },
      { name: 'anthropic 429 -> 429', fake: 'anthropic', status: 429, model: 'auto', headers: { 'x-hybridllm-task-type': 'analysis' }, backend: 'cloud-anthropic', expect: (s) => s === 429 },
      { name: 'openai 500 -> 5xx', fake: 'openai', status: 500, model: 'cloud-openai', backend: 'cloud-openai', expect: (s) => s >= 500 },
      { name: 'openai 429 -> 429', fake: 'openai', status: 429, model: 'gpt-4o', backend: 'cloud-openai', expect: (s) => s === 429 },
      { name: 'local 503 -> 5xx', fake: 'local', status: 503, model: 'local', backend: 'local', expect: (s) => s >= 500 },
    ];
    for (const c of cases) {
      for (const stream of [false, true]) {
        it(`${c.name}${stream ? ' (stream requested)' : ''}; ledger status "error"`, async (t) => {
          if (!ready(t)) return;
          // Enough errors to outlast any retries the gateway does.
          stack[c.fake].control({ status: c.status, count: 50 });
          const body = { model: c.model, messages: user('will fail'), ...(stream ? { stream: true, stream_options: { include_usage: true } } : {}) };
          let err;
          try {
            const s = await api.chat.completions.create(body, { headers: c.headers ?? {} });
            if (stream) await drain(s);
          } catch (e) {
            err = e;
          }
          assert.ok(err instanceof OpenAI.APIError, `the client got an API error (got ${err})`);
          assert.ok(c.expect(err.status), `status ${err.status} for upstream ${c.status}`);
          assert.equal(typeof err.error?.message, 'string', `OpenAI-shaped error body: ${JSON.stringify(err.error)}`);
          assert.equal(typeof err.error?.type, 'string', `error.type: ${JSON.stringify(err.error)}`);
          assert.ok(posts(stack[c.fake]).length >= 1, 'the upstream was called');
          const rid = err.headers.get('x-request-id');
          assert.ok(rid, 'x-request-id on the error response');
          assert.equal(err.headers.get('x-hybridllm-backend'), c.backend);
          const line = await ledgerLine(gw, rid);
          assert.equal(line.status, 'error', JSON.stringify(line));
          assert.equal(line.backend, c.backend);
          assert.equal(line.stream, stream);
          assert.equal(typeof line.latency_ms, 'number');
          stack[c.fake].reset();
          await recovers(c.model, c.headers);
        });
      }
    }

    const midStream = [
      { name: 'local upstream disconnects mid-stream', fake: 'local', model: 'local', control: { disconnect_after_chunks: 3, chunk_delay_ms: 20 } },
      { name: 'anthropic upstream disconnects mid-stream', fake: 'anthropic', model: 'cloud-anthropic', control: { disconnect_after_chunks: 5, chunk_delay_ms: 20 } },
      { name: 'anthropic sends event: error (overloaded) mid-stream', fake: 'anthropic', model: 'cloud-anthropic', control: { error_after_chunks: 5 } },
      { name: 'openai sends an error frame mid-stream', fake: 'openai', model: 'cloud-openai', control: { error_after_chunks: 3 } },
    ];
    for (const c of midStream) {
      it(`${c.name} -> no [DONE] (or an error frame), ledger not "ok", still serving`, async (t) => {
        if (!ready(t)) return;
        stack[c.fake].control(c.control);
        const r = await rawStream(gw, { model: c.model, stream_options: { include_usage: true }, messages: user('a b c d e f g h') });
        assert.equal(r.status, 200, 'headers were already sent as 200');
        // Either the connection breaks / ends without [DONE], or an error frame is sent.
        const errorFrame = parseSSE(r.text).some((e) => {
          try {
            return 'error' in JSON.parse(e.data);
          } catch {
            return false;
          }
        });
        assert.ok(!r.text.includes('data: [DONE]') || errorFrame, `client must not see a clean end: ${JSON.stringify(r.text.slice(-200))}`);
        // The SDK must not see a normal completion either.
        stack[c.fake].reset();
        stack[c.fake].control(c.control);
        let sdkErr = null;
        let chunks = [];
        try {
          const s = await api.chat.completions.create({ model: c.model, stream: true, stream_options: { include_usage: true }, messages: user('a b c d e f g h') });
          for await (const ch of s) chunks.push(ch);
        } catch (e) {
          sdkErr = e;
        }
        const finished = chunks.some((ch) => ch.choices.some((x) => x.finish_reason === 'stop'));
        assert.ok(sdkErr || !finished, 'the SDK stream errors or ends without a normal finish');
        const rid = r.headers.get('x-request-id');
        const line = await ledgerLine(gw, rid);
        assert.notEqual(line.status, 'ok', `ledger status for a broken stream: ${JSON.stringify(line)}`);
        assert.equal(line.stream, true);
        stack[c.fake].reset();
        await recovers(c.model);
      });
    }
  });

  describe('client disconnect mid-stream', () => {
    const cases = [
      { name: 'local backend', fake: 'local', model: 'local', backend: 'local' },
      { name: 'anthropic backend', fake: 'anthropic', model: 'cloud-anthropic', backend: 'cloud-anthropic' },
    ];
    for (const c of cases) {
      it(`${c.name}: upstream connection closed, ledger status "cancelled"`, async (t) => {
        if (!ready(t)) return;
        const fake = stack[c.fake];
        fake.control({ chunk_delay_ms: 200 });
        const ac = new AbortController();
        const { data: stream, response } = await api.chat.completions
          .create({ model: c.model, stream: true, stream_options: { include_usage: true }, messages: user('one two three four five six seven eight nine ten') }, { signal: ac.signal })
          .withResponse();
        const rid = response.headers.get('x-request-id');
        try {
          for await (const _ of stream) {
            ac.abort();
            break;
          }
        } catch (e) {
          if (!(e instanceof OpenAI.APIUserAbortError) && e.name !== 'AbortError') throw e;
        }
        const rec = await waitFor(() => posts(fake)[0], 2000, 'the upstream request');
        await waitFor(() => rec.closed, 1500, `the ${c.fake} fake to see its connection closed (the gateway must cancel the upstream call)`);
        assert.equal(rec.finished, false, 'the upstream response did not complete');
        const line = await ledgerLine(gw, rid);
        assert.equal(line.status, 'cancelled', JSON.stringify(line));
        assert.equal(line.backend, c.backend);
        assert.equal(line.stream, true);
        fake.reset();
        const ok = await api.chat.completions.create({ model: c.model, messages: user('next one') });
        assert.equal(ok.choices[0].message.content, 'echo: next one');
      });
    }
  });

  it('20 concurrent requests: all succeed, unique request ids, 20 ledger lines', async (t) => {
    if (!ready(t)) return;
    for (const f of [stack.local, stack.anthropic, stack.openai]) f.control({ delay_ms: 50, chunk_delay_ms: 5 });
    const jobs = Array.from({ length: 20 }, (_, i) => async () => {
      const text = `concurrent request number ${i}`;
      const kind = i % 4;
      if (kind === 3) {
        const { data: s, response } = await api.chat.completions
          .create({ model: 'auto', stream: true, stream_options: { include_usage: true }, messages: user(text) })
          .withResponse();
        const chunks = await drain(s);
        return { i, text: chunks.flatMap((c) => c.choices.map((x) => x.delta?.content ?? '')).join(''), rid: response.headers.get('x-request-id'), backend: response.headers.get('x-hybridllm-backend') };
      }
      const body = { model: kind === 2 ? 'cloud-openai' : 'auto', messages: user(text) };
      const headers = kind === 1 ? { 'x-hybridllm-task-type': 'code_generation' } : {};
      const { data, response } = await api.chat.completions.create(body, { headers }).withResponse();
      return { i, text: data.choices[0].message.content, rid: response.headers.get('x-request-id'), backend: response.headers.get('x-hybridllm-backend') };
    });
    const results = await Promise.all(jobs.map((j) => j()));
    const want = ['local', 'cloud-anthropic', 'cloud-openai', 'local'];
    for (const r of results) {
      assert.equal(r.text, `echo: concurrent request number ${r.i}`, `reply ${r.i} is its own`);
      assert.equal(r.backend, want[r.i % 4]);
      assert.ok(r.rid);
    }
    const ids = results.map((r) => r.rid);
    assert.equal(new Set(ids).size, 20, 'request ids are unique');
    const lines = await waitFor(
      () => {
        const got = gw.ledger().filter((l) => ids.includes(l.request_id));
        return got.length >= 20 ? got : null;
      },
      5000,
      '20 ledger lines',
    );
    assert.equal(lines.length, 20);
    assert.ok(lines.every((l) => l.status === 'ok'));
    assert.equal(posts(stack.local).length + posts(stack.anthropic).length + posts(stack.openai).length, 20);
  });

  // The event loops write a loop turn's ledger lines with one write() and hold that turn's
  // responses until then: whichever response a client holds, its line is already in the file.
  // (End to end; that the lines go out before any byte of the turn's responses is checked
  // deterministically in test/server/test_server.c.)
  it('group commit: every answer a client has is in the ledger file at that moment', async (t) => {
    if (!ready(t)) return;
    stack.local.control({ delay_ms: 0 });
    const missingAt = [];
    let next = 0;
    const worker = async () => {
      while (next < 400) {
        const i = next++;
        const { response } = await api.chat.completions.create({ model: 'auto', messages: user(`group ${i}`) }).withResponse();
        const rid = response.headers.get('x-request-id');
        if (!gw.ledger().some((l) => l.request_id === rid)) missingAt.push(rid);
      }
    };
    await Promise.all(Array.from({ length: 32 }, worker));
    assert.deepEqual(missingAt, [], 'answers whose ledger line was not in the file when the client had them');
  });

  it('SIGTERM: an in-flight request completes, then the gateway exits 0', async (t) => {
    if (!ready(t)) return;
    stack.local.control({ delay_ms: 400 });
    const inflight = api.chat.completions.create({ model: 'local', messages: user('finish me') });
    await waitFor(() => posts(stack.local).length === 1, 3000, 'the request to reach the upstream');
    gw.proc.kill('SIGTERM');
    const r = await inflight;
    assert.equal(r.choices[0].message.content, 'echo: finish me');
    const res = await gw.waitForExit(10000);
    if (res.timedOut) gw.proc.kill('SIGKILL');
    stopped = true;
    await stack.close(); // closes the fakes (SIGKILLs the gateway if it is still running)
    assert.ok(!res.timedOut, 'exited within 10 s of SIGTERM');
    assert.equal(res.signal ?? null, null, `exited by itself, not by a signal (${res.signal})`);
    assert.equal(res.code, 0, `exit code (output tail: ${gw.output().slice(-2000)})`);
  });
});

describe('gateway: no backend reachable', suiteOpts, () => {
  let gw;
  let startError;
  before(async () => {
    try {
      const [a, o, l] = [await freePort(), await freePort(), await freePort()];
      gw = await startGateway({
        backends: standardBackends({ anthropicUrl: `http://127.0.0.1:${a}`, openaiUrl: `http://127.0.0.1:${o}`, localUrl: `http://127.0.0.1:${l}` }),
        unsetEnv: Object.keys(KEYS),
        env: {},
      });
    } catch (e) {
      startError = e;
    }
  });
  after(async () => {
    if (gw && !gw.exitInfo) await gw.stop();
  });

  it('starts; /healthz 200; /readyz 503 naming the missing backends', async () => {
    if (startError) throw startError;
    const h = await fetch(gw.url + '/healthz');
    assert.equal(h.status, 200);
    const text = await waitFor(async () => {
      const r = await fetch(gw.url + '/readyz');
      const b = await r.text();
      return r.status === 503 ? b : null;
    }, 5000, 'GET /readyz == 503');
    for (const name of ['cloud-anthropic', 'cloud-openai', 'local']) assert.ok(text.includes(name), `${name} named in /readyz: ${text}`);
  });

  it('/v1/models still lists the configured models', async (t) => {
    if (!gw) return t.skip('gateway did not start');
    const body = await (await fetch(gw.url + '/v1/models')).json();
    assert.equal(body.object, 'list');
    const ids = body.data.map((m) => m.id);
    assert.ok(ids.includes('auto') && ids.includes('local') && ids.includes('cloud-anthropic'));
  });

  it('a chat request gets 503 with an OpenAI-shaped error; then SIGTERM exits 0', async (t) => {
    if (!gw) return t.skip('gateway did not start');
    for (const model of ['auto', 'local', 'cloud-anthropic']) {
      const r = await fetch(gw.url + '/v1/chat/completions', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model, messages: user('anyone there?') }),
      });
      assert.equal(r.status, 503, `model ${model}`);
      assert.ok(r.headers.get('x-request-id'));
      checkErrorBody(await r.json(), `model ${model}`);
    }
    const res = await gw.stop();
    assert.equal(res.code, 0, `exit code (output: ${gw.output().slice(-2000)})`);
  });
});

describe('gateway: local backend down, cloud up', suiteOpts, () => {
  let gw;
  let startError;
  let anthropic;
  let openai;
  before(async () => {
    try {
      anthropic = await startFakeAnthropic({ key: KEYS.HL_TEST_ANTHROPIC_KEY, models: [MODELS.anthropic] });
      openai = await startFakeOpenAI({ key: KEYS.HL_TEST_OPENAI_KEY, models: [MODELS.openai] });
      const l = await freePort();
      gw = await startGateway({ backends: standardBackends({ anthropicUrl: anthropic.url, openaiUrl: openai.url, localUrl: `http://127.0.0.1:${l}` }) });
    } catch (e) {
      startError = e;
    }
  });
  after(async () => {
    if (gw && !gw.exitInfo) await gw.stop();
    await anthropic?.close();
    await openai?.close();
  });

  it('default route falls to the next backend (cloud-anthropic)', async () => {
    if (startError) throw startError;
    const { data, response } = await client(gw).chat.completions.create({ model: 'auto', messages: user('fallback please') }).withResponse();
    assert.equal(data.choices[0].message.content, 'echo: fallback please');
    checkRouteHeaders(response.headers, { backend: 'cloud-anthropic', reason: 'rule:default' });
  });

  it('a sensitive request is refused (5xx), never sent to the cloud', async (t) => {
    if (!gw) return t.skip('gateway did not start');
    anthropic.reset();
    openai.reset();
    for (const headers of [{ 'x-hybridllm-regulated': 'true' }, { 'x-hybridllm-pii': 'true' }]) {
      await assert.rejects(client(gw).chat.completions.create({ model: 'auto', messages: user('ssn 078-05-1120') }, { headers }), (e) => {
        assert.ok(e.status >= 500, `status ${e.status}`);
        assert.equal(typeof e.error?.message, 'string');
        return true;
      });
    }
    assert.equal(posts(anthropic).length + posts(openai).length, 0, 'no cloud fake received anything');
    const res = await gw.stop();
    assert.equal(res.code, 0);
  });
});

if (!missing) console.log(`# gateway binary: ${HL_BIN}`);
