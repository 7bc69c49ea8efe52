// Confidence escalation through the real gateway (the brief's "local first, cloud when
// confidence < 0.7"): the local answer is judged on its token logprobs; below the threshold
// the cloud answers instead, privacy permitting; if the cloud fails, the local answer is
// served. Streams are buffered for the judgement (escalate.stream: buffer).
import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { startFakeAnthropic } from '../fake/anthropic.mjs';
import { startFakeOpenAI } from '../fake/openai.mjs';
import { gatewayBinaryMissing, KEYS, MODELS, posts, startGateway } from './gateway.mjs';
import { waitFor } from './util.mjs';

const skip = gatewayBinaryMissing();

describe('confidence escalation', { skip: skip ?? false }, () => {
  let local, cloud, gw, c;
  before(async () => {
    local = await startFakeOpenAI({ models: [MODELS.local] });
    cloud = await startFakeAnthropic({ key: KEYS.HL_TEST_ANTHROPIC_KEY, models: [MODELS.anthropic] });
    gw = await startGateway({
      backends: [
        { name: 'local', kind: 'openai', location: 'local', base_url: `${local.url}/v1`, model: MODELS.local, max_retries: 0 },
        { name: 'cloud', kind: 'anthropic', location: 'cloud', base_url: cloud.url, api_key_env: 'HL_TEST_ANTHROPIC_KEY',
          model: MODELS.anthropic, max_retries: 0, breaker_failures: 1000 },
      ],
      routes: [
        { name: 'privacy', when: { sensitive: true }, to: ['local'], escalate: { below: 0.7, to: ['cloud'] } },
        { name: 'by-margin', when: { task_type: ['margin_task'] }, to: ['local'],
          escalate: { below: 0.6, signal: 'margin', to: ['cloud'] } },
        { name: 'default', to: ['local'], escalate: { below: 0.7, to: ['cloud'] } },
      ],
    });
    c = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'unused', maxRetries: 0 });
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

  const lines = (rid, n) =>
    waitFor(() => {
      const l = gw.ledger().filter((x) => x.request_id === rid);
      return l.length >= n ? l : null;
    }, 5000, `${n} ledger lines for ${rid}`);
  const ask = (extra = {}, opts = {}) =>
    c.chat.completions.create({ model: 'auto', messages: [{ role: 'user', content: 'is the sky blue' }], ...extra }, opts).withResponse();

  test('a confident local answer is served; logprobs were asked for but not passed on', async () => {
    const { data, response } = await ask();
    assert.equal(response.headers.get('x-hybridllm-backend'), 'local');
    assert.equal(data.choices[0].message.content, 'echo: is the sky blue');
    assert.equal(data.choices[0].logprobs, null);
    assert.equal(posts(local)[0].body.logprobs, true);
    assert.equal(posts(cloud).length, 0);
    const conf = Number(response.headers.get('x-hybridllm-confidence'));
    assert.ok(conf > 0.9, `confidence ${conf}`);
    const [l] = await lines(response.headers.get('x-request-id'), 1);
    assert.equal(l.status, 'ok');
    assert.ok(Math.abs(l.confidence - conf) < 1e-3);
  });

  test('a judged answer is asked for 2 alternatives a token; its ledger line has margin and min', async () => {
    local.control({ logprob: -0.1 });
    const { response } = await ask();
    assert.equal(response.headers.get('x-hybridllm-backend'), 'local');
    assert.equal(posts(local)[0].body.top_logprobs, 2);
    const [l] = await lines(response.headers.get('x-request-id'), 1);
    // the fake's alternatives: the token at logprob -0.1, the next at -1.1
    assert.ok(Math.abs(l.confidence - Math.exp(-0.1)) < 1e-3, `confidence ${l.confidence}`);
    assert.ok(Math.abs(l.confidence_margin - (Math.exp(-0.1) - Math.exp(-1.1))) < 1e-3, `margin ${l.confidence_margin}`);
    assert.ok(Math.abs(l.confidence_min - Math.exp(-0.1)) < 1e-3, `min ${l.confidence_min}`);
  });

  test('a client that asked for logprobs gets the alternatives it asked for, not the judgement\'s', async () => {
    const none = await ask({ logprobs: true });
    assert.equal(posts(local)[0].body.top_logprobs, 2);
    const content = none.data.choices[0].logprobs.content;
    assert.ok(content.length > 0);
    assert.ok(content.every((t) => Array.isArray(t.top_logprobs) && t.top_logprobs.length === 0));
    local.reset();
    const one = await ask({ logprobs: true, top_logprobs: 1 });
    assert.ok(one.data.choices[0].logprobs.content.every((t) => t.top_logprobs.length === 1));
    local.reset();
    const three = await ask({ logprobs: true, top_logprobs: 3 });
    assert.equal(posts(local)[0].body.top_logprobs, 3);
    assert.ok(three.data.choices[0].logprobs.content.every((t) => t.top_logprobs.length === 3));
    const [l] = await lines(three.response.headers.get('x-request-id'), 1);
    assert.ok(l.confidence_margin > 0 && l.confidence_min > 0);
  });

  test('escalate.signal: margin judges on the first token\'s margin, not the geometric mean', async () => {
    // geometric mean e^-0.1 = 0.905 (>= 0.7: the default route serves it); margin
    // e^-0.1 - e^-1.1 = 0.572 (< 0.6: the margin route escalates)
    local.control({ logprob: -0.1 });
    const plain = await ask();
    assert.equal(plain.response.headers.get('x-hybridllm-backend'), 'local');
    const byMargin = await ask({}, { headers: { 'x-hybridllm-task-type': 'margin_task' } });
    assert.equal(byMargin.response.headers.get('x-hybridllm-backend'), 'cloud');
    assert.equal(byMargin.response.headers.get('x-hybridllm-route-reason'), 'rule:by-margin+escalated');
    const l = await lines(byMargin.response.headers.get('x-request-id'), 2);
    assert.deepEqual(l.map((x) => [x.backend, x.status]), [['local', 'escalated'], ['cloud', 'ok']]);
    assert.ok(Math.abs(l[0].confidence_margin - 0.572) < 1e-3, `margin ${l[0].confidence_margin}`);
  });

  test('an unsure local answer is escalated: the client gets the cloud answer, the ledger has both', async () => {
    local.control({ logprob: -1 }); // confidence e^-1 = 0.368 < 0.7
    const { data, response } = await ask();
    assert.equal(response.headers.get('x-hybridllm-backend'), 'cloud');
    assert.equal(response.headers.get('x-hybridllm-route-reason'), 'rule:default+escalated');
    assert.equal(data.model, MODELS.anthropic);
    assert.equal(posts(cloud).length, 1);
    const l = await lines(response.headers.get('x-request-id'), 2);
    assert.deepEqual(l.map((x) => [x.backend, x.status]), [['local', 'escalated'], ['cloud', 'ok']]);
    assert.ok(Math.abs(l[0].confidence - Math.exp(-1)) < 1e-3, `confidence ${l[0].confidence}`);
    assert.equal(l[1].route_reason, 'rule:default+escalated');
  });

  test('a sensitive request is never escalated to the cloud', async () => {
    local.control({ logprob: -2 });
    const { response } = await ask({}, { headers: { 'x-hybridllm-pii': 'true' } });
    assert.equal(response.headers.get('x-hybridllm-backend'), 'local');
    assert.equal(posts(cloud).length, 0);
  });

  test('streaming: an unsure local answer is buffered, then the cloud streams', async () => {
    local.control({ logprob: -1 });
    const stream = await c.chat.completions.create({
      model: 'auto', stream: true, stream_options: { include_usage: true },
      messages: [{ role: 'user', content: 'is the sky blue' }],
    });
    let text = '', usage = null, model = null;
    for await (const chunk of stream) {
      model = chunk.model;
      text += chunk.choices[0]?.delta?.content ?? '';
      if (chunk.usage) usage = chunk.usage;
    }
    assert.equal(text, 'echo: is the sky blue');
    assert.equal(model, MODELS.anthropic);
    assert.ok(usage && usage.completion_tokens > 0);
    assert.equal(posts(local)[0].body.stream, undefined, 'the judged local call is not streamed');
  });

  test('streaming: a confident local answer is replayed as a stream', async () => {
    const stream = await c.chat.completions.create({
      model: 'auto', stream: true, stream_options: { include_usage: true },
      messages: [{ role: 'user', content: 'is the sky blue' }],
    });
    let text = '', usage = null, finish = null;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta?.content ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
      if (chunk.usage) usage = chunk.usage;
    }
    assert.equal(text, 'echo: is the sky blue');
    assert.equal(finish, 'stop');
    assert.equal(usage.prompt_tokens, posts(local)[0].response.usage.prompt_tokens);
    assert.equal(posts(cloud).length, 0);
  });

  test('when the escalation target fails, the held local answer is served', async () => {
    local.control({ logprob: -1 });
    cloud.control({ status: 529, count: 5 });
    const { data, response } = await ask();
    assert.equal(data.choices[0].message.content, 'echo: is the sky blue');
    assert.equal(data.model, MODELS.local);
    assert.equal(response.headers.get('x-hybridllm-backend'), 'local');
    // the answer delivered has its own ok line, so that reports and the advisor count it
    const l = await lines(response.headers.get('x-request-id'), 3);
    assert.deepEqual(l.map((x) => [x.backend, x.status]), [['local', 'escalated'], ['cloud', 'error'], ['local', 'ok']]);
  });
});
