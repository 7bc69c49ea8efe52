// Small helpers shared by the integration tests.
import net from 'node:net';
import fs from 'node:fs';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Polls fn() (sync or async) every `interval` ms until it returns a truthy value; returns it.
// Throws with `what` in the message after `timeoutMs`.
export async function waitFor(fn, timeoutMs = 5000, what = 'condition', interval = 20) {
  const deadline = Date.now() + timeoutMs;
  let lastErr;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      lastErr = e;
    }
    if (Date.now() >= deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastErr ? ` (last error: ${lastErr.message})` : ''}`);
    }
    await sleep(interval);
  }
}

// A port that was free a moment ago (listen on 0, close, reuse the number).
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

// Parses an SSE body into [{event, data}] following the SSE rules the SDKs use: ':' comments,
// multi-line data joined by '\n', trailing '\r' stripped, blank line dispatches.
export function parseSSE(text) {
  const out = [];
  let event = null;
  let data = [];
  let has = false;
  for (let line of text.split('\n')) {
    if (line.endsWith('\r')) line = line.slice(0, -1);
    if (line === '') {
      if (has) out.push({ event, data: data.join('\n') });
      event = null;
      data = [];
      has = false;
      continue;
    }
    if (line.startsWith(':')) continue;
    const i = line.indexOf(':');
    const field = i < 0 ? line : line.slice(0, i);
    let value = i < 0 ? '' : line.slice(i + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') {
      event = value;
      has = true;
    } else if (field === 'data') {
      data.push(value);
      has = true;
    }
  }
  if (has) out.push({ event, data: data.join('\n'), unterminated: true });
  return out;
}

// Sends raw bytes over TCP and collects the reply. Resolves when the server closes the
// connection, when one complete response (by content-length) has arrived, or at timeoutMs.
// Write errors (EPIPE/ECONNRESET from a server that answered early and closed) are tolerated.
// Returns {raw, status, headers, body, closed, timedOut}.
export function rawHttp(port, payload, { timeoutMs = 5000 } = {}) {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    const chunks = [];
    let done = false;
    let timedOut = false;
    const finish = (closed) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      const raw = Buffer.concat(chunks).toString('latin1');
      resolve({ ...parseHttpResponse(raw), raw, closed, timedOut });
    };
    const timer = setTimeout(() => {
      timedOut = true;
      finish(false);
    }, timeoutMs);
    sock.on('data', (d) => {
      chunks.push(d);
      const p = parseHttpResponse(Buffer.concat(chunks).toString('latin1'));
      if (p.complete) finish(false);
    });
    sock.on('error', () => {});
    sock.on('close', () => finish(true));
    sock.on('connect', () => {
      const parts = Array.isArray(payload) ? payload : [payload];
      for (const p of parts) {
        if (sock.destroyed) break;
        sock.write(p, () => {});
      }
    });
  });
}

export function parseHttpResponse(raw) {
  const end = raw.indexOf('\r\n\r\n');
  if (end < 0) return { status: null, headers: {}, body: '', complete: false };
  const lines = raw.slice(0, end).split('\r\n');
  const m = lines[0].match(/^HTTP\/1\.[01] (\d{3})/);
  const headers = {};
  for (const l of lines.slice(1)) {
    const i = l.indexOf(':');
    if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
  }
  const body = raw.slice(end + 4);
  let complete = false;
  if (headers['content-length'] != null) complete = Buffer.byteLength(body, 'latin1') >= Number(headers['content-length']);
  else if (/chunked/i.test(headers['transfer-encoding'] ?? '')) complete = body.endsWith('0\r\n\r\n');
  return { status: m ? Number(m[1]) : null, headers, body, complete };
}

// Reads a JSONL file; a missing file is an empty ledger. Unparseable lines are returned as
// {__unparseable: line} so a test can point at them.
export function readJSONL(file) {
  let text;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if (e.code === 'ENOENT') return [];
    throw e;
  }
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => {
      try {
        return JSON.parse(l);
      } catch {
        return { __unparseable: l };
      }
    });
}
