// The gateway against hostile or careless clients, at the limits of the process: a low
// file-descriptor limit with more clients than descriptors (issue 10, item 1), clients that
// stop reading their response (item 2), and HTTP/1.1 requests without Host (item 7).
//
// The fd-limit tests run the gateway under `prlimit --nofile=256:256` and need Linux's /proc
// (CPU time and open descriptors of the process); they are skipped without them, and with the
// reference gateway (a JS model of the API contract, not of the process's limits).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import fs from 'node:fs';
import { spawnSync } from 'node:child_process';
import { startGateway, gatewayBinaryMissing, HL_BIN, MODELS } from './gateway.mjs';
import { startFakeOpenAI } from '../fake/openai.mjs';
import { rawHttp, sleep, waitFor } from './util.mjs';

const missing = gatewayBinaryMissing();
const reference = HL_BIN.endsWith('.mjs') ? 'the reference gateway does not model process limits' : null;
const noPrlimit = spawnSync('prlimit', ['--version']).status === 0 ? null : 'prlimit (util-linux) is not installed';
const noProc = fs.existsSync('/proc/self/stat') ? null : 'no /proc';
const skipLimits = missing || reference || noPrlimit || noProc;
const skipProc = missing || reference || noProc;
const FD_LIMIT = 256;
const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK']).stdout?.toString().trim()) || 100;

// CPU seconds (user + system) the process has used.
function cpuSeconds(pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / CLK_TCK; // utime, stime (fields 14, 15)
}
const rssMiB = (pid) => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) / 1024;
// Client connections the process holds on its listening port (the upstream pool's sockets
// are not counted): its socket descriptors matched with /proc/net/tcp{,6} by inode.
function clientSockets(pid, port) {
  const inodes = new Set();
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]);
    } catch {}
  }
  let n = 0;
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try {
      text = fs.readFileSync(table, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10 || f[3] === '0A') continue; // 0A: listening
      if (parseInt(f[1].split(':')[1], 16) === port && inodes.has(f[9])) n++;
    }
  }
  return n;
}

// A client connection that records what came back: status of the first response, whether
// the server closed it, and the bytes received.
function client(port, payload) {
  const c = { sock: net.connect(port, '127.0.0.1'), status: null, headers: '', bytes: 0, closed: false, error: null, buf: '' };
  c.sock.on('data', (d) => {
    c.bytes += d.length;
    if (c.status === null) {
      c.buf += d.toString('latin1');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(c.buf);
      const end = c.buf.indexOf('\r\n\r\n');
      if (m && end > 0) {
        c.status = Number(m[1]);
        c.headers = c.buf.slice(0, end);
        c.body = c.buf.slice(end + 4);
      }
    }
  });
  c.sock.on('error', (e) => (c.error = e.code));
  c.sock.on('close', () => (c.closed = true));
  if (payload) c.sock.on('connect', () => c.sock.write(payload));
  return c;
}

// GET /healthz on a new connection: true when it answers 200 within timeoutMs.
async function healthy(port, timeoutMs = 300) {
  const r = await rawHttp(port, 'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', { timeoutMs });
  return r.status === 200;
}

// Polls /healthz until it answers; resolves to the milliseconds it took.
async function msUntilHealthy(port, limitMs) {
  const t0 = Date.now();
  while (Date.now() - t0 < limitMs + 2000) {
    if (await healthy(port)) return Date.now() - t0;
    await sleep(20);
  }
  return Infinity;
}

async function cpuOver(pid, ms) {
  const c0 = cpuSeconds(pid);
  await sleep(ms);
  return cpuSeconds(pid) - c0;
}

const ROUTES = [{ name: 'default', to: ['local'] }];
const HEALTHZ_KEEPALIVE = 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n';

