// End-to-end tests of the gateway's Anthropic Messages ingress (POST /v1/messages), driven with
// the official @anthropic-ai/sdk against the fake upstreams: every provider kind (the Anthropic
// backend natively, OpenAI-kind backends through translation), streaming and not, tool use,
// errors in Anthropic's shape, privacy routing, ledger lines.
//
//   HL_BIN=/path/to/hybridllm node --test test/integration/messages.test.mjs
//   node --test --test-name-pattern='tool' test/integration/messages.test.mjs
import { describe, it as nodeIt, before, after, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import Anthropic from '@anthropic-ai/sdk';
import {
  HL_BIN, MODELS, BACKEND_MODEL, gatewayBinaryMissing, posts, fakeUsage, ledgerLine, checkLedger, useStack,
} from './gateway.mjs';
import { parseSSE, rawHttp } from './util.mjs';

const TEST_TIMEOUT_MS = 30000;
const it = (name, fn) => nodeIt(name, { timeout: TEST_TIMEOUT_MS }, fn);

// The JS reference gateway (test/fake/reference-gateway.mjs, the suite's self-check) models the
// OpenAI ingress only.
const missing = gatewayBinaryMissing() ?? (/reference-gateway\.mjs$/.test(HL_BIN) ? 'the reference gateway has no /v1/messages' : null);
if (missing) console.log(`# SKIP messages tests: ${missing}`);
const suiteOpts = missing ? { skip: missing } : {};

const user = (content) => [{ role: 'user', content }];
const client = (gw) => new Anthropic({ baseURL: gw.url, apiKey: 'unused', maxRetries: 0, timeout: 15000 });

// One way to reach each provider kind.
const KINDS = [
  { name: 'anthropic backend (native)', fake: 'anthropic', backend: 'cloud-anthropic', model: 'auto', headers: { 'x-hybridllm-task-type': 'code_generation' }, reason: 'rule:complex-task' },
  { name: 'cloud-openai backend (translated)', fake: 'openai', backend: 'cloud-openai', model: MODELS.openai, reason: /^forced/ },
  { name: 'local openai-kind backend (translated)', fake: 'local', backend: 'local', model: 'auto', reason: 'rule:default' },
];

const TOOLS = [
  {
    name: 'lookup',
    description: 'Looks a text up.',
    input_schema: { type: 'object', properties: { text: { type: 'string' } }, required: ['text'] },
  },
];
const TOOL_PROMPT = 'please call a tool now';
const TOOL_RESULT = 'sunny and 21 degrees';

// request-id and x-request-id are the same, non-empty; routing headers as expected.
function checkHeaders(headers, { backend, reason }) {
  const rid = headers.get('request-id');
  assert.ok(rid && rid.length > 0, 'request-id header is set');
  assert.equal(headers.get('x-request-id'), rid, 'x-request-id equals request-id');
  assert.equal(headers.get('x-hybridllm-backend'), backend, 'x-hybridllm-backend');
  const rr = headers.get('x-hybridllm-route-reason');
  if (reason instanceof RegExp) assert.match(String(rr), reason, 'x-hybridllm-route-reason');
  else assert.equal(rr, reason, 'x-hybridllm-route-reason');
  return rid;
}

// An Anthropic error body {"type":"error","error":{"type","message"},"request_id"}.
function checkErrorBody(body, { type, requestId }, ctx = '') {
  assert.ok(body && typeof body === 'object', `error body is JSON ${ctx}: ${JSON.stringify(body)}`);
  assert.equal(body.type, 'error', `body.type ${ctx}: ${JSON.stringify(body)}`);
  assert.ok(body.error && typeof body.error === 'object', `body.error ${ctx}: ${JSON.stringify(body)}`);
  if (type) assert.equal(body.error.type, type, `error.type ${ctx}: ${JSON.stringify(body)}`);
  else assert.equal(typeof body.error.type, 'string', `error.type ${ctx}`);
  assert.equal(typeof body.error.message, 'string', `error.message ${ctx}`);
  assert.ok(body.error.message.length > 0, `error.message not empty ${ctx}`);
  if (requestId !== undefined) assert.equal(body.request_id, requestId, `request_id in the body equals the request-id header ${ctx}`);
}

// An SDK error from the gateway: class, status, Anthropic-shaped body, request ids.
function checkSdkError(e, { cls, status, type }) {
  assert.ok(e instanceof cls, `expected ${cls.name}, got ${e?.constructor?.name}: ${e}`);
  assert.equal(e.status, status, `status: ${e}`);
  const rid = e.headers?.get('request-id');
  assert.ok(rid, 'request-id header on the error');
  assert.equal(e.headers.get('x-request-id'), rid, 'x-request-id equals request-id');
  assert.equal(e.requestID, rid, 'the SDK read the request id');
  checkErrorBody(e.error, { type, requestId: rid });
  assert.equal(e.type, type, 'the SDK read error.type');
  return rid;
}

// POSTs to /v1/messages with fetch; returns {status, headers, text, json?}.
async function rawPost(gw, body, headers = {}) {
  const res = await fetch(gw.url + '/v1/messages', {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'anthropic-version': '2023-06-01', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
    signal: AbortSignal.timeout(15000),
  });
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {}
  return { status: res.status, headers: res.headers, text, json };
}

// The event types of a message stream, pings left out, must read:
// message_start (content_block_start content_block_delta* content_block_stop)+ message_delta message_stop
function checkEventOrder(types, { blocks = 1 } = {}) {
  const t = types.filter((x) => x !== 'ping');
  const ctx = JSON.stringify(types);
  assert.equal(t[0], 'message_start', `starts with message_start: ${ctx}`);
  assert.equal(t.filter((x) => x === 'message_start').length, 1, `one message_start: ${ctx}`);
  assert.equal(t.at(-1), 'message_stop', `ends with message_stop: ${ctx}`);
  assert.equal(t.at(-2), 'message_delta', `message_delta right before message_stop: ${ctx}`);
  assert.equal(t.filter((x) => x === 'message_delta').length, 1, `one message_delta: ${ctx}`);
  const body = t.slice(1, -2).join(' ');
  const block = 'content_block_start( content_block_delta)+ content_block_stop';
  assert.match(body, new RegExp(`^${block}( ${block}){${blocks - 1}}$`), `${blocks} content block(s), each start, deltas, stop: ${ctx}`);
}

describe('messages API (/v1/messages) with @anthropic-ai/sdk', suiteOpts, () => {
  const h = useStack({ before, after, beforeEach, afterEach }, { extraServer: { max_body_bytes: 65536 } });
  let api;
  before(() => {
    if (h.gw) api = client(h.gw);
  });
  const fakeOf = (k) => h.stack[k.fake];
  const cloudPosts = () => [...posts(h.stack.anthropic), ...posts(h.stack.openai)];
  const allPosts = () => [...cloudPosts(), ...posts(h.stack.local)];

  it('gateway starts', async (t) => {
    if (!h.ready(t)) return;
    assert.equal((await fetch(h.gw.url + '/healthz')).status, 200);
  });

  describe('messages.create (non-streaming)', () => {
    for (const k of KINDS) {
      it(`${k.name}: text, usage, stop_reason, model, headers, ledger`, async (t) => {
        if (!h.ready(t)) return;
        const prompt = 'hello there from the messages api';
        const { data: msg, response } = await api.messages
          .create({ model: k.model, max_tokens: 64, messages: user(prompt) }, { headers: k.headers ?? {} })
          .withResponse();
        const rid = checkHeaders(response.headers, k);
        assert.match(response.headers.get('content-type') ?? '', /application\/json/);
        assert.equal(msg.type, 'message');
        assert.equal(msg.role, 'assistant');
        assert.match(msg.id, /^msg_/, 'message id starts with msg_');
        assert.equal(msg.model, BACKEND_MODEL[k.backend], 'model is the upstream model');
        assert.equal(msg.content.length, 1, JSON.stringify(msg.content));
        assert.equal(msg.content[0].type, 'text');
        assert.equal(msg.content[0].text, `echo: ${prompt}`);
        assert.equal(msg.stop_reason, 'end_turn');
        assert.equal(msg.stop_sequence, null);
        assert.equal(msg._request_id, rid, 'the SDK read the request-id header');

        assert.equal(posts(fakeOf(k)).length, 1, 'the upstream got one request');
        const others = ['anthropic', 'openai', 'local'].filter((f) => f !== k.fake);
        for (const o of others) assert.equal(posts(h.stack[o]).length, 0, `${o} fake got nothing`);
        const rec = posts(fakeOf(k))[0];
        assert.equal(rec.response.status, 200, `upstream accepted the request: ${JSON.stringify(rec.response)}`);
        assert.equal(rec.body.model, BACKEND_MODEL[k.backend], 'upstream got its own model name');
        const usage = fakeUsage(rec);
        assert.equal(msg.usage.input_tokens, usage.input, 'usage.input_tokens = upstream input');
        assert.equal(msg.usage.output_tokens, usage.output, 'usage.output_tokens = upstream output');

        const line = await ledgerLine(h.gw, rid);
        checkLedger(line, { requestId: rid, backend: k.backend, reason: k.reason, stream: false, usage });
      });

      it(`${k.name}: system prompt and multi-turn history reach the upstream; max_tokens -> "max_tokens"`, async (t) => {
        if (!h.ready(t)) return;
        const msg = await api.messages.create(
          {
            model: k.model,
            max_tokens: 2,
            system: 'You are terse.',
            messages: [
              { role: 'user', content: 'first question' },
              { role: 'assistant', content: 'first answer' },
              { role: 'user', content: [{ type: 'text', text: 'one two three four' }] },
            ],
          },
          { headers: k.headers ?? {} },
        );
        assert.deepEqual(msg.content.map((b) => [b.type, b.text]), [['text', 'echo: one']]);
        assert.equal(msg.stop_reason, 'max_tokens');
        const rec = posts(fakeOf(k))[0];
        assert.equal(rec.response.status, 200, JSON.stringify(rec.response));
        const usage = fakeUsage(rec);
        assert.equal(msg.usage.input_tokens, usage.input);
        assert.equal(msg.usage.output_tokens, usage.output);
        if (k.fake === 'anthropic') {
          assert.equal(rec.body.max_tokens, 2);
          const sys = typeof rec.body.system === 'string' ? rec.body.system : (rec.body.system ?? []).map((b) => b.text).join('');
          assert.equal(sys, 'You are terse.');
          assert.deepEqual(rec.body.messages.map((m) => m.role), ['user', 'assistant', 'user']);
        } else {
          assert.equal(rec.body.max_tokens ?? rec.body.max_completion_tokens, 2, `max tokens sent: ${rec.raw}`);
          assert.deepEqual(rec.body.messages.map((m) => m.role), ['system', 'user', 'assistant', 'user']);
          assert.equal(rec.body.messages[0].content, 'You are terse.');
          assert.equal(rec.body.messages[2].content, 'first answer');
        }
      });
    }

    it('anthropic backend: stop_sequences -> stop_reason "stop_sequence" with the matched sequence', async (t) => {
      if (!h.ready(t)) return;
      const msg = await api.messages.create({ model: 'cloud-anthropic', max_tokens: 64, stop_sequences: ['STOP'], messages: user('alpha beta STOP gamma') });
      const rec = posts(h.stack.anthropic)[0];
      assert.deepEqual(rec.body.stop_sequences, ['STOP'], 'stop_sequences sent upstream');
      assert.equal(rec.response.stop_reason, 'stop_sequence', 'the upstream stopped at the sequence');
      assert.equal(msg.content[0].text, rec.response.text, 'text up to the sequence');
      assert.equal(msg.stop_reason, 'stop_sequence', `stop_reason (upstream said stop_sequence): ${JSON.stringify(msg)}`);
      assert.equal(msg.stop_sequence, 'STOP', 'stop_sequence names the matched sequence');
      const final = await api.messages.stream({ model: 'cloud-anthropic', max_tokens: 64, stop_sequences: ['STOP'], messages: user('alpha beta STOP gamma') }).finalMessage();
      assert.equal(final.stop_reason, 'stop_sequence', 'streamed: message_delta stop_reason');
      assert.equal(final.stop_sequence, 'STOP', 'streamed: message_delta stop_sequence');
    });

    it('anthropic backend: temperature, top_p and top_k reach the upstream', async (t) => {
      if (!h.ready(t)) return;
      await api.messages.create({ model: 'cloud-anthropic', max_tokens: 16, temperature: 0.5, top_p: 0.9, top_k: 5, messages: user('params please') });
      const rec = posts(h.stack.anthropic)[0];
      assert.equal(rec.response.status, 200, `upstream accepted the request: ${JSON.stringify(rec.response)} body ${rec.raw}`);
      assert.equal(rec.body.temperature, 0.5);
      assert.equal(rec.body.top_p, 0.9);
      assert.equal(rec.body.top_k, 5, `top_k passed to the Anthropic upstream: ${rec.raw}`);
    });

    for (const k of KINDS) {
      it(`${k.name}: metadata.user_id is kept (Anthropic: metadata.user_id, OpenAI: user), routing keys stripped`, async (t) => {
        if (!h.ready(t)) return;
        await api.messages.create({ model: k.model, max_tokens: 16, metadata: { user_id: 'user-42', task_type: k.fake === 'anthropic' ? 'analysis' : 'poetry' }, messages: user('who am i') }, { headers: k.headers ?? {} });
        const rec = posts(fakeOf(k))[0];
        assert.ok(rec, 'the upstream was called');
        assert.equal(rec.response.status, 200, `upstream accepted the request: ${JSON.stringify(rec.response)} body ${rec.raw}`);
        if (k.fake === 'anthropic') {
          assert.deepEqual(rec.body.metadata, { user_id: 'user-42' }, `metadata.user_id sent to the Anthropic upstream: ${rec.raw}`);
        } else {
          assert.ok(!('metadata' in rec.body), `metadata stripped: ${rec.raw}`);
          assert.equal(rec.body.user, 'user-42', `user_id sent as "user": ${rec.raw}`);
        }
      });
    }
  });

  describe('streaming', () => {
    for (const k of KINDS) {
      it(`${k.name}: messages.stream() text events, finalMessage(), finalText(), usage, ledger`, async (t) => {
        if (!h.ready(t)) return;
        const prompt = 'please stream these five words';
        const stream = api.messages.stream({ model: k.model, max_tokens: 64, messages: user(prompt) }, { headers: k.headers ?? {} });
        const deltas = [];
        stream.on('text', (d) => deltas.push(d));
        const { response } = await stream.withResponse();
        const rid = checkHeaders(response.headers, k);
        assert.match(response.headers.get('content-type') ?? '', /^text\/event-stream/);
        const final = await stream.finalMessage();
        const text = await stream.finalText();
        assert.equal(text, `echo: ${prompt}`, 'finalText()');
        assert.ok(deltas.length >= 2, `several text deltas (${deltas.length})`);
        assert.equal(deltas.join(''), `echo: ${prompt}`, 'text deltas join to the text');
        assert.equal(final.role, 'assistant');
        assert.match(final.id, /^msg_/);
        assert.equal(final.model, BACKEND_MODEL[k.backend]);
        assert.deepEqual(final.content.map((b) => [b.type, b.text]), [['text', `echo: ${prompt}`]]);
        assert.equal(final.stop_reason, 'end_turn');
        const rec = posts(fakeOf(k))[0];
        assert.equal(rec.body.stream, true, 'upstream request is streamed');
        const usage = fakeUsage(rec);
        assert.equal(final.usage.input_tokens, usage.input, 'finalMessage().usage.input_tokens = upstream input');
        assert.equal(final.usage.output_tokens, usage.output, 'finalMessage().usage.output_tokens = upstream output (final, not summed)');
        const line = await ledgerLine(h.gw, rid);
        checkLedger(line, { requestId: rid, backend: k.backend, reason: k.reason, stream: true, usage });
      });

      it(`${k.name}: messages.create({stream: true}) event sequence`, async (t) => {
        if (!h.ready(t)) return;
        const prompt = 'raw event order check';
        const { data: stream, response } = await api.messages
          .create({ model: k.model, max_tokens: 64, stream: true, messages: user(prompt) }, { headers: k.headers ?? {} })
          .withResponse();
        const rid = checkHeaders(response.headers, k);
        const events = [];
        for await (const ev of stream) events.push(ev);
        checkEventOrder(events.map((e) => e.type));
        const start = events[0].message;
        assert.equal(start.type, 'message');
        assert.equal(start.role, 'assistant');
        assert.deepEqual(start.content, [], 'message_start has empty content');
        assert.equal(start.model, BACKEND_MODEL[k.backend]);
        assert.equal(start.stop_reason, null);
        assert.ok(start.usage && typeof start.usage.output_tokens === 'number', `message_start usage: ${JSON.stringify(start.usage)}`);
        const cbs = events.find((e) => e.type === 'content_block_start');
        assert.deepEqual(cbs.content_block, { type: 'text', text: '' });
        assert.equal(cbs.index, 0);
        const deltas = events.filter((e) => e.type === 'content_block_delta');
        assert.ok(deltas.every((d) => d.index === 0 && d.delta.type === 'text_delta'), 'text_delta on block 0');
        assert.equal(deltas.map((d) => d.delta.text).join(''), `echo: ${prompt}`);
        const md = events.find((e) => e.type === 'message_delta');
        assert.equal(md.delta.stop_reason, 'end_turn');
        const usage = fakeUsage(posts(fakeOf(k))[0]);
        assert.equal(md.usage.output_tokens, usage.output, 'message_delta usage.output_tokens is the final count');
        if (md.usage.input_tokens != null) assert.equal(md.usage.input_tokens, usage.input, 'message_delta usage.input_tokens, when present');
        if (k.fake === 'anthropic') assert.equal(start.usage.input_tokens, usage.input, 'an Anthropic upstream reports input tokens at message_start');
        else assert.ok(md.usage.input_tokens === usage.input || start.usage.input_tokens === usage.input, 'input tokens reach the client (message_start or message_delta)');
        const line = await ledgerLine(h.gw, rid);
        checkLedger(line, { requestId: rid, backend: k.backend, reason: k.reason, stream: true, usage });
      });

      it(`${k.name}: raw SSE bytes: every event has an event: line equal to data.type`, async (t) => {
        if (!h.ready(t)) return;
        const r = await rawPost(h.gw, { model: k.model, max_tokens: 64, stream: true, messages: user('raw bytes please') }, k.headers ?? {});
        assert.equal(r.status, 200, r.text.slice(0, 300));
        assert.match(r.headers.get('content-type') ?? '', /^text\/event-stream/);
        checkHeaders(r.headers, k);
        assert.ok(r.text.endsWith('\n\n'), `ends with a blank line: ${JSON.stringify(r.text.slice(-80))}`);
        assert.ok(!r.text.includes('[DONE]'), 'no OpenAI [DONE] in an Anthropic stream');
        const events = parseSSE(r.text);
        assert.ok(events.length >= 6, `events: ${events.length}`);
        for (const e of events) {
          assert.ok(e.event, `every event has an event: line: ${JSON.stringify(e)}`);
          assert.ok(!e.unterminated, 'every event is terminated');
          let data;
          try {
            data = JSON.parse(e.data);
          } catch {
            assert.fail(`data is JSON: ${JSON.stringify(e)}`);
          }
          assert.equal(data.type, e.event, `event: line equals data.type: ${JSON.stringify(e)}`);
        }
        checkEventOrder(events.map((e) => e.event));
        const text = events
          .filter((e) => e.event === 'content_block_delta')
          .map((e) => JSON.parse(e.data).delta.text)
          .join('');
        assert.equal(text, 'echo: raw bytes please');
      });
    }

    it('anthropic backend, message_delta carrying full cumulative usage: not double counted', async (t) => {
      if (!h.ready(t)) return;
      h.stack.anthropic.control({ delta_usage_full: true });
      const stream = api.messages.stream({ model: 'cloud-anthropic', max_tokens: 64, messages: user('count me once') });
      const final = await stream.finalMessage();
      const usage = fakeUsage(posts(h.stack.anthropic)[0]);
      assert.equal(final.usage.input_tokens, usage.input);
      assert.equal(final.usage.output_tokens, usage.output);
      const line = await ledgerLine(h.gw, stream.request_id);
      checkLedger(line, { requestId: stream.request_id, backend: 'cloud-anthropic', reason: /^forced/, stream: true, usage });
    });

    it('local server that never sends stream usage: usage is estimated, ledger has tokens', async (t) => {
      if (!h.ready(t)) return;
      h.stack.local.control({ stream_usage: 'never' });
      const stream = api.messages.stream({ model: 'local', max_tokens: 64, messages: user('count these words please') });
      const final = await stream.finalMessage();
      assert.equal(await stream.finalText(), 'echo: count these words please');
      assert.ok(final.usage.output_tokens > 0, `output tokens estimated: ${JSON.stringify(final.usage)}`);
      const line = await ledgerLine(h.gw, stream.request_id);
      assert.equal(line.status, 'ok');
      assert.ok(line.output_tokens > 0 && line.input_tokens > 0, JSON.stringify(line));
    });
  });

  describe('tool use', () => {
    for (const k of KINDS) {
      it(`${k.name}: tool_use reply (non-streaming), then tool_result -> final answer`, async (t) => {
        if (!h.ready(t)) return;
        const fake = fakeOf(k);
        const { data: msg, response } = await api.messages
          .create({ model: k.model, max_tokens: 128, tools: TOOLS, messages: user(TOOL_PROMPT) }, { headers: k.headers ?? {} })
          .withResponse();
        const rid = checkHeaders(response.headers, k);
        assert.equal(msg.stop_reason, 'tool_use', JSON.stringify(msg));
        const uses = msg.content.filter((b) => b.type === 'tool_use');
        assert.equal(uses.length, 1, `one tool_use block: ${JSON.stringify(msg.content)}`);
        const tu = uses[0];
        assert.ok(typeof tu.id === 'string' && tu.id.length > 0, `tool_use id: ${JSON.stringify(tu)}`);
        assert.equal(tu.name, 'lookup');
        assert.deepEqual(tu.input, { text: TOOL_PROMPT }, 'input is the parsed arguments object');
        assert.ok(msg.content.every((b) => b.type !== 'text' || b.text.length > 0), 'no empty text block');

        const rec1 = posts(fake)[0];
        assert.equal(rec1.response.status, 200, JSON.stringify(rec1.response));
        const upId = k.fake === 'anthropic' ? rec1.response.tool_use?.id : rec1.response.tool_call?.id;
        assert.equal(tu.id, upId, 'the tool_use id is the upstream tool call id');
        if (k.fake === 'anthropic') {
          assert.deepEqual(rec1.body.tools.map((x) => [x.name, x.input_schema]), [['lookup', TOOLS[0].input_schema]]);
        } else {
          assert.deepEqual(rec1.body.tools, [{ type: 'function', function: { name: 'lookup', description: TOOLS[0].description, parameters: TOOLS[0].input_schema } }], `tools translated: ${rec1.raw}`);
        }
        const usage1 = fakeUsage(rec1);
        assert.equal(msg.usage.input_tokens, usage1.input);
        assert.equal(msg.usage.output_tokens, usage1.output);
        checkLedger(await ledgerLine(h.gw, rid), { requestId: rid, backend: k.backend, reason: k.reason, stream: false, usage: usage1 });

        // Send the result back.
        const history = [
          ...user(TOOL_PROMPT),
          { role: 'assistant', content: msg.content },
          { role: 'user', content: [{ type: 'tool_result', tool_use_id: tu.id, content: TOOL_RESULT }] },
        ];
        const { data: msg2, response: r2 } = await api.messages
          .create({ model: k.model, max_tokens: 128, tools: TOOLS, messages: history }, { headers: k.headers ?? {} })
          .withResponse();
        const rid2 = checkHeaders(r2.headers, k);
        assert.notEqual(rid2, rid);
        assert.equal(msg2.stop_reason, 'end_turn');
        assert.deepEqual(msg2.content.map((b) => [b.type, b.text]), [['text', `echo: ${TOOL_RESULT}`]]);
        const rec2 = posts(fake)[1];
        assert.equal(rec2.response.status, 200, `upstream accepted the tool round trip: ${JSON.stringify(rec2.response)} body ${rec2.raw}`);
        if (k.fake === 'anthropic') {
          const [, a, u] = rec2.body.messages;
          assert.deepEqual(a.content.filter((b) => b.type === 'tool_use'), [{ type: 'tool_use', id: tu.id, name: 'lookup', input: { text: TOOL_PROMPT } }]);
          assert.equal(u.role, 'user');
          const tr = u.content.find((b) => b.type === 'tool_result');
          assert.equal(tr.tool_use_id, tu.id);
          const trText = typeof tr.content === 'string' ? tr.content : tr.content.map((b) => b.text).join('');
          assert.equal(trText, TOOL_RESULT);
        } else {
          const msgs = rec2.body.messages;
          assert.deepEqual(msgs.map((m) => m.role), ['user', 'assistant', 'tool'], `roles: ${rec2.raw}`);
          const tc = msgs[1].tool_calls;
          assert.equal(tc.length, 1);
          assert.equal(tc[0].id, tu.id);
          assert.equal(tc[0].type, 'function');
          assert.equal(tc[0].function.name, 'lookup');
          assert.deepEqual(JSON.parse(tc[0].function.arguments), { text: TOOL_PROMPT });
          assert.equal(msgs[2].tool_call_id, tu.id);
          assert.equal(msgs[2].content, TOOL_RESULT);
        }
        const usage2 = fakeUsage(rec2);
        assert.equal(msg2.usage.input_tokens, usage2.input);
        assert.equal(msg2.usage.output_tokens, usage2.output);
        checkLedger(await ledgerLine(h.gw, rid2), { requestId: rid2, backend: k.backend, reason: k.reason, stream: false, usage: usage2 });
      });

      it(`${k.name}: stream() with input_json_delta -> tool_use block with parsed input; streamed tool_result round trip`, async (t) => {
        if (!h.ready(t)) return;
        const fake = fakeOf(k);
        const stream = api.messages.stream({ model: k.model, max_tokens: 128, tools: TOOLS, messages: user(TOOL_PROMPT) }, { headers: k.headers ?? {} });
        const events = [];
        const partials = [];
        stream.on('streamEvent', (e) => events.push(e));
        stream.on('inputJson', (p) => partials.push(p));
        const final = await stream.finalMessage();
        const rid = stream.request_id;
        checkHeaders(stream.response.headers, k);
        checkEventOrder(events.map((e) => e.type));
        const start = events.find((e) => e.type === 'content_block_start');
        assert.equal(start.content_block.type, 'tool_use', JSON.stringify(start));
        assert.equal(start.content_block.name, 'lookup');
        assert.deepEqual(start.content_block.input, {}, 'content_block_start carries input {}');
        const jd = events.filter((e) => e.type === 'content_block_delta');
        assert.ok(jd.every((e) => e.delta.type === 'input_json_delta'), `input_json_delta only: ${JSON.stringify(jd)}`);
        assert.ok(jd.length >= 2, `the input arrives in several pieces (${jd.length})`);
        assert.deepEqual(JSON.parse(jd.map((e) => e.delta.partial_json).join('')), { text: TOOL_PROMPT });
        assert.equal(partials.join(''), jd.map((e) => e.delta.partial_json).join(''), 'inputJson events');
        assert.equal(final.stop_reason, 'tool_use');
        assert.equal(final.content.length, 1, JSON.stringify(final.content));
        const tu = final.content[0];
        assert.equal(tu.type, 'tool_use');
        assert.equal(tu.id, start.content_block.id);
        assert.ok(tu.id.length > 0);
        assert.equal(tu.name, 'lookup');
        assert.deepEqual(tu.input, { text: TOOL_PROMPT }, 'finalMessage() tool_use input parsed from the deltas');
        const rec1 = posts(fake)[0];
        const usage1 = fakeUsage(rec1);
        assert.equal(final.usage.input_tokens, usage1.input);
        assert.equal(final.usage.output_tokens, usage1.output);
        checkLedger(await ledgerLine(h.gw, rid), { requestId: rid, backend: k.backend, reason: k.reason, stream: true, usage: usage1 });

        const history = [
          ...user(TOOL_PROMPT),
          { role: 'assistant', content: final.content },
          { role: 'user', content: [{ type: 'tool_result', tool_use_id: tu.id, content: [{ type: 'text', text: TOOL_RESULT }] }] },
        ];
        const s2 = api.messages.stream({ model: k.model, max_tokens: 128, tools: TOOLS, messages: history }, { headers: k.headers ?? {} });
        assert.equal(await s2.finalText(), `echo: ${TOOL_RESULT}`);
        const final2 = await s2.finalMessage();
        assert.equal(final2.stop_reason, 'end_turn');
        const rec2 = posts(fake)[1];
        assert.equal(rec2.response.status, 200, `upstream accepted the tool round trip: ${JSON.stringify(rec2.response)} body ${rec2.raw}`);
        const usage2 = fakeUsage(rec2);
        assert.equal(final2.usage.input_tokens, usage2.input);
        assert.equal(final2.usage.output_tokens, usage2.output);
        checkLedger(await ledgerLine(h.gw, s2.request_id), { requestId: s2.request_id, backend: k.backend, reason: k.reason, stream: true, usage: usage2 });
      });
    }

    for (const k of KINDS) {
      it(`${k.name}: text before the tool call -> a text block then a tool_use block (create and stream)`, async (t) => {
        if (!h.ready(t)) return;
        const fake = fakeOf(k);
        const preamble = 'Let me look that up.';
        fake.control({ tool_text: preamble });
        const msg = await api.messages.create({ model: k.model, max_tokens: 128, tools: TOOLS, messages: user(TOOL_PROMPT) }, { headers: k.headers ?? {} });
        assert.equal(msg.stop_reason, 'tool_use');
        assert.deepEqual(msg.content.map((b) => b.type), ['text', 'tool_use'], JSON.stringify(msg.content));
        assert.equal(msg.content[0].text, preamble);
        assert.deepEqual(msg.content[1].input, { text: TOOL_PROMPT });
        const u1 = fakeUsage(posts(fake)[0]);
        assert.equal(msg.usage.output_tokens, u1.output);

        const stream = api.messages.stream({ model: k.model, max_tokens: 128, tools: TOOLS, messages: user(TOOL_PROMPT) }, { headers: k.headers ?? {} });
        const events = [];
        stream.on('streamEvent', (e) => events.push(e));
        const final = await stream.finalMessage();
        checkEventOrder(events.map((e) => e.type), { blocks: 2 });
        const starts = events.filter((e) => e.type === 'content_block_start');
        assert.deepEqual(starts.map((e) => [e.index, e.content_block.type]), [[0, 'text'], [1, 'tool_use']]);
        const stops = events.filter((e) => e.type === 'content_block_stop');
        assert.deepEqual(stops.map((e) => e.index), [0, 1]);
        const deltas = events.filter((e) => e.type === 'content_block_delta');
        assert.ok(deltas.every((e) => (e.index === 0 ? e.delta.type === 'text_delta' : e.delta.type === 'input_json_delta')), JSON.stringify(deltas));
        assert.deepEqual(final.content.map((b) => b.type), ['text', 'tool_use']);
        assert.equal(final.content[0].text, preamble);
        assert.equal(final.content[1].name, 'lookup');
        assert.deepEqual(final.content[1].input, { text: TOOL_PROMPT });
        assert.equal(final.stop_reason, 'tool_use');
        const u2 = fakeUsage(posts(fake)[1]);
        assert.equal(final.usage.input_tokens, u2.input);
        assert.equal(final.usage.output_tokens, u2.output);
        checkLedger(await ledgerLine(h.gw, stream.request_id), { requestId: stream.request_id, backend: k.backend, reason: k.reason, stream: true, usage: u2 });
      });
    }

    it('tool_choice {type:"tool"} and {type:"any"} are translated for an OpenAI-kind backend', async (t) => {
      if (!h.ready(t)) return;
      await api.messages.create({ model: 'local', max_tokens: 32, tools: TOOLS, tool_choice: { type: 'tool', name: 'lookup' }, messages: user('call a tool') });
      await api.messages.create({ model: 'local', max_tokens: 32, tools: TOOLS, tool_choice: { type: 'any' }, messages: user('call a tool') });
      const [a, b] = posts(h.stack.local);
      assert.deepEqual(a.body.tool_choice, { type: 'function', function: { name: 'lookup' } });
      assert.equal(b.body.tool_choice, 'required');
    });
  });

  describe('errors (Anthropic shape)', () => {
    it('missing max_tokens -> 400 invalid_request_error (BadRequestError), nothing sent upstream', async (t) => {
      if (!h.ready(t)) return;
      await assert.rejects(api.messages.create({ model: 'auto', messages: user('no max') }), (e) => {
        checkSdkError(e, { cls: Anthropic.BadRequestError, status: 400, type: 'invalid_request_error' });
        assert.match(e.error.error.message, /max_tokens/, 'the message names max_tokens');
        return true;
      });
      assert.equal(allPosts().length, 0);
    });

    const bad = [
      { name: 'unknown top-level field (thinking)', body: { model: 'auto', max_tokens: 16, thinking: { type: 'enabled', budget_tokens: 1024 }, messages: user('x') }, re: /thinking/ },
      { name: 'image content block', body: { model: 'auto', max_tokens: 16, messages: [{ role: 'user', content: [{ type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'iVBORw0KGgo=' } }, { type: 'text', text: 'what is it' }] }] }, re: /image/ },
      { name: 'document content block', body: { model: 'auto', max_tokens: 16, messages: [{ role: 'user', content: [{ type: 'document', source: { type: 'text', media_type: 'text/plain', data: 'doc' } }] }] }, re: /document/ },
      { name: 'role "system" in messages', body: { model: 'auto', max_tokens: 16, messages: [{ role: 'system', content: 'x' }, ...user('y')] } },
      { name: 'empty messages', body: { model: 'auto', max_tokens: 16, messages: [] } },
      { name: 'max_tokens 0', body: { model: 'auto', max_tokens: 0, messages: user('x') } },
    ];
    for (const c of bad) {
      it(`${c.name} -> 400 invalid_request_error`, async (t) => {
        if (!h.ready(t)) return;
        await assert.rejects(api.messages.create(c.body), (e) => {
          checkSdkError(e, { cls: Anthropic.BadRequestError, status: 400, type: 'invalid_request_error' });
          if (c.re) assert.match(e.error.error.message, c.re);
          return true;
        });
        assert.equal(allPosts().length, 0, 'nothing sent upstream');
      });
    }

    it('malformed JSON, GET, a body over max_body_bytes: Anthropic-shaped 400 / 405 / 413 with request-id on raw HTTP', async (t) => {
      if (!h.ready(t)) return;
      const post = (body) => {
        const b = Buffer.from(body);
        return [`POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${b.length}\r\nConnection: close\r\n\r\n`, b];
      };
      const cases = [
        { payload: post('{"model": "auto", "max_tokens": 5, "messages": ['), status: 400, type: 'invalid_request_error' },
        { payload: 'GET /v1/messages HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', status: 405, type: 'invalid_request_error' },
        { payload: post(JSON.stringify({ model: 'auto', max_tokens: 5, messages: user('x'.repeat(70000)) })), status: 413, type: 'request_too_large' },
      ];
      for (const c of cases) {
        const r = await rawHttp(h.gw.port, c.payload);
        assert.equal(r.status, c.status, r.raw.slice(0, 300));
        assert.match(r.headers['content-type'] ?? '', /application\/json/);
        assert.ok(r.headers['request-id'], `request-id header: ${r.raw.slice(0, 400)}`);
        assert.equal(r.headers['x-request-id'], r.headers['request-id']);
        checkErrorBody(JSON.parse(r.body), { type: c.type, requestId: r.headers['request-id'] }, `(${c.status})`);
      }
      assert.equal(allPosts().length, 0);
    });

    it('unknown model -> 404 not_found_error (NotFoundError)', async (t) => {
      if (!h.ready(t)) return;
      await assert.rejects(api.messages.create({ model: 'no-such-model', max_tokens: 16, messages: user('x') }), (e) => {
        checkSdkError(e, { cls: Anthropic.NotFoundError, status: 404, type: 'not_found_error' });
        return true;
      });
      assert.equal(allPosts().length, 0);
    });

    const upstream = [
      { name: 'anthropic upstream 529 -> 529 overloaded_error', fake: 'anthropic', control: { status: 529, count: 50 }, model: 'cloud-anthropic', backend: 'cloud-anthropic', status: 529, type: 'overloaded_error', cls: Anthropic.InternalServerError },
      { name: 'anthropic upstream 429 -> 429 rate_limit_error', fake: 'anthropic', control: { status: 429, count: 50 }, model: 'cloud-anthropic', backend: 'cloud-anthropic', status: 429, type: 'rate_limit_error', cls: Anthropic.RateLimitError },
      { name: 'openai upstream 429 -> 429 rate_limit_error', fake: 'openai', control: { status: 429, count: 50 }, model: 'cloud-openai', backend: 'cloud-openai', status: 429, type: 'rate_limit_error', cls: Anthropic.RateLimitError },
      { name: 'local upstream 500 -> 5xx api_error', fake: 'local', control: { status: 500, count: 50 }, model: 'local', backend: 'local', status: (s) => s >= 500 && s !== 529, type: 'api_error', cls: Anthropic.InternalServerError },
    ];
    for (const c of upstream) {
      for (const stream of [false, true]) {
        it(`${c.name}${stream ? ' (stream requested)' : ''}; ledger status "error"`, async (t) => {
          if (!h.ready(t)) return;
          h.stack[c.fake].control(c.control);
          let err;
          try {
            if (stream) await api.messages.stream({ model: c.model, max_tokens: 16, messages: user('will fail') }).finalMessage();
            else await api.messages.create({ model: c.model, max_tokens: 16, messages: user('will fail') });
          } catch (e) {
            err = e;
          }
          assert.ok(err instanceof Anthropic.APIError, `an API error (got ${err})`);
          assert.ok(err instanceof c.cls, `${c.cls.name} (got ${err.constructor.name}: ${err})`);
          if (typeof c.status === 'function') assert.ok(c.status(err.status), `status ${err.status}`);
          else assert.equal(err.status, c.status);
          const rid = err.headers.get('request-id');
          assert.ok(rid);
          assert.equal(err.headers.get('x-request-id'), rid);
          assert.equal(err.headers.get('x-hybridllm-backend'), c.backend);
          checkErrorBody(err.error, { type: c.type, requestId: rid });
          assert.ok(posts(h.stack[c.fake]).length >= 1, 'the upstream was called');
          const line = await ledgerLine(h.gw, rid);
          assert.equal(line.status, 'error', JSON.stringify(line));
          assert.equal(line.backend, c.backend);
          assert.equal(line.stream, stream);
        });
      }
    }

    it('anthropic upstream sends event: error mid-stream -> the client gets an event: error, the SDK throws, ledger not "ok"', async (t) => {
      if (!h.ready(t)) return;
      h.stack.anthropic.control({ error_after_chunks: 4 });
      const r = await rawPost(h.gw, { model: 'cloud-anthropic', max_tokens: 64, stream: true, messages: user('a b c d e f g h') });
      assert.equal(r.status, 200);
      const events = parseSSE(r.text);
      for (const e of events) assert.ok(e.event, `event: line on every event: ${JSON.stringify(e)}`);
      const errs = events.filter((e) => e.event === 'error');
      assert.equal(errs.length, 1, `one event: error: ${JSON.stringify(r.text.slice(-300))}`);
      checkErrorBody(JSON.parse(errs[0].data), { requestId: r.headers.get('request-id') });
      assert.ok(!events.some((e) => e.event === 'message_stop'), 'no message_stop after an error');
      assert.equal(events.at(-1).event, 'error', 'the error is the last event');
      const line = await ledgerLine(h.gw, r.headers.get('request-id'));
      assert.notEqual(line.status, 'ok', JSON.stringify(line));
      assert.equal(line.stream, true);

      h.stack.anthropic.reset();
      h.stack.anthropic.control({ error_after_chunks: 4 });
      await assert.rejects(api.messages.stream({ model: 'cloud-anthropic', max_tokens: 64, messages: user('a b c d e f g h') }).finalMessage(), (e) => {
        assert.ok(e instanceof Anthropic.APIError, `APIError (got ${e})`);
        assert.equal(typeof e.error?.error?.type, 'string', JSON.stringify(e.error));
        return true;
      });
    });

    it('an upstream overloaded_error mid-stream reaches the client as overloaded_error', async (t) => {
      if (!h.ready(t)) return;
      h.stack.anthropic.control({ error_after_chunks: 4 });
      const r = await rawPost(h.gw, { model: 'cloud-anthropic', max_tokens: 64, stream: true, messages: user('a b c d e f g h') });
      const errs = parseSSE(r.text).filter((e) => e.event === 'error');
      assert.equal(errs.length, 1, r.text.slice(-300));
      checkErrorBody(JSON.parse(errs[0].data), { type: 'overloaded_error', requestId: r.headers.get('request-id') }, '(the upstream sent overloaded_error)');
    });
  });

  describe('privacy', () => {
    const markers = [
      { name: 'header x-hybridllm-regulated: true', headers: { 'x-hybridllm-regulated': 'true' } },
      { name: 'header x-hybridllm-pii: true', headers: { 'x-hybridllm-pii': 'true' } },
      { name: 'metadata is_regulated true', metadata: { is_regulated: true } },
      { name: 'metadata pii_present "true"', metadata: { pii_present: 'true' } },
    ];
    for (const m of markers) {
      it(`${m.name} + task code_generation -> local (rule:privacy), cloud fakes get nothing`, async (t) => {
        if (!h.ready(t)) return;
        const { data, response } = await api.messages
          .create(
            { model: 'auto', max_tokens: 64, metadata: { task_type: 'code_generation', ...(m.metadata ?? {}) }, messages: user('my SSN is 078-05-1120') },
            { headers: m.headers ?? {} },
          )
          .withResponse();
        assert.equal(data.content[0].text, 'echo: my SSN is 078-05-1120');
        const rid = checkHeaders(response.headers, { backend: 'local', reason: 'rule:privacy' });
        assert.equal(cloudPosts().length, 0, 'no cloud fake received anything');
        assert.equal(posts(h.stack.local).length, 1);
        const rec = posts(h.stack.local)[0];
        assert.ok(!('metadata' in rec.body), `routing metadata stripped: ${rec.raw}`);
        checkLedger(await ledgerLine(h.gw, rid), { requestId: rid, backend: 'local', reason: 'rule:privacy', stream: false, usage: fakeUsage(rec) });
      });
    }

    it('sensitive streaming request with task type reasoning -> local, cloud gets nothing', async (t) => {
      if (!h.ready(t)) return;
      const stream = api.messages.stream({ model: 'auto', max_tokens: 64, messages: user('secret stuff') }, { headers: { 'x-hybridllm-pii': 'true', 'x-hybridllm-task-type': 'reasoning' } });
      assert.equal(await stream.finalText(), 'echo: secret stuff');
      checkHeaders(stream.response.headers, { backend: 'local', reason: 'rule:privacy' });
      assert.equal(cloudPosts().length, 0);
    });

    for (const model of ['cloud-anthropic', MODELS.anthropic, 'cloud-openai', MODELS.openai]) {
      it(`sensitive request forced to "${model}" -> 403 permission_error, cloud gets nothing`, async (t) => {
        if (!h.ready(t)) return;
        for (const opts of [{ headers: { 'x-hybridllm-regulated': 'true' } }, { metadata: { pii_present: true } }]) {
          const body = { model, max_tokens: 16, messages: user('regulated data'), ...(opts.metadata ? { metadata: opts.metadata } : {}) };
          await assert.rejects(api.messages.create(body, { headers: opts.headers ?? {} }), (e) => {
            checkSdkError(e, { cls: Anthropic.PermissionDeniedError, status: 403, type: 'permission_error' });
            return true;
          });
        }
        assert.equal(cloudPosts().length, 0, 'no cloud fake received anything');
      });
    }
  });
});
