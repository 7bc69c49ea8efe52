// Shared machinery for the fake upstream servers (fake OpenAI, fake Anthropic).
//
// A fake is a node:http server on 127.0.0.1 (node:https with opts.tls = {key, cert}: PEM text,
// e.g. from tls.mjs's makeTestPKI(); its url is then https://<opts.hostname ?? 127.0.0.1>:PORT)
// that:
//   - records every API request in `requests` (control endpoints are not recorded),
//   - obeys injected behaviour set with control({...}) in-process or POST /_control over HTTP,
//   - exposes GET /_requests and POST /_reset for out-of-process use (shell scripts, benches).
//
// Control keys (all optional; control() merges into the current state, reset() clears it).
// They apply to inference requests only (POST /v1/chat/completions, POST /v1/messages), never
// to GET /v1/models:
//   status, count        the next `count` (default 1) API requests get HTTP `status` with the
//                        provider's exact error body; also: message, error_type, error_code,
//                        retry_after (seconds, sets `retry-after`), retry_after_ms (sets
//                        `retry-after-ms`), should_retry (sets `x-should-retry`)
//   delay_ms             wait this long before sending response headers (every request)
//   chunk_delay_ms       wait this long between stream chunks (every streamed request)
//   disconnect_after_chunks  destroy the socket after writing N stream chunks
//   error_after_chunks   send the provider's in-stream error event after N chunks, then end
//   silent_after_chunks  (OpenAI only) after N stream chunks send nothing more and keep the
//                        connection open until the client closes it (0: headers only)
//   reply                fixed reply text instead of "echo: <last user text>"
//   replies              {"<last user text>": "<reply>"}: per-prompt replies (chat requests;
//                        planted answers for eval datasets), before `reply`; a prompt not in
//                        it gets `reply` or the echo
//   tool_text            when the reply is a tool call: text said before it (OpenAI: content
//                        along with tool_calls; Anthropic: a text block before the tool_use)
//   stream_usage         (OpenAI only) "requested" (default, like vLLM/OpenAI: usage chunk only
//                        with stream_options.include_usage), "always" (like llama.cpp), "never"
//                        (like some Ollama versions)
//   delta_usage_full     (Anthropic only) message_delta.usage also carries the input/cache counts
//   logprob              (OpenAI only) every token's logprob, when logprobs are requested (a
//                        model that is unsure of its answer: -1 gives a confidence of e^-1)
//   hold                 true: inference requests wait (after delay_ms) until release() is
//                        called in-process (or POST /_release); `held` counts those waiting
//   planted              (OpenAI only) {role, rates}: answers and logprobs of planted.mjs
//
// Each request record: {id, tls, method, path, headers, body, raw, time, closed, closedAt,
//   finished, disconnected, response: {status, usage?, text?}}
//   closed: the client's connection closed before our response finished (e.g. the gateway
//   cancelled the upstream call after its own client went away).

import http from 'node:http';
import https from 'node:https';
import { randomBytes } from 'node:crypto';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function randomId(prefix, len = 24) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  const bytes = randomBytes(len);
  let s = '';
  for (let i = 0; i < len; i++) s += alphabet[bytes[i] % alphabet.length];
  return prefix + s;
}

// Splits text into "tokens": each piece carries its leading whitespace, so that
// pieces.join('') reproduces the text (less trailing whitespace).
export function tokenize(text) {
  return String(text ?? '').match(/\s*\S+/g) ?? [];
}

export function countWords(text) {
  return tokenize(text).length;
}

// Text of an OpenAI or Anthropic message content: a string or a list of parts/blocks.
export function contentText(content) {
  if (content == null) return '';
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) {
    return content
      .map((p) => {
        if (typeof p === 'string') return p;
        if (p && typeof p.text === 'string') return p.text;
        if (p && p.type === 'tool_result') return contentText(p.content);
        return '';
      })
      .filter((s) => s !== '')
      .join('\n');
  }
  return '';
}