describe('limits: file descriptors', { skip: skipLimits ?? false }, () => {
  let local;
  before(async () => {
    local = await startFakeOpenAI({ models: [MODELS.local] });
  });
  after(async () => {
    await local?.close();
  });
  const backends = () => [{ name: 'local', kind: 'openai', location: 'local', base_url: `${local.url}/v1`, model: MODELS.local }];

  it('past the default cap (from the fd limit) connections get a canned 503; no spin; serving within a second of the load ending; SIGTERM drains', async () => {
    const gw = await startGateway({ backends: backends(), routes: ROUTES, wrap: ['prlimit', `--nofile=${FD_LIMIT}:${FD_LIMIT}`, '--'] });
    const clients = [];
    try {
      for (let i = 0; i < 400; i++) clients.push(client(gw.port, HEALTHZ_KEEPALIVE));
      // Every client is answered (200 within the cap, 503 past it) or closed: none hangs.
      await waitFor(() => clients.every((c) => c.status !== null || c.closed), 10000, 'an answer or a close for each of 400 clients');
      const ok = clients.filter((c) => c.status === 200).length;
      const refused = clients.filter((c) => c.status === 503);
      assert.ok(ok > 0 && ok < FD_LIMIT, `some clients served, fewer than the fd limit: ${ok}`);
      assert.ok(refused.length > 0, 'connections past the cap are refused with a 503');
      for (const c of refused.slice(0, 5)) {
        assert.match(c.headers, /\r\nRetry-After: 1(\r\n|$)/i, c.headers);
        assert.match(c.headers, /\r\nConnection: close(\r\n|$)/i, c.headers);
        assert.match(JSON.parse(c.body).error.message, /connection limit/);
      }
      // Held at the cap, the loops are idle (spinning loops burn a core each).
      const cpu = await cpuOver(gw.proc.pid, 1000);
      assert.ok(cpu < 0.3, `CPU while holding 400 clients: ${cpu.toFixed(2)} s in 1 s`);
      assert.equal(gw.exitInfo, null, 'the gateway is running');
    } catch (e) {
      await gw.stop();
      throw e;
    } finally {
      for (const c of clients) c.sock.destroy();
    }
    try {
      const ms = await msUntilHealthy(gw.port, 1000);
      assert.ok(ms <= 1000, `GET /healthz answered ${ms} ms after the load ended`);
      const { code, timedOut } = await gw.stop({ timeoutMs: 5000 });
      assert.equal(timedOut, false, `SIGTERM drains and exits\n${gw.output().slice(-2000)}`);
      assert.equal(code, 0);
    } finally {
      if (!gw.exitInfo) await gw.stop();
    }
  });

  it('out of descriptors (max_connections above the fd limit): idle connections are shed, new clients served, no spin, SIGTERM drains under load', async () => {
    const gw = await startGateway({
      backends: backends(),
      routes: ROUTES,
      extraServer: { max_connections: 100000 },
      wrap: ['prlimit', `--nofile=${FD_LIMIT}:${FD_LIMIT}`, '--'],
    });
    const silent = [];
    const served = [];
    try {
      // 400 connections that send nothing: more than the process has descriptors.
      for (let i = 0; i < 400; i++) silent.push(client(gw.port));
      await waitFor(() => silent.every((c) => c.sock.readyState === 'open' || c.closed), 5000, '400 connections');
      await sleep(300);
      // Out of descriptors with connections waiting: the loops do not spin.
      const cpu = await cpuOver(gw.proc.pid, 1000);
      assert.ok(cpu < 0.3, `CPU while out of descriptors: ${cpu.toFixed(2)} s in 1 s`);
      // New clients are served meanwhile: the oldest idle connections make room.
      for (let i = 0; i < 50; i++) served.push(client(gw.port, HEALTHZ_KEEPALIVE));
      await waitFor(() => served.every((c) => c.status !== null), 5000, 'answers to 50 clients while out of descriptors');
      assert.deepEqual([...new Set(served.map((c) => c.status))], [200]);
      assert.ok(silent.some((c) => c.closed), 'idle connections were closed to make room');
      assert.match(gw.output(), /cannot accept connections: Too many open files/);
      // SIGTERM with the 400 connections still open: idle ones are closed, and it exits.
      const { code, timedOut } = await gw.stop({ timeoutMs: 5000 });
      assert.equal(timedOut, false, `SIGTERM drains and exits under load\n${gw.output().slice(-2000)}`);
      assert.equal(code, 0);
    } finally {
      for (const c of [...silent, ...served]) c.sock.destroy();
      if (!gw.exitInfo) await gw.stop();
    }
  });
});

