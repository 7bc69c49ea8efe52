// `hybridllm pull` and `hybridllm models` against a fake of the Hugging Face Hub and its CDN
// (test/fake/hub.mjs, HF_ENDPOINT pointing at it; nothing comes from the internet): choosing
// the file, the redirect to another host (which never sees the token), resuming with Range,
// a server that ignores Range, a transfer cut short, a hash mismatch, gated repositories with
// and without a token; then the shipped config serving the pulled model through its builtin
// backend with nothing else running.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import OpenAI from 'openai';
import { startFakeHub, tinyGGUF } from '../fake/hub.mjs';
import { HL_BIN, ROOT, gatewayBinaryMissing } from './gateway.mjs';
import { freePort, waitFor } from './util.mjs';

const TOKEN = 'hf_secret_0123456789abcdef';
const MODELS_DIR = process.env.HL_MODELS_DIR ?? path.join(ROOT, '..', 'shared', 'models');
const STORIES = path.join(MODELS_DIR, 'stories260K.gguf');

function run(args, { env = {}, timeoutMs = 30000 } = {}) {
  return new Promise((resolve) => {
    const childEnv = { ...process.env, ...env };
    for (const k of ['HF_TOKEN', 'HUGGING_FACE_HUB_TOKEN', 'HYBRIDLLM_MODELS_DIR']) if (!(k in env)) delete childEnv[k];
    const p = spawn(HL_BIN, args, { env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '', stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    const t = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('exit', (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr });
    });
  });
}

