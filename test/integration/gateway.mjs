// Starts the hybridllm gateway binary as a child process for the integration tests.
//
//   const gw = await startGateway({ backends, routes });   // writes a temp YAML config
//   ... gw.url, gw.port, gw.ledgerPath, gw.proc, gw.ledger(), gw.output() ...
//   const { code } = await gw.stop();                        // SIGTERM, waits for exit
//
// Environment:
//   HL_BIN           gateway binary (default: <repo>/build/hybridllm)
//   HL_TEST_VERBOSE  1: copy the gateway's stdout/stderr to this process's stderr, live
//   HL_TEST_KEEP     1: keep the temp dirs (config + ledger) and print where they are
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import { freePort, readJSONL, sleep, waitFor } from './util.mjs';
import { startFakeOpenAI } from '../fake/openai.mjs';
import { startFakeAnthropic } from '../fake/anthropic.mjs';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const HL_BIN = process.env.HL_BIN ? path.resolve(process.env.HL_BIN) : path.join(ROOT, 'build', 'hybridllm');
const VERBOSE = process.env.HL_TEST_VERBOSE === '1';
const KEEP = process.env.HL_TEST_KEEP === '1';

export const KEYS = {
  HL_TEST_ANTHROPIC_KEY: 'sk-ant-hltest-0123456789abcdef',
  HL_TEST_OPENAI_KEY: 'sk-hltest-openai-0123456789abcdef',
};

export const MODELS = {
  anthropic: 'claude-3-5-sonnet-20241022',
  openai: 'gpt-4o',
  local: 'mistral-7b',
};

// USD per 1M tokens, as in the product brief.
export const PRICES = [
  { model: 'gpt-4o', input_per_mtok: 5, output_per_mtok: 15 },
  { model: 'claude-3-5-sonnet-20241022', input_per_mtok: 3, output_per_mtok: 15 },
];
export const LOCAL_HOURLY_COST_USD = 0.05;

export const ROUTES = [
  { name: 'privacy', when: { sensitive: true }, to: ['local'] },
  { name: 'complex-task', when: { task_type: ['code_generation', 'analysis', 'reasoning'] }, to: ['cloud-anthropic'] },
  { name: 'simple-task', when: { task_type: ['classification', 'extraction'] }, to: ['local'] },
  { name: 'default', to: ['local', 'cloud-anthropic'] },
];

// The three backends of the standard test config. Each url is the fake's root URL
// (http://127.0.0.1:PORT); OpenAI-kind base_urls get /v1 appended.
// Retries and the circuit breaker are off here (one ledger line per request, errors reach the
// client at once); resilience.test.mjs turns them on.
export function standardBackends({ anthropicUrl, openaiUrl, localUrl }) {
  const noRetry = { max_retries: 0, breaker_failures: 1000000 };
  return [
    { name: 'cloud-anthropic', kind: 'anthropic', location: 'cloud', base_url: anthropicUrl, api_key_env: 'HL_TEST_ANTHROPIC_KEY', model: MODELS.anthropic, ...noRetry },
    { name: 'cloud-openai', kind: 'openai', location: 'cloud', base_url: `${openaiUrl}/v1`, api_key_env: 'HL_TEST_OPENAI_KEY', model: MODELS.openai, ...noRetry },
    { name: 'local', kind: 'openai', location: 'local', base_url: `${localUrl}/v1`, model: MODELS.local, hourly_cost_usd: LOCAL_HOURLY_COST_USD, ...noRetry },
  ];
}

export function gatewayBinaryMissing() {
  try {
    fs.accessSync(HL_BIN, fs.constants.X_OK);
    return null;
  } catch {
    return `gateway binary not found at ${HL_BIN} (build it: cmake -B build && cmake --build build; or set HL_BIN)`;
  }
}

