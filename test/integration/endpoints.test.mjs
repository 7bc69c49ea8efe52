// End-to-end tests of the endpoints beside chat (issue 12): legacy completions
// (POST /v1/completions), embeddings (POST /v1/embeddings), token counting
// (POST /v1/messages/count_tokens), GET /v1/models in Anthropic's shape, and anthropic-beta
// passed through to Anthropic backends only. Driven with the official clients (openai's
// completions.create and embeddings.create, @anthropic-ai/sdk's messages.countTokens and
// models.list) and LangChain's OpenAIEmbeddings, against the fake upstreams; checks the
// upstream bodies, the ledger lines and privacy (an input with an e-mail address reaches only
// the local backend).
//
//   HL_BIN=/path/to/hybridllm node --test test/integration/endpoints.test.mjs
import { describe, it as nodeIt, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';
import { OpenAIEmbeddings } from '@langchain/openai';
import { startFakeOpenAI, fakeEmbedding } from '../fake/openai.mjs';
import { startFakeAnthropic, inputTokens } from '../fake/anthropic.mjs';
import { waitFor } from './util.mjs';
import {
  HL_BIN, KEYS, MODELS, PRICES, ROUTES, LOCAL_HOURLY_COST_USD, gatewayBinaryMissing, posts, ledgerLine, assertCloseTo,
  startGateway, standardBackends,
} from './gateway.mjs';

const it = (name, fn) => nodeIt(name, { timeout: 30000 }, fn);
const missing = gatewayBinaryMissing() ?? (/reference-gateway\.mjs$/.test(HL_BIN) ? 'the reference gateway has none of these endpoints' : null);
if (missing) console.log(`# SKIP endpoints tests: ${missing}`);

const EMBED_CLOUD = 'text-embedding-3-small';
const EMBED_LOCAL = 'nomic-embed-text';
const EMBED_PRICE = 0.02; // USD per 1M input tokens

describe('endpoints beside chat', missing ? { skip: missing } : {}, () => {
  let fakes, gw;
  const localOpts = { models: [MODELS.local, EMBED_LOCAL] };
  before(async () => {
    fakes = {
      anthropic: await startFakeAnthropic({ key: KEYS.HL_TEST_ANTHROPIC_KEY, models: [MODELS.anthropic] }),
      openai: await startFakeOpenAI({ key: KEYS.HL_TEST_OPENAI_KEY, models: [MODELS.openai, EMBED_CLOUD] }),
      local: await startFakeOpenAI(localOpts),
    };
    const backends = standardBackends({ anthropicUrl: fakes.anthropic.url, openaiUrl: fakes.openai.url, localUrl: fakes.local.url });
    backends.find((b) => b.name === 'cloud-openai').models = [EMBED_CLOUD];
    backends.find((b) => b.name === 'local').models = [EMBED_LOCAL];
    gw = await startGateway({
      backends,
      routes: ROUTES,
      prices: [...PRICES, { model: EMBED_CLOUD, input_per_mtok: EMBED_PRICE, output_per_mtok: 0 }],
    });
  });
  after(async () => {
    await gw?.stop();
    await Promise.all(Object.values(fakes ?? {}).map((f) => f.close()));
  });
  beforeEach(() => Object.values(fakes).forEach((f) => f.reset()));

  const openai = () => new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 15000 });
  const anthropic = () => new Anthropic({ baseURL: gw.url, apiKey: 'unused', maxRetries: 0, timeout: 15000 });

  // ---------------------------------------------------------------- completions

  it('completions.create (not streamed) goes to a local server as sent and is recorded', async () => {
    const { data, response } = await openai().completions
      .create({ model: 'auto', prompt: 'What is 2+2?', max_tokens: 100 }).withResponse();
    assert.equal(data.object, 'text_completion');
    assert.match(data.id, /^cmpl-/);
    assert.equal(data.choices[0].text, 'echo: What is 2+2?');
    assert.equal(data.choices[0].finish_reason, 'stop');
    const up = posts(fakes.local);
    assert.equal(up.length, 1);
    assert.equal(up[0].path, '/v1/completions');
    assert.equal(up[0].body.prompt, 'What is 2+2?', 'the prompt as sent, no chat template');
    assert.equal(up[0].body.max_tokens, 100);
    assert.equal(up[0].body.messages, undefined);
    assert.deepEqual(data.usage, { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 });
    const l = await ledgerLine(gw, response.headers.get('x-hybridllm-request-id'));
    assert.equal(l.backend, 'local');
    assert.equal(l.status, 'ok');
    assert.equal(l.input_tokens, 3);
    assert.equal(l.output_tokens, 4);
    assertCloseTo(l.cost_usd, (l.latency_ms / 3600000) * LOCAL_HOURLY_COST_USD, 6e-7, 'local cost');
  });

  it('completions.create streams text_completion chunks with the final usage', async () => {
    const stream = await openai().completions.create({
      model: 'auto', prompt: 'one two three four five', max_tokens: 3, stream: true, stream_options: { include_usage: true },
    });
    let text = '';
    let usage = null;
    let finish = null;
    for await (const chunk of stream) {
      assert.equal(chunk.object, 'text_completion');
      if (chunk.choices.length) {
        text += chunk.choices[0].text;
        if (chunk.choices[0].finish_reason) finish = chunk.choices[0].finish_reason;
      }
      if (chunk.usage) usage = chunk.usage;
    }
    assert.equal(text, 'echo: one two');
    assert.equal(finish, 'length');
    assert.deepEqual(usage, { prompt_tokens: 5, completion_tokens: 3, total_tokens: 8 });
    const up = posts(fakes.local);
    assert.equal(up[0].path, '/v1/completions');
    assert.equal(up[0].body.stream, true);
    const l = gw.ledger().at(-1);
    assert.equal(l.stream, true);
    assert.equal(l.input_tokens, 5);
    assert.equal(l.output_tokens, 3);
  });

  it('completions to an Anthropic backend: the prompt as one user turn', async () => {
    const c = await openai().completions.create({ model: MODELS.anthropic, prompt: 'Say hi', max_tokens: 20 });
    assert.equal(c.choices[0].text, 'echo: Say hi');
    const up = posts(fakes.anthropic);
    assert.equal(up.length, 1);
    assert.equal(up[0].body.messages.length, 1);
    assert.equal(up[0].body.messages[0].role, 'user');
    assert.deepEqual(up[0].body.messages[0].content, [{ type: 'text', text: 'Say hi' }]);
    assert.equal(up[0].body.system, undefined, 'no system prompt added');
    assert.equal(up[0].body.max_tokens, 20);
  });

  it('completions: logprobs (an integer) come back in the legacy shape', async () => {
    const c = await openai().completions.create({ model: 'auto', prompt: 'a b', max_tokens: 5, logprobs: 1 });
    const lp = c.choices[0].logprobs;
    assert.ok(lp, 'logprobs present');
    assert.equal(lp.tokens.join(''), c.choices[0].text);
    assert.equal(lp.token_logprobs.length, lp.tokens.length);
    assert.ok(lp.token_logprobs.every((x) => typeof x === 'number' && x <= 0));
    assert.equal(posts(fakes.local)[0].body.logprobs, 1);
  });

  it('completions: bad input gets a 400 naming the parameter', async () => {
    const cases = [
      [{ model: 'auto', prompt: ['a', 'b'] }, 'prompt'],
      [{ model: 'auto', prompt: [1, 2, 3] }, 'prompt'],
      [{ model: 'auto', prompt: 'x', n: 2 }, 'n'],
      [{ model: 'auto', prompt: 'x', logprobs: 9 }, 'logprobs'],
      [{ model: 'auto' }, 'prompt'],
      [{ model: MODELS.anthropic, prompt: 'x', echo: true }, 'echo'],
      [{ model: MODELS.anthropic, prompt: 'x', suffix: 'y' }, 'suffix'],
    ];
    for (const [body, param] of cases) {
      await assert.rejects(openai().completions.create(body), (e) => {
        assert.equal(e.status, 400, JSON.stringify(body));
        assert.equal(e.param, param, JSON.stringify(body));
        assert.equal(e.type, 'invalid_request_error');
        return true;
      });
    }
    assert.equal(posts(fakes.anthropic).length, 0, 'nothing refused reached Anthropic');
  });

  // ---------------------------------------------------------------- embeddings

  it('embeddings.create (float) through a cloud backend: vectors, usage, ledger line with the embedding price', async () => {
    const { data: r, response } = await openai().embeddings
      .create({ model: EMBED_CLOUD, input: ['hello world', 'second text here'], encoding_format: 'float' }).withResponse();
    assert.equal(r.object, 'list');
    assert.equal(r.data.length, 2);
    assert.deepEqual(r.data[0].embedding, fakeEmbedding('hello world', 8));
    assert.deepEqual(r.data[1].embedding, fakeEmbedding('second text here', 8));
    assert.deepEqual(r.usage, { prompt_tokens: 5, total_tokens: 5 });
    const up = posts(fakes.openai);
    assert.equal(up.length, 1);
    assert.equal(up[0].path, '/v1/embeddings');
    assert.equal(up[0].headers.authorization, `Bearer ${KEYS.HL_TEST_OPENAI_KEY}`);
    assert.equal(response.headers.get('x-hybridllm-backend'), 'cloud-openai');
    const l = await ledgerLine(gw, response.headers.get('x-hybridllm-request-id'));
    assert.equal(l.backend, 'cloud-openai');
    assert.equal(l.model, EMBED_CLOUD);
    assert.equal(l.task_type, 'embedding');
    assert.equal(l.input_tokens, 5);
    assert.equal(l.output_tokens, 0);
    assertCloseTo(l.cost_usd, (5 * EMBED_PRICE) / 1e6, 1e-12, 'embedding cost');
  });

  it('embeddings.create (base64, the SDK default) decodes to the same float32 vectors', async () => {
    const r = await openai().embeddings.create({ model: EMBED_CLOUD, input: 'hello world', dimensions: 16 });
    assert.equal(r.data[0].embedding.length, 16);
    assert.deepEqual(r.data[0].embedding, fakeEmbedding('hello world', 16));
    assert.equal(posts(fakes.openai)[0].body.dimensions, 16);
    assert.equal(posts(fakes.openai)[0].body.encoding_format, undefined, 'floats asked upstream');
  });

  it('embeddings: an input with an e-mail address goes to the local backend only', async () => {
    const text = 'contact alice.42@example.com about the invoice';
    const { data: r, response } = await openai().embeddings.create({ model: 'auto', input: [text, 'plain text'], encoding_format: 'float' }).withResponse();
    assert.deepEqual(r.data[0].embedding, fakeEmbedding(text, 8));
    assert.equal(posts(fakes.local).length, 1);
    assert.equal(posts(fakes.openai).length + posts(fakes.anthropic).length, 0, 'no cloud fake saw it');
    const l = await ledgerLine(gw, response.headers.get('x-hybridllm-request-id'));
    assert.equal(l.backend, 'local');
    assert.equal(l.sensitive, true);
    // Named for the cloud model, it is refused rather than sent there.
    await assert.rejects(openai().embeddings.create({ model: EMBED_CLOUD, input: text }), (e) => e.status >= 400);
    assert.equal(posts(fakes.openai).length, 0, 'the cloud fake never saw the e-mail');
  });

  it('embeddings: bad input gets a 400 naming the parameter', async () => {
    const cases = [
      [{ model: EMBED_CLOUD, input: [] }, 'input'],
      [{ model: EMBED_CLOUD, input: [{ x: 1 }] }, 'input'],
      [{ model: EMBED_CLOUD, input: 'x', encoding_format: 'int8' }, 'encoding_format'],
      [{ model: EMBED_CLOUD, input: 'x', dimensions: 0 }, 'dimensions'],
    ];
    for (const [body, param] of cases) {
      await assert.rejects(openai().embeddings.create(body), (e) => {
        assert.equal(e.status, 400, JSON.stringify(body));
        assert.equal(e.param, param, JSON.stringify(body));
        return true;
      });
    }
  });

  it('embeddings: a backend without embeddings (501) falls to the next candidate', async () => {
    // The default route is [local, cloud-anthropic]: the local fake plays llama-server without --embeddings.
    localOpts.embeddings = false;
    try {
      await assert.rejects(openai().embeddings.create({ model: 'auto', input: 'hello' }), (e) => {
        assert.ok(e.status >= 400, String(e.status));
        return true;
      });
      assert.equal(posts(fakes.local).length, 1, 'the local server was asked');
      assert.equal(posts(fakes.anthropic).length, 0, 'Anthropic serves no embeddings and is not asked');
    } finally {
      delete localOpts.embeddings;
    }
  });

  it("LangChain's OpenAIEmbeddings works against the gateway", async () => {
    const emb = new OpenAIEmbeddings({ model: EMBED_CLOUD, apiKey: 'unused', configuration: { baseURL: `${gw.url}/v1` }, maxRetries: 0 });
    const vs = await emb.embedDocuments(['first doc', 'second doc']);
    assert.equal(vs.length, 2);
    assert.deepEqual(vs[0], fakeEmbedding('first doc', 8));
    const q = await emb.embedQuery('a query');
    assert.deepEqual(q, fakeEmbedding('a query', 8));
    assert.ok(posts(fakes.openai).every((r) => r.path === '/v1/embeddings'));
  });

  // ---------------------------------------------------------------- count_tokens, models, beta

  it('messages.countTokens: Anthropic backends count it themselves, anthropic-beta passed on', async () => {
    const params = { model: MODELS.anthropic, system: 'be brief', messages: [{ role: 'user', content: 'how many tokens is this' }] };
    const { data, response } = await anthropic().messages
      .countTokens(params, { headers: { 'anthropic-beta': 'token-counting-2024-11-01' } }).withResponse();
    assert.equal(data.input_tokens, inputTokens(params));
    assert.equal(response.headers.get('x-hybridllm-token-count'), 'upstream');
    const up = posts(fakes.anthropic);
    assert.equal(up.length, 1);
    assert.equal(up[0].path, '/v1/messages/count_tokens');
    assert.equal(up[0].headers['anthropic-beta'], 'token-counting-2024-11-01');
    assert.equal(up[0].body.max_tokens, undefined);
  });

  it('messages.countTokens without an Anthropic backend is estimated, and says so', async () => {
    const { data, response } = await anthropic().messages
      .countTokens({ model: 'auto', messages: [{ role: 'user', content: 'count these words please' }] }).withResponse();
    assert.equal(response.headers.get('x-hybridllm-token-count'), 'estimate');
    assert.ok(data.input_tokens > 0);
    assert.equal(posts(fakes.anthropic).length, 0);
  });

  it('messages.countTokens: a prompt with PII is never sent to the cloud to be counted', async () => {
    const { response } = await anthropic().messages
      .countTokens({ model: 'auto', messages: [{ role: 'user', content: 'mail bob.7@example.org now' }] }).withResponse();
    assert.notEqual(response.headers.get('x-hybridllm-token-count'), 'upstream');
    assert.equal(posts(fakes.anthropic).length, 0);
  });

  it('models.list (anthropic-version) answers in the Anthropic shape', async () => {
    const ids = [];
    for await (const m of anthropic().models.list()) {
      assert.equal(m.type, 'model');
      assert.equal(typeof m.display_name, 'string');
      assert.match(m.created_at, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/);
      ids.push(m.id);
    }
    assert.ok(ids.includes('auto') && ids.includes(MODELS.anthropic) && ids.includes('local'), ids.join(','));
    const res = await fetch(`${gw.url}/v1/models`, { headers: { 'anthropic-version': '2023-06-01' } });
    const body = await res.json();
    assert.equal(body.has_more, false);
    assert.equal(body.first_id, ids[0]);
    assert.equal(body.last_id, ids.at(-1));
    const plain = await (await fetch(`${gw.url}/v1/models`)).json();
    assert.equal(plain.object, 'list', 'without anthropic-version: the OpenAI shape');
  });

  it('anthropic-beta reaches Anthropic backends and never the others', async () => {
    const headers = { 'anthropic-beta': 'prompt-caching-2024-07-31' };
    await anthropic().messages.create({ model: MODELS.anthropic, max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] }, { headers });
    assert.equal(posts(fakes.anthropic)[0].headers['anthropic-beta'], 'prompt-caching-2024-07-31');
    await anthropic().messages.create({ model: 'auto', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] }, { headers });
    assert.equal(posts(fakes.local).length, 1);
    assert.equal(posts(fakes.local)[0].headers['anthropic-beta'], undefined);
  });
});

