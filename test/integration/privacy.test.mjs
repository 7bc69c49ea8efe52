// Privacy as a property, not an example: thousands of generated requests carry PII (emails,
// phones, SSNs, Luhn-valid cards, mod-97-valid IBANs, IPv4/IPv6 addresses) planted in random
// places (system prompt, user text, multi-part content, tool-call arguments, tool results, the
// `user` field, Anthropic system blocks and tool_result blocks) and in random encodings
// (plain, full-width digits, %40 for '@', surrounded by punctuation, Unicode spaces and dashes
// inside the value, zero-width characters between digits, the value wrapped across lines or
// across a quoted reply's "> " lines), and secrets (API keys, AWS pairs, GitHub tokens, .env
// lines, passwords in connection URLs) and national ids, through random routing
// policies (cloud-first lists, splits, escalation to the cloud) and random model names
// (auto, cloud backends, cloud models), in both API formats, streaming or not. The cloud fakes'
// own records must contain none of the planted values; clean requests do reach the cloud, so
// the test can fail.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startFakeAnthropic } from '../fake/anthropic.mjs';
import { startFakeOpenAI } from '../fake/openai.mjs';
import { gatewayBinaryMissing, KEYS, MODELS, posts, startGateway } from './gateway.mjs';

const skip = gatewayBinaryMissing();
const N_REQUESTS = Number(process.env.HL_PRIVACY_REQUESTS ?? 2400);

// A small deterministic PRNG (mulberry32), so a failure can be replayed with its seed.
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const SEED = Number(process.env.HL_PRIVACY_SEED ?? 20261125);
const rand = rng(SEED);
const pick = (a) => a[Math.floor(rand() * a.length)];
const digits = (n) => Array.from({ length: n }, () => Math.floor(rand() * 10)).join('');
const int = (lo, hi) => lo + Math.floor(rand() * (hi - lo + 1));

function luhnComplete(partial) {
  let sum = 0;
  for (let i = 0; i < partial.length; i++) {
    let d = Number(partial[partial.length - 1 - i]);
    if (i % 2 === 0) { d *= 2; if (d > 9) d -= 9; }
    sum += d;
  }
  return partial + ((10 - (sum % 10)) % 10);
}

function ibanDE() {
  const bban = digits(18);
  const num = `${bban}131400`; // D=13 E=14, then "00"
  let mod = 0;
  for (const ch of num) mod = (mod * 10 + Number(ch)) % 97;
  const check = String(98 - mod).padStart(2, '0');
  return `DE${check}${bban}`;
}