// --- a tiny YAML emitter (block style; strings double-quoted JSON-style, valid YAML) ---
function yamlScalar(v) {
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  throw new Error(`cannot write ${typeof v} to YAML`);
}
const isBlock = (v) => v !== null && typeof v === 'object' && (Array.isArray(v) ? v.length > 0 : Object.keys(v).length > 0);
const inline = (v) => (v !== null && typeof v === 'object' ? (Array.isArray(v) ? '[]' : '{}') : yamlScalar(v));
function emitYAML(v, ind) {
  const pad = ' '.repeat(ind);
  const out = [];
  if (Array.isArray(v)) {
    for (const item of v) {
      if (isBlock(item) && !Array.isArray(item)) {
        const sub = emitYAML(item, ind + 2);
        out.push(`${pad}- ${sub[0].slice(ind + 2)}`, ...sub.slice(1));
      } else if (isBlock(item)) {
        out.push(`${pad}-`, ...emitYAML(item, ind + 2));
      } else {
        out.push(`${pad}- ${inline(item)}`);
      }
    }
  } else {
    for (const [k, val] of Object.entries(v)) {
      if (val === undefined) continue;
      if (isBlock(val)) out.push(`${pad}${k}:`, ...emitYAML(val, ind + 2));
      else out.push(`${pad}${k}: ${inline(val)}`);
    }
  }
  return out;
}
export function toYAML(obj) {
  return emitYAML(obj, 0).join('\n') + '\n';
}

const live = new Set();
process.on('exit', () => {
  for (const p of live) {
    try {
      p.kill('SIGKILL');
    } catch {}
  }
});

