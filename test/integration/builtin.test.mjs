// The builtin provider through the real gateway: a GGUF model run in-process by the embedded
// engine, served to both official SDKs, streaming and not, with its answer equal to
// llama.cpp's greedy reference, its logprobs feeding confidence escalation, and the ledger.
// Needs ../shared/models (or HL_MODELS_DIR); says so plainly and skips when absent, unless
// HL_REQUIRE_MODELS=1 (scripts/test.sh sets it: there a missing model fails).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';
import { startFakeAnthropic } from '../fake/anthropic.mjs';
import { gatewayBinaryMissing, KEYS, MODELS, ROOT, posts, startGateway } from './gateway.mjs';

const MODELS_DIR = process.env.HL_MODELS_DIR ?? path.join(ROOT, '..', 'shared', 'models');
const STORIES = path.join(MODELS_DIR, 'stories260K.gguf');
// llama.cpp's greedy continuation of "Once upon a time" (reference/stories260K.greedy.txt).
const GREEDY_32 = ', there was a little girl named Lily. She loved to play outside in the park. One day, she saw';

const skip = gatewayBinaryMissing() ??
  (fs.existsSync(STORIES) || process.env.HL_REQUIRE_MODELS === '1' ? false : `SKIP: test models not found at ${MODELS_DIR}`);

const embedded = { name: 'embedded', kind: 'builtin', location: 'local', model_path: STORIES, model: 'stories260K', threads: 1 };

