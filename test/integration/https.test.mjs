// The TLS path every real cloud call takes: the fakes speak https:// with a certificate from a
// throwaway CA made here with openssl (../fake/tls.mjs), the gateway trusts it through
// upstream.ca_file / a backend's ca_file, and the streaming, cancellation, retry, mid-stream cut
// and SIGTERM scenarios of gateway.test.mjs and resilience.test.mjs run over it. Then: no trust
// without the CA (verification is on), a backend's ca_file over the global one, HTTPS_PROXY and
// NO_PROXY through a local CONNECT proxy (../fake/proxy.mjs), http_proxy for plain http://, and
// a cloud backend on http:// outside loopback refused at start.
// Skipped without the gateway binary or the openssl command.
import { after, before, describe, it as nodeIt } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { checkLedger, fakeUsage, gatewayBinaryMissing, KEYS, ledgerLine, MODELS, PRICES, posts, startGateway, startStack } from './gateway.mjs';
import { parseSSE, waitFor } from './util.mjs';
import { makeTestPKI, opensslMissing } from '../fake/tls.mjs';
import { startFakeOpenAI } from '../fake/openai.mjs';
import { startFakeAnthropic } from '../fake/anthropic.mjs';
import { startProxy } from '../fake/proxy.mjs';

const it = (name, fn) => nodeIt(name, { timeout: 30000 }, fn);
const skip = gatewayBinaryMissing() ?? opensslMissing();
if (skip) console.log(`# SKIP https tests: ${skip}`);
const suiteOpts = skip ? { skip } : {};

// The test runner's own proxy settings must not leak into gateways that expect none.
const PROXY_VARS = ['http_proxy', 'HTTP_PROXY', 'https_proxy', 'HTTPS_PROXY', 'all_proxy', 'ALL_PROXY', 'no_proxy', 'NO_PROXY'];
const user = (content) => [{ role: 'user', content }];
const client = (gw) => new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 15000 });