// Starts the gateway. Options:
//   backends, routes, prices   config sections (defaults: none / ROUTES / PRICES)
//   budgets, privacy           the `budgets` and `privacy` sections (default: none)
//   tenants                    the `tenants` section (default: none)
//   shadow                     the `shadow` section (limits of shadow comparisons; default: none)
//   ledgerPath                 an existing ledger to continue (default: a new one in the temp dir;
//                              a given one is kept, not deleted with the temp dir)
//   extraServer                merged into the `server:` section (e.g. {max_body_bytes: 65536})
//   listenHost                 the address it listens on (default 127.0.0.1; url stays loopback)
//   extraLedger                merged into the `ledger:` section (e.g. {store: 'postgresql://...'})
//   upstream                   the `upstream:` section (e.g. {ca_file: pki.caFile}; default: none)
//   env                        extra environment for the child (default: KEYS)
//   unsetEnv                   names removed from the child's environment
//   startTimeoutMs             how long /healthz may take to answer 200 (default 10000)
//   wrap                       a command line the binary runs under, which must exec it (e.g.
//                              ['prlimit', '--nofile=256:256', '--']), so that proc is the gateway
// Resolves to {url, port, ledgerPath, configPath, dir, proc, output(), ledger(), exited, stop()}.
export async function startGateway({
  backends = [],
  routes = ROUTES,
  prices = PRICES,
  budgets = undefined,
  privacy = undefined,
  tenants = undefined,
  shadow = undefined,
  ledgerPath: givenLedger = undefined,
  extraServer = {},
  listenHost = '127.0.0.1',
  extraLedger = {},
  upstream = undefined,
  env = KEYS,
  unsetEnv = [],
  startTimeoutMs = 10000,
  wrap = [],
} = {}) {
  const missing = gatewayBinaryMissing();
  if (missing) throw new Error(missing);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hltest-'));
  const port = await freePort();
  const ledgerPath = givenLedger ?? path.join(dir, 'ledger.jsonl');
  const config = {
    server: { listen: `${listenHost}:${port}`, threads: 2, ...extraServer },
    ledger: { path: ledgerPath, ...extraLedger },
    ...(upstream ? { upstream } : {}),
    backends,
    prices,
    ...(budgets ? { budgets } : {}),
    ...(tenants ? { tenants } : {}),
    ...(privacy ? { privacy } : {}),
    ...(shadow ? { shadow } : {}),
    routes,
  };
  const configPath = path.join(dir, 'hybridllm.yaml');
  fs.writeFileSync(configPath, toYAML(config));

  const childEnv = { ...process.env, ...env };
  for (const k of unsetEnv) delete childEnv[k];
  const argv = [...wrap, HL_BIN, 'serve', '--config', configPath];
  const proc = spawn(argv[0], argv.slice(1), { env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(proc);

  let out = '';
  const keep = (d) => {
    out += d;
    if (out.length > 256 * 1024) out = out.slice(-128 * 1024);
    if (VERBOSE) process.stderr.write(String(d).replace(/^/gm, `[hybridllm:${port}] `));
  };
  proc.stdout.on('data', keep);
  proc.stderr.on('data', keep);
  let exitInfo = null;
  const exited = new Promise((resolve) => {
    proc.on('exit', (code, signal) => {
      exitInfo = { code, signal };
      live.delete(proc);
      resolve(exitInfo);
    });
    proc.on('error', (err) => {
      exitInfo = { code: null, signal: null, error: err };
      live.delete(proc);
      resolve(exitInfo);
    });
  });

  const url = `http://127.0.0.1:${port}`;
  const describeFailure = (why) =>
    new Error(
      `${why}\n  binary: ${HL_BIN}\n  config: ${configPath}\n--- config ---\n${toYAML(config)}--- gateway output (tail) ---\n${out.slice(-4000) || '(none)'}`,
    );

  const deadline = Date.now() + startTimeoutMs;
  for (;;) {
    if (exitInfo) {
      throw describeFailure(`gateway exited before becoming healthy (code ${exitInfo.code}, signal ${exitInfo.signal}${exitInfo.error ? `, ${exitInfo.error.message}` : ''})`);
    }
    try {
      const r = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(500) });
      await r.arrayBuffer();
      if (r.status === 200) break;
    } catch {}
    if (Date.now() > deadline) {
      proc.kill('SIGKILL');
      await exited;
      throw describeFailure(`gateway did not answer GET /healthz with 200 within ${startTimeoutMs} ms`);
    }
    await sleep(25);
  }
  if (KEEP) process.stderr.write(`[hltest] gateway on ${url}, config ${configPath}, ledger ${ledgerPath}\n`);

  return {
    url,
    port,
    ledgerPath,
    configPath,
    dir,
    proc,
    exited,
    output: () => out,
    ledger: () => readJSONL(ledgerPath),
    get exitInfo() {
      return exitInfo;
    },
    // Waits (no signal sent) up to timeoutMs for the process to exit. Resolves {code, signal,
    // timedOut}; on timeout the process is still running.
    async waitForExit(timeoutMs = 10000) {
      let timer;
      const timedOut = await Promise.race([
        exited.then(() => false),
        new Promise((r) => (timer = setTimeout(() => r(true), timeoutMs))),
      ]);
      clearTimeout(timer);
      return { ...(exitInfo ?? {}), timedOut };
    },
    // SIGTERM, wait up to timeoutMs for the exit (then SIGKILL). Resolves {code, signal, timedOut}.
    async stop({ timeoutMs = 10000 } = {}) {
      if (!exitInfo) proc.kill('SIGTERM');
      let timer;
      const timedOut = await Promise.race([
        exited.then(() => false),
        new Promise((r) => (timer = setTimeout(() => r(true), timeoutMs))),
      ]);
      clearTimeout(timer);
      if (timedOut) {
        proc.kill('SIGKILL');
        await exited;
      }
      if (!KEEP) fs.rmSync(dir, { recursive: true, force: true });
      return { ...exitInfo, timedOut };
    },
  };
}

// Three fakes (cloud Anthropic, cloud OpenAI, a second fake OpenAI playing the local vLLM) and a
// gateway configured with the standard backends/prices/routes.
// tls: a test PKI (../fake/tls.mjs makeTestPKI()): the fakes speak https:// with its server
// certificate and the gateway trusts its CA through upstream.ca_file.
// backendOverrides: {name: {...}} merged into the standard backends (e.g. a retry policy).
// A gateway whose one backend and route go to a fake OpenAI-compatible local server; opts go
// to startGateway (backends and routes are these). Returns { local, gw }.
export async function startLocalGateway(opts = {}) {
  const local = await startFakeOpenAI({ models: [MODELS.local] });
  try {
    const gw = await startGateway({
      backends: [{ name: 'local', kind: 'openai', location: 'local', base_url: `${local.url}/v1`, model: MODELS.local, max_retries: 0 }],
      routes: [{ name: 'default', to: ['local'] }],
      ...opts,
    });
    return { local, gw };
  } catch (e) {
    await local.close();
    throw e;
  }
}