// The builtin engine: completions as raw text (no chat template), token counts with the
// model's own tokenizer, embeddings pooled from its hidden states (checked against llama.cpp's). Needs ../shared/models (skips without).
const MODELS_DIR = process.env.HL_MODELS_DIR ?? new URL('../../../shared/models', import.meta.url).pathname;
const STORIES = `${MODELS_DIR}/stories260K.gguf`;
const GREEDY_32 = ', there was a little girl named Lily. She loved to play outside in the park. One day, she saw';
const { existsSync } = await import('node:fs');
const noModel = missing ?? (existsSync(STORIES) ? null : `test models not found at ${MODELS_DIR}`);

describe('endpoints on the builtin engine', noModel ? { skip: noModel } : {}, () => {
  let gw;
  before(async () => {
    gw = await startGateway({
      backends: [{ name: 'embedded', kind: 'builtin', location: 'local', model_path: STORIES, model: 'stories260K', threads: 1 }],
      routes: [{ name: 'default', to: ['embedded'] }],
    });
  });
  after(async () => { await gw?.stop(); });
  const openai = () => new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 15000 });

  it('completions: the raw prompt, greedy text equal to llama.cpp, streamed and not', async () => {
    const c = await openai().completions.create({ model: 'auto', prompt: 'Once upon a time', max_tokens: 32, temperature: 0 });
    assert.equal(c.choices[0].text, GREEDY_32);
    assert.equal(c.choices[0].finish_reason, 'length');
    assert.deepEqual([c.usage.prompt_tokens, c.usage.completion_tokens], [5, 32]);
    let text = '';
    let usage = null;
    const s = await openai().completions.create({ model: 'auto', prompt: 'Once upon a time', max_tokens: 32, temperature: 0,
      stream: true, stream_options: { include_usage: true } });
    for await (const chunk of s) {
      text += chunk.choices[0]?.text ?? '';
      if (chunk.usage) usage = chunk.usage;
    }
    assert.equal(text, GREEDY_32);
    assert.equal(usage.completion_tokens, 32);
    await assert.rejects(openai().completions.create({ model: 'auto', prompt: 'x', echo: true }), (e) => e.status === 400 && e.param === 'echo');
  });

  it('count_tokens: the model tokenizer counts what a chat would send', async () => {
    const a = new Anthropic({ baseURL: gw.url, apiKey: 'unused', maxRetries: 0 });
    const { data, response } = await a.messages.countTokens({ model: 'auto', messages: [{ role: 'user', content: 'Once upon a time' }] }).withResponse();
    assert.equal(response.headers.get('x-hybridllm-token-count'), 'tokenizer');
    const chat = await openai().chat.completions.create({ model: 'auto', max_tokens: 1, messages: [{ role: 'user', content: 'Once upon a time' }] });
    assert.equal(data.input_tokens, chat.usage.prompt_tokens);
  });

  it('embeddings.create on the builtin engine: normalized vectors of the model dim, equal to llama.cpp, float and base64', async () => {
    const ref = embeddingRef();
    const texts = ref.filter((r) => r.pooling === 'mean').map((r) => r.text);
    const { data: f, response } = await openai().embeddings
      .create({ model: 'auto', input: texts, encoding_format: 'float' }).withResponse();
    assert.equal(response.headers.get('x-hybridllm-backend'), 'embedded');
    assert.equal(f.object, 'list');
    assert.equal(f.data.length, texts.length);
    const want = ref.filter((r) => r.pooling === 'mean');
    f.data.forEach((d, i) => {
      assert.equal(d.index, i);
      assert.equal(d.embedding.length, 64, 'stories260K: dim 64');
      assertCloseTo(Math.hypot(...d.embedding), 1, 1e-5, 'L2-normalized');
      assertSameVector(d.embedding, want[i].vec, `llama.cpp's mean vector of ${JSON.stringify(texts[i])}`);
    });
    const tokens = want.reduce((n, r) => n + r.tokens, 0);
    assert.deepEqual(f.usage, { prompt_tokens: tokens, total_tokens: tokens });
    const l = await ledgerLine(gw, response.headers.get('x-hybridllm-request-id'));
    assert.equal(l.backend, 'embedded');
    assert.equal(l.status, 'ok');
    assert.equal(l.task_type, 'embedding');
    assert.equal(l.input_tokens, tokens);
    // base64 (the SDK's default; it decodes): the same floats, bit for bit.
    const b = await openai().embeddings.create({ model: 'auto', input: texts });
    b.data.forEach((d, i) => assert.deepEqual(Array.from(d.embedding), f.data[i].embedding.map(Math.fround)));
    // Token ids as they are: BOS (1) and the text's ids give the text's vector.
    const raw = await fetch(`${gw.url}/v1/embeddings`, { method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'auto', input: [[1, 2, 3], [1, 5]] }) });
    const t = await raw.json();
    assert.equal(raw.status, 200, JSON.stringify(t));
    assert.equal(t.data.length, 2);
    assert.deepEqual(t.usage, { prompt_tokens: 5, total_tokens: 5 });
  });

  it('embeddings on the builtin engine: a client gone cancels the job (ledger: cancelled), the engine goes on serving', async () => {
    // About 8 s of work on one thread (2000 inputs of ~100 tokens): long past the abort.
    const inputs = Array.from({ length: 2000 }, (_, i) => `Lily went to the park number ${i} and saw a big tree. `.repeat(4));
    const ac = new AbortController();
    const p = fetch(`${gw.url}/v1/embeddings`, { method: 'POST', signal: ac.signal,
      headers: { 'content-type': 'application/json', 'x-request-id': 'emb-gone-1' },
      body: JSON.stringify({ model: 'auto', input: inputs }) }).catch((e) => e.name);
    await new Promise((r) => setTimeout(r, 100));
    ac.abort();
    assert.equal(await p, 'AbortError');
    await waitFor(() => gw.ledger().some((l) => l.client_request_id === 'emb-gone-1'), 10000, 'the cancelled line');
    const l = gw.ledger().find((x) => x.client_request_id === 'emb-gone-1');
    assert.equal(l.status, 'cancelled');
    assert.equal(l.backend, 'embedded');
    const c = await openai().completions.create({ model: 'auto', prompt: 'Once upon a time', max_tokens: 32, temperature: 0 });
    assert.equal(c.choices[0].text, GREEDY_32);
  });

  it('embeddings on the builtin engine: dimensions it cannot give, and a token id outside the vocabulary, get a 400', async () => {
    await assert.rejects(openai().embeddings.create({ model: 'auto', input: 'hello', dimensions: 16 }), (e) => {
      assert.equal(e.status, 400);
      assert.equal(e.param, 'dimensions');
      return true;
    });
    await assert.rejects(openai().embeddings.create({ model: 'auto', input: [1, 99999] }), (e) => {
      assert.equal(e.status, 400);
      assert.equal(e.param, 'input');
      return true;
    });
  });
});