// The reply control planted for a chat request whose last user message is userText, if any.
export function replyFor(ctl, userText) {
  const r = ctl.replies;
  if (r && typeof r === 'object' && Object.hasOwn(r, userText) && typeof r[userText] === 'string') return r[userText];
  return ctl.reply;
}

export function lastUserText(messages) {
  for (let i = messages.length - 1; i >= 0; i--) {
    const m = messages[i];
    if (m && m.role === 'user') return contentText(m.content);
  }
  return '';
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

export function sendJSON(res, status, obj, headers = {}) {
  if (res.destroyed) return;
  const body = JSON.stringify(obj);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    ...headers,
  });
  res.end(body);
}

// Starts a streamed (SSE) response and returns helpers that honour chunk_delay_ms,
// disconnect_after_chunks and a closed client. write() resolves false when the stream must stop.
export function sseWriter(req, res, rec, ctl, headers) {
  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache',
    connection: 'keep-alive',
    ...headers,
  });
  res.flushHeaders();
  let chunks = 0;
  return {
    get chunks() {
      return chunks;
    },
    // frame: the exact text of one SSE event, including its terminating blank line.
    async write(frame) {
      if (res.destroyed || rec.closed) return false;
      if (ctl.disconnect_after_chunks != null && chunks >= ctl.disconnect_after_chunks) {
        // Give what was written a moment to reach the peer, then drop the connection without
        // finishing the chunked body (the peer sees a truncated response).
        await sleep(Math.max(ctl.chunk_delay_ms ?? 0, 10));
        rec.disconnected = true;
        req.socket.destroy();
        return false;
      }
      if (chunks > 0 && ctl.chunk_delay_ms > 0) {
        await sleep(ctl.chunk_delay_ms);
        if (res.destroyed || rec.closed) return false;
      }
      res.write(frame);
      chunks++;
      return true;
    },
    end() {
      if (!res.destroyed) res.end();
    },
  };
}

