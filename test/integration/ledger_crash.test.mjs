// kill -9 under load with the default SQLite ledger store (issue 5): the gateway is killed
// while it answers requests and indexes its journal; a new process on the same journal
// catches up, and every request answered before the kill is in the journal once and in the
// store once. (The PostgreSQL store has the same test in pgstore.test.mjs.)
//
// The store is read with `hybridllm report`: its attempts are rows, and (request_id, attempt)
// is unique there, so rows == journal lines with distinct keys means every line exactly once.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import OpenAI from 'openai';
import { startFakeOpenAI } from '../fake/openai.mjs';
import { gatewayBinaryMissing, HL_BIN, MODELS, startGateway } from './gateway.mjs';
import { waitFor } from './util.mjs';

const skip = gatewayBinaryMissing() ?? false;

function report(db) {
  return JSON.parse(execFileSync(HL_BIN, ['report', '--db', db, '--format', 'json', '--group-by', 'none'], { encoding: 'utf8' }));
}

describe('SQLite ledger store: kill -9 and restart', { skip }, () => {
  let local, dir;
  before(async () => {
    local = await startFakeOpenAI({ models: [MODELS.local] });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hlcrash-'));
  });
  after(async () => {
    await local?.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  test('every answered request is in the journal and the store exactly once', async () => {
    const ledgerPath = path.join(dir, 'ledger.jsonl');
    const db = path.join(dir, 'ledger.db'); // the default: beside the journal
    const opts = {
      ledgerPath,
      backends: [{ name: 'local', kind: 'openai', location: 'local', base_url: `${local.url}/v1`, model: MODELS.local, max_retries: 0 }],
      routes: [{ name: 'default', to: ['local'] }],
      extraLedger: { index_interval_ms: 20 },
    };
    const gw = await startGateway(opts);
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
    await waitFor(() => answered.length >= 300 && fs.existsSync(db) && report(db).total.attempts > 0, 20000,
      'a few hundred answers, some already in the store');
    gw.proc.kill('SIGKILL');
    await gw.exited;
    stop = true;
    await load;

    const gw2 = await startGateway(opts);
    await gw2.stop(); // its final index pass takes the journal to its end
    const lines = fs.readFileSync(ledgerPath, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
    const keys = new Set(lines.map((l) => `${l.request_id}/${l.attempt}`));
    assert.equal(keys.size, lines.length, 'journal lines have distinct keys');
    for (const id of answered) assert.ok(keys.has(`${id}/1`), `answered request ${id} is in the journal`);
    const r = report(db);
    assert.equal(r.total.attempts, lines.length);
    assert.equal(r.total.requests, lines.length);
  });
});
