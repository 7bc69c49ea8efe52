// Fake Anthropic Messages upstream.
//
//   import { startFakeAnthropic } from './anthropic.mjs';
//   const fake = await startFakeAnthropic({ key: 'sk-ant-test' });
//   // base_url for clients: fake.url  (the SDK appends /v1/messages)
//
// Endpoints: POST /v1/messages, GET /v1/models (the models list, e.g. for readiness probes).
// Standalone: node test/fake/anthropic.mjs --port 0 --key sk-ant-test [--models a,b]
//   prints "listening <port>"; control with POST /_control, GET /_requests, POST /_reset.
//
// Options: port, host, key (require `x-api-key: <key>` or `Authorization: Bearer <key>`),
// models (when set, other models get 404 not_found_error; default: any model accepted).
// Like the real API, unknown top-level fields and metadata keys other than user_id are 400s, and
// message roles must be "user" or "assistant" (system goes in the top-level `system`).
//
// Reply: "echo: " + text of the last user message, cut to max_tokens words (stop_reason
// "max_tokens"). Tools: when `tools` is set and the last user message says "call a tool", the
// reply is a tool_use of the first tool with input {"text": <that message>} (stop_reason
// "tool_use"); a last user turn with tool_result blocks gets "echo: " + its text (tool results
// included) and no tool call. Usage: input_tokens = words of system + words of all messages + 3 per message;
// output_tokens = words of the reply. See common.mjs for the control keys.

import { pathToFileURL } from 'node:url';
import {
  createFake,
  randomId,
  tokenize,
  countWords,
  contentText,
  lastUserText,
  replyFor,
  sendJSON,
  sseWriter,
  runStandalone,
} from './common.mjs';

// Status -> error type, per the API docs (see shared/reference/api-contracts.md).
export const ANTHROPIC_ERROR_TYPES = {
  400: 'invalid_request_error',
  401: 'authentication_error',
  402: 'billing_error',
  403: 'permission_error',
  404: 'not_found_error',
  409: 'conflict_error',
  413: 'request_too_large',
  429: 'rate_limit_error',
  500: 'api_error',
  504: 'timeout_error',
  529: 'overloaded_error',
};
const DEFAULT_MESSAGES = {
  overloaded_error: 'Overloaded',
  rate_limit_error: 'Number of request tokens has exceeded your per-minute rate limit (https://docs.claude.com/en/api/rate-limits); see the response headers for current usage. Please reduce the prompt length or the maximum tokens requested, or try again later. You may also contact sales at https://www.anthropic.com/contact-sales to discuss your options for a rate limit increase.',
  api_error: 'Internal server error',
  authentication_error: 'invalid x-api-key',
  permission_error: 'Your API key does not have permission to use the specified resource.',
  not_found_error: 'Not found',
  request_too_large: 'Request exceeds the maximum allowed number of bytes.',
  timeout_error: 'Request timed out',
  billing_error: 'Your credit balance is too low to access the Anthropic API.',
  conflict_error: 'Conflict',
  invalid_request_error: 'Invalid request',
};

export function anthropicError(status, { message, type } = {}, requestId = randomId('req_', 24)) {
  const t = type ?? ANTHROPIC_ERROR_TYPES[status] ?? (status >= 500 ? 'api_error' : 'invalid_request_error');
  return { type: 'error', error: { type: t, message: message ?? DEFAULT_MESSAGES[t] ?? 'Error' }, request_id: requestId };
}

function errorReply(status, ctl, reqId) {
  return { body: anthropicError(status, { message: ctl.message, type: ctl.error_type }, reqId), headers: {} };
}

const ALLOWED_FIELDS = new Set([
  'model', 'messages', 'max_tokens', 'system', 'metadata', 'stop_sequences', 'stream',
  'temperature', 'top_p', 'top_k', 'tools', 'tool_choice', 'thinking', 'service_tier',
  'container', 'mcp_servers', 'context_management', 'output_config', 'output_format',
  'inference_geo',
]);
const BLOCK_TYPES = new Set([
  'text', 'image', 'document', 'tool_use', 'tool_result', 'thinking', 'redacted_thinking',
  'search_result', 'server_tool_use', 'web_search_tool_result', 'container_upload',
]);