// llama.cpp's vectors for stories260K (test/engine/data/stories260K_embeddings.tsv; how they
// were made is in its header).
function embeddingRef() {
  const text = fs.readFileSync(new URL('../engine/data/stories260K_embeddings.tsv', import.meta.url), 'utf8');
  return text.split('\n').filter((l) => l && !l.startsWith('#')).map((l) => {
    const [pooling, tokens, t, vec] = l.split('\t');
    return { pooling, tokens: Number(tokens), text: t, vec: vec.split(',').map(Number) };
  });
}

// Within 1e-3 in every component (what the engine test allows; see test_engine.c).
function assertSameVector(got, want, what) {
  assert.equal(got.length, want.length, what);
  const worst = Math.max(...got.map((x, i) => Math.abs(x - want[i])));
  assert.ok(worst < 1e-3, `${what}: max |diff| ${worst}`);
}

// Privacy with a cloud and a builtin backend: a text with an e-mail address is embedded by the
// builtin engine only (with the backend's `pooling: last`), a plain one goes to the cloud.
describe('embeddings: cloud and builtin, privacy', noModel ? { skip: noModel } : {}, () => {
  let gw, cloud;
  before(async () => {
    cloud = await startFakeOpenAI({ key: KEYS.HL_TEST_OPENAI_KEY, models: [EMBED_CLOUD] });
    const backends = standardBackends({ anthropicUrl: 'http://127.0.0.1:9', openaiUrl: cloud.url, localUrl: 'http://127.0.0.1:9' })
      .filter((b) => b.name === 'cloud-openai');
    backends[0].model = EMBED_CLOUD;
    backends.push({ name: 'embedded', kind: 'builtin', location: 'local', model_path: STORIES, model: 'stories260K', threads: 1,
      pooling: 'last' });
    gw = await startGateway({
      backends,
      routes: [{ name: 'privacy', when: { sensitive: true }, to: ['embedded'] }, { name: 'default', to: ['cloud-openai'] }],
      prices: [{ model: EMBED_CLOUD, input_per_mtok: EMBED_PRICE, output_per_mtok: 0 }],
    });
  });
  after(async () => {
    await gw?.stop();
    await cloud?.close();
  });
  const openai = () => new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 15000 });

  it('an input with an e-mail address is embedded by the builtin engine, never sent to the cloud', async () => {
    const text = 'Once upon a time bob.7@example.org wrote';
    const { data: r, response } = await openai().embeddings.create({ model: 'auto', input: text, encoding_format: 'float' }).withResponse();
    assert.equal(response.headers.get('x-hybridllm-backend'), 'embedded');
    assert.match(response.headers.get('x-hybridllm-pii-detected') ?? '', /email/);
    assert.equal(r.data[0].embedding.length, 64);
    assertCloseTo(Math.hypot(...r.data[0].embedding), 1, 1e-5, 'L2-normalized');
    assert.equal(posts(cloud).length, 0, 'the cloud never saw it');
    // A plain text goes to the cloud; the builtin one pools the last token as configured.
    const p = await openai().embeddings.create({ model: 'auto', input: 'plain text' });
    assert.equal(posts(cloud).length, 1);
    assert.equal(p.data.length, 1);
    const last = embeddingRef().find((x) => x.pooling === 'last');
    const { data: l } = await openai().embeddings
      .create({ model: 'auto', input: last.text, encoding_format: 'float' }, { headers: { 'x-hybridllm-pii': 'true' } }).withResponse();
    assertSameVector(l.data[0].embedding, last.vec, `llama.cpp's last-token vector of ${JSON.stringify(last.text)}`);
  });
});
