// Two gateway instances sharing one PostgreSQL ledger store (issue 5), against a real server:
// HL_TEST_PG is a libpq URI where databases may be created (scripts/pg.sh starts one;
// scripts/test.sh does, and sets HL_REQUIRE_PG=1 so that a missing server fails instead of
// skipping). Each test gets a database of its own, made and dropped with psql.
//
// - one budget for the fleet: a request through either instance counts against the same cap;
//   an instance that spent nothing refuses once the other spent it; a third instance started
//   later with an empty journal starts at the cap;
// - every line of both journals lands in the database once, and `hybridllm report` over the
//   database agrees with the journals;
// - kill -9 under load, restart on the same journal: every answered request is in the
//   database exactly once.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import OpenAI from 'openai';
import { startFakeOpenAI } from '../fake/openai.mjs';
import { gatewayBinaryMissing, HL_BIN, KEYS, MODELS, startGateway } from './gateway.mjs';

const BASE = process.env.HL_TEST_PG;
const required = process.env.HL_REQUIRE_PG === '1';
const skip = gatewayBinaryMissing() ?? (BASE || required ? false : 'HL_TEST_PG is not set (eval "$(bash scripts/pg.sh start)" gives one)');
const PRICE = { model: MODELS.openai, input_per_mtok: 5000, output_per_mtok: 15000 };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function psql(uri, sql) {
  return execFileSync('psql', [uri, '-v', 'ON_ERROR_STOP=1', '-Atqc', sql], {
    encoding: 'utf8', env: { ...process.env, PGOPTIONS: '-c client_min_messages=warning' },
  }).trim();
}

let made = 0;
function makeDatabase() {
  assert.ok(BASE, 'HL_TEST_PG is not set but HL_REQUIRE_PG=1');
  const name = `hl_it_${process.pid}_${made++}`;
  psql(BASE, `DROP DATABASE IF EXISTS ${name}`);
  psql(BASE, `CREATE DATABASE ${name}`);
  return { name, uri: `${BASE}${BASE.includes('?') ? '&' : '?'}dbname=${name}` };
}
const dropDatabase = (db) => psql(BASE, `DROP DATABASE IF EXISTS ${db.name} WITH (FORCE)`);

async function readyz(gw) {
  return (await fetch(`${gw.url}/readyz`)).json();
}