export function inputTokens(body) {
  let n = 0;
  if (body.system != null) n += countWords(contentText(body.system));
  for (const m of body.messages) {
    n += 3 + countWords(contentText(m.content));
    if (Array.isArray(m.content)) {
      for (const b of m.content) if (b?.type === 'tool_use') n += countWords(JSON.stringify(b.input ?? {}));
    }
  }
  return n;
}

function invalid(message) {
  return [400, message];
}

function validate(body, opts) {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    return invalid('There was an error parsing the body of your request: the body is not valid JSON.');
  }
  for (const k of Object.keys(body)) {
    if (!ALLOWED_FIELDS.has(k)) return invalid(`${k}: Extra inputs are not permitted`);
  }
  if (body.model === undefined) return invalid('model: Field required');
  if (typeof body.model !== 'string') return invalid('model: Input should be a valid string');
  if (body.max_tokens === undefined) return invalid('max_tokens: Field required');
  if (!Number.isInteger(body.max_tokens)) return invalid('max_tokens: Input should be a valid integer');
  if (body.max_tokens < 1) return invalid('max_tokens: Input should be greater than or equal to 1');
  if (body.messages === undefined) return invalid('messages: Field required');
  if (!Array.isArray(body.messages)) return invalid('messages: Input should be a valid list');
  if (body.messages.length === 0) return invalid('messages: at least one message is required');
  for (let i = 0; i < body.messages.length; i++) {
    const m = body.messages[i];
    if (typeof m !== 'object' || m === null) return invalid(`messages.${i}: Input should be a valid dictionary`);
    for (const k of Object.keys(m)) {
      if (k !== 'role' && k !== 'content') return invalid(`messages.${i}.${k}: Extra inputs are not permitted`);
    }
    if (m.role !== 'user' && m.role !== 'assistant') {
      return invalid(`messages.${i}.role: Input should be 'user' or 'assistant'`);
    }
    if (m.content === undefined) return invalid(`messages.${i}.content: Field required`);
    if (typeof m.content === 'string') continue;
    if (!Array.isArray(m.content)) return invalid(`messages.${i}.content: Input should be a valid list`);
    for (let j = 0; j < m.content.length; j++) {
      const b = m.content[j];
      if (typeof b !== 'object' || b === null || !BLOCK_TYPES.has(b.type)) {
        return invalid(`messages.${i}.content.${j}: Input tag '${b?.type}' found using 'type' does not match any of the expected tags`);
      }
      if (b.type === 'text' && typeof b.text !== 'string') return invalid(`messages.${i}.content.${j}.text: Field required`);
    }
  }
  if (body.system !== undefined) {
    if (Array.isArray(body.system)) {
      for (let j = 0; j < body.system.length; j++) {
        const b = body.system[j];
        if (b?.type !== 'text' || typeof b.text !== 'string') return invalid(`system.${j}: Input should be a valid text block`);
      }
    } else if (typeof body.system !== 'string') {
      return invalid('system: Input should be a valid string or list of text blocks');
    }
  }
  if (body.metadata !== undefined && body.metadata !== null) {
    if (typeof body.metadata !== 'object' || Array.isArray(body.metadata)) return invalid('metadata: Input should be a valid dictionary');
    for (const k of Object.keys(body.metadata)) {
      if (k !== 'user_id') return invalid(`metadata.${k}: Extra inputs are not permitted`);
    }
  }
  if (body.stop_sequences !== undefined && !(Array.isArray(body.stop_sequences) && body.stop_sequences.every((s) => typeof s === 'string'))) {
    return invalid('stop_sequences: Input should be a valid list of strings');
  }
  if (opts.models && !opts.models.includes(body.model)) {
    return [404, `model: ${body.model}`];
  }
  return null;
}

