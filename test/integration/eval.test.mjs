// `hybridllm eval` against the fakes: a dataset whose answers are planted per backend (the
// fakes' `replies` control), so that the accuracy figures it prints must equal the planted
// ones exactly; the JSON, CSV and table outputs; the ledger lines (one per call, parsed);
// privacy (a sensitive item never reaches the cloud fake, and is counted as refused);
// agreement with a --reference backend; a backend that is down (each item reported, no hang);
// --help, usage errors, and a bad dataset line named with its line number before any call.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startFakeOpenAI } from '../fake/openai.mjs';
import { gatewayBinaryMissing, HL_BIN, KEYS, ROOT, toYAML } from './gateway.mjs';
import { readJSONL } from './util.mjs';

const skip = gatewayBinaryMissing();
const MODELS_DIR = process.env.HL_MODELS_DIR ?? path.join(ROOT, '..', 'shared', 'models');
const STORIES = path.join(MODELS_DIR, 'stories260K.gguf');

// Runs the binary; resolves {code, stdout, stderr}. Killed (and the test failed) after timeoutMs.
function run(args, { timeoutMs = 30000, env = KEYS } = {}) {
  return new Promise((resolve, reject) => {
    const p = spawn(HL_BIN, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      p.kill('SIGKILL');
      reject(new Error(`hybridllm ${args.join(' ')} did not finish in ${timeoutMs} ms\n${stderr}`));
    }, timeoutMs);
    p.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

// The 95% Wilson interval, as the binary must compute it.
function wilson(k, n) {
  const z = 1.959963984540054;
  const p = k / n;
  const c = (p + (z * z) / (2 * n)) / (1 + (z * z) / n);
  const h = (z * Math.sqrt((p * (1 - p)) / n + (z * z) / (4 * n * n))) / (1 + (z * z) / n);
  return [k === 0 ? 0 : Math.max(0, c - h), k === n ? 1 : Math.min(1, c + h)];
}

// ---- the planted dataset ----
// classification: 10 items (the last one with a prompt of ~1500 tokens: bucket 1k-4k); local
// answers 8 right, cloud 9. extraction: 5 items; local 3 right, cloud 5 (keys reordered and
// fenced: compared as JSON). One sensitive item (an e-mail address): local answers it right,
// the cloud is never asked. Planted accuracy: local 12/16, cloud 14/15.
const LABELS = ['billing', 'shipping', 'account', 'technical'];
const items = [];
const localReplies = {};
const cloudReplies = {};
for (let i = 1; i <= 10; i++) {
  const label = LABELS[i % 4];
  const filler = i === 10 ? ' ' + 'lorem ipsum dolor sit amet consectetur '.repeat(160) : '';
  const prompt = `Ticket ${i}: route it.${filler}`;
  items.push({ id: `c${i}`, task_type: 'classification', prompt, expected: label });
  localReplies[prompt] = i === 3 || i === 7 ? 'wrong-label' : label;
  cloudReplies[prompt] = i === 5 ? 'other' : `${label.toUpperCase()}.`; // case and final dot ignored
}
for (let i = 1; i <= 5; i++) {
  const prompt = `Order ${i}: extract the fields.`;
  const expected = { order: String(1000 + i), city: `City${i}` };
  items.push({ id: `e${i}`, task_type: 'extraction', messages: [{ role: 'user', content: prompt }], expected });
  localReplies[prompt] = JSON.stringify(i <= 3 ? expected : { ...expected, city: 'Nowhere' });
  cloudReplies[prompt] = '```json\n' + JSON.stringify({ city: `City${i}`, order: String(1000 + i) }) + '\n```';
}
const SECRET = 'dana.whitfield@example.com';
const sensitivePrompt = `Reply to ${SECRET} with the word ok.`;
items.push({ id: 's1', task_type: 'short_answer', prompt: sensitivePrompt, expected: 'ok' });
localReplies[sensitivePrompt] = 'ok';
cloudReplies[sensitivePrompt] = 'ok';

describe('hybridllm eval', { skip: skip ?? false }, () => {
  let local;
  let cloud;
  let dir;
  let configPath;
  let dataset;
  let ledgerPath;

  before(async () => {
    local = await startFakeOpenAI({});
    cloud = await startFakeOpenAI({ key: KEYS.HL_TEST_OPENAI_KEY });
    local.control({ replies: localReplies });
    cloud.control({ replies: cloudReplies });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hleval-'));
    ledgerPath = path.join(dir, 'ledger.jsonl');
    const noRetry = { max_retries: 0 };
    const config = {
      ledger: { path: ledgerPath, store: '' },
      backends: [
        { name: 'local', kind: 'openai', location: 'local', base_url: `${local.url}/v1`, model: 'mistral-7b', hourly_cost_usd: 0.05, ...noRetry },
        { name: 'cloud', kind: 'openai', location: 'cloud', base_url: `${cloud.url}/v1`, model: 'gpt-4o', api_key_env: 'HL_TEST_OPENAI_KEY', allow_insecure_http: true, ...noRetry },
        { name: 'flaky', kind: 'openai', location: 'cloud', base_url: `${cloud.url}/v1`, model: 'gpt-4o', api_key_env: 'HL_TEST_OPENAI_KEY', allow_insecure_http: true, max_retries: 1, retry_base_ms: 10, retry_max_ms: 20 },
        { name: 'down', kind: 'openai', location: 'local', base_url: 'http://127.0.0.1:9/v1', model: 'm', connect_timeout_ms: 2000, ...noRetry },
      ],
      prices: [{ model: 'gpt-4o', input_per_mtok: 5, output_per_mtok: 15 }],
      routes: [{ name: 'default', to: ['local'] }],
    };
    configPath = path.join(dir, 'hybridllm.yaml');
    fs.writeFileSync(configPath, toYAML(config));
    dataset = path.join(dir, 'planted.jsonl');
    fs.writeFileSync(dataset, items.map((it) => JSON.stringify(it)).join('\n') + '\n');
  });

  after(async () => {
    await local?.close();
    await cloud?.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  const posts = (fake) => fake.requests.filter((r) => r.method === 'POST');

  test('accuracy equals the planted rates, with Wilson intervals; ledger lines; privacy', async () => {
    local.requests.length = 0;
    cloud.requests.length = 0;
    const r = await run(['eval', dataset, '--backends', 'local,cloud', '--config', configPath, '--format', 'json', '--concurrency', '3']);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.match(out.run, /^ev_\d{8}T\d{6}Z_[0-9a-f]{8}$/);
    assert.equal(out.items, 16);
    assert.equal(out.reference, null);
    const [lo, cl] = out.backends;
    assert.equal(lo.name, 'local');
    assert.equal(cl.name, 'cloud');
    const expectRate = (s, k, n) => {
      assert.equal(s.n, n);
      assert.equal(s.agree, k);
      assert.equal(s.accuracy, Math.round((k / n) * 1e10) / 1e10);
      const [a, b] = wilson(k, n);
      assert.ok(Math.abs(s.ci95[0] - a) < 1e-9 && Math.abs(s.ci95[1] - b) < 1e-9, `ci95 ${s.ci95} vs ${a},${b}`);
    };
    expectRate(lo.overall, 12, 16);
    expectRate(lo.by_task_type.classification, 8, 10);
    expectRate(lo.by_task_type.extraction, 3, 5);
    expectRate(lo.by_task_type.short_answer, 1, 1);
    expectRate(cl.overall, 14, 15);
    expectRate(cl.by_task_type.classification, 9, 10);
    expectRate(cl.by_task_type.extraction, 5, 5);
    assert.equal(cl.by_task_type.short_answer.n, 0);
    assert.equal(cl.by_task_type.short_answer.accuracy, null);
    assert.equal(cl.overall.refused, 1);
    assert.equal(cl.overall.calls, 15);
    assert.equal(lo.overall.refused, 0);
    assert.equal(lo.overall.calls, 16);
    assert.equal(lo.overall.errors, 0);
    // buckets: the long ticket alone is over 1k tokens
    assert.deepEqual(Object.keys(lo.by_prompt_tokens), ['<=1k', '1k-4k']);
    assert.equal(lo.by_prompt_tokens['1k-4k'].n, 1);
    assert.equal(lo.by_prompt_tokens['<=1k'].n, 15);
    assert.ok(lo.overall.latency_ms.p50 > 0 && lo.overall.latency_ms.p95 >= lo.overall.latency_ms.p50);
    assert.ok(cl.overall.cost_usd > 0 && cl.overall.input_tokens > 0 && cl.overall.output_tokens > 0);
    // the failures list holds the refused call and nothing else
    assert.deepEqual(out.failures.map((f) => [f.item, f.backend, f.status]), [['s1', 'cloud', 'refused']]);
    assert.match(r.stderr, /1 sensitive item not sent to cloud backend cloud/);

    // privacy: the cloud fake never saw the address; the local one answered it
    assert.equal(posts(cloud).length, 15);
    assert.equal(posts(local).length, 16);
    assert.ok(!posts(cloud).some((q) => q.raw.includes(SECRET)));
    // local calls ask for logprobs (the answer's confidence), cloud calls do not
    assert.ok(posts(local).every((q) => q.body.logprobs === true));
    assert.ok(posts(cloud).every((q) => q.body.logprobs !== true));

    // one ledger line per call made, all of this run
    const lines = readJSONL(ledgerPath).filter((l) => l.eval_run === out.run);
    assert.equal(lines.length, 31);
    for (const l of lines) {
      assert.equal(l.route_reason, 'eval');
      assert.equal(l.status, 'ok');
      assert.equal(l.reference, 'expected');
      assert.ok(['exact', 'json', 'rouge_l'].includes(l.score_method), l.score_method);
      assert.equal(typeof l.agree, 'boolean');
      assert.equal(l.attempt, l.backend === 'local' ? 1 : 2);
      assert.equal(l.source, l.backend === 'local' ? 'local' : 'cloud');
      assert.match(l.request_id, new RegExp(`^${out.run}-\\d+$`));
      if (l.backend === 'local') assert.ok(l.confidence > 0 && l.confidence <= 1, `confidence ${l.confidence}`);
      else assert.equal(l.confidence, null);
    }
    const agreeOf = (b, t) => lines.filter((l) => l.backend === b && (!t || l.task_type === t) && l.agree).length;
    assert.equal(agreeOf('local'), 12);
    assert.equal(agreeOf('cloud'), 14);
    assert.equal(agreeOf('local', 'extraction'), 3);
    // the same request id for an item on both backends; the sensitive one only locally
    const s1 = lines.filter((l) => l.task_type === 'short_answer');
    assert.equal(s1.length, 1);
    assert.equal(s1[0].backend, 'local');
    assert.equal(s1[0].sensitive, true);
    assert.match(s1[0].pii, /email/);
    const e1 = lines.filter((l) => l.request_id === `${out.run}-11`);
    assert.deepEqual(e1.map((l) => l.backend).sort(), ['cloud', 'local']);
    assert.ok(e1.every((l) => l.score_method === 'json'));
    // costs as the gateway prices them: cloud per token
    for (const l of lines.filter((x) => x.backend === 'cloud'))
      assert.ok(Math.abs(l.cost_usd - (l.input_tokens * 5 + l.output_tokens * 15) / 1e6) < 1e-9);
  });

  test('CSV and table outputs carry the same figures; --ledger and --no-ledger', async () => {
    const other = path.join(dir, 'other.jsonl');
    const r = await run(['eval', dataset, '--backends', 'local', '--config', configPath, '--format', 'csv', '--ledger', other]);
    assert.equal(r.code, 0, r.stderr);
    const rows = r.stdout.trim().split('\n').map((l) => l.split(','));
    const head = rows[0];
    assert.deepEqual(head.slice(0, 8), ['backend', 'slice', 'key', 'calls', 'errors', 'refused', 'n', 'agree']);
    const col = (row, name) => row[head.indexOf(name)];
    const all = rows.find((x) => x[0] === 'local' && x[1] === 'all');
    assert.equal(col(all, 'n'), '16');
    assert.equal(col(all, 'agree'), '12');
    assert.equal(Number(col(all, 'accuracy')), 0.75);
    assert.ok(Math.abs(Number(col(all, 'ci95_low')) - wilson(12, 16)[0]) < 1e-9);
    const ext = rows.find((x) => x[1] === 'task_type' && x[2] === 'extraction');
    assert.equal(col(ext, 'agree'), '3');
    assert.ok(rows.find((x) => x[1] === 'prompt_tokens' && x[2] === '1k-4k'));
    assert.equal(readJSONL(other).length, 16);

    const before = readJSONL(ledgerPath).length;
    const t = await run(['eval', dataset, '--backends', 'local', '--config', configPath, '--no-ledger', '--limit', '10']);
    assert.equal(t.code, 0, t.stderr);
    assert.equal(readJSONL(ledgerPath).length, before);
    assert.match(t.stdout, /^backend +slice +calls/m);
    assert.match(t.stdout, /^local +all +10 +0 +0 +10 +80\.0% \[49\.0%, 94\.3%\]/m);
    assert.match(t.stdout, /^local +prompt=1k-4k +1 /m);
    assert.equal(t.stderr, ''); // not a terminal: no progress bar
  });

  test('agreement with a --reference backend for items without an expected answer', async () => {
    const free = [];
    const lr = {};
    const cr = {};
    for (let i = 1; i <= 4; i++) {
      const prompt = `Say something about topic ${i}.`;
      free.push({ id: `f${i}`, prompt });
      cr[prompt] = `Topic ${i} is about the quick brown fox`;
      lr[prompt] = i === 2 ? 'Nothing in common here at all' : `Topic ${i} is about the quick brown fox`;
    }
    local.control({ replies: { ...localReplies, ...lr } });
    cloud.control({ replies: { ...cloudReplies, ...cr } });
    const file = path.join(dir, 'free.jsonl');
    fs.writeFileSync(file, free.map((x) => JSON.stringify(x)).join('\n') + '\n');
    const r = await run(['eval', file, '--backends', 'local', '--reference', 'cloud', '--config', configPath, '--format', 'json']);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.equal(out.reference, 'cloud');
    assert.deepEqual(out.backends.map((b) => b.name), ['local', 'cloud']); // the reference is asked too
    assert.equal(out.backends[0].overall.n, 4);
    assert.equal(out.backends[0].overall.agree, 3);
    assert.equal(out.backends[1].overall.n, 0); // never scored against itself
    const lines = readJSONL(ledgerPath).filter((l) => l.eval_run === out.run);
    assert.equal(lines.length, 8);
    const byItem = (b, n) => lines.find((l) => l.backend === b && l.request_id === `${out.run}-${n}`);
    for (let n = 1; n <= 4; n++) {
      const l = byItem('local', n);
      assert.equal(l.reference, 'cloud');
      assert.equal(l.score_method, 'rouge_l');
      assert.equal(l.ref_output_tokens, byItem('cloud', n).output_tokens);
      assert.equal(l.agree, n !== 2);
      assert.equal(byItem('cloud', n).score ?? null, null);
    }
  });

  test('a backend that is down: every item reported, the run completes', async () => {
    const r = await run(['eval', dataset, '--backends', 'local,down', '--config', configPath, '--format', 'json', '--limit', '5'], { timeoutMs: 20000 });
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    const down = out.backends[1];
    assert.equal(down.overall.calls, 5);
    assert.equal(down.overall.errors, 5);
    assert.equal(down.overall.n, 0);
    assert.equal(down.overall.accuracy, null);
    assert.equal(out.backends[0].overall.n, 5);
    assert.equal(out.failures.length, 5);
    for (let i = 1; i <= 5; i++) {
      assert.match(r.stderr, new RegExp(`item c${i} \\(line ${i}\\) on backend down failed: .*refused`));
    }
    const lines = readJSONL(ledgerPath).filter((l) => l.eval_run === out.run && l.backend === 'down');
    assert.equal(lines.length, 5);
    assert.ok(lines.every((l) => l.status === 'error' && l.error && l.score == null));
  });

  test("retries follow the backend's max_retries; each attempt is a ledger line", async () => {
    cloud.control({ status: 503, count: 1 });
    const r = await run(['eval', dataset, '--backends', 'local,flaky', '--config', configPath, '--format', 'json', '--limit', '1', '--concurrency', '1']);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.equal(out.backends[1].overall.errors, 0);
    assert.equal(out.backends[1].overall.n, 1);
    assert.equal(out.backends[1].overall.agree, 1);
    const lines = readJSONL(ledgerPath).filter((l) => l.eval_run === out.run && l.backend === 'flaky');
    // attempt numbers: backend index + 1, then + the number of backends per retry
    assert.deepEqual(lines.map((l) => [l.attempt, l.status, l.http_status]), [[2, 'error', 503], [4, 'ok', 200]]);
    assert.equal(lines[0].request_id, lines[1].request_id);
    assert.equal(lines[1].agree, true);
  });

  test('--help, usage errors, and a bad dataset line before any call', async () => {
    const h = await run(['eval', '--help']);
    assert.equal(h.code, 0);
    assert.match(h.stdout, /^usage: hybridllm eval DATASET\.jsonl/);
    assert.equal(h.stderr, '');
    const help2 = await run(['help', 'eval']);
    assert.equal(help2.code, 0);
    assert.equal(help2.stdout, h.stdout);
    for (const args of [
      ['eval', dataset, '--config', configPath],
      ['eval', '--backends', 'local', '--config', configPath],
      ['eval', dataset, '--backends', 'nope', '--config', configPath],
      ['eval', dataset, '--backends', 'local', '--config', configPath, '--reference', 'nope'],
      ['eval', dataset, '--backends', 'local', '--config', configPath, '--format', 'xml'],
      ['eval', dataset, '--backends', 'local', '--config', configPath, '--compare', 'vibes'],
      ['eval', dataset, '--backends', 'local', '--config', configPath, '--threshold', '0'],
      ['eval', dataset, '--backends', 'local', '--config', configPath, '--concurrency', '0'],
      ['eval', dataset, '--backends', 'local', '--config', configPath, '--ledger', 'x', '--no-ledger'],
    ]) {
      const u = await run(args);
      assert.equal(u.code, 2, `${args.join(' ')}: ${u.stderr}`);
      assert.match(u.stderr, /^hybridllm eval: /, args.join(' '));
      assert.equal(u.stdout, '');
    }
    const bad = path.join(dir, 'bad.jsonl');
    fs.writeFileSync(bad, [JSON.stringify(items[0]), JSON.stringify(items[1]), '{"prompt": "x", "expected": 42}', JSON.stringify(items[2])].join('\n') + '\n');
    local.requests.length = 0;
    const b = await run(['eval', bad, '--backends', 'local', '--config', configPath]);
    assert.equal(b.code, 2);
    assert.ok(b.stderr.includes(`${bad}:3: "expected" must be a string, an object or an array`), b.stderr);
    assert.equal(posts(local).length, 0);
    // --skip-bad: named, skipped, the rest is run
    const s = await run(['eval', bad, '--backends', 'local', '--config', configPath, '--skip-bad', '--format', 'json', '--no-ledger']);
    assert.equal(s.code, 0, s.stderr);
    assert.ok(s.stderr.includes(`skipped ${bad}:3:`), s.stderr);
    const out = JSON.parse(s.stdout);
    assert.equal(out.items, 3);
    assert.equal(out.skipped, 1);
  });

  test('the builtin engine as a backend: answers with their three confidence signals', {
    skip: fs.existsSync(STORIES) || process.env.HL_REQUIRE_MODELS === '1' ? false : `SKIP: test models not found at ${MODELS_DIR}`,
  }, async () => {
    const cfg = path.join(dir, 'builtin.yaml');
    const ledger = path.join(dir, 'builtin.jsonl');
    fs.writeFileSync(cfg, toYAML({
      ledger: { path: ledger, store: '' },
      backends: [{ name: 'embedded', kind: 'builtin', location: 'local', model_path: STORIES, model: 'stories260K', threads: 1 }],
      routes: [{ name: 'default', to: ['embedded'] }],
    }));
    const r = await run(['eval', dataset, '--backends', 'embedded', '--config', cfg, '--format', 'json', '--limit', '3']);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.equal(out.backends[0].overall.n, 3);
    assert.equal(out.backends[0].overall.errors, 0);
    const lines = readJSONL(ledger);
    assert.equal(lines.length, 3);
    for (const l of lines) {
      for (const k of ['confidence', 'confidence_margin', 'confidence_min']) assert.ok(l[k] >= 0 && l[k] <= 1, `${k} ${l[k]}`);
      assert.ok(l.output_tokens > 0 && l.source === 'local');
    }
  });

  test('the shipped example dataset runs', async () => {
    const r = await run(['eval', path.join(ROOT, 'examples/eval/support.jsonl'), '--backends', 'local', '--config', configPath, '--format', 'json', '--no-ledger']);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.equal(out.items, 40);
    assert.deepEqual(Object.keys(out.backends[0].by_task_type), ['classification', 'extraction', 'short_answer']);
    assert.equal(out.backends[0].overall.calls, 40);
  });
});
