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
