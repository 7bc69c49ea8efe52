#!/usr/bin/env node
// A small JavaScript model of the hybridllm gateway's external contract, written only to check
// the integration tests themselves (a test that fails against this model is suspect before the
// C gateway is). It is NOT the product and makes no claim about performance or robustness.
//
//   HL_BIN=test/fake/reference-gateway.mjs node --test test/integration/gateway.test.mjs
//
// Understands: `serve --config FILE` with the YAML subset that test/integration/gateway.mjs
// writes (block maps and lists, JSON-quoted strings, numbers, booleans, [] and {}).
import http from 'node:http';
import fs from 'node:fs';
import { randomUUID } from 'node:crypto';

// ---------- config ----------
function parseScalar(s) {
  s = s.trim();
  if (s === '' || s === 'null' || s === '~') return null;
  if (s === '[]') return [];
  if (s === '{}') return {};
  if (s === 'true') return true;
  if (s === 'false') return false;
  if (s.startsWith('"')) return JSON.parse(s);
  if (/^-?\d+(\.\d+)?([eE][-+]?\d+)?$/.test(s)) return Number(s);
  if (s.startsWith('{') || s.startsWith('[')) {
    // flow style like {model: x, input_per_mtok: 5}: quote the bare words and parse as JSON
    return JSON.parse(s.replace(/([{,\[]\s*)([A-Za-z_][\w.-]*)(\s*:)/g, '$1"$2"$3').replace(/(:\s*|[\[,]\s*)([A-Za-z_][\w.:/-]*)(?=\s*[,}\]])/g, '$1"$2"'));
  }
  return s;
}
function parseYAML(text) {
  const lines = text.split('\n').map((l) => l.replace(/\s+#.*$/, '')).filter((l) => l.trim() !== '' && !l.trim().startsWith('#'));
  let i = 0;
  const ind = (l) => l.length - l.trimStart().length;
  function block(level) {
    if (i >= lines.length) return null;
    if (lines[i].trimStart().startsWith('- ') || lines[i].trim() === '-') return list(level);
    return map(level);
  }
  function map(level, first) {
    const obj = {};
    if (first !== undefined) {
      // first line already split off by a list item
      const [k, v] = splitKV(first);
      if (v === '') obj[k] = i < lines.length && ind(lines[i]) > level ? block(ind(lines[i])) : null;
      else obj[k] = parseScalar(v);
    }
    while (i < lines.length && ind(lines[i]) === level && !lines[i].trimStart().startsWith('- ')) {
      const [k, v] = splitKV(lines[i].trim());
      i++;
      if (v === '') obj[k] = i < lines.length && ind(lines[i]) > level ? block(ind(lines[i])) : null;
      else obj[k] = parseScalar(v);
    }
    return obj;
  }
  function list(level) {
    const arr = [];
    while (i < lines.length && ind(lines[i]) === level && lines[i].trimStart().startsWith('-')) {
      const rest = lines[i].trim().slice(1).trim();
      i++;
      if (rest === '') arr.push(block(ind(lines[i])));
      else if (/^[A-Za-z_][\w-]*:(\s|$)/.test(rest)) arr.push(map(level + 2, rest));
      else arr.push(parseScalar(rest));
    }
    return arr;
  }
  function splitKV(l) {
    const k = l.indexOf(':');
    return [l.slice(0, k).trim(), l.slice(k + 1).trim()];
  }
  return block(0);
}

const args = process.argv.slice(2);
if (args[0] !== 'serve' || args[1] !== '--config' || !args[2]) {
  console.error('usage: reference-gateway.mjs serve --config FILE');
  process.exit(2);
}
const cfg = parseYAML(fs.readFileSync(args[2], 'utf8'));
const [listenHost, listenPort] = cfg.server.listen.split(':');
const maxBody = cfg.server.max_body_bytes ?? 4 * 1024 * 1024;
const ledgerPath = cfg.ledger?.path ?? 'hybridllm-ledger.jsonl';
const backends = (cfg.backends ?? []).map((b) => ({ hourly_cost_usd: 0.05, ...b }));
const prices = cfg.prices ?? [];
const routes = cfg.routes ?? [];
const ready = new Map();

async function probe(b) {
  if (b.api_key_env && !process.env[b.api_key_env]) return ready.set(b.name, 'missing key');
  // GET <base>/models (<base>/v1/models for Anthropic) with the backend's credentials.
  const key = b.api_key_env ? process.env[b.api_key_env] : null;
  const headers = b.kind === 'anthropic' ? { 'anthropic-version': '2023-06-01', ...(key ? { 'x-api-key': key } : {}) } : key ? { authorization: `Bearer ${key}` } : {};
  const url = b.base_url.replace(/\/$/, '') + (b.kind === 'anthropic' ? '/v1/models' : '/models');
  let state = 'unreachable';
  try {
    const r = await fetch(url, { headers, signal: AbortSignal.timeout(500) });
    await r.arrayBuffer();
    state = r.ok ? 'ok' : `probe status ${r.status}`;
  } catch {}
  ready.set(b.name, state);
}
const probeAll = () => Promise.all(backends.map(probe));

// ---------- helpers ----------
const words = (t) => (String(t ?? '').match(/\S+/g) ?? []).length;
const textOf = (c) => (typeof c === 'string' ? c : Array.isArray(c) ? c.map((p) => p?.text ?? '').join('\n') : '');
const truthy = (v) => v === true || v === 'true';
function oaError(res, status, message, type = 'invalid_request_error', code = null, extraHeaders = {}) {
  if (res.headersSent) return;
  const body = JSON.stringify({ error: { message, type, param: null, code } });
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...extraHeaders });
  res.end(body);
}
function priceFor(model) {
  return prices.find((p) => p.model === model) ?? prices.filter((p) => model.startsWith(p.model + '-')).sort((a, b) => b.model.length - a.model.length)[0];
}
function cost(b, model, inTok, outTok, latency) {
  if (b.location === 'local') return Math.round((latency / 3600000) * b.hourly_cost_usd * 1e9) / 1e9;
  const p = priceFor(model);
  if (!p) return 0;
  return Math.round(((inTok * p.input_per_mtok) / 1e6 + (outTok * p.output_per_mtok) / 1e6) * 1e9) / 1e9;
}
function ledger(rec) {
  fs.appendFileSync(ledgerPath, JSON.stringify({ timestamp: new Date().toISOString(), ...rec }) + '\n');
}
function mapUpstreamStatus(s) {
  if (s === 429) return 429;
  if (s === 529) return 503;
  if (s >= 500) return 502;
  if (s === 401 || s === 403) return 502;
  return s;
}
const STOP_MAP = { end_turn: 'stop', stop_sequence: 'stop', max_tokens: 'length', tool_use: 'tool_calls', refusal: 'content_filter' };

function toAnthropic(body, b) {
  const system = [];
  const messages = [];
  for (const m of body.messages) {
    if (m.role === 'system' || m.role === 'developer') system.push(textOf(m.content));
    else messages.push({ role: m.role === 'assistant' ? 'assistant' : 'user', content: textOf(m.content) });
  }
  const out = { model: b.model, max_tokens: body.max_completion_tokens ?? body.max_tokens ?? 4096, messages };
  if (system.length) out.system = system.join('\n');
  if (body.stop) out.stop_sequences = Array.isArray(body.stop) ? body.stop : [body.stop];
  if (body.temperature != null) out.temperature = body.temperature;
  if (body.top_p != null) out.top_p = body.top_p;
  if (body.stream) out.stream = true;
  return out;
}

async function* sseEvents(stream) {
  const dec = new TextDecoder();
  let buf = '';
  for await (const chunk of stream) {
    buf += dec.decode(chunk, { stream: true });
    let k;
    while ((k = buf.indexOf('\n\n')) >= 0) {
      const raw = buf.slice(0, k);
      buf = buf.slice(k + 2);
      let event = null;
      const data = [];
      for (const line of raw.split('\n')) {
        if (line.startsWith('event:')) event = line.slice(6).trim();
        else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
      }
      yield { event, data: data.join('\n') };
    }
  }
}

// ---------- request handling ----------
let inflight = 0;
async function handleChat(req, res, rid, t0, raw) {
  let body;
  try {
    body = JSON.parse(raw);
  } catch {
    return oaError(res, 400, 'request body is not valid JSON');
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return oaError(res, 400, 'request body must be a JSON object');
  if (typeof body.model !== 'string') return oaError(res, 400, "missing required parameter: 'model'", 'invalid_request_error', 'missing_required_parameter');
  if (!Array.isArray(body.messages) || body.messages.length === 0) return oaError(res, 400, "'messages' must be a non-empty array", 'invalid_request_error', 'invalid_type');
  const md = body.metadata && typeof body.metadata === 'object' ? body.metadata : {};
  const sensitive = truthy(req.headers['x-hybridllm-regulated']) || truthy(req.headers['x-hybridllm-pii']) || truthy(md.is_regulated) || truthy(md.pii_present);
  const taskType = req.headers['x-hybridllm-task-type'] ?? md.task_type ?? null;

  let candidates;
  let reason;
  if (body.model === 'auto') {
    const rule = routes.find((r) => {
      const w = r.when ?? {};
      if (w.sensitive === true && !sensitive) return false;
      if (w.sensitive === false && sensitive) return false;
      if (w.task_type && !w.task_type.includes(taskType)) return false;
      return true;
    });
    if (!rule) return oaError(res, 503, 'no route matches', 'server_error', 'no_route');
    reason = `rule:${rule.name}`;
    candidates = rule.to.map((n) => backends.find((b) => b.name === n)).filter(Boolean);
  } else {
    const b = backends.find((x) => x.name === body.model) ?? backends.find((x) => x.model === body.model);
    if (!b) return oaError(res, 404, `The model '${body.model}' does not exist`, 'invalid_request_error', 'model_not_found');
    if (sensitive && b.location === 'cloud') return oaError(res, 403, 'sensitive request may not be sent to a cloud backend', 'invalid_request_error', 'privacy_violation');
    reason = 'forced:model';
    candidates = [b];
  }
  if (sensitive) candidates = candidates.filter((b) => b.location === 'local');
  const usable = candidates.filter((b) => ready.get(b.name) === 'ok');
  if (usable.length === 0) return oaError(res, 503, `no backend available (${candidates.map((b) => `${b.name}: ${ready.get(b.name)}`).join(', ')})`, 'server_error', 'backend_unavailable');

  const { metadata: _m, ...clean } = body;
  const wantsUsage = body.stream_options?.include_usage === true;
  const ac = new AbortController();
  let clientGone = false;
  res.on('close', () => {
    if (!res.writableFinished) {
      clientGone = true;
      ac.abort();
    }
  });

  let upstream;
  let b;
  for (const cand of usable) {
    b = cand;
    const isA = b.kind === 'anthropic';
    let ubody;
    const headers = { 'content-type': 'application/json' };
    const key = b.api_key_env ? process.env[b.api_key_env] : null;
    if (isA) {
      ubody = toAnthropic(clean, b);
      headers['anthropic-version'] = '2023-06-01';
      if (key) headers['x-api-key'] = key;
    } else {
      ubody = { ...clean, model: b.model };
      if (body.stream) ubody.stream_options = { ...(body.stream_options ?? {}), include_usage: true };
      if (key) headers.authorization = `Bearer ${key}`;
    }
    const url = b.base_url.replace(/\/$/, '') + (isA ? '/v1/messages' : '/chat/completions');
    try {
      upstream = await fetch(url, { method: 'POST', headers, body: JSON.stringify(ubody), signal: ac.signal });
      break;
    } catch (e) {
      if (clientGone) return ledger({ source: b.location, input_tokens: 0, output_tokens: 0, latency_ms: Date.now() - t0, cost_usd: 0, request_id: rid, backend: b.name, model: b.model, route_reason: reason, status: 'cancelled', stream: !!body.stream });
      ready.set(b.name, 'unreachable');
      upstream = null;
    }
  }
  const base = { source: b.location, request_id: rid, backend: b.name, model: b.model, route_reason: reason, stream: !!body.stream };
  if (!upstream) {
    ledger({ ...base, input_tokens: 0, output_tokens: 0, latency_ms: Date.now() - t0, cost_usd: 0, status: 'error' });
    return oaError(res, 503, 'upstream unreachable', 'server_error', 'backend_unavailable');
  }
  res.setHeader('x-hybridllm-backend', b.name);
  res.setHeader('x-hybridllm-route-reason', reason);

  if (upstream.status !== 200) {
    const text = await upstream.text().catch(() => '');
    let msg = `upstream ${b.name} returned ${upstream.status}`;
    try {
      const j = JSON.parse(text);
      msg += `: ${j.error?.message ?? ''}`;
    } catch {}
    const st = mapUpstreamStatus(upstream.status);
    ledger({ ...base, input_tokens: 0, output_tokens: 0, latency_ms: Date.now() - t0, cost_usd: 0, status: 'error', upstream_status: upstream.status });
    const extra = upstream.headers.get('retry-after') ? { 'retry-after': upstream.headers.get('retry-after') } : {};
    return oaError(res, st, msg, st === 429 ? 'rate_limit_error' : st >= 500 ? 'server_error' : 'invalid_request_error', st === 429 ? 'rate_limit_exceeded' : 'upstream_error', extra);
  }

  const isA = b.kind === 'anthropic';
  if (!body.stream) {
    let j;
    try {
      j = await upstream.json();
    } catch (e) {
      ledger({ ...base, input_tokens: 0, output_tokens: 0, latency_ms: Date.now() - t0, cost_usd: 0, status: clientGone ? 'cancelled' : 'error' });
      return oaError(res, 502, 'bad upstream response', 'server_error', 'upstream_error');
    }
    let out;
    if (isA) {
      const text = j.content.filter((c) => c.type === 'text').map((c) => c.text).join('');
      const it = j.usage.input_tokens + (j.usage.cache_creation_input_tokens ?? 0) + (j.usage.cache_read_input_tokens ?? 0);
      out = {
        id: `chatcmpl-${rid}`, object: 'chat.completion', created: Math.floor(Date.now() / 1000), model: j.model,
        choices: [{ index: 0, message: { role: 'assistant', content: text, refusal: null }, logprobs: null, finish_reason: STOP_MAP[j.stop_reason] ?? 'stop' }],
        usage: { prompt_tokens: it, completion_tokens: j.usage.output_tokens, total_tokens: it + j.usage.output_tokens },
      };
    } else out = j;
    const latency = Date.now() - t0;
    const c = cost(b, out.model, out.usage.prompt_tokens, out.usage.completion_tokens, latency);
    ledger({ ...base, model: out.model, input_tokens: out.usage.prompt_tokens, output_tokens: out.usage.completion_tokens, latency_ms: latency, cost_usd: c, status: 'ok' });
    const s = JSON.stringify(out);
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(s), 'x-hybridllm-cost-usd': String(c) });
    return res.end(s);
  }

  // streaming
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  res.flushHeaders();
  let ttft = null;
  let usage = null;
  let done = false;
  let failed = false;
  let outWords = 0;
  const send = (obj) => {
    if (ttft === null) ttft = Date.now() - t0;
    res.write(`data: ${JSON.stringify(obj)}\n\n`);
  };
  const id = `chatcmpl-${rid}`;
  const created = Math.floor(Date.now() / 1000);
  const chunk = (choices, extra = {}) => ({ id, object: 'chat.completion.chunk', created, model: b.model, choices, ...(wantsUsage ? { usage: null } : {}), ...extra });
  try {
    if (isA) {
      let inTok = 0;
      for await (const ev of sseEvents(upstream.body)) {
        if (!ev.event || ev.event === 'ping') continue;
        const d = JSON.parse(ev.data);
        if (ev.event === 'message_start') {
          inTok = d.message.usage.input_tokens + (d.message.usage.cache_creation_input_tokens ?? 0) + (d.message.usage.cache_read_input_tokens ?? 0);
          usage = { prompt_tokens: inTok, completion_tokens: d.message.usage.output_tokens };
          send(chunk([{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }]));
        } else if (ev.event === 'content_block_delta' && d.delta.type === 'text_delta') {
          outWords += words(d.delta.text);
          send(chunk([{ index: 0, delta: { content: d.delta.text }, logprobs: null, finish_reason: null }]));
        } else if (ev.event === 'message_delta') {
          if (d.usage?.input_tokens != null) inTok = d.usage.input_tokens + (d.usage.cache_creation_input_tokens ?? 0) + (d.usage.cache_read_input_tokens ?? 0);
          usage = { prompt_tokens: inTok, completion_tokens: d.usage.output_tokens };
          send(chunk([{ index: 0, delta: {}, logprobs: null, finish_reason: STOP_MAP[d.delta.stop_reason] ?? 'stop' }]));
        } else if (ev.event === 'message_stop') {
          if (wantsUsage) send(chunk([], { usage: { ...usage, total_tokens: usage.prompt_tokens + usage.completion_tokens } }));
          res.write('data: [DONE]\n\n');
          done = true;
        } else if (ev.event === 'error') {
          send({ error: { message: d.error?.message ?? 'upstream error', type: 'server_error', param: null, code: d.error?.type ?? null } });
          failed = true;
          break;
        }
      }
    } else {
      for await (const ev of sseEvents(upstream.body)) {
        if (ev.data === '[DONE]') {
          res.write('data: [DONE]\n\n');
          done = true;
          break;
        }
        const d = JSON.parse(ev.data);
        if (d.error) {
          send({ error: d.error });
          failed = true;
          break;
        }
        if (d.usage) usage = { prompt_tokens: d.usage.prompt_tokens, completion_tokens: d.usage.completion_tokens };
        for (const ch of d.choices ?? []) outWords += words(ch.delta?.content);
        if (d.choices?.length === 0 && !wantsUsage) continue;
        if (!wantsUsage) delete d.usage;
        send(d);
      }
    }
  } catch {
    failed = true;
  }
  const latency = Date.now() - t0;
  if (!usage) usage = { prompt_tokens: body.messages.reduce((n, m) => n + 3 + words(textOf(m.content)), 0), completion_tokens: outWords };
  const status = clientGone ? 'cancelled' : done && !failed ? 'ok' : 'error';
  ledger({ ...base, input_tokens: usage.prompt_tokens, output_tokens: usage.completion_tokens, latency_ms: latency, ttft_ms: ttft, cost_usd: cost(b, b.model, usage.prompt_tokens, usage.completion_tokens, latency), status });
  if (!res.destroyed) res.end();
}