async function until(what, fn, timeoutMs = 5000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await fn()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

const okCost = (gw) => gw.ledger().filter((l) => l.status === 'ok').reduce((a, l) => a + l.cost_usd, 0);

describe('PostgreSQL store shared by two gateways', { skip }, () => {
  let cloud, local;
  const dirs = [];
  before(async () => {
    cloud = await startFakeOpenAI({ key: KEYS.HL_TEST_OPENAI_KEY, models: [MODELS.openai] });
    local = await startFakeOpenAI({ models: [MODELS.local] });
  });
  after(async () => {
    await cloud?.close();
    await local?.close();
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  });
  const backends = () => [
    { name: 'cloud', kind: 'openai', location: 'cloud', base_url: `${cloud.url}/v1`, api_key_env: 'HL_TEST_OPENAI_KEY', model: MODELS.openai, max_retries: 0 },
    { name: 'local', kind: 'openai', location: 'local', base_url: `${local.url}/v1`, model: MODELS.local, max_retries: 0 },
  ];
  const journal = () => {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), 'hlpg-'));
    dirs.push(d);
    return path.join(d, 'ledger.jsonl');
  };
  const gateway = (db, ledgerPath, budgets) => startGateway({
    ledgerPath,
    backends: backends(),
    routes: [{ name: 'default', to: ['cloud'] }],
    prices: [PRICE],
    budgets,
    extraLedger: { store: db.uri, index_interval_ms: 50 },
  });

  test('one budget for the fleet, one ledger, one report', async () => {
    const db = makeDatabase();
    const cap = 0.25;
    const budgets = [{ name: 'fleet', period: 'month', limit_usd: cap, action: 'reject' }];
    const a = await gateway(db, journal(), budgets);
    const b = await gateway(db, journal(), budgets);
    let c3;
    try {
      const client = (gw) => new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'unused', maxRetries: 0 });
      const ca = client(a), cb = client(b);
      // Alternate between the instances, one request at a time, letting each sync the other's
      // spend in between: the fleet then stops within one request of the cap.
      const outcomes = [];
      for (let i = 0; i < 60 && outcomes.slice(-2).filter((o) => o === 429).length < 2; i++) {
        const c = i % 2 ? cb : ca;
        const status = await c.chat.completions
          .create({ model: 'auto', messages: [{ role: 'user', content: 'how much is it' }] })
          .then(() => 200, (e) => e.status);
        outcomes.push(status);
        const spent = okCost(a) + okCost(b);
        await until('both instances to see the fleet\'s spend', async () => {
          const [ra, rb] = await Promise.all([readyz(a), readyz(b)]);
          return Math.abs(ra.budgets[0].spent_usd - spent) < 1e-9 && Math.abs(rb.budgets[0].spent_usd - spent) < 1e-9;
        });
      }
      const served = outcomes.filter((o) => o === 200).length;
      assert.deepEqual(outcomes.slice(-2), [429, 429], `both instances refuse at the cap: ${outcomes}`);
      assert.ok(outcomes.slice(served).every((o) => o === 429), `refusals only after the cap: ${outcomes}`);
      assert.ok(okCost(a) > 0 && okCost(b) > 0, 'both instances spent');
      const total = okCost(a) + okCost(b);
      const one = a.ledger().find((l) => l.status === 'ok').cost_usd;
      assert.ok(total >= cap && total < cap + one + 1e-9, `fleet spent ${total} against a cap of ${cap} (one request: ${one})`);

      // A third instance with an empty journal starts at the cap: the spend is in the database.
      c3 = await gateway(db, journal(), budgets);
      const r3 = await readyz(c3);
      assert.ok(Math.abs(r3.budgets[0].spent_usd - total) < 1e-9, `new instance sees ${r3.budgets[0].spent_usd}`);
      const refused = await client(c3).chat.completions.create({ model: 'auto', messages: [{ role: 'user', content: 'x' }] }).catch((e) => e);
      assert.equal(refused.status, 429);
      assert.equal(refused.code, 'budget_exceeded');
      await c3.stop();
      c3 = undefined;

      // Every journal line of both instances, exactly once; the database keeps the spend.
      const la = a.ledger(), lb = b.ledger();
      await a.stop();
      await b.stop();
      assert.equal(Number(psql(db.uri, 'SELECT count(*) FROM inferences')), la.length + lb.length);
      assert.equal(Number(psql(db.uri, 'SELECT count(DISTINCT (request_id, attempt)) FROM inferences')), la.length + lb.length);
      assert.ok(Math.abs(Number(psql(db.uri, 'SELECT sum(cost_usd) FROM cloud_spend')) - total) < 1e-9);
      assert.equal(Number(psql(db.uri, 'SELECT count(*) FROM journal_state')), 3);
      // The report over the database agrees with the journals.
      const rep = JSON.parse(execFileSync(HL_BIN, ['report', '--db', db.uri, '--format', 'json', '--group-by', 'source'], { encoding: 'utf8' }));
      assert.equal(rep.total.requests, la.length + lb.length);
      assert.ok(Math.abs(rep.total.cost_usd - total) < 1e-9);
      const cloudGroup = rep.groups.find((g) => g.group === 'cloud');
      assert.equal(cloudGroup.requests, served);
    } finally {
      await c3?.stop();
      await a.stop();
      await b.stop();
      dropDatabase(db);
    }
  });

  test('a database that is not there at start: the gateway serves, budgets from its journal, and indexes once it appears', async () => {
    const name = `hl_it_${process.pid}_late`;
    psql(BASE, `DROP DATABASE IF EXISTS ${name}`);
    const db = { name, uri: `${BASE}${BASE.includes('?') ? '&' : '?'}dbname=${name}` };
    const gw = await gateway(db, journal(), [{ name: 'cap', period: 'month', limit_usd: 100, action: 'reject' }]);
    try {
      const c = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'unused', maxRetries: 0 });
      for (let i = 0; i < 3; i++) await c.chat.completions.create({ model: 'auto', messages: [{ role: 'user', content: 'early' }] });
      assert.match(gw.output(), /ledger store: .*does not exist.*indexing starts when it answers/);
      assert.doesNotMatch(gw.output(), /password/);
      const spent = okCost(gw);
      assert.ok(Math.abs((await readyz(gw)).budgets[0].spent_usd - spent) < 1e-9, 'budgets count this gateway\'s spend meanwhile');
      psql(BASE, `CREATE DATABASE ${name}`);
      await until('the indexer to connect, migrate and catch up', async () => {
        try { return Number(psql(db.uri, 'SELECT count(*) FROM inferences')) === 3; } catch { return false; }
      }, 10000);
      await until('the budgets to read the database', async () =>
        Math.abs((await readyz(gw)).budgets[0].spent_usd - spent) < 1e-9);
    } finally {
      await gw.stop();
      dropDatabase(db);
    }
  });

  test('kill -9 under load, restart: every answered request is in the database once', async () => {
    const db = makeDatabase();
    const ledgerPath = journal();
    const gw = await gateway(db, ledgerPath, undefined);
    const answered = [];
    let stop = false;
    const c = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'unused', maxRetries: 0 });
    const worker = async () => {
      while (!stop) {
        try {
          const { response } = await c.chat.completions.create({ model: 'auto', messages: [{ role: 'user', content: 'count me' }] }).withResponse();
          answered.push(response.headers.get('x-request-id'));
        } catch {
          return; // the gateway is gone
        }
      }
    };
    const load = Promise.all([worker(), worker(), worker(), worker()]);
    await until('a few hundred answers, some already in the database', async () =>
      answered.length >= 300 && Number(psql(db.uri, 'SELECT count(*) FROM inferences')) > 0, 20000);
    gw.proc.kill('SIGKILL');
    await gw.exited;
    stop = true;
    await load;
    const before = Number(psql(db.uri, 'SELECT count(*) FROM inferences'));
    // The same journal, a new process: its first pass catches up from the committed offset.
    const gw2 = await gateway(db, ledgerPath, undefined);
    try {
      await gw2.stop();
      const lines = fs.readFileSync(ledgerPath, 'utf8').split('\n').filter(Boolean).length;
      assert.ok(before <= lines);
      assert.equal(Number(psql(db.uri, 'SELECT count(*) FROM inferences')), lines);
      const ids = psql(db.uri, 'SELECT request_id FROM inferences').split('\n');
      const seen = new Map();
      for (const id of ids) seen.set(id, (seen.get(id) ?? 0) + 1);
      for (const id of answered) assert.equal(seen.get(id), 1, `request ${id} answered before the kill is in the database once`);
    } finally {
      await gw2.stop();
      dropDatabase(db);
    }
  });
});