describe('builtin engine provider', { skip }, () => {
  test('OpenAI and Anthropic SDKs, streaming and not, greedy text equals llama.cpp', async () => {
    const gw = await startGateway({ backends: [embedded], routes: [{ name: 'default', to: ['embedded'] }] });
    try {
      const c = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'unused', maxRetries: 0 });
      const ask = { model: 'auto', max_tokens: 32, temperature: 0, messages: [{ role: 'user', content: 'Once upon a time' }] };
      const { data, response } = await c.chat.completions.create(ask).withResponse();
      assert.equal(data.choices[0].message.content, GREEDY_32);
      assert.equal(data.choices[0].finish_reason, 'length');
      assert.deepEqual([data.usage.prompt_tokens, data.usage.completion_tokens], [5, 32]);
      assert.equal(response.headers.get('x-hybridllm-backend'), 'embedded');

      let text = '', usage = null;
      const stream = await c.chat.completions.create({ ...ask, stream: true, stream_options: { include_usage: true } });
      for await (const chunk of stream) {
        text += chunk.choices[0]?.delta?.content ?? '';
        if (chunk.usage) usage = chunk.usage;
      }
      assert.equal(text, GREEDY_32);
      assert.equal(usage.completion_tokens, 32);

      const a = new Anthropic({ baseURL: gw.url, apiKey: 'unused', maxRetries: 0 });
      const ms = a.messages.stream({ model: 'stories260K', max_tokens: 32, temperature: 0, messages: [{ role: 'user', content: 'Once upon a time' }] });
      const final = await ms.finalMessage();
      assert.equal(final.content[0].text, GREEDY_32);
      assert.equal(final.stop_reason, 'max_tokens');
      assert.equal(final.usage.output_tokens, 32);

      // stop sequences end the generation where they begin
      const stopped = await c.chat.completions.create({ ...ask, stop: ['Lily'] });
      assert.equal(stopped.choices[0].message.content, ', there was a little girl named ');
      assert.equal(stopped.choices[0].finish_reason, 'stop');

      const lines = gw.ledger();
      assert.ok(lines.length >= 4 && lines.every((l) => l.source === 'local' && l.status === 'ok' && l.backend === 'embedded'));
    } finally {
      const { code } = await gw.stop();
      assert.equal(code, 0, `the gateway exited with ${code}; its last output:\n${gw.output().slice(-4000)}`);
    }
  });

  test('concurrent requests are generated together, each as it would be alone; cancellation frees its slot', async () => {
    const gw = await startGateway({
      backends: [{ ...embedded, max_sequences: 3, max_queue: 16 }],
      routes: [{ name: 'default', to: ['embedded'] }],
    });
    try {
      const c = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'unused', maxRetries: 0 });
      const prompts = ['Once upon a time', 'The little dog', 'Lily and Ben went to the park', 'One day, a bird',
        'Tom had a red ball', 'The sun was hot'];
      const ask = (content, extra = {}) => ({ model: 'auto', max_tokens: 24, temperature: 0, messages: [{ role: 'user', content }], ...extra });
      // Alone, one after the other.
      const alone = [];
      for (const p of prompts) alone.push((await c.chat.completions.create(ask(p))).choices[0].message.content);
      assert.equal(alone[0], GREEDY_32.slice(0, alone[0].length));
      // All at once (3 slots: three generate together, the others wait their turn), half streaming.
      const together = await Promise.all(prompts.map(async (p, i) => {
        if (i % 2 === 0) return (await c.chat.completions.create(ask(p))).choices[0].message.content;
        let text = '';
        for await (const chunk of await c.chat.completions.create(ask(p, { stream: true }))) text += chunk.choices[0]?.delta?.content ?? '';
        return text;
      }));
      assert.deepEqual(together, alone);
      // Many streams at once, on both event loops: the engine posts tokens of several calls
      // while the loops deliver them (this is what once freed a call twice).
      const streams = await Promise.all([...prompts, ...prompts].map(async (p) => {
        let text = '';
        for await (const chunk of await c.chat.completions.create(ask(p, { stream: true }))) text += chunk.choices[0]?.delta?.content ?? '';
        return text;
      }));
      assert.deepEqual(streams, [...alone, ...alone]);
      // A client that goes away mid-stream: its slot is freed and the others still finish.
      const ac = new AbortController();
      const gone = (async () => {
        const s = await c.chat.completions.create(ask('The sun was hot', { max_tokens: 200 }), { signal: ac.signal });
        for await (const chunk of s) if (chunk.choices[0]?.delta?.content) ac.abort();
      })().catch(() => 'aborted');
      assert.equal(await gone, 'aborted');
      const after = await Promise.all(prompts.slice(0, 3).map(async (p) => (await c.chat.completions.create(ask(p))).choices[0].message.content));
      assert.deepEqual(after, alone.slice(0, 3));
      // One ledger line per request: 6 alone, 6 together, 12 streams, the abandoned one
      // (cancelled, or ok when the tiny model finished first), 3 after.
      const deadline = Date.now() + 5000;
      while (gw.ledger().length < 28 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      const lines = gw.ledger();
      assert.equal(lines.length, 28);
      assert.ok(lines.every((l) => l.backend === 'embedded' && ['ok', 'cancelled'].includes(l.status)));
    } finally {
      const { code } = await gw.stop();
      assert.equal(code, 0, `the gateway exited with ${code}; its last output:\n${gw.output().slice(-4000)}`);
    }
  });

  test('its logprobs drive confidence escalation', async () => {
    const cloud = await startFakeAnthropic({ key: KEYS.HL_TEST_ANTHROPIC_KEY, models: [MODELS.anthropic] });
    const gw = await startGateway({
      backends: [embedded, { name: 'cloud', kind: 'anthropic', location: 'cloud', base_url: cloud.url,
        api_key_env: 'HL_TEST_ANTHROPIC_KEY', model: MODELS.anthropic }],
      routes: [{ name: 'default', to: ['embedded'], escalate: { below: 0.999, to: ['cloud'] } }],
    });
    try {
      const c = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'unused', maxRetries: 0 });
      const { data, response } = await c.chat.completions
        .create({ model: 'auto', max_tokens: 16, temperature: 0, messages: [{ role: 'user', content: 'Once upon a time' }] })
        .withResponse();
      // A 260K-parameter model is never 99.9% sure of 16 tokens: the cloud answers.
      assert.equal(response.headers.get('x-hybridllm-backend'), 'cloud');
      assert.equal(data.model, MODELS.anthropic);
      assert.equal(posts(cloud).length, 1);
      const [local] = gw.ledger().filter((l) => l.backend === 'embedded');
      assert.equal(local.status, 'escalated');
      assert.ok(local.confidence > 0 && local.confidence < 0.999, `confidence ${local.confidence}`);
      // the engine was asked for 2 alternatives a token: the first token's margin is known,
      // and no token is likelier than the geometric mean's least
      assert.ok(local.confidence_margin >= 0 && local.confidence_margin <= 1, `margin ${local.confidence_margin}`);
      assert.ok(local.confidence_min > 0 && local.confidence_min <= local.confidence, `min ${local.confidence_min}`);
    } finally {
      await gw.stop();
      await cloud.close();
    }
  });

  describe('stops, top_logprobs, context', () => {
    let cloud, gw, a, c;
    before(async () => {
      cloud = await startFakeAnthropic({ key: KEYS.HL_TEST_ANTHROPIC_KEY, models: [MODELS.anthropic] });
      gw = await startGateway({
        backends: [
          { ...embedded, context_size: 32 },
          { name: 'cloud', kind: 'anthropic', location: 'cloud', base_url: cloud.url, api_key_env: 'HL_TEST_ANTHROPIC_KEY', model: MODELS.anthropic, max_retries: 0 },
        ],
        routes: [{ name: 'default', to: ['embedded', 'cloud'] }],
      });
      a = new Anthropic({ baseURL: gw.url, apiKey: 'unused', maxRetries: 0 });
      c = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'unused', maxRetries: 0 });
    });
    after(async () => {
      await gw?.stop();
      await cloud?.close();
    });

    test('Anthropic stop_sequences: stop_reason "stop_sequence" and the stop that matched', async () => {
      const ask = { model: 'auto', max_tokens: 20, temperature: 0, stop_sequences: ['nowhere', 'Lily'], messages: [{ role: 'user', content: 'Once upon a time' }] };
      const whole = await a.messages.create(ask);
      assert.equal(whole.content[0].text, ', there was a little girl named ');
      assert.equal(whole.stop_reason, 'stop_sequence');
      assert.equal(whole.stop_sequence, 'Lily');
      const streamed = await a.messages.stream(ask).finalMessage();
      assert.equal(streamed.content[0].text, ', there was a little girl named ');
      assert.equal(streamed.stop_reason, 'stop_sequence');
      assert.equal(streamed.stop_sequence, 'Lily');
    });

    test('top_logprobs are filled, most likely first', async () => {
      const lp = await c.chat.completions.create({ model: 'auto', max_tokens: 4, temperature: 0, logprobs: true, top_logprobs: 3,
        messages: [{ role: 'user', content: 'Once upon a time' }] });
      const content = lp.choices[0].logprobs.content;
      assert.equal(content.length, 4);
      for (const e of content) {
        assert.equal(e.top_logprobs.length, 3);
        // greedy: the token chosen is the most likely one
        assert.equal(e.top_logprobs[0].token, e.token);
        assert.ok(Math.abs(e.top_logprobs[0].logprob - e.logprob) < 1e-4);
        assert.ok(e.top_logprobs[0].logprob >= e.top_logprobs[1].logprob && e.top_logprobs[1].logprob >= e.top_logprobs[2].logprob);
      }
    });

    test('a prompt over the engine\'s context goes to the next candidate', async () => {
      const long = 'Once upon a time there was a little girl who loved to play in the park with her friends every day of the week';
      const { data, response } = await c.chat.completions.create({ model: 'auto', max_tokens: 5, messages: [{ role: 'user', content: long }] }).withResponse();
      assert.equal(response.headers.get('x-hybridllm-backend'), 'cloud');
      assert.equal(data.choices[0].message.content, `echo: ${long}`.split(' ').slice(0, 5).join(' '));
      const l = gw.ledger().filter((x) => x.request_id === response.headers.get('x-request-id'));
      assert.deepEqual(l.map((x) => [x.backend, x.status]), [['embedded', 'error'], ['cloud', 'ok']]);
    });
  });
});