export async function startStack({ extraServer = {}, routes = ROUTES, tls = undefined, backendOverrides = {}, env = KEYS, unsetEnv = [] } = {}) {
  const t = tls ? { tls: tls.server } : {};
  const anthropic = await startFakeAnthropic({ key: KEYS.HL_TEST_ANTHROPIC_KEY, models: [MODELS.anthropic], ...t });
  const openai = await startFakeOpenAI({ key: KEYS.HL_TEST_OPENAI_KEY, models: [MODELS.openai], ...t });
  const local = await startFakeOpenAI({ models: [MODELS.local], ...t });
  const fakes = { anthropic, openai, local };
  const closeFakes = () => Promise.all(Object.values(fakes).map((f) => f.close()));
  let gw;
  try {
    gw = await startGateway({
      backends: standardBackends({ anthropicUrl: anthropic.url, openaiUrl: openai.url, localUrl: local.url }).map((b) => ({
        ...b,
        ...(backendOverrides[b.name] ?? {}),
      })),
      routes,
      extraServer,
      upstream: tls ? { ca_file: tls.caFile } : undefined,
      env,
      unsetEnv,
    });
  } catch (e) {
    await closeFakes();
    throw e;
  }
  return {
    ...fakes,
    gw,
    resetFakes() {
      for (const f of Object.values(fakes)) f.reset();
    },
    async close() {
      const r = gw.exitInfo ? { ...gw.exitInfo } : await gw.stop();
      await closeFakes();
      return r;
    },
  };
}

// --- shared checks (used by messages.test.mjs and tools.test.mjs) ---

export const BACKEND_MODEL = { 'cloud-anthropic': MODELS.anthropic, 'cloud-openai': MODELS.openai, local: MODELS.local };
export const BACKEND_SOURCE = { 'cloud-anthropic': 'cloud', 'cloud-openai': 'cloud', local: 'local' };
export const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|\+00:00)$/;

// Inference requests a fake received (POSTs; a gateway's readiness probes are GETs).
export const posts = (fake) => fake.requests.filter((r) => r.method === 'POST');

// Tokens the fake reported for a recorded request, in the ledger's terms ({input, output}).
export function fakeUsage(rec) {
  const u = rec?.response?.usage;
  assert.ok(u, `the fake recorded no usage for its request (response: ${JSON.stringify(rec?.response)})`);
  if ('prompt_tokens' in u) return { input: u.prompt_tokens, output: u.completion_tokens };
  return { input: u.input_tokens + (u.cache_creation_input_tokens ?? 0) + (u.cache_read_input_tokens ?? 0), output: u.output_tokens };
}

// Waits for the ledger line of one request (by request_id) and checks there is exactly one.
export async function ledgerLine(gw, requestId, timeoutMs = 5000) {
  assert.ok(requestId, 'no request id to look up in the ledger');
  const lines = await waitFor(
    () => {
      const m = gw.ledger().filter((l) => l.request_id === requestId);
      return m.length ? m : null;
    },
    timeoutMs,
    `ledger line with request_id ${requestId} in ${gw.ledgerPath}`,
  );
  const bad = gw.ledger().filter((l) => l.__unparseable);
  assert.deepEqual(bad, [], 'every ledger line is JSON');
  assert.equal(lines.length, 1, `exactly one ledger line for ${requestId}: ${JSON.stringify(lines)}`);
  return lines[0];
}

export function assertCloseTo(actual, expected, tol, what) {
  assert.equal(typeof actual, 'number', `${what}: expected a number, got ${JSON.stringify(actual)}`);
  assert.ok(Math.abs(actual - expected) <= tol, `${what}: ${actual} is not within ${tol} of ${expected}`);
}

export function expectedCloudCost(model, input, output) {
  const p = PRICES.find((x) => x.model === model);
  return (input * p.input_per_mtok) / 1e6 + (output * p.output_per_mtok) / 1e6;
}