const GENERATORS = {
  email: () => `${pick(['alice', 'bob', 'chen', 'dana', 'eve'])}.${digits(3)}@${pick(['example', 'acme-corp', 'mail'])}.${pick(['com', 'org', 'de'])}`,
  phone: () => pick([() => `+1 415 555 ${digits(4)}`, () => `(415) 555-${digits(4)}`, () => `+44 20 7946 ${digits(4)}`])(),
  ssn: () => `${String(int(1, 665)).padStart(3, '0')}-${String(int(1, 99)).padStart(2, '0')}-${String(int(1, 9999)).padStart(4, '0')}`,
  card: () => {
    const n = luhnComplete(`4${digits(14)}`);
    const sep = pick([' ', '-', '']);
    return sep ? n.match(/.{4}/g).join(sep) : n;
  },
  iban: () => { const v = ibanDE(); return pick([true, false]) ? v.match(/.{1,4}/g).join(' ') : v; },
  // Loopback (127/8) names no one and is not PII by the detector's documented rule.
  ipv4: () => `${pick([int(11, 126), int(128, 223)])}.${int(0, 255)}.${int(0, 255)}.${int(1, 254)}`,
  ipv6: () => `2001:db8:${int(1, 0xffff).toString(16)}::${int(1, 0xffff).toString(16)}:${int(0x1000, 0xffff).toString(16)}`,
  openai_key: () => `sk-proj-A${digits(4)}${alnum(36)}`,
  aws_pair: () => `AKIA${upper(16)} ${awsSecret()}`,
  github_token: () => `ghp_${alnum(36)}`,
  env_secret: () => `DB_PASSWORD=Tr0ub4dor${digits(4)}${pick(['&', '#', '!'])}x`,
  password_in_url: () => `postgres://app:S3cure${digits(6)}@db.internal.example:5432/app`,
  uk_nino: () => `${pick(['AB', 'CE', 'JK', 'PR'])}${digits(6)}${pick(['A', 'B', 'C', 'D'])}`,
  es_dni: () => { const n = String(int(10000000, 99999999)); return n + 'TRWAGMYFPDXBNJZSQVHLCKE'[Number(n) % 23]; },
};
function alnum(n) { const a = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'; return Array.from({ length: n }, () => pick([...a])).join(''); }
function upper(n) { const a = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'; return Array.from({ length: n }, () => pick([...a])).join(''); }
function awsSecret() { let s; do s = alnum(38) + pick(['/', '+']) + alnum(1); while (!/[0-9]/.test(s) || !/[a-z]/.test(s) || !/[A-Z]/.test(s)); return s; }
const SECRET_KINDS = new Set(['openai_key', 'aws_pair', 'github_token', 'env_secret', 'password_in_url']);

const FULLWIDTH = (s) => s.replace(/[0-9]/g, (d) => String.fromCharCode(0xff10 + Number(d)));
const USEPS = ['\u00a0', '\u2009', '\u202f', '\u2007', '\u3000'];
const UDASH = ['\u2013', '\u2014', '\u2011', '\u2212', '\u2010'];
function encode(kind, value) {
  const forms = [(v) => v, (v) => `(${v})`, (v) => `"${v}",`, (v) => `\n${v}\n`];
  if (SECRET_KINDS.has(kind)) return pick(forms)(value);
  if (/[0-9]/.test(value) && kind !== 'ipv6' && kind !== 'ipv4') forms.push(FULLWIDTH);
  if (kind === 'email') forms.push((v) => v.replace('@', '%40'), (v) => v.replace('@', '\u200b@'));
  if (/\d [0-9]/.test(value)) {
    const sep = pick(USEPS);
    forms.push((v) => v.replace(/(\d) (?=\d)/g, `$1${sep}`));
    // Wrapped at one space between digit groups, plain or inside a quoted reply.
    forms.push((v) => v.replace(/(\d) (?=\d)/, `$1${pick(['\n', '\n> ', '\r\n', '\n>> '])}`));
  }
  if (/\d-\d/.test(value)) { const d = pick(UDASH); forms.push((v) => v.replace(/(\d)-(?=\d)/g, `$1${d}`)); }
  if (/\d{2}/.test(value) && kind !== 'ipv6') forms.push((v) => v.replace(/(\d)(?=\d)/g, (m) => (rand() < 0.3 ? `${m}\u200b` : m)));
  return pick(forms)(value);
}

// The forms a leak could take in an upstream body: as sent, and its digits alone.
function leakProbes(value) {
  const probes = [value];
  const d = value.replace(/[^0-9]/g, '');
  if (d.length >= 9) probes.push(d);
  // A secret's distinctive part: any 12 characters of it must not reach the cloud.
  for (const tok of value.split(/[\s=:@/]+/)) if (tok.length >= 12) probes.push(tok.slice(-12));
  return probes;
}
// What a cloud body would hold if the value leaked in any encoding: its ASCII characters
// with separators, zero-width characters and line wraps taken out.
const flatten = (b) => b.replace(/\\u[0-9a-fA-F]{4}|\\[nr]|[\u00a0\u2000-\u200f\u2010-\u2015\u2212\u202f\u3000\s>-]/g, '')
  .replace(/[\uff10-\uff19]/g, (c) => String.fromCharCode(c.charCodeAt(0) - 0xfee0));

const FILLER = ['Please help with this.', 'Here is the record:', 'Summarize the following customer note.',
  'Classify this ticket.', 'Write a Python function that validates the input.'];

// Builds one request (format, body, headers) with a value planted somewhere.
function plantedRequest(kind, value, models) {
  const carrier = encode(kind, value);
  const anthropic = rand() < 0.35;
  const stream = rand() < 0.4;
  const model = pick(models);
  const where = pick(anthropic ? ['user', 'system', 'blocks', 'tool_result', 'sysblocks'] : ['user', 'system', 'parts', 'tool_args', 'tool_result', 'user_field']);
  const text = `${pick(FILLER)} ${carrier} thanks`;
  if (!anthropic) {
    const body = { model, stream, messages: [] };
    if (stream) body.stream_options = { include_usage: true };
    if (where === 'system') body.messages.push({ role: 'system', content: text });
    if (where === 'user') body.messages.push({ role: 'user', content: text });
    if (where === 'parts') body.messages.push({ role: 'user', content: [{ type: 'text', text: pick(FILLER) }, { type: 'text', text: carrier }] });
    if (where === 'tool_args' || where === 'tool_result') {
      body.messages.push({ role: 'user', content: 'look it up' });
      body.messages.push({ role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'lookup', arguments: JSON.stringify({ q: where === 'tool_args' ? carrier : 'x' }) } }] });
      body.messages.push({ role: 'tool', tool_call_id: 'call_1', content: where === 'tool_result' ? text : 'none' });
    }
    if (where === 'user_field') { body.user = carrier.trim(); body.messages.push({ role: 'user', content: pick(FILLER) }); }
    if (!body.messages.some((m) => m.role === 'user')) body.messages.push({ role: 'user', content: pick(FILLER) });
    return { path: '/v1/chat/completions', body };
  }
  const body = { model, max_tokens: 64, stream, messages: [] };
  if (where === 'system') body.system = text;
  if (where === 'sysblocks') body.system = [{ type: 'text', text: 'You are careful.' }, { type: 'text', text }];
  if (where === 'user') body.messages.push({ role: 'user', content: text });
  if (where === 'blocks') body.messages.push({ role: 'user', content: [{ type: 'text', text: pick(FILLER) }, { type: 'text', text: carrier }] });
  if (where === 'tool_result') {
    body.messages.push({ role: 'user', content: 'look it up' });
    body.messages.push({ role: 'assistant', content: [{ type: 'tool_use', id: 'toolu_1', name: 'lookup', input: { q: 'x' } }] });
    body.messages.push({ role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_1', content: text }] });
  }
  if (!body.messages.length) body.messages.push({ role: 'user', content: pick(FILLER) });
  return { path: '/v1/messages', body };
}

function randomPolicy(clouds) {
  const routes = [];
  const tasks = ['code_generation', 'classification', 'summarization', 'analysis'];
  for (let i = 0; i < int(1, 3); i++) {
    const r = { name: `r${i}`, when: { task_type: [pick(tasks)] } };
    const kind = pick(['to', 'split', 'escalate']);
    if (kind === 'to') r.to = [pick(clouds), 'local'];
    if (kind === 'split') r.split = [{ to: pick(clouds), weight: int(1, 9) }, { to: 'local', weight: int(1, 9) }];
    if (kind === 'escalate') { r.to = ['local']; r.escalate = { below: 0.99, to: [pick(clouds)] }; }
    routes.push(r);
  }
  routes.push({ name: 'default', to: [pick(clouds), 'local'] });
  return routes;
}

describe('privacy property', { skip: skip ?? false }, () => {
  let cloudA, cloudO, local;
  const gateways = [];
  before(async () => {
    cloudA = await startFakeAnthropic({ key: KEYS.HL_TEST_ANTHROPIC_KEY });
    cloudO = await startFakeOpenAI({ key: KEYS.HL_TEST_OPENAI_KEY });
    local = await startFakeOpenAI({});
    local.control({ logprob: -1 }); // unsure local answers: escalation is always tempted
    const backends = [
      { name: 'cloud-anthropic', kind: 'anthropic', location: 'cloud', base_url: cloudA.url, api_key_env: 'HL_TEST_ANTHROPIC_KEY', model: MODELS.anthropic },
      { name: 'cloud-openai', kind: 'openai', location: 'cloud', base_url: `${cloudO.url}/v1`, api_key_env: 'HL_TEST_OPENAI_KEY', model: MODELS.openai },
      { name: 'local', kind: 'openai', location: 'local', base_url: `${local.url}/v1`, model: MODELS.local, warmup: false },
    ];
    for (let g = 0; g < 3; g++)
      gateways.push(await startGateway({ backends, routes: randomPolicy(['cloud-anthropic', 'cloud-openai']) }));
  });
  after(async () => {
    for (const gw of gateways) await gw.stop();
    await cloudA?.close();
    await cloudO?.close();
    await local?.close();
  });

  test(`${N_REQUESTS} PII-bearing requests never reach a cloud backend (seed ${SEED})`, async () => {
    const models = ['auto', 'auto', 'auto', 'cloud-anthropic', 'cloud-openai', MODELS.openai, MODELS.anthropic, 'local'];
    const planted = [];
    const jobs = [];
    for (let i = 0; i < N_REQUESTS; i++) {
      const kind = pick(Object.keys(GENERATORS));
      const value = GENERATORS[kind]();
      planted.push({ kind, value });
      jobs.push({ gw: gateways[i % gateways.length], ...plantedRequest(kind, value, models), kind, value });
    }
    // Clean requests: these may go to the cloud, which proves the cloud path is live.
    for (let i = 0; i < 60; i++) jobs.push({ gw: gateways[i % gateways.length], path: '/v1/chat/completions', body: { model: 'cloud-openai', messages: [{ role: 'user', content: 'What is the capital of France?' }] }, clean: true });

    const statuses = new Map();
    let next = 0;
    async function worker() {
      while (next < jobs.length) {
        const j = jobs[next++];
        const res = await fetch(`${j.gw.url}${j.path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(j.body) });
        const text = await res.text();
        const key = j.clean ? `clean ${res.status}` : `pii ${res.status}`;
        statuses.set(key, (statuses.get(key) ?? 0) + 1);
        if (!j.clean) {
          assert.ok([200, 403, 503].includes(res.status), `unexpected ${res.status} for ${j.kind} in ${JSON.stringify(j.body)}: ${text}`);
          if (res.status === 200)
            assert.equal(res.headers.get('x-hybridllm-backend'), 'local',
              `${j.kind} ${JSON.stringify(j.value)} (pii: ${res.headers.get('x-hybridllm-pii-detected')}, reason ${res.headers.get('x-hybridllm-route-reason')}) in ${JSON.stringify(j.body)}`);
          assert.ok(res.headers.get('x-hybridllm-pii-detected'), `PII not reported for ${j.kind} ${JSON.stringify(j.value)} in ${JSON.stringify(j.body)}`);
        }
      }
    }
    await Promise.all(Array.from({ length: 8 }, worker));

    const cloudBodies = [...posts(cloudA), ...posts(cloudO)].map((r) => (typeof r.body === 'string' ? r.body : JSON.stringify(r.body)));
    assert.ok(cloudBodies.length >= 60, `the clean requests reached the cloud (${cloudBodies.length})`);
    const leaks = [];
    const flatBodies = cloudBodies.map(flatten);
    for (const { kind, value } of planted)
      for (const probe of leakProbes(value)) {
        const flat = flatten(probe);
        for (let i = 0; i < cloudBodies.length; i++)
          if (cloudBodies[i].includes(probe) || cloudBodies[i].includes(FULLWIDTH(probe)) || (flat.length >= 9 && flatBodies[i].includes(flat)))
            leaks.push(`${kind} ${probe}`);
      }
    assert.deepEqual(leaks, [], `PII reached a cloud backend: ${leaks.slice(0, 10).join('; ')}`);
    const allowed = gateways.flatMap((g) => g.ledger()).filter((l) => l.source === 'cloud' && l.pii);
    assert.deepEqual(allowed, [], 'no cloud ledger line carries detected PII');
    console.log(`# privacy property: ${JSON.stringify(Object.fromEntries(statuses))}, cloud requests ${cloudBodies.length}`);
  });
});

describe('privacy: redact mode', { skip: skip ?? false }, () => {
  test('detected values are replaced by placeholders before a cloud call; declared sensitivity stays local', async () => {
    const cloud = await startFakeOpenAI({ key: KEYS.HL_TEST_OPENAI_KEY });
    const local = await startFakeOpenAI({});
    const gw = await startGateway({
      backends: [
        { name: 'cloud', kind: 'openai', location: 'cloud', base_url: `${cloud.url}/v1`, api_key_env: 'HL_TEST_OPENAI_KEY', model: MODELS.openai },
        { name: 'local', kind: 'openai', location: 'local', base_url: `${local.url}/v1`, model: MODELS.local, warmup: false },
      ],
      routes: [{ name: 'privacy', when: { sensitive: true }, to: ['local'] }, { name: 'default', to: ['cloud'] }],
      privacy: { redact: true, custom_patterns: [{ name: 'employee_id', pattern: 'EMP-[0-9]{6}' }] },
    });
    try {
      const ask = (content, headers = {}) => fetch(`${gw.url}/v1/chat/completions`, {
        method: 'POST', headers: { 'content-type': 'application/json', ...headers },
        body: JSON.stringify({ model: 'auto', messages: [{ role: 'user', content }] }),
      });
      const r = await ask('Mail alice@example.com about EMP-123456, card 4111 1111 1111 1111');
      assert.equal(r.status, 200);
      assert.equal(r.headers.get('x-hybridllm-backend'), 'cloud');
      assert.equal(r.headers.get('x-hybridllm-pii-detected'), 'email:1,credit_card:1,custom.employee_id:1');
      const sent = posts(cloud)[0].body.messages[0].content;
      assert.equal(sent, 'Mail [EMAIL_1] about [EMPLOYEE_ID_1], card [CREDIT_CARD_1]');
      const key = await ask('why does OPENAI_API_KEY=sk-proj-A1b2C3d4E5f6G7h8I9j0K1l2M3n4 fail? card 4111\u00a01111\n> 1111 1111');
      assert.equal(key.headers.get('x-hybridllm-backend'), 'cloud');
      assert.equal(key.headers.get('x-hybridllm-pii-detected'), 'credit_card:1,openai_key:1');
      assert.equal(posts(cloud)[1].body.messages[0].content, 'why does OPENAI_API_KEY=[OPENAI_KEY_1] fail? card [CREDIT_CARD_1]');
      const declared = await ask('nothing detectable here', { 'x-hybridllm-pii': 'true' });
      assert.equal(declared.headers.get('x-hybridllm-backend'), 'local');
      assert.equal(posts(cloud).length, 2);
    } finally {
      await gw.stop();
      await cloud.close();
      await local.close();
    }
  });
});
