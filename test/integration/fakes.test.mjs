// Checks the fake upstreams against the official SDKs (no gateway involved): if the SDKs accept
// what the fakes send, the gateway's upstream clients are being tested against the real shapes.
//
//   node --test test/integration/fakes.test.mjs
import { describe, it, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';
import { startFakeOpenAI } from '../fake/openai.mjs';
import { startFakeAnthropic } from '../fake/anthropic.mjs';
import { parseSSE, waitFor } from './util.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const OPENAI_KEY = 'sk-test-openai-fake-0001';
const ANTHROPIC_KEY = 'sk-ant-test-fake-0001';

describe('fake OpenAI, through the official openai SDK', () => {
  let fake;
  let client;
  before(async () => {
    fake = await startFakeOpenAI({ key: OPENAI_KEY });
    client = new OpenAI({ baseURL: fake.url + '/v1', apiKey: OPENAI_KEY, maxRetries: 0 });
  });
  after(() => fake.close());
  beforeEach(() => fake.reset());

  it('create: echo reply, usage, request id', async () => {
    const { data, response } = await client.chat.completions
      .create({ model: 'gpt-4o', messages: [{ role: 'system', content: 'be brief' }, { role: 'user', content: 'hello there world' }] })
      .withResponse();
    assert.equal(data.object, 'chat.completion');
    assert.equal(data.model, 'gpt-4o');
    assert.equal(data.choices[0].message.role, 'assistant');
    assert.equal(data.choices[0].message.content, 'echo: hello there world');
    assert.equal(data.choices[0].finish_reason, 'stop');
    // prompt: (2 + 3) + (3 + 3) = 11; completion: "echo:" "hello" "there" "world" = 4
    assert.deepEqual(
      { p: data.usage.prompt_tokens, c: data.usage.completion_tokens, t: data.usage.total_tokens },
      { p: 11, c: 4, t: 15 },
    );
    assert.equal(data.usage.prompt_tokens_details.cached_tokens, 0);
    assert.equal(data.usage.completion_tokens_details.reasoning_tokens, 0);
    assert.match(response.headers.get('x-request-id'), /^req_/);
    assert.equal(fake.requests.length, 1);
    const rec = fake.requests[0];
    assert.equal(rec.method, 'POST');
    assert.equal(rec.path, '/v1/chat/completions');
    assert.equal(rec.headers.authorization, `Bearer ${OPENAI_KEY}`);
    assert.equal(rec.body.model, 'gpt-4o');
    assert.deepEqual(rec.response.usage.prompt_tokens, 11);
  });

  it('content parts and max_tokens truncation (finish_reason length)', async () => {
    const r = await client.chat.completions.create({
      model: 'gpt-4o',
      max_completion_tokens: 2,
      messages: [{ role: 'user', content: [{ type: 'text', text: 'one two three' }] }],
    });
    assert.equal(r.choices[0].message.content, 'echo: one');
    assert.equal(r.choices[0].finish_reason, 'length');
    assert.equal(r.usage.completion_tokens, 2);
    const r2 = await client.chat.completions.create({ model: 'gpt-4o', max_tokens: 3, messages: [{ role: 'user', content: 'a b c d' }] });
    assert.equal(r2.choices[0].message.content, 'echo: a b');
  });

  it('stream with include_usage: role chunk, one chunk per word, finish chunk, usage chunk', async () => {
    const stream = await client.chat.completions.create({
      model: 'gpt-4o',
      messages: [{ role: 'user', content: 'stream me please' }],
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks = [];
    for await (const c of stream) chunks.push(c);
    assert.equal(chunks.length, 1 + 4 + 1 + 1);
    const ids = new Set(chunks.map((c) => `${c.id}|${c.created}|${c.model}`));
    assert.equal(ids.size, 1, 'id/created/model identical on every chunk');
    assert.ok(chunks.every((c) => c.object === 'chat.completion.chunk'));
    assert.deepEqual(chunks[0].choices[0].delta, { role: 'assistant', content: '', refusal: null });
    const text = chunks.flatMap((c) => c.choices.map((ch) => ch.delta.content ?? '')).join('');
    assert.equal(text, 'echo: stream me please');
    const fin = chunks[chunks.length - 2];
    assert.equal(fin.choices[0].finish_reason, 'stop');
    assert.deepEqual(fin.choices[0].delta, {});
    for (const c of chunks.slice(0, -1)) assert.equal(c.usage, null);
    const last = chunks[chunks.length - 1];
    assert.deepEqual(last.choices, []);
    assert.equal(last.usage.prompt_tokens, 6);
    assert.equal(last.usage.completion_tokens, 4);
  });

  it('stream without include_usage sends no usage (like vLLM); stream_usage control changes that', async () => {
    const collect = async () => {
      const s = await client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'x' }], stream: true });
      const cs = [];
      for await (const c of s) cs.push(c);
      return cs;
    };
    let cs = await collect();
    assert.ok(cs.every((c) => !('usage' in c)));
    assert.ok(cs.every((c) => c.choices.length === 1));
    fake.control({ stream_usage: 'always' });
    cs = await collect();
    assert.deepEqual(cs.at(-1).choices, []);
    assert.equal(cs.at(-1).usage.completion_tokens, 2);
  });

  it('stream helper finalChatCompletion() and raw SSE framing', async () => {
    const runner = client.chat.completions.stream({
      model: 'gpt-4o',
      messages: [{ role: 'user', content: 'helper test' }],
      stream_options: { include_usage: true },
    });
    const final = await runner.finalChatCompletion();
    assert.equal(final.choices[0].message.content, 'echo: helper test');
    assert.equal(final.usage.completion_tokens, 3);

    const res = await fetch(fake.url + '/v1/chat/completions', {
      method: 'POST',
      headers: { authorization: `Bearer ${OPENAI_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'raw' }], stream: true, stream_options: { include_usage: true } }),
    });
    assert.match(res.headers.get('content-type'), /^text\/event-stream/);
    const raw = await res.text();
    assert.ok(raw.endsWith('data: [DONE]\n\n'));
    const events = parseSSE(raw);
    assert.ok(events.every((e) => e.event === null && e.data !== ''));
  });

  it('logprobs in the right shape (non-stream and stream)', async () => {
    const r = await client.chat.completions.create({
      model: 'gpt-4o', messages: [{ role: 'user', content: 'hi you' }], logprobs: true, top_logprobs: 2,
    });
    const lp = r.choices[0].logprobs;
    assert.equal(lp.refusal, null);
    assert.equal(lp.content.length, 3);
    assert.equal(lp.content.map((x) => x.token).join(''), 'echo: hi you');
    for (const e of lp.content) {
      assert.equal(typeof e.logprob, 'number');
      assert.deepEqual(e.bytes, Array.from(Buffer.from(e.token)));
      assert.equal(e.top_logprobs.length, 2);
    }
    const s = await client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }], logprobs: true, stream: true });
    const got = [];
    for await (const c of s) if (c.choices[0]?.logprobs?.content) got.push(...c.choices[0].logprobs.content);
    assert.equal(got.map((x) => x.token).join(''), 'echo: hi');
  });

  it('tool calls (non-stream and stream)', async () => {
    const tools = [{ type: 'function', function: { name: 'lookup', parameters: { type: 'object', properties: { text: { type: 'string' } } } } }];
    const r = await client.chat.completions.create({ model: 'gpt-4o', tools, messages: [{ role: 'user', content: 'please call a tool' }] });
    assert.equal(r.choices[0].finish_reason, 'tool_calls');
    assert.equal(r.choices[0].message.tool_calls[0].function.name, 'lookup');
    assert.deepEqual(JSON.parse(r.choices[0].message.tool_calls[0].function.arguments), { text: 'please call a tool' });
    const final = await client.chat.completions
      .stream({ model: 'gpt-4o', tools, messages: [{ role: 'user', content: 'call a tool now' }] })
      .finalChatCompletion();
    assert.equal(final.choices[0].finish_reason, 'tool_calls');
    assert.deepEqual(JSON.parse(final.choices[0].message.tool_calls[0].function.arguments), { text: 'call a tool now' });
  });

  it('stop sequences cut the reply', async () => {
    const r = await client.chat.completions.create({ model: 'gpt-4o', stop: ['STOP'], messages: [{ role: 'user', content: 'a b STOP c' }] });
    assert.equal(r.choices[0].message.content, 'echo: a b', 'cut before STOP (trailing space dropped by the fake)');
    assert.equal(r.choices[0].finish_reason, 'stop');
  });

  it('GET /v1/models', async () => {
    const page = await client.models.list();
    assert.deepEqual(page.data.map((m) => m.id), ['gpt-4o', 'gpt-4o-mini']);
    assert.ok(page.data.every((m) => m.object === 'model' && typeof m.created === 'number' && typeof m.owned_by === 'string'));
  });

  it('auth: wrong key -> 401 invalid_api_key', async () => {
    const bad = new OpenAI({ baseURL: fake.url + '/v1', apiKey: 'sk-wrong-key-123456', maxRetries: 0 });
    await assert.rejects(bad.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'x' }] }), (e) => {
      assert.ok(e instanceof OpenAI.AuthenticationError);
      assert.equal(e.status, 401);
      assert.equal(e.code, 'invalid_api_key');
      assert.equal(e.type, 'invalid_request_error');
      assert.match(e.message, /Incorrect API key provided/);
      return true;
    });
  });

  it('validation: OpenAI-shaped 400s', async () => {
    await assert.rejects(client.chat.completions.create({ model: 'gpt-4o', messages: [] }), (e) => e.status === 400 && e.param === 'messages');
    await assert.rejects(client.chat.completions.create({ model: 'gpt-4o', messages: 'hi' }), (e) => e.status === 400 && e.code === 'invalid_type');
    await assert.rejects(client.chat.completions.create({ messages: [{ role: 'user', content: 'x' }] }), (e) => e.status === 400 && /model/.test(e.message));
    const res = await fetch(fake.url + '/v1/chat/completions', {
      method: 'POST', headers: { authorization: `Bearer ${OPENAI_KEY}`, 'content-type': 'application/json' }, body: '{"model": ',
    });
    assert.equal(res.status, 400);
    const j = await res.json();
    assert.equal(j.error.type, 'invalid_request_error');
    assert.ok('param' in j.error && 'code' in j.error);
  });

  it('strict models option -> 404 model_not_found', async () => {
    const strict = await startFakeOpenAI({ models: ['mistral-7b'] });
    try {
      const c = new OpenAI({ baseURL: strict.url + '/v1', apiKey: 'x', maxRetries: 0 });
      await assert.rejects(c.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'x' }] }), (e) => e.status === 404 && e.code === 'model_not_found');
      const ok = await c.chat.completions.create({ model: 'mistral-7b', messages: [{ role: 'user', content: 'x' }] });
      assert.equal(ok.model, 'mistral-7b');
    } finally {
      await strict.close();
    }
  });

  it('injected errors: 429 with retry-after, 500, then recovery', async () => {
    fake.control({ status: 429, count: 1, retry_after: 3 });
    await assert.rejects(client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'x' }] }), (e) => {
      assert.ok(e instanceof OpenAI.RateLimitError);
      assert.equal(e.code, 'rate_limit_exceeded');
      assert.equal(e.headers.get('retry-after'), '3');
      assert.ok(e.requestID);
      return true;
    });
    const ok = await client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'x' }] });
    assert.equal(ok.choices[0].message.content, 'echo: x');
    fake.control({ status: 500, count: 2 });
    for (let i = 0; i < 2; i++) {
      await assert.rejects(client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'x' }] }), (e) => e instanceof OpenAI.InternalServerError && e.type === 'server_error');
    }
    fake.control({ status: 429, count: 1, error_code: 'insufficient_quota', error_type: 'insufficient_quota', message: 'You exceeded your current quota' });
    await assert.rejects(client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'x' }] }), (e) => e.status === 429 && e.code === 'insufficient_quota');
    assert.equal(fake.requests.length, 5);
  });

  it('the SDK retries honour retry-after-ms from the fake', async () => {
    const retrying = new OpenAI({ baseURL: fake.url + '/v1', apiKey: OPENAI_KEY, maxRetries: 2 });
    fake.control({ status: 503, count: 1, retry_after_ms: 10 });
    const r = await retrying.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'again' }] });
    assert.equal(r.choices[0].message.content, 'echo: again');
    assert.equal(fake.requests.length, 2);
    fake.control({ status: 500, count: 1, should_retry: false });
    await assert.rejects(retrying.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'x' }] }), (e) => e.status === 500);
    assert.equal(fake.requests.length, 3);
  });

  it('delay_ms and chunk_delay_ms', async () => {
    fake.control({ delay_ms: 150 });
    let t0 = Date.now();
    await client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'x' }] });
    assert.ok(Date.now() - t0 >= 140);
    fake.reset();
    fake.control({ chunk_delay_ms: 40 });
    t0 = Date.now();
    const s = await client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'a b' }], stream: true });
    let n = 0;
    for await (const _ of s) n++;
    assert.equal(n, 5);
    assert.ok(Date.now() - t0 >= 4 * 40 - 10, 'chunks were spaced');
  });

  it('disconnect_after_chunks breaks the stream; error_after_chunks raises in the SDK', async () => {
    // (a pause before the disconnect lets the client read what was sent: an errored fetch body
    // drops chunks it has not handed out yet)
    fake.control({ disconnect_after_chunks: 2, chunk_delay_ms: 20 });
    const s = await client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'a b c d e' }], stream: true });
    const got = [];
    await assert.rejects(async () => {
      for await (const c of s) got.push(c);
    });
    assert.equal(got.length, 2);
    assert.equal(fake.requests[0].disconnected, true);

    fake.reset();
    fake.control({ error_after_chunks: 2 });
    const s2 = await client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'a b c d e' }], stream: true });
    await assert.rejects(async () => {
      for await (const _ of s2);
    }, (e) => e instanceof OpenAI.APIError);
  });

  it('client abort mid-stream is recorded as closed', async () => {
    fake.control({ chunk_delay_ms: 100 });
    const ac = new AbortController();
    const s = await client.chat.completions.create(
      { model: 'gpt-4o', messages: [{ role: 'user', content: 'a b c d e f g' }], stream: true },
      { signal: ac.signal },
    );
    for await (const _ of s) {
      ac.abort();
      break;
    }
    await waitFor(() => fake.requests[0]?.closed, 2000, 'fake sees the connection closed');
    assert.equal(fake.requests[0].finished, false);
    assert.ok(fake.requests[0].closedAt >= fake.requests[0].time);
  });

  it('HTTP control plane: /_control, /_requests, /_reset', async () => {
    let r = await fetch(fake.url + '/_control', { method: 'POST', body: JSON.stringify({ reply: 'fixed text here' }) });
    assert.equal(r.status, 200);
    const c = await client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'ignored' }] });
    assert.equal(c.choices[0].message.content, 'fixed text here');
    r = await fetch(fake.url + '/_requests');
    const reqs = await r.json();
    assert.equal(reqs.length, 1);
    assert.equal(reqs[0].body.messages[0].content, 'ignored');
    await fetch(fake.url + '/_reset', { method: 'POST' });
    assert.equal(fake.requests.length, 0);
    const c2 = await client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'back' }] });
    assert.equal(c2.choices[0].message.content, 'echo: back');
  });
});

describe('fake Anthropic, through the official @anthropic-ai/sdk', () => {
  let fake;
  let client;
  before(async () => {
    fake = await startFakeAnthropic({ key: ANTHROPIC_KEY });
    client = new Anthropic({ baseURL: fake.url, apiKey: ANTHROPIC_KEY, maxRetries: 0 });
  });
  after(() => fake.close());
  beforeEach(() => fake.reset());

  it('create: echo reply, usage, request-id', async () => {
    const { data, response } = await client.messages
      .create({ model: 'claude-3-5-sonnet-20241022', max_tokens: 100, system: 'be brief', messages: [{ role: 'user', content: 'hello there' }] })
      .withResponse();
    assert.equal(data.type, 'message');
    assert.equal(data.role, 'assistant');
    assert.match(data.id, /^msg_/);
    assert.equal(data.model, 'claude-3-5-sonnet-20241022');
    assert.deepEqual(data.content, [{ type: 'text', text: 'echo: hello there' }]);
    assert.equal(data.stop_reason, 'end_turn');
    assert.equal(data.stop_sequence, null);
    // input: system 2 + (3 + 2) = 7; output: 3
    assert.equal(data.usage.input_tokens, 7);
    assert.equal(data.usage.output_tokens, 3);
    assert.equal(data.usage.cache_creation_input_tokens, 0);
    assert.equal(data.usage.cache_read_input_tokens, 0);
    assert.match(response.headers.get('request-id'), /^req_/);
    const rec = fake.requests[0];
    // The 1.x SDK sends an API key as `Authorization: Bearer`; the real API (and the fake) also
    // accept `x-api-key`.
    assert.ok(rec.headers['x-api-key'] === ANTHROPIC_KEY || rec.headers.authorization === `Bearer ${ANTHROPIC_KEY}`);
    assert.ok(rec.headers['anthropic-version']);
  });

  it('system as text blocks, content blocks, max_tokens -> stop_reason max_tokens', async () => {
    const m = await client.messages.create({
      model: 'claude-3-5-sonnet-20241022',
      max_tokens: 2,
      system: [{ type: 'text', text: 'sys one' }],
      messages: [{ role: 'user', content: [{ type: 'text', text: 'one two three' }] }],
    });
    assert.equal(m.content[0].text, 'echo: one');
    assert.equal(m.stop_reason, 'max_tokens');
    assert.equal(m.usage.output_tokens, 2);
    assert.equal(m.usage.input_tokens, 2 + 3 + 3);
  });

  it('stop_sequences -> stop_reason stop_sequence', async () => {
    const m = await client.messages.create({
      model: 'claude-3-5-sonnet-20241022', max_tokens: 50, stop_sequences: ['STOP'],
      messages: [{ role: 'user', content: 'a STOP b' }],
    });
    assert.equal(m.content[0].text, 'echo: a');
    assert.equal(m.stop_reason, 'stop_sequence');
    assert.equal(m.stop_sequence, 'STOP');
  });

  it('messages.stream() + finalMessage(): text and cumulative usage', async () => {
    const stream = client.messages.stream({
      model: 'claude-3-5-sonnet-20241022', max_tokens: 100, messages: [{ role: 'user', content: 'stream this text' }],
    });
    const deltas = [];
    stream.on('text', (t) => deltas.push(t));
    const msg = await stream.finalMessage();
    assert.equal(msg.content[0].text, 'echo: stream this text');
    assert.deepEqual(deltas, ['echo:', ' stream', ' this', ' text']);
    assert.equal(msg.stop_reason, 'end_turn');
    assert.equal(msg.usage.output_tokens, 4);
    assert.equal(msg.usage.input_tokens, 6);
  });

  it('raw stream: every event has an event: line equal to data.type, in contract order', async () => {
    const res = await fetch(fake.url + '/v1/messages', {
      method: 'POST',
      headers: { 'x-api-key': ANTHROPIC_KEY, 'anthropic-version': '2023-06-01', 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'claude-3-5-sonnet-20241022', max_tokens: 100, stream: true, messages: [{ role: 'user', content: 'a b' }] }),
    });
    assert.match(res.headers.get('content-type'), /^text\/event-stream/);
    assert.ok(res.headers.get('request-id'));
    const events = parseSSE(await res.text());
    for (const e of events) assert.equal(e.event, JSON.parse(e.data).type);
    const types = events.map((e) => e.event);
    assert.deepEqual(types, [
      'message_start', 'content_block_start', 'ping',
      'content_block_delta', 'content_block_delta', 'content_block_delta',
      'content_block_stop', 'message_delta', 'message_stop',
    ]);
    const start = JSON.parse(events[0].data);
    assert.deepEqual(start.message.content, []);
    assert.equal(start.message.usage.output_tokens, 1);
    const md = JSON.parse(events[7].data);
    assert.deepEqual(md.delta, { stop_reason: 'end_turn', stop_sequence: null });
    assert.deepEqual(md.usage, { output_tokens: 3 });
  });

  it('create({stream: true}) yields the events; Bearer auth token accepted', async () => {
    const bearer = new Anthropic({ baseURL: fake.url, authToken: ANTHROPIC_KEY, apiKey: null, maxRetries: 0 });
    const s = await bearer.messages.create({ model: 'c', max_tokens: 10, stream: true, messages: [{ role: 'user', content: 'x' }] });
    const types = [];
    for await (const ev of s) types.push(ev.type);
    assert.equal(types[0], 'message_start');
    assert.equal(types.at(-1), 'message_stop');
    assert.ok(!types.includes('ping'), 'the SDK drops pings');
    assert.equal(fake.requests[0].headers.authorization, `Bearer ${ANTHROPIC_KEY}`);
  });

  it('tool_use (stream)', async () => {
    const msg = await client.messages
      .stream({
        model: 'c', max_tokens: 100,
        tools: [{ name: 'lookup', input_schema: { type: 'object', properties: { text: { type: 'string' } } } }],
        messages: [{ role: 'user', content: 'call a tool please' }],
      })
      .finalMessage();
    assert.equal(msg.stop_reason, 'tool_use');
    assert.equal(msg.content[0].type, 'tool_use');
    assert.equal(msg.content[0].name, 'lookup');
    assert.deepEqual(msg.content[0].input, { text: 'call a tool please' });
  });

  it('models.list()', async () => {
    const page = await client.models.list();
    assert.deepEqual(page.data.map((m) => m.id), ['claude-3-5-sonnet-20241022', 'claude-3-5-haiku-20241022']);
    assert.equal(page.data[0].type, 'model');
  });

  it('auth and validation errors in the Anthropic shape', async () => {
    const bad = new Anthropic({ baseURL: fake.url, apiKey: 'wrong', maxRetries: 0 });
    await assert.rejects(bad.messages.create({ model: 'c', max_tokens: 5, messages: [{ role: 'user', content: 'x' }] }), (e) => {
      assert.ok(e instanceof Anthropic.AuthenticationError);
      assert.equal(e.status, 401);
      assert.equal(e.type, 'authentication_error');
      assert.equal(e.error.type, 'error');
      assert.ok(e.requestID);
      return true;
    });
    const post = (headers, body) =>
      fetch(fake.url + '/v1/messages', { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
    const base = { model: 'c', max_tokens: 5, messages: [{ role: 'user', content: 'x' }] };
    const cases = [
      [{ 'x-api-key': ANTHROPIC_KEY }, base, /anthropic-version/],
      [{ 'x-api-key': ANTHROPIC_KEY, 'anthropic-version': '2023-06-01' }, { ...base, max_tokens: undefined }, /max_tokens/],
      [{ 'x-api-key': ANTHROPIC_KEY, 'anthropic-version': '2023-06-01' }, { ...base, max_tokens: 1.5 }, /max_tokens/],
      [{ 'x-api-key': ANTHROPIC_KEY, 'anthropic-version': '2023-06-01' }, { ...base, messages: [{ role: 'system', content: 's' }] }, /role/],
      [{ 'x-api-key': ANTHROPIC_KEY, 'anthropic-version': '2023-06-01' }, { ...base, stream_options: { include_usage: true } }, /stream_options: Extra inputs/],
      [{ 'x-api-key': ANTHROPIC_KEY, 'anthropic-version': '2023-06-01' }, { ...base, metadata: { task_type: 'x' } }, /metadata.task_type/],
    ];
    for (const [h, b, re] of cases) {
      const r = await post(h, b);
      assert.equal(r.status, 400, JSON.stringify(b));
      const j = await r.json();
      assert.equal(j.type, 'error');
      assert.equal(j.error.type, 'invalid_request_error');
      assert.match(j.error.message, re);
      assert.match(j.request_id, /^req_/);
    }
    const ok = await post({ 'x-api-key': ANTHROPIC_KEY, 'anthropic-version': '2023-06-01' }, { ...base, metadata: { user_id: 'u1' } });
    assert.equal(ok.status, 200);
  });

  it('injected errors use the status -> type table (529 overloaded, 429 rate limit, 500 api_error)', async () => {
    for (const [status, type, cls] of [
      [529, 'overloaded_error', Anthropic.APIError],
      [429, 'rate_limit_error', Anthropic.RateLimitError],
      [500, 'api_error', Anthropic.InternalServerError],
    ]) {
      fake.control({ status, count: 1, retry_after: 1 });
      await assert.rejects(client.messages.create({ model: 'c', max_tokens: 5, messages: [{ role: 'user', content: 'x' }] }), (e) => {
        assert.ok(e instanceof cls, `${status} -> ${e.constructor.name}`);
        assert.equal(e.status, status);
        assert.equal(e.type, type);
        assert.equal(e.error.type, 'error');
        assert.match(e.error.request_id, /^req_/);
        assert.equal(e.headers.get('retry-after'), '1');
        return true;
      });
    }
    const fine = await client.messages.create({ model: 'c', max_tokens: 5, messages: [{ role: 'user', content: 'x' }] });
    assert.equal(fine.content[0].text, 'echo: x');
    assert.equal(fake.requests[0].response.error.error.message, 'Overloaded');
  });

  it('mid-stream error event and mid-stream disconnect make the SDK throw', async () => {
    fake.control({ error_after_chunks: 4 });
    await assert.rejects(
      client.messages.stream({ model: 'c', max_tokens: 50, messages: [{ role: 'user', content: 'a b c d' }] }).finalMessage(),
      (e) => e instanceof Anthropic.APIError && e.type === 'overloaded_error',
    );
    fake.reset();
    fake.control({ disconnect_after_chunks: 4 });
    await assert.rejects(client.messages.stream({ model: 'c', max_tokens: 50, messages: [{ role: 'user', content: 'a b c d' }] }).finalMessage());
    assert.equal(fake.requests[0].disconnected, true);
  });

  it('client abort mid-stream is recorded as closed', async () => {
    fake.control({ chunk_delay_ms: 100 });
    const stream = client.messages.stream({ model: 'c', max_tokens: 50, messages: [{ role: 'user', content: 'a b c d e f' }] });
    stream.on('error', () => {});
    stream.on('abort', () => {});
    await new Promise((resolve) => stream.once('streamEvent', resolve));
    stream.abort();
    await waitFor(() => fake.requests[0]?.closed, 2000, 'fake sees the connection closed');
  });
});

describe('standalone fakes (node test/fake/<x>.mjs --port N --key K)', () => {
  for (const [file, check] of [
    ['openai.mjs', async (port) => {
      const c = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: 'k1', maxRetries: 0 });
      const r = await c.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'standalone' }] });
      assert.equal(r.choices[0].message.content, 'echo: standalone');
    }],
    ['anthropic.mjs', async (port) => {
      const c = new Anthropic({ baseURL: `http://127.0.0.1:${port}`, apiKey: 'k1', maxRetries: 0 });
      const r = await c.messages.create({ model: 'c', max_tokens: 9, messages: [{ role: 'user', content: 'standalone' }] });
      assert.equal(r.content[0].text, 'echo: standalone');
    }],
  ]) {
    it(file, async () => {
      const child = spawn(process.execPath, [path.join(ROOT, 'test/fake', file), '--port', '0', '--key', 'k1'], { stdio: ['ignore', 'pipe', 'inherit'] });
      try {
        const port = await new Promise((resolve, reject) => {
          let buf = '';
          child.stdout.on('data', (d) => {
            buf += d;
            const m = buf.match(/listening (\d+)\n/);
            if (m) resolve(Number(m[1]));
          });
          child.on('exit', (code) => reject(new Error(`exited ${code}`)));
        });
        await check(port);
        const r = await fetch(`http://127.0.0.1:${port}/_requests`);
        assert.equal((await r.json()).length, 1);
      } finally {
        const exited = new Promise((r) => child.once('exit', (code, sig) => r({ code, sig })));
        child.kill('SIGTERM');
        const { code } = await exited;
        assert.equal(code, 0);
      }
    });
  }
});

