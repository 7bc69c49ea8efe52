// End-to-end tool-use tests of the gateway's OpenAI ingress (POST /v1/chat/completions), driven
// with the official `openai` SDK against every provider kind: the OpenAI-kind fakes (cloud and
// local, passed through) and the Anthropic fake (tool_calls <-> tool_use translated both ways).
// Non-streaming, streaming with tool_calls deltas accumulated, the chat.completions.stream()
// helper and runTools() with a local function.
//
//   HL_BIN=/path/to/hybridllm node --test test/integration/tools.test.mjs
import { describe, it as nodeIt, before, after, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { HL_BIN, BACKEND_MODEL, gatewayBinaryMissing, posts, fakeUsage, ledgerLine, checkLedger, useStack } from './gateway.mjs';

const TEST_TIMEOUT_MS = 30000;
const it = (name, fn) => nodeIt(name, { timeout: TEST_TIMEOUT_MS }, fn);

const missing = gatewayBinaryMissing();
if (missing) console.log(`# SKIP tools tests: ${missing}`);
const suiteOpts = missing ? { skip: missing } : {};

const user = (content) => [{ role: 'user', content }];

const KINDS = [
  { name: 'anthropic backend (tool_calls <-> tool_use)', fake: 'anthropic', backend: 'cloud-anthropic', model: 'auto', headers: { 'x-hybridllm-task-type': 'analysis' }, reason: 'rule:complex-task' },
  { name: 'cloud-openai backend', fake: 'openai', backend: 'cloud-openai', model: 'cloud-openai', reason: /^forced/ },
  { name: 'local openai-kind backend', fake: 'local', backend: 'local', model: 'auto', reason: 'rule:default' },
];

const PARAMS = { type: 'object', properties: { text: { type: 'string' } }, required: ['text'] };
const TOOLS = [{ type: 'function', function: { name: 'lookup', description: 'Looks a text up.', parameters: PARAMS } }];
const TOOL_PROMPT = 'please call a tool now';
const TOOL_RESULT = 'sunny and 21 degrees';

function checkRouteHeaders(headers, { backend, reason }) {
  const rid = headers.get('x-request-id');
  assert.ok(rid && rid.length > 0, 'x-request-id header is set');
  assert.equal(headers.get('x-hybridllm-backend'), backend, 'x-hybridllm-backend');
  const rr = headers.get('x-hybridllm-route-reason');
  if (reason instanceof RegExp) assert.match(String(rr), reason, 'x-hybridllm-route-reason');
  else assert.equal(rr, reason, 'x-hybridllm-route-reason');
  return rid;
}

// The tool call the upstream fake made, in OpenAI terms {id, name, args}.
function upstreamCall(k, rec) {
  if (k.fake === 'anthropic') {
    const tu = rec.response.tool_use;
    assert.ok(tu, `the anthropic fake replied with a tool_use: ${JSON.stringify(rec.response)}`);
    return { id: tu.id, name: tu.name, args: tu.input };
  }
  const tc = rec.response.tool_call;
  assert.ok(tc, `the openai fake replied with a tool call: ${JSON.stringify(rec.response)}`);
  return { id: tc.id, name: tc.function.name, args: JSON.parse(tc.function.arguments) };
}

// What the upstream received for the second turn (assistant tool call + tool result).
function checkRoundTripBody(k, rec, call) {
  assert.equal(rec.response.status, 200, `upstream accepted the tool round trip: ${JSON.stringify(rec.response)} body ${rec.raw}`);
  if (k.fake === 'anthropic') {
    const msgs = rec.body.messages;
    assert.deepEqual(msgs.map((m) => m.role), ['user', 'assistant', 'user'], `roles: ${rec.raw}`);
    const a = Array.isArray(msgs[1].content) ? msgs[1].content : [];
    assert.deepEqual(a.filter((b) => b.type === 'tool_use'), [{ type: 'tool_use', id: call.id, name: 'lookup', input: { text: TOOL_PROMPT } }], `assistant tool_use: ${rec.raw}`);
    assert.ok(a.every((b) => b.type !== 'text' || b.text !== ''), `no empty text block (the API refuses them): ${rec.raw}`);
    const tr = (Array.isArray(msgs[2].content) ? msgs[2].content : []).filter((b) => b.type === 'tool_result');
    assert.equal(tr.length, 1, `one tool_result: ${rec.raw}`);
    assert.equal(tr[0].tool_use_id, call.id);
    const text = typeof tr[0].content === 'string' ? tr[0].content : tr[0].content.map((b) => b.text).join('');
    assert.equal(text, TOOL_RESULT);
  } else {
    const msgs = rec.body.messages;
    assert.deepEqual(msgs.map((m) => m.role), ['user', 'assistant', 'tool'], `roles: ${rec.raw}`);
    assert.equal(msgs[1].tool_calls.length, 1);
    assert.equal(msgs[1].tool_calls[0].id, call.id);
    assert.equal(msgs[1].tool_calls[0].type, 'function');
    assert.equal(msgs[1].tool_calls[0].function.name, 'lookup');
    assert.deepEqual(JSON.parse(msgs[1].tool_calls[0].function.arguments), { text: TOOL_PROMPT });
    assert.equal(msgs[2].tool_call_id, call.id);
    assert.equal(msgs[2].content, TOOL_RESULT);
  }
}

// Accumulates streamed tool_calls deltas by index; checks the chunk invariants on the way.
function accumulate(chunks, model) {
  const ids = new Set(chunks.map((c) => `${c.id}|${c.created}|${c.model}`));
  assert.equal(ids.size, 1, `same id/created/model on every chunk: ${[...ids].join(', ')}`);
  assert.equal(chunks[0].model, model);
  const calls = [];
  const finishes = [];
  let deltasWithArgs = 0;
  let text = '';
  for (const c of chunks) {
    for (const ch of c.choices) {
      if (ch.finish_reason) finishes.push(ch.finish_reason);
      text += ch.delta?.content ?? '';
      for (const d of ch.delta?.tool_calls ?? []) {
        assert.equal(typeof d.index, 'number', `tool_calls delta has an index: ${JSON.stringify(d)}`);
        if (!calls[d.index]) {
          assert.ok(d.id, `the first delta of a tool call carries its id: ${JSON.stringify(d)}`);
          assert.equal(d.type, 'function', `the first delta carries type "function": ${JSON.stringify(d)}`);
          assert.ok(d.function?.name, `the first delta carries the function name: ${JSON.stringify(d)}`);
          calls[d.index] = { id: d.id, name: d.function.name, arguments: '' };
        } else {
          assert.ok(!d.id || d.id === calls[d.index].id, 'a later delta does not change the id');
        }
        if (d.function?.arguments) {
          calls[d.index].arguments += d.function.arguments;
          deltasWithArgs++;
        }
      }
    }
  }
  return { calls, finishes, deltasWithArgs, text, last: chunks.at(-1) };
}

describe('tool use with the openai SDK (/v1/chat/completions)', suiteOpts, () => {
  const h = useStack({ before, after, beforeEach, afterEach });
  let api;
  before(() => {
    if (h.gw) api = new OpenAI({ baseURL: h.gw.url + '/v1', apiKey: 'unused', maxRetries: 0, timeout: 15000 });
  });
  const fakeOf = (k) => h.stack[k.fake];

  it('gateway starts', async (t) => {
    if (!h.ready(t)) return;
    assert.equal((await fetch(h.gw.url + '/healthz')).status, 200);
  });

  // The JS reference gateway (the suite's self-check) does not translate tools for Anthropic.
  const reference = /reference-gateway\.mjs$/.test(HL_BIN);
  for (const k of KINDS) {
    describe(k.name, reference && k.fake === 'anthropic' ? { skip: 'the reference gateway does not translate tools to Anthropic' } : {}, () => {
      it('non-streaming: tool_calls reply, then the tool result -> final answer; usage, ledger', async (t) => {
        if (!h.ready(t)) return;
        const fake = fakeOf(k);
        const { data, response } = await api.chat.completions
          .create({ model: k.model, tools: TOOLS, messages: user(TOOL_PROMPT) }, { headers: k.headers ?? {} })
          .withResponse();
        const rid = checkRouteHeaders(response.headers, k);
        const choice = data.choices[0];
        assert.equal(choice.finish_reason, 'tool_calls', JSON.stringify(data));
        assert.equal(choice.message.role, 'assistant');
        assert.equal(choice.message.content, null, 'content is null on a tool-call-only reply');
        assert.equal(choice.message.tool_calls.length, 1, JSON.stringify(choice.message));
        const tc = choice.message.tool_calls[0];
        const rec1 = posts(fake)[0];
        const call = upstreamCall(k, rec1);
        assert.equal(tc.id, call.id, 'the tool call id is the upstream one');
        assert.equal(tc.type, 'function');
        assert.equal(tc.function.name, 'lookup');
        assert.equal(typeof tc.function.arguments, 'string', 'arguments is a JSON string');
        assert.deepEqual(JSON.parse(tc.function.arguments), { text: TOOL_PROMPT });
        assert.equal(data.model, BACKEND_MODEL[k.backend]);
        if (k.fake === 'anthropic') {
          assert.deepEqual(rec1.body.tools, [{ name: 'lookup', description: 'Looks a text up.', input_schema: PARAMS }], `tools translated: ${rec1.raw}`);
        } else {
          assert.deepEqual(rec1.body.tools, TOOLS, `tools passed through: ${rec1.raw}`);
        }
        const usage1 = fakeUsage(rec1);
        assert.equal(data.usage.prompt_tokens, usage1.input);
        assert.equal(data.usage.completion_tokens, usage1.output);
        checkLedger(await ledgerLine(h.gw, rid), { requestId: rid, backend: k.backend, reason: k.reason, stream: false, usage: usage1 });

        const history = [...user(TOOL_PROMPT), choice.message, { role: 'tool', tool_call_id: tc.id, content: TOOL_RESULT }];
        const { data: d2, response: r2 } = await api.chat.completions
          .create({ model: k.model, tools: TOOLS, messages: history }, { headers: k.headers ?? {} })
          .withResponse();
        const rid2 = checkRouteHeaders(r2.headers, k);
        assert.equal(d2.choices[0].finish_reason, 'stop');
        assert.equal(d2.choices[0].message.content, `echo: ${TOOL_RESULT}`);
        assert.equal(d2.choices[0].message.tool_calls ?? undefined, undefined, 'no tool call in the final answer');
        const rec2 = posts(fake)[1];
        checkRoundTripBody(k, rec2, call);
        const usage2 = fakeUsage(rec2);
        assert.equal(d2.usage.prompt_tokens, usage2.input);
        assert.equal(d2.usage.completion_tokens, usage2.output);
        checkLedger(await ledgerLine(h.gw, rid2), { requestId: rid2, backend: k.backend, reason: k.reason, stream: false, usage: usage2 });
      });

      it('streaming: tool_calls deltas accumulate to the call; finish_reason tool_calls; usage chunk; ledger', async (t) => {
        if (!h.ready(t)) return;
        const fake = fakeOf(k);
        const { data: stream, response } = await api.chat.completions
          .create({ model: k.model, tools: TOOLS, stream: true, stream_options: { include_usage: true }, messages: user(TOOL_PROMPT) }, { headers: k.headers ?? {} })
          .withResponse();
        const rid = checkRouteHeaders(response.headers, k);
        const chunks = [];
        for await (const c of stream) chunks.push(c);
        const acc = accumulate(chunks, BACKEND_MODEL[k.backend]);
        const rec = posts(fake)[0];
        assert.equal(rec.body.stream, true);
        const call = upstreamCall(k, rec);
        assert.equal(acc.calls.length, 1, `one tool call: ${JSON.stringify(acc.calls)}`);
        assert.equal(acc.calls[0].id, call.id);
        assert.equal(acc.calls[0].name, 'lookup');
        assert.ok(acc.deltasWithArgs >= 2, `arguments arrive in several deltas (${acc.deltasWithArgs})`);
        assert.deepEqual(JSON.parse(acc.calls[0].arguments), { text: TOOL_PROMPT });
        assert.equal(acc.text, '', 'no text content');
        assert.deepEqual(acc.finishes, ['tool_calls']);
        const roles = chunks.flatMap((c) => c.choices.filter((ch) => ch.delta?.role).map((ch) => ch.delta.role));
        assert.deepEqual(roles, ['assistant'], 'exactly one delta carries the role');
        assert.deepEqual(acc.last.choices, [], 'the usage chunk is last, with empty choices');
        const usage = fakeUsage(rec);
        assert.equal(acc.last.usage?.prompt_tokens, usage.input, JSON.stringify(acc.last));
        assert.equal(acc.last.usage?.completion_tokens, usage.output);
        checkLedger(await ledgerLine(h.gw, rid), { requestId: rid, backend: k.backend, reason: k.reason, stream: true, usage });
      });

      it('chat.completions.stream() helper: arguments events, finalChatCompletion(); streamed round trip', async (t) => {
        if (!h.ready(t)) return;
        const fake = fakeOf(k);
        const s = api.chat.completions.stream({ model: k.model, tools: TOOLS, stream_options: { include_usage: true }, messages: user(TOOL_PROMPT) }, { headers: k.headers ?? {} });
        const argDeltas = [];
        const done = [];
        s.on('tool_calls.function.arguments.delta', (e) => argDeltas.push(e.arguments_delta));
        s.on('tool_calls.function.arguments.done', (e) => done.push(e));
        const final = await s.finalChatCompletion();
        const msg = final.choices[0].message;
        assert.equal(final.choices[0].finish_reason, 'tool_calls');
        assert.equal(msg.tool_calls.length, 1, JSON.stringify(msg));
        const call = upstreamCall(k, posts(fake)[0]);
        assert.equal(msg.tool_calls[0].id, call.id);
        assert.equal(msg.tool_calls[0].function.name, 'lookup');
        assert.deepEqual(JSON.parse(msg.tool_calls[0].function.arguments), { text: TOOL_PROMPT });
        assert.equal(argDeltas.join(''), msg.tool_calls[0].function.arguments, 'arguments.delta events join to the arguments');
        assert.equal(done.length, 1, 'one arguments.done event');
        assert.equal(done[0].name, 'lookup');
        assert.equal(done[0].arguments, msg.tool_calls[0].function.arguments);
        const usage1 = fakeUsage(posts(fake)[0]);
        assert.equal(final.usage?.prompt_tokens, usage1.input);
        assert.equal(final.usage?.completion_tokens, usage1.output);

        const history = [...user(TOOL_PROMPT), { role: 'assistant', content: null, tool_calls: msg.tool_calls }, { role: 'tool', tool_call_id: msg.tool_calls[0].id, content: TOOL_RESULT }];
        const s2 = api.chat.completions.stream({ model: k.model, tools: TOOLS, messages: history }, { headers: k.headers ?? {} });
        const content = [];
        s2.on('content.delta', (e) => content.push(e.delta));
        assert.equal(await s2.finalContent(), `echo: ${TOOL_RESULT}`);
        assert.equal(content.join(''), `echo: ${TOOL_RESULT}`);
        checkRoundTripBody(k, posts(fake)[1], call);
      });

      it('text along with the tool call: content + tool_calls (non-streaming and streamed)', async (t) => {
        if (!h.ready(t)) return;
        const fake = fakeOf(k);
        const preamble = 'Let me look that up.';
        fake.control({ tool_text: preamble });
        const r = await api.chat.completions.create({ model: k.model, tools: TOOLS, messages: user(TOOL_PROMPT) }, { headers: k.headers ?? {} });
        assert.equal(r.choices[0].finish_reason, 'tool_calls');
        assert.equal(r.choices[0].message.content, preamble);
        assert.equal(r.choices[0].message.tool_calls.length, 1);
        assert.deepEqual(JSON.parse(r.choices[0].message.tool_calls[0].function.arguments), { text: TOOL_PROMPT });
        assert.equal(r.usage.completion_tokens, fakeUsage(posts(fake)[0]).output);

        const s = await api.chat.completions.create({ model: k.model, tools: TOOLS, stream: true, stream_options: { include_usage: true }, messages: user(TOOL_PROMPT) }, { headers: k.headers ?? {} });
        const chunks = [];
        for await (const c of s) chunks.push(c);
        const acc = accumulate(chunks, BACKEND_MODEL[k.backend]);
        assert.equal(acc.text, preamble);
        assert.equal(acc.calls.length, 1, JSON.stringify(acc.calls));
        assert.equal(acc.calls[0].id, upstreamCall(k, posts(fake)[1]).id);
        assert.deepEqual(JSON.parse(acc.calls[0].arguments), { text: TOOL_PROMPT });
        assert.deepEqual(acc.finishes, ['tool_calls']);
        const usage = fakeUsage(posts(fake)[1]);
        assert.equal(acc.last.usage?.prompt_tokens, usage.input);
        assert.equal(acc.last.usage?.completion_tokens, usage.output);
      });

      for (const stream of [false, true]) {
        it(`runTools()${stream ? ' (streaming)' : ''} with a local function: one call, final answer from its result`, async (t) => {
          if (!h.ready(t)) return;
          const fake = fakeOf(k);
          const before = h.gw.ledger().length;
          const seen = [];
          const runner = api.chat.completions.runTools(
            {
              model: k.model,
              messages: user(TOOL_PROMPT),
              ...(stream ? { stream: true } : {}),
              tools: [
                {
                  type: 'function',
                  function: {
                    name: 'lookup',
                    description: 'Looks a text up.',
                    parameters: PARAMS,
                    parse: JSON.parse,
                    function: (args) => {
                      seen.push(args);
                      return TOOL_RESULT;
                    },
                  },
                },
              ],
            },
            { headers: k.headers ?? {}, maxChatCompletions: 4 },
          );
          const content = await runner.finalContent();
          assert.equal(content, `echo: ${TOOL_RESULT}`);
          assert.deepEqual(seen, [{ text: TOOL_PROMPT }], 'the function ran once with the parsed arguments');
          assert.equal(posts(fake).length, 2, 'two upstream calls');
          const call = upstreamCall(k, posts(fake)[0]);
          checkRoundTripBody(k, posts(fake)[1], call);
          const fc = await runner.finalFunctionToolCall();
          assert.equal(fc?.name, 'lookup');
          const lines = await (async () => {
            for (let i = 0; i < 100; i++) {
              const l = h.gw.ledger().slice(before);
              if (l.length >= 2) return l;
              await new Promise((r) => setTimeout(r, 20));
            }
            return h.gw.ledger().slice(before);
          })();
          assert.equal(lines.length, 2, `two ledger lines: ${JSON.stringify(lines)}`);
          for (const [i, l] of lines.entries()) {
            assert.equal(l.status, 'ok');
            assert.equal(l.backend, k.backend);
            assert.equal(l.stream, stream);
            const rec = posts(fake)[i];
            // A stream without include_usage may be counted by the gateway, unless it asked the
            // upstream for usage itself (or the upstream is Anthropic, which always reports it).
            if (!stream || k.fake === 'anthropic' || rec.body.stream_options?.include_usage) {
              const u = fakeUsage(rec);
              assert.equal(l.input_tokens, u.input, JSON.stringify(l));
              assert.equal(l.output_tokens, u.output, JSON.stringify(l));
            } else {
              assert.ok(l.input_tokens > 0 && l.output_tokens > 0, JSON.stringify(l));
            }
          }
        });
      }
    });
  }
});