describe('limits: clients that stop reading', { skip: skipProc ?? false }, () => {
  const REPLY_MB = 8;
  // Long enough that this process (which also runs the fake upstream) does not stall its
  // own reading client for that long on a busy machine.
  const WRITE_TIMEOUT_MS = 1500;
  let local;
  let gw;
  before(async () => {
    local = await startFakeOpenAI({ models: [MODELS.local] });
    gw = await startGateway({
      backends: [{ name: 'local', kind: 'openai', location: 'local', base_url: `${local.url}/v1`, model: MODELS.local, max_retries: 0 }],
      routes: ROUTES,
      extraServer: { write_timeout_ms: WRITE_TIMEOUT_MS },
      // A fixed mmap threshold: glibc's sliding one keeps freed multi-MiB buffers in the heap,
      // and RSS would then measure the allocator's history instead of what is held.
      env: { MALLOC_MMAP_THRESHOLD_: '131072' },
    });
  });
  after(async () => {
    await gw?.stop();
    await local?.close();
  });

  const chat = (version, extra = '') => {
    const body = JSON.stringify({ model: 'auto', messages: [{ role: 'user', content: 'a long answer please' }] });
    return `POST /v1/chat/completions HTTP/${version}\r\n${version === '1.1' ? 'Host: x\r\n' : ''}Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${extra}\r\n${body}`;
  };

  it('Connection: close and HTTP/1.0 clients that do not read are cut after write_timeout_ms; memory stays bounded', async () => {
    local.control({ reply: ('x'.repeat(1023) + ' ').repeat(REPLY_MB * 1024) });
    const pid = gw.proc.pid;
    const rss = [];
    // Three rounds of six such clients: each round's connections must be closed by the
    // gateway although their clients never read, and memory must not grow round by round.
    for (let round = 0; round < 3; round++) {
      const t0 = Date.now();
      const clients = [];
      for (let i = 0; i < 3; i++) clients.push(client(gw.port, chat('1.0')));
      for (let i = 0; i < 3; i++) clients.push(client(gw.port, chat('1.1', 'Connection: close\r\n')));
      // Not reading: once node's own buffer is full it stops taking bytes from the kernel.
      for (const c of clients) c.sock.pause();
      const answered = () => local.requests.filter((r) => r.method === 'POST' && r.finished && r.time >= t0).length;
      await waitFor(() => answered() === clients.length, 20000, `the upstream answering every request (${answered()})`);
      await waitFor(() => clientSockets(pid, gw.port) === 0, 5000, `the gateway closing its client connections (open: ${clientSockets(pid, gw.port)})`);
      rss.push(rssMiB(pid));
      if (round === 0) {
        // What the clients get when they read at last: less than the whole answer, then the end.
        for (const c of clients) c.sock.resume();
        await waitFor(() => clients.every((c) => c.closed), 5000, 'the clients see the end of their connections');
        for (const c of clients) {
          const len = Number(/\r\ncontent-length: (\d+)/i.exec(c.headers)?.[1]);
          assert.ok(len > REPLY_MB * 1024 * 1024, `a whole response was promised: ${c.headers}`);
          assert.ok(c.bytes < len, `the response was cut: ${c.bytes} of ${len} bytes`);
        }
      }
      for (const c of clients) c.sock.destroy();
    }
    // Holding them would take at least REPLY_MB per client and round.
    assert.ok(rss[2] - rss[0] < 3 * REPLY_MB, `RSS after each round: ${rss.map((x) => x.toFixed(0)).join(', ')} MiB`);
  });

  it('a streaming client that stops reading is cut after write_timeout_ms, and the request recorded as cancelled', async () => {
    local.control({ reply: ('z'.repeat(1023) + ' ').repeat(REPLY_MB * 1024) });
    const t0 = Date.now();
    const body = JSON.stringify({ model: 'auto', stream: true, messages: [{ role: 'user', content: 'stream a long answer' }] });
    const c = client(gw.port, `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
    c.sock.pause();
    await waitFor(() => local.requests.find((r) => r.method === 'POST' && r.time >= t0), 5000, 'the upstream request');
    await waitFor(() => clientSockets(gw.proc.pid, gw.port) === 0, 5000, 'the gateway closing the connection');
    const line = await waitFor(() => gw.ledger().find((l) => l.stream === true && Date.parse(l.timestamp) >= t0 - 1000), 5000, 'a ledger line');
    assert.equal(line.status, 'cancelled', JSON.stringify(line));
    c.sock.destroy();
  });

  it('a keep-alive client that pipelines requests and reads nothing: answers stop at the buffer bound, then it is cut', async () => {
    local.control({ reply: ('p'.repeat(1023) + ' ').repeat(512) }); // ~512 KiB an answer
    const t0 = Date.now();
    const one = chat('1.1');
    const c = client(gw.port, one.repeat(64));
    c.sock.pause();
    await waitFor(() => local.requests.find((r) => r.method === 'POST' && r.time >= t0), 5000, 'the first upstream request');
    await waitFor(() => clientSockets(gw.proc.pid, gw.port) === 0, 10000, 'the gateway closing the connection');
    const sent = local.requests.filter((r) => r.method === 'POST' && r.time >= t0).length;
    // 64 answers would be 32 MiB; the gateway stops taking requests once about its high
    // watermark (1 MiB) waits beyond what the kernel holds.
    assert.ok(sent > 0 && sent < 40, `upstream calls made for 64 pipelined requests: ${sent}`);
    c.sock.destroy();
    const calls = () => local.requests.filter((r) => r.method === 'POST' && r.time >= t0);
    await waitFor(() => calls().every((r) => r.finished || r.closed), 5000, 'the upstream calls over');
  });

  it('a client that reads a large response slowly but steadily gets all of it', async () => {
    local.control({ reply: ('y'.repeat(1023) + ' ').repeat(REPLY_MB * 1024) });
    const c = client(gw.port, chat('1.0'));
    // A pause after each chunk read: the whole transfer takes several write timeouts, but
    // the client never stalls for one.
    const t0 = Date.now();
    c.sock.on('data', () => {
      c.sock.pause();
      setTimeout(() => c.sock.resume(), 20);
    });
    await waitFor(() => c.closed, 30000, 'the end of the response');
    const len = Number(/\r\ncontent-length: (\d+)/i.exec(c.headers)?.[1]);
    assert.equal(c.status, 200);
    assert.equal(c.bytes - c.headers.length - 4, len, 'the whole body arrived');
    assert.ok(Date.now() - t0 > WRITE_TIMEOUT_MS, 'the transfer outlasted the write timeout');
  });
});

describe('limits: Host header', { skip: missing || reference || false }, () => {
  let local;
  let gw;
  before(async () => {
    local = await startFakeOpenAI({ models: [MODELS.local] });
    gw = await startGateway({ backends: [{ name: 'local', kind: 'openai', location: 'local', base_url: `${local.url}/v1`, model: MODELS.local }], routes: ROUTES });
  });
  after(async () => {
    await gw?.stop();
    await local?.close();
  });

  it('an HTTP/1.1 request without Host gets 400 saying so; HTTP/1.0 may omit it', async () => {
    const r = await rawHttp(gw.port, 'GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n');
    assert.equal(r.status, 400, r.raw);
    assert.match(JSON.parse(r.body).error.message, /Host header/);
    const r10 = await rawHttp(gw.port, 'GET /healthz HTTP/1.0\r\n\r\n');
    assert.equal(r10.status, 200, r10.raw);
    const r11 = await rawHttp(gw.port, 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
    assert.equal(r11.status, 200, r11.raw);
  });
});
