// The closing check of bench/soak.sh: every request the gateway answered completely has
// exactly one ledger line with status "ok"; no request has two; a stream the client dropped
// has one final line (cancelled, or ok when it had finished first); no ok line belongs to a
// request the load generator did not see answered.
//
//   node bench/soak/ledger_check.mjs LEDGER.jsonl DIR    (DIR: load.mjs's answered/dropped.json)
// Prints the figures and "ledger check: PASS" or "ledger check: FAIL (...)"; exits 1 on FAIL.
import fs from 'node:fs';
import path from 'node:path';

const [ledgerPath, dir] = process.argv.slice(2);
const answered = JSON.parse(fs.readFileSync(path.join(dir, 'answered.json'), 'utf8'));
const dropped = JSON.parse(fs.readFileSync(path.join(dir, 'dropped.json'), 'utf8'));
const lines = fs.readFileSync(ledgerPath, 'utf8').split('\n').filter((l) => l.trim());
const byId = new Map();
let unparseable = 0;
for (const l of lines) {
  let j;
  try {
    j = JSON.parse(l);
  } catch {
    unparseable++;
    continue;
  }
  const a = byId.get(j.request_id) ?? [];
  a.push(j.status);
  byId.set(j.request_id, a);
}
const okCount = (id) => (byId.get(id) ?? []).filter((s) => s === 'ok').length;
const problems = [];
const noId = answered.filter((id) => !id).length;
if (noId) problems.push(`${noId} answers without an x-request-id`);
const missing = answered.filter((id) => id && okCount(id) === 0);
const doubled = [...byId.keys()].filter((id) => okCount(id) > 1);
if (missing.length) problems.push(`${missing.length} answered requests without an ok line (e.g. ${missing.slice(0, 3).join(', ')})`);
if (doubled.length) problems.push(`${doubled.length} requests with more than one ok line (e.g. ${doubled.slice(0, 3).join(', ')})`);
if (unparseable) problems.push(`${unparseable} ledger lines are not JSON`);
const dropFinal = { cancelled: 0, ok: 0, none: 0, other: 0 };
for (const id of dropped) {
  const st = byId.get(id) ?? [];
  if (!st.length) dropFinal.none++;
  else if (st.includes('ok')) dropFinal.ok++;
  else if (st.includes('cancelled')) dropFinal.cancelled++;
  else dropFinal.other++;
}
if (dropFinal.none) problems.push(`${dropFinal.none} dropped streams have no ledger line`);
const known = new Set([...answered, ...dropped]);
const strays = [...byId.keys()].filter((id) => !known.has(id) && okCount(id) > 0).length;
if (strays) problems.push(`${strays} ok lines of requests the load generator never sent or never saw answered`);
console.log(`ledger: ${lines.length} lines; answered ${answered.length}, each with exactly one ok line: ${answered.length - missing.length}; ` +
  `requests with more than one ok line: ${doubled.length}; dropped streams ${dropped.length}: ${dropFinal.cancelled} cancelled, ` +
  `${dropFinal.ok} ok (finished first), ${dropFinal.other} other, ${dropFinal.none} without a line; ok lines of other requests: ${strays}`);
console.log(problems.length ? `ledger check: FAIL (${problems.join('; ')})` : 'ledger check: PASS');
process.exit(problems.length ? 1 : 0);