// Full check of one ledger record: {requestId, backend, reason (string or RegExp), stream,
// status ('ok'), usage ({input, output}: the tokens the upstream reported)}.
export function checkLedger(l, { requestId, backend, reason, stream, status = 'ok', usage }) {
  const ctx = JSON.stringify(l);
  assert.match(String(l.timestamp), ISO_UTC, `timestamp is ISO 8601 UTC: ${ctx}`);
  assert.ok(Math.abs(Date.parse(l.timestamp) - Date.now()) < 120000, `timestamp is recent: ${ctx}`);
  assert.equal(l.request_id, requestId, 'request_id equals the request id header');
  assert.equal(l.backend, backend, `backend: ${ctx}`);
  assert.equal(l.source, BACKEND_SOURCE[backend], `source: ${ctx}`);
  assert.equal(l.model, BACKEND_MODEL[backend], `model is the upstream model: ${ctx}`);
  if (reason instanceof RegExp) assert.match(String(l.route_reason), reason, `route_reason: ${ctx}`);
  else if (reason) assert.equal(l.route_reason, reason, `route_reason: ${ctx}`);
  assert.equal(l.status, status, `status: ${ctx}`);
  assert.equal(l.stream, stream, `stream: ${ctx}`);
  assert.equal(typeof l.latency_ms, 'number', `latency_ms: ${ctx}`);
  assert.ok(l.latency_ms >= 0, `latency_ms >= 0: ${ctx}`);
  assert.equal(typeof l.input_tokens, 'number', `input_tokens: ${ctx}`);
  assert.equal(typeof l.output_tokens, 'number', `output_tokens: ${ctx}`);
  assert.equal(typeof l.cost_usd, 'number', `cost_usd: ${ctx}`);
  if (usage) {
    assert.equal(l.input_tokens, usage.input, `input_tokens equal the upstream's usage: ${ctx}`);
    assert.equal(l.output_tokens, usage.output, `output_tokens equal the upstream's usage (final, not summed): ${ctx}`);
  }
  if (status === 'ok') {
    if (l.source === 'cloud') assertCloseTo(l.cost_usd, expectedCloudCost(l.model, l.input_tokens, l.output_tokens), 6e-7, `cloud cost_usd ${ctx}`);
    else assertCloseTo(l.cost_usd, (l.latency_ms / 3600000) * LOCAL_HOURLY_COST_USD, 6e-7, `local cost_usd ${ctx}`);
  }
  if (stream && status === 'ok') {
    assert.equal(typeof l.ttft_ms, 'number', `ttft_ms on a stream: ${ctx}`);
    assert.ok(l.ttft_ms >= 0 && l.ttft_ms <= l.latency_ms + 1, `0 <= ttft_ms <= latency_ms: ${ctx}`);
  }
}

// Test-suite scaffolding shared by the SDK test files: starts the standard stack in before(),
// resets the fakes before each test, reports a gateway crash on the test during which it
// happened. Returns {get stack, get gw, ready(t), startError()} -- call inside describe().
export function useStack({ before, after, beforeEach, afterEach }, opts = {}) {
  const h = { stack: null, gw: null, startError: null };
  let deathReported = false;
  let tailShown = false;
  before(async () => {
    try {
      h.stack = await startStack(opts);
      h.gw = h.stack.gw;
    } catch (e) {
      h.startError = e;
    }
  });
  after(async () => {
    if (h.stack) await h.stack.close();
  });
  beforeEach(() => h.stack?.resetFakes());
  afterEach(() => {
    if (h.gw?.exitInfo && !deathReported) {
      deathReported = true;
      throw new Error(`the gateway exited during this test (code ${h.gw.exitInfo.code}, signal ${h.gw.exitInfo.signal})\n--- gateway output (tail) ---\n${h.gw.output().slice(-4000)}`);
    }
  });
  // The first test to call it throws the start error; later ones skip when the gateway did not
  // start, and throw when it has died.
  let startReported = false;
  h.ready = (t) => {
    if (h.startError && !startReported) {
      startReported = true;
      throw h.startError;
    }
    if (!h.stack) {
      t.skip('gateway did not start');
      return false;
    }
    if (h.gw.exitInfo) {
      const tail = tailShown ? '' : `\n--- gateway output (tail) ---\n${h.gw.output().slice(-4000)}`;
      tailShown = true;
      throw new Error(`gateway is not running: it exited (code ${h.gw.exitInfo.code}, signal ${h.gw.exitInfo.signal}) during an earlier test${tail}`);
    }
    return true;
  };
  return h;
}