async function handleMessages(req, res, rec, body, ctl, reqId, opts) {
  const bad = validate(body, opts);
  if (bad) {
    const err = anthropicError(bad[0], { message: bad[1] }, reqId);
    rec.response = { status: bad[0], error: err };
    return sendJSON(res, bad[0], err, { 'request-id': reqId });
  }
  const id = randomId('msg_01', 22);
  const model = body.model;
  const userText = lastUserText(body.messages);
  // A user turn carrying tool_result blocks answers a tool call: reply (with "echo: " + the
  // turn's text, tool results included) instead of calling a tool again.
  const lastMsg = body.messages[body.messages.length - 1];
  const afterTool = lastMsg?.role === 'user' && Array.isArray(lastMsg.content) && lastMsg.content.some((b) => b?.type === 'tool_result');
  const wantTool = !afterTool && Array.isArray(body.tools) && body.tools.length > 0 && /call a tool/i.test(userText) && body.tool_choice?.type !== 'none';
  const input_tokens = inputTokens(body);

  let pieces = [];
  let stop_reason = 'end_turn';
  let stop_sequence = null;
  let toolUse = null;
  if (wantTool) {
    toolUse = { type: 'tool_use', id: randomId('toolu_01', 22), name: body.tools[0]?.name ?? 'tool', input: { text: userText } };
    stop_reason = 'tool_use';
    // control tool_text: a text block before the tool_use block
    if (ctl.tool_text) pieces = tokenize(ctl.tool_text);
  } else {
    let full = replyFor(ctl, userText) ?? `echo: ${userText}`;
    if (Array.isArray(body.stop_sequences)) {
      let at = -1;
      for (const s of body.stop_sequences) {
        const k = s ? full.indexOf(s) : -1;
        if (k >= 0 && (at < 0 || k < at)) {
          at = k;
          stop_sequence = s;
        }
      }
      if (at >= 0) {
        full = full.slice(0, at);
        stop_reason = 'stop_sequence';
      }
    }
    const all = tokenize(full);
    pieces = all.slice(0, body.max_tokens);
    if (all.length > body.max_tokens) {
      stop_reason = 'max_tokens';
      stop_sequence = null;
    }
  }
  const text = pieces.join('');
  const toolJson = toolUse ? JSON.stringify(toolUse.input) : '';
  const output_tokens = toolUse ? countWords(toolJson) + pieces.length : pieces.length;
  const usage = {
    input_tokens,
    cache_creation_input_tokens: 0,
    cache_read_input_tokens: 0,
    output_tokens,
    service_tier: 'standard',
  };
  rec.response = { status: 200, usage, text, stop_reason, id, stream: !!body.stream, ...(toolUse ? { tool_use: toolUse } : {}) };
  const headers = { 'request-id': reqId, 'anthropic-organization-id': 'org-fake' };
  const content = toolUse ? [...(text ? [{ type: 'text', text }] : []), toolUse] : [{ type: 'text', text }];

  if (!body.stream) {
    return sendJSON(res, 200, {
      id,
      type: 'message',
      role: 'assistant',
      model,
      content,
      stop_reason,
      stop_sequence,
      usage,
    }, headers);
  }

  const w = sseWriter(req, res, rec, ctl, headers);
  const ev = (data) => `event: ${data.type}\ndata: ${JSON.stringify(data)}\n\n`;
  const frames = [];
  frames.push(ev({
    type: 'message_start',
    message: {
      id,
      type: 'message',
      role: 'assistant',
      model,
      content: [],
      stop_reason: null,
      stop_sequence: null,
      usage: { input_tokens, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 1, service_tier: 'standard' },
    },
  }));
  if (toolUse) {
    let bi = 0;
    if (pieces.length) {
      frames.push(ev({ type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }));
      for (const p of pieces) frames.push(ev({ type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: p } }));
      frames.push(ev({ type: 'content_block_stop', index: 0 }));
      bi = 1;
    }
    frames.push(ev({ type: 'content_block_start', index: bi, content_block: { type: 'tool_use', id: toolUse.id, name: toolUse.name, input: {} } }));
    frames.push(ev({ type: 'ping' }));
    for (const part of toolJson.match(/.{1,8}/gs) ?? []) {
      frames.push(ev({ type: 'content_block_delta', index: bi, delta: { type: 'input_json_delta', partial_json: part } }));
    }
    frames.push(ev({ type: 'content_block_stop', index: bi }));
  } else {
    frames.push(ev({ type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }));
    frames.push(ev({ type: 'ping' }));
    for (const p of pieces) {
      frames.push(ev({ type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: p } }));
    }
    frames.push(ev({ type: 'content_block_stop', index: 0 }));
  }
  const deltaUsage = ctl.delta_usage_full
    ? { input_tokens, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens }
    : { output_tokens };
  frames.push(ev({ type: 'message_delta', delta: { stop_reason, stop_sequence }, usage: deltaUsage }));
  frames.push(ev({ type: 'message_stop' }));

  for (let i = 0; i < frames.length; i++) {
    if (ctl.error_after_chunks != null && i === ctl.error_after_chunks) {
      await w.write(ev(anthropicError(529, { message: ctl.message }, reqId)));
      rec.erroredMidStream = true;
      return w.end();
    }
    if (!(await w.write(frames[i]))) return;
  }
  w.end();
}