const server = http.createServer((req, res) => {
  const t0 = Date.now();
  const rid = `req-${randomUUID()}`;
  res.setHeader('x-request-id', rid);
  const path = req.url.split('?')[0];
  inflight++;
  res.on('close', () => inflight--);
  if (path === '/healthz') return req.method === 'GET' ? oaOk(res, { status: 'ok' }) : oaError(res, 405, 'method not allowed');
  if (path === '/readyz') {
    const missing = backends.filter((b) => ready.get(b.name) !== 'ok').map((b) => ({ name: b.name, reason: ready.get(b.name) }));
    return oaOk(res, { status: missing.length ? 'unavailable' : 'ready', missing }, missing.length ? 503 : 200);
  }
  if (path === '/v1/models') {
    if (req.method !== 'GET') return oaError(res, 405, 'method not allowed');
    const ids = ['auto', ...backends.flatMap((b) => [b.name, b.model])];
    return oaOk(res, { object: 'list', data: [...new Set(ids)].map((id) => ({ id, object: 'model', created: 0, owned_by: 'hybridllm' })) });
  }
  if (path !== '/v1/chat/completions') return oaError(res, 404, `no such path: ${path}`, 'invalid_request_error', 'not_found');
  if (req.method !== 'POST') return oaError(res, 405, 'method not allowed', 'invalid_request_error', null, { allow: 'POST' });
  if (Number(req.headers['content-length'] ?? 0) > maxBody) {
    res.setHeader('connection', 'close');
    oaError(res, 413, `request body over ${maxBody} bytes`, 'invalid_request_error', 'request_too_large');
    return req.destroy();
  }
  const chunks = [];
  let size = 0;
  req.on('data', (c) => {
    size += c.length;
    if (size > maxBody) {
      res.setHeader('connection', 'close');
      oaError(res, 413, `request body over ${maxBody} bytes`, 'invalid_request_error', 'request_too_large');
      req.destroy();
    } else chunks.push(c);
  });
  req.on('end', () => {
    handleChat(req, res, rid, t0, Buffer.concat(chunks).toString('utf8')).catch((e) => {
      console.error(e);
      oaError(res, 500, 'internal error', 'server_error');
    });
  });
});
function oaOk(res, obj, status = 200) {
  const s = JSON.stringify(obj);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(s) });
  res.end(s);
}
server.on('clientError', (err, socket) => {
  const body = JSON.stringify({ error: { message: `bad request: ${err.code}`, type: 'invalid_request_error', param: null, code: null } });
  if (socket.writable) socket.end(`HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`);
  else socket.destroy();
});

await probeAll();
setInterval(probeAll, 300).unref();
server.listen(Number(listenPort), listenHost, () => console.error(`reference gateway listening on ${listenHost}:${listenPort}`));
process.on('SIGTERM', () => {
  server.close(() => process.exit(0));
  server.closeIdleConnections();
  const t = setInterval(() => server.closeIdleConnections(), 50);
  t.unref();
});