async function rawStream(gw, body) {
  const res = await fetch(`${gw.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ stream: true, ...body }),
    signal: AbortSignal.timeout(15000),
  });
  let text = '';
  try {
    const dec = new TextDecoder();
    for await (const chunk of res.body) text += dec.decode(chunk, { stream: true });
  } catch {}
  return { status: res.status, headers: res.headers, text };
}

async function streamText(api, body) {
  const { data, response } = await api.chat.completions.create({ stream: true, stream_options: { include_usage: true }, ...body }).withResponse();
  let text = '';
  for await (const ch of data) text += ch.choices[0]?.delta?.content ?? '';
  return { text, rid: response.headers.get('x-request-id'), backend: response.headers.get('x-hybridllm-backend') };
}

let pki = null; // shared by every suite; made once
let otherCA = null; // a second CA that signed nothing the fakes present
before(() => {
  if (skip) return;
  pki = makeTestPKI();
  otherCA = makeTestPKI({ caName: 'some other CA', withServer: false });
});
after(() => {
  pki?.cleanup();
  otherCA?.cleanup();
});

describe('https upstreams: the request life over TLS', suiteOpts, () => {
  let stack, gw, api, stopped = false;
  before(async () => {
    stack = await startStack({
      tls: pki,
      backendOverrides: { 'cloud-openai': { max_retries: 2, retry_base_ms: 20, retry_max_ms: 100 } },
      unsetEnv: PROXY_VARS,
    });
    gw = stack.gw;
    api = client(gw);
  });
  after(async () => {
    if (!stopped) await stack?.close();
  });

  it('the fakes speak https:// only, and the local backend was probed over it (ready)', async () => {
    for (const f of [stack.openai, stack.anthropic, stack.local]) assert.match(f.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    const plain = await fetch(stack.openai.url.replace('https:', 'http:') + '/v1/models').then(() => 'answered', () => 'refused');
    assert.equal(plain, 'refused', 'a TLS server does not answer plain HTTP');
    const ready = await waitFor(async () => {
      const r = await (await fetch(`${gw.url}/readyz`)).json();
      return r.backends?.find((b) => b.name === 'local')?.ready ? r : null;
    }, 5000, 'the local https backend to be ready');
    assert.ok(ready);
    assert.ok(stack.local.requests.some((r) => r.method === 'GET' && r.tls), 'the probe (GET /v1/models) came over TLS');
  });

  for (const c of [
    { model: 'cloud-openai', fake: 'openai' },
    { model: 'cloud-anthropic', fake: 'anthropic' },
    { model: 'local', fake: 'local' },
  ]) {
    it(`${c.model}: a whole answer and a stream, over TLS, each one ok ledger line with the upstream's usage`, async () => {
      stack.resetFakes();
      const { data, response } = await api.chat.completions.create({ model: c.model, messages: user('hello over tls') }).withResponse();
      assert.equal(data.choices[0].message.content, 'echo: hello over tls');
      const rec = posts(stack[c.fake])[0];
      assert.equal(rec.tls, true, 'the upstream call was encrypted');
      checkLedger(await ledgerLine(gw, response.headers.get('x-request-id')), {
        requestId: response.headers.get('x-request-id'), backend: c.model, stream: false, usage: fakeUsage(rec),
      });
      const s = await streamText(api, { model: c.model, messages: user('one two three four five') });
      assert.equal(s.text, 'echo: one two three four five');
      const srec = posts(stack[c.fake])[1];
      assert.equal(srec.tls, true);
      checkLedger(await ledgerLine(gw, s.rid), { requestId: s.rid, backend: c.model, stream: true, usage: fakeUsage(srec) });
    });
  }

  it('a 503 is retried over TLS and the retry succeeds; one ledger line per attempt', async () => {
    stack.resetFakes();
    stack.openai.control({ status: 503, count: 2 });
    const { data, response } = await api.chat.completions.create({ model: 'cloud-openai', messages: user('try again') }).withResponse();
    assert.equal(data.choices[0].message.content, 'echo: try again');
    assert.equal(posts(stack.openai).length, 3);
    const rid = response.headers.get('x-request-id');
    const lines = await waitFor(() => {
      const l = gw.ledger().filter((x) => x.request_id === rid);
      return l.length >= 3 ? l : null;
    }, 5000, '3 ledger lines');
    assert.deepEqual(lines.map((l) => [l.attempt, l.status, l.http_status]), [[1, 'error', 503], [2, 'error', 503], [3, 'ok', 200]]);
  });

  for (const c of [{ model: 'cloud-anthropic', fake: 'anthropic' }, { model: 'cloud-openai', fake: 'openai' }]) {
    it(`${c.model}: the client goes away mid-stream: the TLS upstream call is closed, ledger "cancelled"`, async () => {
      stack.resetFakes();
      const fake = stack[c.fake];
      fake.control({ chunk_delay_ms: 200 });
      const ac = new AbortController();
      const { data: stream, response } = await api.chat.completions
        .create({ model: c.model, stream: true, messages: user('one two three four five six seven eight nine ten') }, { signal: ac.signal })
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
      await waitFor(() => rec.closed, 2000, 'the fake to see its TLS connection closed');
      assert.equal(rec.finished, false);
      const line = await ledgerLine(gw, rid);
      assert.equal(line.status, 'cancelled', JSON.stringify(line));
      assert.equal(line.stream, true);
    });
  }

  for (const c of [
    { model: 'cloud-openai', fake: 'openai', control: { disconnect_after_chunks: 3, chunk_delay_ms: 20 } },
    { model: 'cloud-anthropic', fake: 'anthropic', control: { disconnect_after_chunks: 5, chunk_delay_ms: 20 } },
  ]) {
    it(`${c.model}: the TLS upstream is cut mid-stream: no clean end for the client, ledger not "ok", then serving again`, async () => {
      stack.resetFakes();
      stack[c.fake].control(c.control);
      const r = await rawStream(gw, { model: c.model, stream_options: { include_usage: true }, messages: user('a b c d e f g h') });
      assert.equal(r.status, 200, 'headers were already sent');
      const errorFrame = parseSSE(r.text).some((e) => {
        try {
          return 'error' in JSON.parse(e.data);
        } catch {
          return false;
        }
      });
      assert.ok(!r.text.includes('data: [DONE]') || errorFrame, `no clean end: ${JSON.stringify(r.text.slice(-200))}`);
      assert.ok(posts(stack[c.fake])[0].disconnected, 'the fake cut the connection');
      const line = await ledgerLine(gw, r.headers.get('x-request-id'));
      assert.notEqual(line.status, 'ok', JSON.stringify(line));
      stack.resetFakes();
      const ok = await api.chat.completions.create({ model: c.model, messages: user('after the cut') });
      assert.equal(ok.choices[0].message.content, 'echo: after the cut');
    });
  }

  it('SIGTERM: an in-flight https call completes, then the gateway exits 0', async () => {
    stack.resetFakes();
    stack.openai.control({ delay_ms: 400 });
    const inflight = api.chat.completions.create({ model: 'cloud-openai', messages: user('finish me') });
    await waitFor(() => posts(stack.openai).length === 1, 3000, 'the request to reach the upstream');
    gw.proc.kill('SIGTERM');
    const r = await inflight;
    assert.equal(r.choices[0].message.content, 'echo: finish me');
    const res = await gw.waitForExit(10000);
    stopped = true;
    await stack.close();
    assert.ok(!res.timedOut, 'exited within 10 s of SIGTERM');
    assert.equal(res.code, 0, `exit code (output tail: ${gw.output().slice(-2000)})`);
  });
});

