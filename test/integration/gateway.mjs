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
import { freePort, readJSONL, sleep } from './util.mjs';
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
export function standardBackends({ anthropicUrl, openaiUrl, localUrl }) {
  return [
    { name: 'cloud-anthropic', kind: 'anthropic', location: 'cloud', base_url: anthropicUrl, api_key_env: 'HL_TEST_ANTHROPIC_KEY', model: MODELS.anthropic },
    { name: 'cloud-openai', kind: 'openai', location: 'cloud', base_url: `${openaiUrl}/v1`, api_key_env: 'HL_TEST_OPENAI_KEY', model: MODELS.openai },
    { name: 'local', kind: 'openai', location: 'local', base_url: `${localUrl}/v1`, model: MODELS.local, hourly_cost_usd: LOCAL_HOURLY_COST_USD },
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
//   extraServer                merged into the `server:` section (e.g. {max_body_bytes: 65536})
//   env                        extra environment for the child (default: KEYS)
//   unsetEnv                   names removed from the child's environment
//   startTimeoutMs             how long /healthz may take to answer 200 (default 10000)
// Resolves to {url, port, ledgerPath, configPath, dir, proc, output(), ledger(), exited, stop()}.
export async function startGateway({
  backends = [],
  routes = ROUTES,
  prices = PRICES,
  extraServer = {},
  env = KEYS,
  unsetEnv = [],
  startTimeoutMs = 10000,
} = {}) {
  const missing = gatewayBinaryMissing();
  if (missing) throw new Error(missing);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hltest-'));
  const port = await freePort();
  const ledgerPath = path.join(dir, 'ledger.jsonl');
  const config = {
    server: { listen: `127.0.0.1:${port}`, threads: 2, ...extraServer },
    ledger: { path: ledgerPath },
    backends,
    prices,
    routes,
  };
  const configPath = path.join(dir, 'hybridllm.yaml');
  fs.writeFileSync(configPath, toYAML(config));

  const childEnv = { ...process.env, ...env };
  for (const k of unsetEnv) delete childEnv[k];
  const proc = spawn(HL_BIN, ['serve', '--config', configPath], { env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
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
export async function startStack({ extraServer = {}, routes = ROUTES } = {}) {
  const anthropic = await startFakeAnthropic({ key: KEYS.HL_TEST_ANTHROPIC_KEY, models: [MODELS.anthropic] });
  const openai = await startFakeOpenAI({ key: KEYS.HL_TEST_OPENAI_KEY, models: [MODELS.openai] });
  const local = await startFakeOpenAI({ models: [MODELS.local] });
  const fakes = { anthropic, openai, local };
  const closeFakes = () => Promise.all(Object.values(fakes).map((f) => f.close()));
  let gw;
  try {
    gw = await startGateway({
      backends: standardBackends({ anthropicUrl: anthropic.url, openaiUrl: openai.url, localUrl: local.url }),
      routes,
      extraServer,
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