describe('hybridllm pull', { skip: gatewayBinaryMissing() ?? false }, () => {
  const q8 = tinyGGUF({ arch: 'qwen2', fileType: 7, padding: 3 << 20 });
  const q4 = tinyGGUF({ arch: 'qwen2', fileType: 15, padding: 1 << 20 });
  const gated = tinyGGUF({ arch: 'llama', fileType: 2, padding: 4096 });
  const stories = fs.existsSync(STORIES) ? fs.readFileSync(STORIES) : null;
  let hub, dir;
  const pull = (spec, extra = {}) => run(['pull', spec, '--dir', dir, ...(extra.args ?? [])],
    { env: { HF_ENDPOINT: hub.url, ...(extra.env ?? {}) } });
  const cdnGets = () => hub.requests.filter((r) => r.server === 'cdn' && r.method === 'GET');

  before(async () => {
    hub = await startFakeHub({
      token: TOKEN,
      repos: {
        'acme/tiny-GGUF': { files: { 'tiny.Q8_0.gguf': q8, 'tiny.Q4_K_M.gguf': q4, 'split/tiny.Q2_K-00001-of-00002.gguf': q4,
          'split/tiny.Q2_K-00002-of-00002.gguf': q4 } },
        'acme/old-name': { renamed_to: 'acme/tiny-GGUF' },
        'acme/gated-GGUF': { gated: true, files: { 'g.Q4_0.gguf': gated } },
        ...(stories ? { 'acme/stories-GGUF': { files: { 'stories260K.gguf': stories } } } : {}),
      },
    });
  });
  after(async () => hub?.close());
  const fresh = () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hlpull-'));
    hub.reset();
  };

  test('a :QUANT resolves through the file list; redirected to the CDN, which never gets the token', async () => {
    fresh();
    const r = await pull('acme/tiny-GGUF:q8_0', { env: { HF_TOKEN: TOKEN } });
    assert.equal(r.code, 0, r.stderr);
    const file = path.join(dir, 'acme/tiny-GGUF/tiny.Q8_0.gguf');
    assert.equal(r.stdout.trim(), file);
    assert.ok(fs.readFileSync(file).equals(q8));
    assert.ok(!fs.existsSync(`${file}.part`) && !fs.existsSync(`${file}.part.sha256`));
    const hubCalls = hub.requests.filter((x) => x.server === 'hub');
    assert.deepEqual(hubCalls.map((x) => `${x.method} ${x.path}`),
      ['GET /api/models/acme/tiny-GGUF/tree/main?recursive=true', 'HEAD /acme/tiny-GGUF/resolve/main/tiny.Q8_0.gguf']);
    assert.ok(hubCalls.every((x) => x.headers.authorization === `Bearer ${TOKEN}`));
    assert.equal(cdnGets().length, 1);
    assert.equal(cdnGets()[0].headers.authorization, undefined, 'the token went to another host');
    assert.ok(!r.stderr.includes(TOKEN) && !r.stdout.includes(TOKEN));

    // Again: already there, nothing downloaded.
    hub.reset();
    const again = await pull('acme/tiny-GGUF:Q8_0');
    assert.equal(again.code, 0);
    assert.match(again.stderr, /already pulled/);
    assert.equal(cdnGets().length, 0);

    // No suffix: the Q4_K_M file; /FILE: that file without listing; a renamed repository.
    const dflt = await pull('acme/tiny-GGUF');
    assert.equal(dflt.code, 0, dflt.stderr);
    assert.ok(fs.readFileSync(path.join(dir, 'acme/tiny-GGUF/tiny.Q4_K_M.gguf')).equals(q4));
    hub.reset();
    const named = await pull('acme/old-name/tiny.Q8_0.gguf', { args: ['--dir', path.join(dir, 'other')] });
    assert.equal(named.code, 0, named.stderr);
    assert.ok(fs.readFileSync(path.join(dir, 'other/acme/old-name/tiny.Q8_0.gguf')).equals(q8));
    assert.ok(!hub.requests.some((x) => x.path.includes('/tree/')));

    // models: name, size, quantization and architecture from the header.
    const ls = await run(['models', '--dir', dir, '--json']);
    assert.equal(ls.code, 0, ls.stderr);
    const list = JSON.parse(ls.stdout);
    assert.deepEqual(list.map((m) => [m.name, m.size, m.quantization, m.architecture]), [
      ['acme/tiny-GGUF/tiny.Q4_K_M.gguf', q4.length, 'Q4_K_M', 'qwen2'],
      ['acme/tiny-GGUF/tiny.Q8_0.gguf', q8.length, 'Q8_0', 'qwen2'],
      ['other/acme/old-name/tiny.Q8_0.gguf', q8.length, 'Q8_0', 'qwen2'],
    ]);
    const table = await run(['models'], { env: { HYBRIDLLM_MODELS_DIR: dir } });
    assert.match(table.stdout, /acme\/tiny-GGUF\/tiny\.Q4_K_M\.gguf\s+1\.0 MiB\s+Q4_K_M\s+qwen2/);
  });

  test('no match and several matches list the choices; unknown repositories and files; usage errors exit 2', async () => {
    fresh();
    const none = await pull('acme/tiny-GGUF:Q5_K_M');
    assert.equal(none.code, 1);
    assert.match(none.stderr, /no file of repository acme\/tiny-GGUF is quantized Q5_K_M; its GGUF files: .*tiny\.Q8_0\.gguf/);
    const several = await pull('acme/tiny-GGUF:Q2_K');
    assert.equal(several.code, 1);
    assert.match(several.stderr, /2 files of repository acme\/tiny-GGUF match Q2_K.*00001-of-00002\.gguf, .*00002-of-00002\.gguf/);
    assert.doesNotMatch(several.stderr, /Q8_0/);
    const repo = await pull('acme/nothing:Q8_0');
    assert.equal(repo.code, 1);
    assert.match(repo.stderr, /repository acme\/nothing not found/);
    const file = await pull('acme/tiny-GGUF/missing.gguf');
    assert.equal(file.code, 1);
    assert.match(file.stderr, /missing\.gguf: not found in repository acme\/tiny-GGUF/);
    for (const bad of ['acme', 'acme/../x', 'acme/x:Q4 K', 'acme/x/notgguf.bin']) {
      const u = await pull(bad);
      assert.equal(u.code, 2, `${bad}: ${u.stderr}`);
      assert.match(u.stderr, /^hybridllm pull: .*\nusage: hybridllm pull/);
    }
    assert.equal((await run(['pull', '--help'])).code, 0);
    assert.equal((await run(['models', '--bogus'])).code, 2);
    assert.equal(cdnGets().length, 0);
    assert.deepEqual(fs.readdirSync(dir).filter((f) => f !== 'acme'), []);
  });

  test('a transfer cut short is resumed with Range in the same run; a later run resumes a .part', async () => {
    fresh();
    hub.control({ truncate_after: 1 << 20 });
    const r = await pull('acme/tiny-GGUF:Q8_0');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /broke off.*retrying/);
    assert.ok(fs.readFileSync(path.join(dir, 'acme/tiny-GGUF/tiny.Q8_0.gguf')).equals(q8));
    const gets = cdnGets();
    assert.equal(gets.length, 2);
    assert.equal(gets[0].headers.range, undefined);
    assert.equal(gets[1].headers.range, `bytes=${1 << 20}-`);

    // A .part left by an earlier run (with the hash it was for) is resumed from its end.
    fresh();
    const target = path.join(dir, 'acme/tiny-GGUF/tiny.Q8_0.gguf');
    fs.mkdirSync(path.dirname(target), { recursive: true });
    const half = 1_500_000;
    fs.writeFileSync(`${target}.part`, q8.subarray(0, half));
    fs.writeFileSync(`${target}.part.sha256`, `${hub.sha256('acme/tiny-GGUF', 'tiny.Q8_0.gguf')}\n`);
    const resumed = await pull('acme/tiny-GGUF:Q8_0');
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.match(resumed.stderr, /resuming .* at 1500000 bytes/);
    assert.deepEqual(cdnGets().map((g) => g.headers.range), [`bytes=${half}-`]);
    assert.ok(fs.readFileSync(target).equals(q8));

    // A .part of another version of the file (another hash beside it) starts over.
    fresh();
    fs.mkdirSync(path.dirname(target), { recursive: true });
    fs.writeFileSync(`${target}.part`, Buffer.alloc(1000, 7));
    fs.writeFileSync(`${target}.part.sha256`, `${'0'.repeat(64)}\n`);
    const other = await pull('acme/tiny-GGUF:Q8_0');
    assert.equal(other.code, 0, other.stderr);
    assert.deepEqual(cdnGets().map((g) => g.headers.range), [undefined]);
    assert.ok(fs.readFileSync(target).equals(q8));
  });

  test('a server that ignores Range: the download starts over from 0 and is right', async () => {
    fresh();
    const target = path.join(dir, 'acme/tiny-GGUF/tiny.Q8_0.gguf');
    fs.mkdirSync(path.dirname(target), { recursive: true });
    fs.writeFileSync(`${target}.part`, q8.subarray(0, 777_777));
    fs.writeFileSync(`${target}.part.sha256`, `${hub.sha256('acme/tiny-GGUF', 'tiny.Q8_0.gguf')}\n`);
    hub.control({ ignore_range: true });
    const r = await pull('acme/tiny-GGUF:Q8_0');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /ignored the range request: starting over/);
    assert.deepEqual(cdnGets().map((g) => g.headers.range), ['bytes=777777-']);
    assert.ok(fs.readFileSync(target).equals(q8));
  });

  test('a hash mismatch deletes the .part and fails', async () => {
    fresh();
    hub.control({ corrupt: true });
    const r = await pull('acme/tiny-GGUF:Q8_0');
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`SHA-256 mismatch: the Hub published ${hub.sha256('acme/tiny-GGUF', 'tiny.Q8_0.gguf')}`));
    const folder = path.join(dir, 'acme/tiny-GGUF');
    assert.deepEqual(fs.existsSync(folder) ? fs.readdirSync(folder) : [], []);
  });

  test('a gated repository: 401 without a token, 403 with a wrong one, pulled with the right one', async () => {
    fresh();
    const no = await pull('acme/gated-GGUF:Q4_0');
    assert.equal(no.code, 1);
    assert.match(no.stderr, /repository acme\/gated-GGUF is gated or private \(HTTP 401\): set HF_TOKEN/);
    const wrong = await pull('acme/gated-GGUF:Q4_0', { env: { HF_TOKEN: 'hf_wrong_token_zzzz' } });
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /\(HTTP 403\): the token in HF_TOKEN has no access/);
    assert.ok(!wrong.stderr.includes('hf_wrong_token_zzzz'));
    const ok = await pull('acme/gated-GGUF:Q4_0', { env: { HF_TOKEN: TOKEN } });
    assert.equal(ok.code, 0, ok.stderr);
    assert.ok(fs.readFileSync(path.join(dir, 'acme/gated-GGUF/g.Q4_0.gguf')).equals(gated));
    const get = cdnGets().at(-1);
    assert.equal(get.headers.authorization, undefined);
    assert.ok(!ok.stderr.includes(TOKEN));
  });

  test('the shipped config serves a pulled model through its builtin backend', { skip: stories ? false : `SKIP: ${STORIES} not found` }, async () => {
    fresh();
    const p = await pull('acme/stories-GGUF');
    assert.equal(p.code, 0, p.stderr);
    const port = await freePort();
    const cfg = fs.readFileSync(path.join(ROOT, 'config/hybridllm.yaml'), 'utf8')
      .replace('listen: "127.0.0.1:8741"', `listen: "127.0.0.1:${port}"`)
      .replace('path: hybridllm-ledger.jsonl', `path: ${path.join(dir, 'ledger.jsonl')}`);
    assert.ok(cfg.includes(`127.0.0.1:${port}`) && cfg.includes('ledger.jsonl'));
    const cfgPath = path.join(dir, 'hybridllm.yaml');
    fs.writeFileSync(cfgPath, cfg);
    const env = { ...process.env, HYBRIDLLM_MODELS_DIR: dir };
    for (const k of ['ANTHROPIC_API_KEY', 'OPENAI_API_KEY']) delete env[k];
    const gw = spawn(HL_BIN, ['serve', '--config', cfgPath], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    gw.stdout.on('data', (d) => (out += d));
    gw.stderr.on('data', (d) => (out += d));
    try {
      await waitFor(async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200, 15000, `readyz\n${out}`);
      const ready = await (await fetch(`http://127.0.0.1:${port}/readyz`)).text();
      assert.match(ready, /stories260K/);
      const c = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: 'unused', maxRetries: 0 });
      // Forced to the builtin backend, in case some local server answers on this machine.
      const { data, response } = await c.chat.completions.create({ model: 'pulled', max_tokens: 8, temperature: 0,
        messages: [{ role: 'user', content: 'Once upon a time' }] }).withResponse();
      assert.equal(response.headers.get('x-hybridllm-backend'), 'pulled');
      assert.equal(response.headers.get('x-hybridllm-model'), 'stories260K');
      assert.equal(data.usage.completion_tokens, 8);
      assert.ok(data.choices[0].message.content.length > 0);
    } finally {
      gw.kill('SIGTERM');
      await new Promise((r) => gw.on('exit', r));
    }
  });
});
