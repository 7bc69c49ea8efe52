// The load generator and checker of bench/soak.sh (wrk cannot abort streams mid-way nor
// collect response ids). Node's http client with a keep-alive pool, no dependencies.
//
//   node bench/soak/load.mjs --url http://127.0.0.1:PORT --pid GATEWAY_PID --out DIR
//        [--ramp 8,16,32] [--ramp-seconds 3] [--seconds 60] [--conns N]
//
// 1. Ramp (unless --conns): a few seconds at each concurrency (8, 16, ... 1024, or --ramp's
//    list) while throughput still grows by 3% a step and no request fails; the soak runs at
//    the last concurrency that gained.
// 2. Soak: --seconds at that concurrency. Each worker loops over a mix of requests: 40% whole
//    answers, 45% streams read to the end, 15% streams the client drops after the first chunk
//    (a client disconnect). The gateway's RSS (/proc/PID/status VmRSS) is sampled every 5 s.
// Writes DIR/answered.json (x-request-id of every request answered completely: 200, whole
// body, streams up to [DONE]; the ramp's too), DIR/dropped.json (ids of the dropped streams),
// DIR/summary.json (the soak's figures; the ramp's errors apart);
// prints a line per RSS sample and per ramp step.
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith('--') ? [...acc, [a.slice(2), all[i + 1]]] : acc), []),
);
const url = new URL(args.url);
const pid = Number(args.pid);
const outDir = args.out;
const seconds = Number(args.seconds ?? 60);
const ramp = String(args.ramp ?? '').split(',').filter(Boolean).map(Number);
const rampSeconds = Number(args['ramp-seconds'] ?? 3);

const agent = new http.Agent({ keepAlive: true, maxSockets: 1024 });
const words = 'the quick brown fox jumps over the lazy dog while the gateway keeps count'.split(' ');

function rssKiB() {
  try {
    const m = fs.readFileSync(`/proc/${pid}/status`, 'utf8').match(/^VmRSS:\s+(\d+)/m);
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

// One request. kind: 'whole' | 'stream' | 'drop'. Resolves {kind, id, ok, error}.
function one(kind, n) {
  const stream = kind !== 'whole';
  const content = `soak ${n}: ${words.slice(0, 4 + (n % 10)).join(' ')}`;
  const body = JSON.stringify({ model: 'auto', stream, ...(stream ? { stream_options: { include_usage: true } } : {}), messages: [{ role: 'user', content }] });
  return new Promise((resolve) => {
    let done = false;
    const finish = (r) => {
      if (!done) {
        done = true;
        resolve({ kind, ...r });
      }
    };
    const req = http.request(
      { host: url.hostname, port: url.port, path: '/v1/chat/completions', method: 'POST', agent,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } },
      (res) => {
        const id = res.headers['x-request-id'] ?? null;
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d) => {
          if (kind === 'drop') {
            req.destroy(); // the client goes away mid-stream
            finish({ id, ok: res.statusCode === 200, dropped: true });
            return;
          }
          text += d;
        });
        res.on('end', () => {
          if (res.statusCode !== 200) return finish({ id, ok: false, error: `HTTP ${res.statusCode}: ${text.slice(0, 200)}` });
          if (stream && !text.includes('data: [DONE]')) return finish({ id, ok: false, error: 'stream ended without [DONE]' });
          if (!stream && !text.includes('"choices"')) return finish({ id, ok: false, error: `not a completion: ${text.slice(0, 200)}` });
          finish({ id, ok: true });
        });
        res.on('error', (e) => finish({ id, ok: false, error: String(e.message) }));
        res.on('aborted', () => finish({ id, ok: false, error: 'response aborted' }));
      },
    );
    req.on('error', (e) => finish({ id: null, ok: false, error: `${e.code ?? ''} ${e.message}` }));
    req.setTimeout(30000, () => req.destroy(new Error('timeout after 30 s')));
    req.end(body);
  });
}

const KINDS = [...Array(8).fill('whole'), ...Array(9).fill('stream'), ...Array(3).fill('drop')]; // 40/45/15 %
let seq = 0;

async function run(conns, secs, sink) {
  const until = Date.now() + secs * 1000;
  const stats = { n: 0, answered: 0, dropped: 0, errors: 0 };
  const worker = async () => {
    while (Date.now() < until) {
      const n = seq++;
      const r = await one(KINDS[n % KINDS.length], n);
      stats.n++;
      if (r.dropped) {
        stats.dropped++;
        sink?.dropped.push(r.id);
      } else if (r.ok) {
        stats.answered++;
        sink?.answered.push(r.id);
      } else {
        stats.errors++;
        if (sink && sink.errors.length < 20) sink.errors.push(r.error);
      }
    }
  };
  const t0 = Date.now();
  await Promise.all(Array.from({ length: conns }, worker));
  stats.seconds = (Date.now() - t0) / 1000;
  stats.rps = stats.n / stats.seconds;
  return stats;
}

// Every request, ramp included, goes to the ledger check.
const sink = { answered: [], dropped: [], errors: [] };
let conns = args.conns ? Number(args.conns) : null;
const rampResults = [];
if (!conns) {
  // Doubling from the first step (or the given list) until throughput stops growing by 3%, a
  // step has errors, or the list / 1024 connections ends.
  const steps = args.ramp ? ramp : [8, 16, 32, 64, 128, 256, 512, 1024];
  let best = 0;
  for (const c of steps) {
    const s = await run(c, rampSeconds, sink);
    rampResults.push({ conns: c, rps: s.rps, errors: s.errors });
    console.log(`ramp: ${c} connections: ${s.rps.toFixed(0)} requests/s, ${s.errors} errors`);
    if (s.errors) break;
    if (s.rps < best * 1.03) break;
    best = s.rps;
    conns = c;
  }
  conns ??= steps[0];
  console.log(`soak at ${conns} connections (more gave no more throughput, or errors, or the ramp ended)`);
}

const rss = [{ t: 0, kib: rssKiB() }];
console.log(`rss t=0s ${rss[0].kib} KiB`);
const t0 = Date.now();
const sampler = setInterval(() => {
  const s = { t: Math.round((Date.now() - t0) / 1000), kib: rssKiB() };
  rss.push(s);
  console.log(`rss t=${s.t}s ${s.kib} KiB`);
}, 5000);
const stats = await run(conns, seconds, sink);
clearInterval(sampler);
rss.push({ t: Math.round((Date.now() - t0) / 1000), kib: rssKiB() });
agent.destroy();

fs.writeFileSync(path.join(outDir, 'answered.json'), JSON.stringify(sink.answered));
fs.writeFileSync(path.join(outDir, 'dropped.json'), JSON.stringify(sink.dropped));
const rampErrors = rampResults.reduce((n, r) => n + r.errors, 0);
const summary = { conns, ramp: rampResults, ramp_errors: rampErrors, ...stats, rss, error_samples: sink.errors };
fs.writeFileSync(path.join(outDir, 'summary.json'), JSON.stringify(summary, null, 1));
console.log(`soak: ${stats.n} requests in ${stats.seconds.toFixed(1)} s (${stats.rps.toFixed(0)}/s): ${stats.answered} answered, ${stats.dropped} dropped by the client, ${stats.errors} errors`);
for (const e of sink.errors.slice(0, 5)) console.log(`  error: ${e}`);