// Creates the server. `handler(req, res, rec, body, ctl)` handles API requests; `errorBody(status,
// ctl)` returns {body, headers} for an injected error; `requestIdHeader` names the header that
// carries the request id in responses.
export function createFake({ name, opts = {}, handler, errorReply, requestIdHeader, requestIdPrefix, inferencePaths }) {
  const requests = [];
  let ctl = {};
  let errorBudget = 0;
  let seq = 0;
  let waiting = []; // resolvers of held requests

  function control(obj = {}) {
    const o = { ...obj };
    if (o.status != null) {
      errorBudget = o.count != null ? Number(o.count) : 1;
    }
    delete o.count;
    ctl = { ...ctl, ...o };
    return { ...ctl, count: errorBudget };
  }
  function release() {
    const w = waiting;
    waiting = [];
    for (const r of w) r();
    return w.length;
  }
  function reset() {
    requests.length = 0;
    ctl = {};
    errorBudget = 0;
    release();
  }

  const serve = async (req, res) => {
    const url = new URL(req.url, 'http://x');
    const path = url.pathname;
    let raw;
    try {
      raw = await readBody(req);
    } catch {
      return;
    }

    // Control plane (not recorded).
    if (path === '/_control' && req.method === 'POST') {
      let obj;
      try {
        obj = raw ? JSON.parse(raw) : {};
      } catch {
        return sendJSON(res, 400, { error: 'bad control JSON' });
      }
      return sendJSON(res, 200, control(obj));
    }
    if (path === '/_release' && req.method === 'POST') {
      return sendJSON(res, 200, { released: release() });
    }
    if (path === '/_reset' && req.method === 'POST') {
      reset();
      return sendJSON(res, 200, { ok: true });
    }
    if (path === '/_requests' && req.method === 'GET') {
      return sendJSON(res, 200, requests);
    }

    let body = raw;
    const ct = String(req.headers['content-type'] ?? '');
    if (raw !== '' && (ct.includes('json') || ct === '')) {
      try {
        body = JSON.parse(raw);
      } catch {
        body = raw;
      }
    }
    const rec = {
      id: ++seq,
      tls: Boolean(req.socket.encrypted),
      method: req.method,
      path,
      query: url.search,
      headers: { ...req.headers },
      body,
      raw,
      time: Date.now(),
      closed: false,
      closedAt: null,
      finished: false,
      disconnected: false,
      response: null,
    };
    requests.push(rec);
    res.on('close', () => {
      if (!res.writableFinished) {
        rec.closed = true;
        rec.closedAt = Date.now();
      }
    });
    res.on('finish', () => {
      rec.finished = true;
    });

    const reqId = randomId(requestIdPrefix, 24);
    rec.requestId = reqId;
    // Injected behaviour applies to inference requests only, so that a gateway's readiness
    // probes (GET /v1/models) neither use up an error budget nor get delayed.
    const inference = req.method === 'POST' && inferencePaths.includes(path);
    const snap = inference ? { ...ctl } : {}; // behaviour fixed at arrival time
    try {
      if (snap.delay_ms > 0) {
        await sleep(snap.delay_ms);
        if (rec.closed) return;
      }
      if (snap.hold) {
        rec.held = true;
        await new Promise((r) => waiting.push(r));
        rec.held = false;
        rec.releasedAt = Date.now();
        if (rec.closed) return;
      }
      if (inference && errorBudget > 0 && snap.status != null) {
        errorBudget--;
        const status = Number(snap.status);
        const { body: eb, headers: eh } = errorReply(status, snap, reqId);
        const headers = { [requestIdHeader]: reqId, ...eh };
        if (snap.retry_after != null) headers['retry-after'] = String(snap.retry_after);
        if (snap.retry_after_ms != null) headers['retry-after-ms'] = String(snap.retry_after_ms);
        if (snap.should_retry != null) headers['x-should-retry'] = String(snap.should_retry);
        rec.response = { status, error: eb };
        return sendJSON(res, status, eb, headers);
      }
      await handler(req, res, rec, body, snap, reqId);
    } catch (err) {
      console.error(`[fake ${name}] handler error:`, err);
      if (!res.headersSent) sendJSON(res, 500, { error: String(err) });
      else res.destroy();
    }
  };
  const server = opts.tls ? https.createServer({ key: opts.tls.key, cert: opts.tls.cert }, serve) : http.createServer(serve);
  server.keepAliveTimeout = 5000;
  // TLS handshakes that fail (a client that does not trust our CA) are counted, not logged.
  let tlsErrors = 0;
  server.on('tlsClientError', () => tlsErrors++);

  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => {
      const port = server.address().port;
      const sockets = new Set();
      server.on('connection', (s) => {
        sockets.add(s);
        s.on('close', () => sockets.delete(s));
      });
      resolve({
        name,
        url: `${opts.tls ? 'https' : 'http'}://${opts.hostname ?? '127.0.0.1'}:${port}`,
        port,
        get tlsErrors() {
          return tlsErrors;
        },
        requests,
        control,
        reset,
        release,
        get held() {
          return waiting.length;
        },
        get state() {
          return { ...ctl, count: errorBudget };
        },
        // Requests to API paths other than the control plane, optionally filtered by path.
        apiRequests(p) {
          return p ? requests.filter((r) => r.path === p) : requests.slice();
        },
        close() {
          return new Promise((r) => {
            server.close(() => r());
            for (const s of sockets) s.destroy();
          });
        },
        server,
      });
    });
  });
}

// Standalone mode: node test/fake/<x>.mjs --port N --key K [--models a,b]
export function parseArgs(argv) {
  const out = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) continue;
    const [k, inline] = a.slice(2).split('=', 2);
    const v = inline !== undefined ? inline : argv[i + 1] && !argv[i + 1].startsWith('--') ? argv[++i] : 'true';
    out[k] = v;
  }
  const opts = {};
  if (out.port) opts.port = Number(out.port);
  if (out.host) opts.host = out.host;
  if (out.key) opts.key = out.key;
  if (out.models) opts.models = out.models.split(',').filter(Boolean);
  return opts;
}

export async function runStandalone(start, argv) {
  const fake = await start(parseArgs(argv));
  process.stdout.write(`listening ${fake.port}\n`);
  const stop = async () => {
    await fake.close();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