export function startFakeAnthropic(opts = {}) {
  return createFake({
    name: 'anthropic',
    opts,
    requestIdHeader: 'request-id',
    requestIdPrefix: 'req_011',
    errorReply,
    inferencePaths: ['/v1/messages', '/v1/messages/count_tokens'],
    async handler(req, res, rec, body, ctl, reqId) {
      const send = (status, message, type) => {
        const err = anthropicError(status, { message, type }, reqId);
        rec.response = { status, error: err };
        return sendJSON(res, status, err, { 'request-id': reqId });
      };
      const isModels = rec.path === '/v1/models';
      const isCount = rec.path === '/v1/messages/count_tokens';
      if (rec.path !== '/v1/messages' && !isModels && !isCount) return send(404, 'Not found');
      if (req.method !== (isModels ? 'GET' : 'POST')) return send(405, `Method Not Allowed`, 'invalid_request_error');
      if (opts.key) {
        const xkey = req.headers['x-api-key'];
        const auth = String(req.headers.authorization ?? '');
        const bearer = auth.startsWith('Bearer ') ? auth.slice(7) : undefined;
        if (xkey === undefined && bearer === undefined) return send(401, 'x-api-key header is required');
        if (xkey !== opts.key && bearer !== opts.key) return send(401, 'invalid x-api-key');
      }
      if (!req.headers['anthropic-version']) return send(400, 'anthropic-version: header is required');
      if (isModels) {
        const ids = opts.models ?? ['claude-3-5-sonnet-20241022', 'claude-3-5-haiku-20241022'];
        const data = ids.map((id) => ({ type: 'model', id, display_name: id, created_at: '2024-10-22T00:00:00Z' }));
        rec.response = { status: 200 };
        return sendJSON(res, 200, { data, has_more: false, first_id: ids[0] ?? null, last_id: ids.at(-1) ?? null }, { 'request-id': reqId });
      }
      if (isCount) {
        // POST /v1/messages/count_tokens (messages.ts MessageCountTokensParams): model and
        // messages required; no max_tokens. {input_tokens} as inputTokens() counts.
        if (typeof body?.model !== 'string') return send(400, 'model: Field required', 'invalid_request_error');
        if (!Array.isArray(body?.messages) || !body.messages.length) return send(400, 'messages: Field required', 'invalid_request_error');
        if ('max_tokens' in body || 'stream' in body) return send(400, `${'max_tokens' in body ? 'max_tokens' : 'stream'}: Extra inputs are not permitted`, 'invalid_request_error');
        const input_tokens = inputTokens(body);
        rec.response = { status: 200, usage: { input_tokens } };
        return sendJSON(res, 200, { input_tokens }, { 'request-id': reqId });
      }
      return handleMessages(req, res, rec, body, ctl, reqId, opts);
    },
  });
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  runStandalone(startFakeAnthropic, process.argv.slice(2));
}
