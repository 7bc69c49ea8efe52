// Who a request is, and who may see what (issue 10, items 3-6, 14): the gateway's own request
// ids key the ledger whatever x-request-id a client sends; client keys decide the tenant;
// broken key settings stop the start; credentials in backend URLs are never shown; a final
// 429 passes the upstream's retry-after on; /metrics and /readyz can require a key.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startGateway, KEYS, MODELS, HL_BIN, toYAML, gatewayBinaryMissing } from './gateway.mjs';
import { startFakeOpenAI } from '../fake/openai.mjs';
import { freePort, rawHttp, waitFor } from './util.mjs';

const skip = gatewayBinaryMissing();
const ask = { model: 'auto', messages: [{ role: 'user', content: 'hello there' }] };
const post = (url, body, headers = {}) =>
  fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });

// Runs `hybridllm serve` on a config until it exits (or 5 s pass); returns {code, out}.
async function serveOnce(config, env = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hltest-id-'));
  const file = path.join(dir, 'c.yaml');
  fs.writeFileSync(file, toYAML({ ledger: { path: path.join(dir, 'l.jsonl') }, ...config }));
  const proc = spawn(HL_BIN, ['serve', '--config', file], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout.on('data', (d) => (out += d));
  proc.stderr.on('data', (d) => (out += d));
  const timer = setTimeout(() => proc.kill('SIGTERM'), 5000);
  const code = await new Promise((r) => proc.on('exit', (c) => r(c)));
  clearTimeout(timer);
  fs.rmSync(dir, { recursive: true, force: true });
  return { code, out };
}

describe('request identity and tenancy', { skip: skip ?? false }, () => {
  let local, gw;
  before(async () => {
    local = await startFakeOpenAI({ models: [MODELS.local] });
    gw = await startGateway({
      backends: [{ name: 'local', kind: 'openai', location: 'local', base_url: `${local.url}/v1`, model: MODELS.local, max_retries: 0 }],
      routes: [{ name: 'default', to: ['local'] }],
      extraServer: { api_keys_env: 'HL_TEST_CLIENT_KEYS', status_requires_key: true },
      env: { ...KEYS, HL_TEST_CLIENT_KEYS: 'team-a:key-a,team-b:key-b' },
    });
  });
  after(async () => {
    await gw?.stop();
    await local?.close();
  });

  it('a reused x-request-id gives one ledger line per request, each keyed by the gateway', async () => {
    const ids = [];
    for (let i = 0; i < 5; i++) {
      const r = await post(gw.url, ask, { authorization: 'Bearer key-a', 'x-request-id': 'client-id-1' });
      assert.equal(r.status, 200);
      await r.json();
      assert.equal(r.headers.get('x-request-id'), 'client-id-1', 'the client id is echoed');
      const own = r.headers.get('x-hybridllm-request-id');
      assert.match(own, /^req_[0-9a-f]{24}$/);
      ids.push(own);
    }
    assert.equal(new Set(ids).size, 5);
    await waitFor(() => gw.ledger().filter((l) => l.client_request_id === 'client-id-1').length === 5, 5000, 'five lines');
    const lines = gw.ledger().filter((l) => l.client_request_id === 'client-id-1');
    assert.deepEqual(lines.map((l) => l.request_id).sort(), [...ids].sort());
    assert.ok(!gw.output().includes('client-id-1'), 'no log line names the client id');
    const none = await post(gw.url, ask, { authorization: 'Bearer key-a' });
    await none.json();
    assert.equal(none.headers.get('x-request-id'), none.headers.get('x-hybridllm-request-id'));
  });

  it('the key decides the tenant; x-hybridllm-tenant cannot name another', async () => {
    const r = await post(gw.url, ask, { 'x-api-key': 'key-a', 'x-hybridllm-tenant': 'team-b' });
    await r.json();
    const own = r.headers.get('x-hybridllm-request-id');
    await waitFor(() => gw.ledger().some((l) => l.request_id === own), 5000, 'its line');
    assert.equal(gw.ledger().find((l) => l.request_id === own).tenant, 'team-a');
  });

  it('/metrics and /readyz need a key when status_requires_key is on; /healthz does not', async () => {
    for (const p of ['/metrics', '/readyz']) {
      const r = await fetch(`${gw.url}${p}`);
      assert.equal(r.status, 401, p);
      assert.equal((await r.json()).error.code, 'invalid_api_key');
      const ok = await fetch(`${gw.url}${p}`, { headers: { authorization: 'Bearer key-b' } });
      await ok.text();
      assert.equal(ok.status, 200, p);
    }
    const h = await fetch(`${gw.url}/healthz`);
    await h.text();
    assert.equal(h.status, 200);
  });
});

describe('start-up checks', { skip: skip ?? false }, () => {
  const backend = (extra = {}) => ({ name: 'local', kind: 'openai', location: 'local', base_url: 'http://127.0.0.1:9/v1', model: 'm', ...extra });

  it('an empty client key entry stops the start, naming the entry and not the keys', async () => {
    const port = await freePort();
    const { code, out } = await serveOnce(
      { server: { listen: `127.0.0.1:${port}`, api_keys_env: 'HL_TEST_CLIENT_KEYS' }, backends: [backend()], routes: [{ name: 'd', to: ['local'] }] },
      { HL_TEST_CLIENT_KEYS: 'team-a:secret-a,team-b:' },
    );
    assert.notEqual(code, 0);
    assert.match(out, /HL_TEST_CLIENT_KEYS: entry 2 \('team-b:\.\.\.'\) has an empty key/);
    assert.ok(!out.includes('secret-a'));
  });

  it('a backend key with a control character stops the start', async () => {
    const port = await freePort();
    const { code, out } = await serveOnce(
      { server: { listen: `127.0.0.1:${port}` }, backends: [backend({ api_key_env: 'HL_TEST_BAD_KEY' })], routes: [{ name: 'd', to: ['local'] }] },
      { HL_TEST_BAD_KEY: 'sk-good-part\n' },
    );
    assert.notEqual(code, 0);
    assert.match(out, /backend local: the API key in HL_TEST_BAD_KEY contains a control character/);
    assert.ok(!out.includes('sk-good-part'));
  });

  it('listening beyond loopback without client keys is warned about', async () => {
    const port = await freePort();
    const { out } = await serveOnce({ server: { listen: `0.0.0.0:${port}` }, backends: [backend()], routes: [{ name: 'd', to: ['local'] }] });
    assert.match(out, /listening on 0\.0\.0\.0:\d+ without client keys/);
  });
});

describe('credentials in backend URLs are masked', { skip: skip ?? false }, () => {
  let local, gw;
  before(async () => {
    local = await startFakeOpenAI({ models: [MODELS.local] });
    const u = new URL(local.url);
    gw = await startGateway({
      backends: [{ name: 'local', kind: 'openai', location: 'local', base_url: `http://alice:hunter2@${u.host}/v1?token=tok-secret-9&region=eu`, model: MODELS.local }],
      routes: [{ name: 'default', to: ['local'] }],
    });
  });
  after(async () => {
    await gw?.stop();
    await local?.close();
  });

  it('in /readyz and in the log', async () => {
    const r = await (await fetch(`${gw.url}/readyz`)).json();
    const b = r.backends[0];
    assert.match(b.base_url, /^http:\/\/\*\*\*@127\.0\.0\.1:\d+\/v1\?token=\*\*\*&region=eu$/);
    const shown = JSON.stringify(r) + gw.output();
    for (const secret of ['hunter2', 'alice', 'tok-secret-9']) assert.ok(!shown.includes(secret), `${secret} shown`);
  });
});

describe('a rate limit that stays', { skip: skip ?? false }, () => {
  let cloud, gw;
  before(async () => {
    cloud = await startFakeOpenAI({ key: KEYS.HL_TEST_OPENAI_KEY, models: [MODELS.openai] });
    gw = await startGateway({
      backends: [{ name: 'cloud', kind: 'openai', location: 'cloud', base_url: `${cloud.url}/v1`, api_key_env: 'HL_TEST_OPENAI_KEY', model: MODELS.openai, max_retries: 0 }],
      routes: [{ name: 'default', to: ['cloud'] }],
    });
  });
  after(async () => {
    await gw?.stop();
    await cloud?.close();
  });

  it("passes the upstream's retry-after on to the client", async () => {
    cloud.control({ status: 429, count: 1, retry_after: 7 });
    const r = await post(gw.url, ask);
    assert.equal(r.status, 429);
    await r.json();
    assert.equal(r.headers.get('retry-after'), '7');
    assert.equal(r.headers.get('retry-after-ms'), '7000');
  });

  it('a 529 status line reads "529 Overloaded"', async () => {
    cloud.control({ status: 529, count: 1 });
    const res = await rawHttp(gw.port, `POST /v1/messages HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\nanthropic-version: 2023-06-01\r\nconnection: close\r\ncontent-length: ${JSON.stringify({ model: 'auto', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] }).length}\r\n\r\n${JSON.stringify({ model: 'auto', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] })}`);
    const statusLine = res.raw.split('\r\n')[0];
    assert.match(statusLine, /^HTTP\/1\.1 529 Overloaded$/);
  });
});