describe('https upstreams: whom the gateway trusts', suiteOpts, () => {
  let openai, anthropic;
  before(async () => {
    openai = await startFakeOpenAI({ key: KEYS.HL_TEST_OPENAI_KEY, tls: pki.server });
    anthropic = await startFakeAnthropic({ key: KEYS.HL_TEST_ANTHROPIC_KEY, tls: pki.server });
  });
  after(async () => {
    await openai?.close();
    await anthropic?.close();
  });
  const backends = (extra = {}) => [
    { name: 'cloud-openai', kind: 'openai', location: 'cloud', base_url: `${openai.url}/v1`, api_key_env: 'HL_TEST_OPENAI_KEY', model: MODELS.openai, max_retries: 0, ...(extra.openai ?? {}) },
    { name: 'cloud-anthropic', kind: 'anthropic', location: 'cloud', base_url: anthropic.url, api_key_env: 'HL_TEST_ANTHROPIC_KEY', model: MODELS.anthropic, max_retries: 0 },
  ];
  const routes = [{ name: 'default', to: ['cloud-openai'] }];

  async function refused(gw, model, fake) {
    const before = fake.tlsErrors;
    const err = await client(gw).chat.completions.create({ model, messages: user('secret prompt') }).withResponse().then(() => null, (e) => e);
    assert.ok(err, `${model}: a server signed by an untrusted CA must not be answered`);
    assert.ok(err.status >= 500, `a 5xx, got ${err.status}`);
    assert.equal(posts(fake).length, 0, 'nothing (no key, no prompt) reached the server');
    assert.ok(fake.tlsErrors > before, 'the handshake failed');
    const rid = err.headers?.get?.('x-request-id') ?? err.headers?.['x-request-id'];
    const line = await ledgerLine(gw, rid);
    assert.equal(line.status, 'error');
    assert.match(String(line.error), /certificate|SSL|TLS/i, JSON.stringify(line));
  }

  it('without a ca_file the system CAs are used: the test CA is not trusted, the call fails', async () => {
    openai.reset();
    const gw = await startGateway({ backends: backends(), routes, prices: PRICES, unsetEnv: PROXY_VARS });
    try {
      await refused(gw, 'cloud-openai', openai);
    } finally {
      await gw.stop();
    }
  });

  it("a backend's ca_file wins over upstream.ca_file", async () => {
    openai.reset();
    anthropic.reset();
    const gw = await startGateway({
      backends: backends({ openai: { ca_file: pki.caFile } }),
      routes,
      prices: PRICES,
      upstream: { ca_file: otherCA.caFile },
      unsetEnv: PROXY_VARS,
    });
    try {
      const ok = await client(gw).chat.completions.create({ model: 'cloud-openai', messages: user('trusted') });
      assert.equal(ok.choices[0].message.content, 'echo: trusted');
      await refused(gw, 'cloud-anthropic', anthropic);
    } finally {
      await gw.stop();
    }
  });

  it('a cloud backend on http:// outside loopback is refused at start, naming file, line and key', async () => {
    const err = await startGateway({
      backends: [{ name: 'c', kind: 'openai', location: 'cloud', base_url: 'http://api.example.invalid/v1', model: 'gpt-4o' }],
      routes: [{ name: 'r', to: ['c'] }],
      unsetEnv: PROXY_VARS,
      startTimeoutMs: 5000,
    }).then(() => null, (e) => e);
    assert.ok(err, 'the gateway must not start');
    assert.match(err.message, /exited before becoming healthy/);
    assert.match(err.message, /hybridllm\.yaml:\d+: backends\[0\]\.base_url: a cloud backend's http:\/\/ URL outside loopback/);
  });
});

describe('proxies from the environment', suiteOpts, () => {
  let proxy, viaProxy, direct, plain;
  before(async () => {
    proxy = await startProxy({ hosts: { 'upstream.hltest': '127.0.0.1' } });
    // Named upstream.hltest: only the proxy can resolve it, so a call that skips the proxy fails.
    viaProxy = await startFakeOpenAI({ key: KEYS.HL_TEST_OPENAI_KEY, tls: pki.server, hostname: 'upstream.hltest' });
    direct = await startFakeAnthropic({ key: KEYS.HL_TEST_ANTHROPIC_KEY, tls: pki.server });
    plain = await startFakeOpenAI({ hostname: 'upstream.hltest' });
  });
  after(async () => {
    await proxy?.close();
    for (const f of [viaProxy, direct, plain]) await f?.close();
  });

  it('HTTPS_PROXY tunnels https:// calls (CONNECT), NO_PROXY hosts go direct, http_proxy carries plain http://', async () => {
    const gw = await startGateway({
      backends: [
        { name: 'via-proxy', kind: 'openai', location: 'cloud', base_url: `${viaProxy.url}/v1`, api_key_env: 'HL_TEST_OPENAI_KEY', model: MODELS.openai, max_retries: 0 },
        { name: 'direct', kind: 'anthropic', location: 'cloud', base_url: direct.url, api_key_env: 'HL_TEST_ANTHROPIC_KEY', model: MODELS.anthropic, max_retries: 0 },
        { name: 'local', kind: 'openai', location: 'local', base_url: `${plain.url}/v1`, model: MODELS.local, max_retries: 0 },
      ],
      routes: [{ name: 'default', to: ['via-proxy'] }],
      upstream: { ca_file: pki.caFile },
      unsetEnv: PROXY_VARS.filter((v) => !['HTTPS_PROXY', 'http_proxy', 'NO_PROXY'].includes(v)), // applied after env
      env: { ...KEYS, HTTPS_PROXY: proxy.url, http_proxy: proxy.url, NO_PROXY: '127.0.0.1' },
    });
    try {
      const api = client(gw);
      const a = await api.chat.completions.create({ model: 'via-proxy', messages: user('through the tunnel') });
      assert.equal(a.choices[0].message.content, 'echo: through the tunnel');
      const s = await streamText(api, { model: 'via-proxy', messages: user('streamed through the tunnel') });
      assert.equal(s.text, 'echo: streamed through the tunnel');
      assert.ok(posts(viaProxy).every((r) => r.tls), 'end-to-end TLS inside the tunnel');
      assert.ok(proxy.connects.some((c) => c.host === 'upstream.hltest' && c.port === viaProxy.port), `CONNECT upstream.hltest: ${JSON.stringify(proxy.connects)}`);

      const d = await api.chat.completions.create({ model: 'direct', messages: user('no proxy for me') });
      assert.equal(d.choices[0].message.content, 'echo: no proxy for me');
      assert.ok(!proxy.connects.some((c) => c.port === direct.port), 'NO_PROXY: 127.0.0.1 went direct');

      // The local backend at http://upstream.hltest:PORT: reachable through the proxy only.
      const l = await api.chat.completions.create({ model: 'local', messages: user('plain through the proxy') });
      assert.equal(l.choices[0].message.content, 'echo: plain through the proxy');
      assert.ok(proxy.forwards.some((f) => f.method === 'POST' && f.url === `${plain.url}/v1/chat/completions`), `forwarded: ${JSON.stringify(proxy.forwards)}`);
    } finally {
      await gw.stop();
    }
  });
});