// The fakes' legacy completions, embeddings and count_tokens, read by the official SDKs (their
// types: openai-node completions.ts / embeddings.ts, anthropic messages.ts countTokens).
describe('fake endpoints beside chat, through the official SDKs', () => {
  let oa, an;
  before(async () => {
    oa = await startFakeOpenAI({ key: OPENAI_KEY });
    an = await startFakeAnthropic({ key: ANTHROPIC_KEY });
  });
  after(async () => {
    await oa.close();
    await an.close();
  });
  const client = () => new OpenAI({ baseURL: `${oa.url}/v1`, apiKey: OPENAI_KEY, maxRetries: 0 });

  it('completions.create, whole and streamed', async () => {
    const c = await client().completions.create({ model: 'm', prompt: 'a b c', max_tokens: 2, logprobs: 1 });
    assert.equal(c.object, 'text_completion');
    assert.equal(c.choices[0].text, 'echo: a');
    assert.equal(c.choices[0].finish_reason, 'length');
    assert.deepEqual(c.choices[0].logprobs.tokens, ['echo:', ' a']);
    assert.deepEqual(c.usage, { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 });
    let text = '';
    let usage;
    for await (const ch of await client().completions.create({ model: 'm', prompt: 'x y', stream: true, stream_options: { include_usage: true } })) {
      text += ch.choices[0]?.text ?? '';
      if (ch.usage) usage = ch.usage;
    }
    assert.equal(text, 'echo: x y');
    assert.equal(usage.completion_tokens, 3);
  });

  it('embeddings.create: floats, and base64 the SDK decodes', async () => {
    const f = await client().embeddings.create({ model: 'e', input: ['one', 'two'], encoding_format: 'float' });
    assert.equal(f.data.length, 2);
    assert.equal(f.data[1].index, 1);
    assert.equal(f.data[0].embedding.length, 8);
    const b = await client().embeddings.create({ model: 'e', input: ['one', 'two'] });
    assert.deepEqual(b.data[0].embedding, f.data[0].embedding, 'base64 float32 decodes to the same vector');
    assert.equal(oa.requests.at(-1).body.encoding_format, 'base64', 'the SDK asked for base64');
  });

  it('messages.countTokens', async () => {
    const a = new Anthropic({ baseURL: an.url, apiKey: ANTHROPIC_KEY, maxRetries: 0 });
    const r = await a.messages.countTokens({ model: 'claude', messages: [{ role: 'user', content: 'three words here' }] });
    assert.equal(r.input_tokens, 6);
  });
});
