// Fake OpenAI Chat Completions and Responses upstream (also plays an OpenAI-compatible local server, vLLM).
//
//   import { startFakeOpenAI } from './openai.mjs';
//   const fake = await startFakeOpenAI({ key: 'sk-test', models: ['gpt-4o'] });
//   // base_url for clients: fake.url + '/v1'
//
// Standalone: node test/fake/openai.mjs --port 0 --key sk-test [--models gpt-4o,gpt-4o-mini]
//   prints "listening <port>"; control with POST /_control, GET /_requests, POST /_reset.
//
// Options: port, host, key (require `Authorization: Bearer <key>`), models (when set, other
// models get 404 model_not_found and GET /v1/models lists these; default: any model accepted).
// Local servers (opts is read on every request: a test may change opts.models or opts.n_ctx
// to play a server restarted with another model or context):
//   flavor: 'llama'  plays llama.cpp's llama-server: GET /props (default_generation_settings.
//                    n_ctx), and a prompt of
//                    more than n_ctx tokens gets its 400 "exceeds the available context size";
//   flavor: 'vllm'   GET /v1/models carries max_model_len: n_ctx, and a prompt over it gets
//                    vLLM's 400 "This model's maximum context length is ...".
//   n_ctx            the context window (default 4096); prompt tokens as promptTokens() counts.
//   POST /tokenize   both flavors (llama: {content} -> {tokens}; vllm: {model, prompt} ->
//                    {count, max_model_len, tokens}), one token a word; tokenize: false turns
//                    it off (an older server).
//
// Reply: "echo: " + text of the last user message, cut to max_completion_tokens/max_tokens
// words (finish_reason "length"). Tools: when `tools` is set and the last user message says
// "call a tool", the reply is a call of the first tool with arguments {"text": <that message>}
// (finish_reason "tool_calls"); when the last message is a tool result (role "tool"), the reply
// is "echo: " + the result's text and no tool is called. Usage: prompt_tokens = words of all messages + 3 per message;
// completion_tokens = words of the reply. See common.mjs for the control keys.
// planted (option or control key): {role: 'reference'|'candidate', rates?}: the reply and its
// logprobs follow planted.mjs (answers that agree with the other role's at planted rates per
// task type, confidence planted with agreement).

import { pathToFileURL } from 'node:url';
import { plantedAnswer } from './planted.mjs';
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

const ERRORS = {
  400: ['invalid_request_error', null, 'Invalid request.'],
  401: ['invalid_request_error', 'invalid_api_key', 'Incorrect API key provided.'],
  403: ['invalid_request_error', 'unsupported_country_region_territory', 'Country, region, or territory not supported'],
  404: ['invalid_request_error', 'model_not_found', 'The model does not exist or you do not have access to it.'],
  408: ['invalid_request_error', 'timeout', 'Request timed out.'],
  409: ['invalid_request_error', 'conflict', 'Conflict.'],
  413: ['invalid_request_error', 'request_too_large', 'Request too large.'],
  422: ['invalid_request_error', null, 'Unprocessable entity.'],
  429: ['requests', 'rate_limit_exceeded', 'Rate limit reached for requests. Please try again in 1s.'],
  500: ['server_error', null, 'The server had an error while processing your request. Sorry about that!'],
  502: ['server_error', null, 'Bad gateway.'],
  503: ['server_error', null, 'The engine is currently overloaded, please try again later.'],
  504: ['server_error', 'timeout', 'Gateway timeout.'],
  529: ['server_error', null, 'The server is overloaded, please try again later.'],
};

export function openaiError(status, { message, type, code, param = null } = {}) {
  const d = ERRORS[status] ?? (status >= 500 ? ['server_error', null, 'Server error.'] : ['invalid_request_error', null, 'Request failed.']);
  return { error: { message: message ?? d[2], type: type ?? d[0], param, code: code === undefined ? d[1] : code } };
}

function errorReply(status, ctl) {
  return {
    body: openaiError(status, { message: ctl.message, type: ctl.error_type, code: ctl.error_code }),
    headers: {},
  };
}

// Deterministic token accounting shared with the tests.
export function promptTokens(messages) {
  let n = 0;
  for (const m of messages) {
    n += 3 + countWords(contentText(m?.content));
    if (Array.isArray(m?.tool_calls)) {
      for (const tc of m.tool_calls) n += countWords(tc?.function?.arguments ?? '');
    }
  }
  return n;
}

function logprobEntry(token, i, topN, fixed, second) {
  const bytes = Array.from(Buffer.from(token, 'utf8'));
  const logprob = fixed ?? -Math.round((0.01 * ((i % 7) + 1)) * 1e6) / 1e6;
  const top = [];
  for (let k = 0; k < topN; k++) {
    const t = k === 0 ? token : `${token}~${k}`;
    const lp = k === 0 ? logprob : k === 1 && second != null ? second : logprob - k;
    top.push({ token: t, logprob: lp, bytes: Array.from(Buffer.from(t, 'utf8')) });
  }
  return { token, logprob, bytes, top_logprobs: top };
}

function validate(body, opts) {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    return [400, openaiError(400, {
      message: "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON. If you have trouble figuring out how to fix this, please contact us through our help center at help.openai.com.)",
    })];
  }
  if (body.model === undefined) {
    return [400, openaiError(400, { message: 'you must provide a model parameter', param: null })];
  }
  if (typeof body.model !== 'string') {
    return [400, openaiError(400, { message: `Invalid type for 'model': expected a string, but got ${typeof body.model} instead.`, param: 'model', code: 'invalid_type' })];
  }
  if (body.messages === undefined) {
    return [400, openaiError(400, { message: "Missing required parameter: 'messages'.", param: 'messages', code: 'missing_required_parameter' })];
  }
  if (!Array.isArray(body.messages)) {
    return [400, openaiError(400, { message: `Invalid type for 'messages': expected an array, but got ${typeof body.messages} instead.`, param: 'messages', code: 'invalid_type' })];
  }
  if (body.messages.length === 0) {
    return [400, openaiError(400, { message: "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.", param: 'messages', code: 'empty_array' })];
  }
  for (let i = 0; i < body.messages.length; i++) {
    const m = body.messages[i];
    if (typeof m !== 'object' || m === null || typeof m.role !== 'string') {
      return [400, openaiError(400, { message: `Missing required parameter: 'messages[${i}].role'.`, param: `messages[${i}].role`, code: 'missing_required_parameter' })];
    }
    if (!['system', 'developer', 'user', 'assistant', 'tool', 'function'].includes(m.role)) {
      return [400, openaiError(400, { message: `Invalid value: '${m.role}'. Supported values are: 'system', 'assistant', 'user', 'function', 'tool', and 'developer'.`, param: `messages[${i}].role`, code: 'invalid_value' })];
    }
    const c = m.content;
    if (!(c === undefined || c === null || typeof c === 'string' || Array.isArray(c))) {
      return [400, openaiError(400, { message: `Invalid type for 'messages[${i}].content'.`, param: `messages[${i}].content`, code: 'invalid_type' })];
    }
  }
  if (opts.models && !opts.models.includes(body.model)) {
    return [404, openaiError(404, { message: `The model \`${body.model}\` does not exist or you do not have access to it.`, code: 'model_not_found' })];
  }
  const mt = body.max_completion_tokens ?? body.max_tokens;
  if (mt != null && !(Number.isInteger(mt) && mt >= 1)) {
    return [400, openaiError(400, { message: `Invalid 'max_tokens': integer below minimum value. Expected a value >= 1, but got ${mt} instead.`, param: 'max_tokens', code: 'integer_below_min_value' })];
  }
  return null;
}

// A local server's refusal of a prompt longer than its context, in its own words.
function contextOverflow(opts, n) {
  const nCtx = opts.n_ctx ?? 4096;
  if (!opts.flavor || n <= nCtx) return null;
  if (opts.flavor === 'llama') {
    return { error: { code: 400, message: 'the request exceeds the available context size, try increasing it', type: 'exceed_context_size_error', n_prompt_tokens: n, n_ctx: nCtx } };
  }
  return { object: 'error', message: `This model's maximum context length is ${nCtx} tokens. However, you requested ${n} tokens in the messages, Please reduce the length of the messages.`, type: 'BadRequestError', param: null, code: 400 };
}

async function handleChat(req, res, rec, body, ctl, reqId, opts) {
  const bad = validate(body, opts);
  if (bad) {
    rec.response = { status: bad[0], error: bad[1] };
    return sendJSON(res, bad[0], bad[1], { 'x-request-id': reqId });
  }
  const over = contextOverflow(opts, promptTokens(body.messages));
  if (over) {
    rec.response = { status: 400, error: over };
    return sendJSON(res, 400, over, { 'x-request-id': reqId });
  }
  const id = randomId('chatcmpl-', 29);
  const created = Math.floor(Date.now() / 1000);
  const model = body.model;
  const userText = lastUserText(body.messages);
  // After a tool result (the last message has role "tool"), answer instead of calling again:
  // "echo: <the tool's result>", so that tool loops (runTools) end.
  const lastMsg = body.messages[body.messages.length - 1];
  const afterTool = lastMsg?.role === 'tool';
  const wantTool = !afterTool && Array.isArray(body.tools) && body.tools.length > 0 && /call a tool/i.test(userText) && body.tool_choice !== 'none';
  const prompt_tokens = promptTokens(body.messages);
  const maxTok = body.max_completion_tokens ?? body.max_tokens ?? Infinity;
  const wantLogprobs = body.logprobs === true;
  const topN = Number.isInteger(body.top_logprobs) ? body.top_logprobs : 0;
  const plant = ctl.planted ?? opts.planted;
  const planted = plant ? plantedAnswer(userText, plant) : null;
  const fixedLp = planted ? planted.logprob : ctl.logprob;

  let pieces = [];
  let finish_reason = 'stop';
  let toolCall = null;
  if (wantTool) {
    const fn = body.tools[0]?.function?.name ?? 'tool';
    toolCall = { id: randomId('call_', 24), type: 'function', function: { name: fn, arguments: JSON.stringify({ text: userText }) } };
    finish_reason = 'tool_calls';
    // control tool_text: content sent along with the tool call (before it, when streamed)
    if (ctl.tool_text) pieces = tokenize(ctl.tool_text);
  } else {
    let full = planted?.text ?? replyFor(ctl, userText) ?? `echo: ${afterTool ? contentText(lastMsg.content) : userText}`;
    const stops = typeof body.stop === 'string' ? [body.stop] : Array.isArray(body.stop) ? body.stop : [];
    let at = -1;
    for (const s of stops) {
      const k = typeof s === 'string' && s ? full.indexOf(s) : -1;
      if (k >= 0 && (at < 0 || k < at)) at = k;
    }
    if (at >= 0) full = full.slice(0, at);
    const all = tokenize(full);
    pieces = all.slice(0, maxTok);
    if (all.length > maxTok) finish_reason = 'length';
  }
  const text = pieces.join('');
  const completion_tokens = toolCall ? countWords(toolCall.function.arguments) + pieces.length : pieces.length;
  const usage = {
    prompt_tokens,
    completion_tokens,
    total_tokens: prompt_tokens + completion_tokens,
    prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
    completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 },
  };
  rec.response = { status: 200, usage, text, finish_reason, id, stream: !!body.stream, ...(toolCall ? { tool_call: toolCall } : {}) };
  const headers = { 'x-request-id': reqId, 'openai-processing-ms': '1' };

  if (!body.stream) {
    const message = { role: 'assistant', content: toolCall && !text ? null : text, refusal: null, annotations: [] };
    if (toolCall) message.tool_calls = [toolCall];
    const choice = {
      index: 0,
      message,
      logprobs: wantLogprobs ? { content: pieces.map((p, i) => logprobEntry(p, i, topN, fixedLp, planted?.alt)), refusal: null } : null,
      finish_reason,
    };
    return sendJSON(res, 200, {
      id,
      object: 'chat.completion',
      created,
      model,
      choices: [choice],
      usage,
      service_tier: 'default',
      system_fingerprint: 'fp_fake',
    }, headers);
  }

  // Streaming.
  const includeUsage = body.stream_options?.include_usage === true;
  const mode = ctl.stream_usage ?? 'requested';
  const sendUsage = mode === 'always' || (mode === 'requested' && includeUsage);
  const usageField = sendUsage ? { usage: null } : {};
  const w = sseWriter(req, res, rec, ctl, headers);
  const frame = (choices, extra = {}) =>
    `data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model, service_tier: 'default', system_fingerprint: 'fp_fake', choices, ...usageField, ...extra })}\n\n`;
  const errorFrame = () => `data: ${JSON.stringify(openaiError(500, { message: ctl.message ?? 'The server had an error while processing your request.' }))}\n\n`;
  const frames = [];
  if (toolCall && pieces.length) {
    frames.push(frame([{ index: 0, delta: { role: 'assistant', content: '', refusal: null }, logprobs: null, finish_reason: null }]));
    for (const p of pieces) frames.push(frame([{ index: 0, delta: { content: p }, logprobs: null, finish_reason: null }]));
    frames.push(frame([{ index: 0, delta: { tool_calls: [{ index: 0, id: toolCall.id, type: 'function', function: { name: toolCall.function.name, arguments: '' } }] }, logprobs: null, finish_reason: null }]));
    for (const part of toolCall.function.arguments.match(/.{1,8}/gs) ?? []) {
      frames.push(frame([{ index: 0, delta: { tool_calls: [{ index: 0, function: { arguments: part } }] }, logprobs: null, finish_reason: null }]));
    }
  } else if (toolCall) {
    frames.push(frame([{ index: 0, delta: { role: 'assistant', content: null, tool_calls: [{ index: 0, id: toolCall.id, type: 'function', function: { name: toolCall.function.name, arguments: '' } }] }, logprobs: null, finish_reason: null }]));
    for (const part of toolCall.function.arguments.match(/.{1,8}/gs) ?? []) {
      frames.push(frame([{ index: 0, delta: { tool_calls: [{ index: 0, function: { arguments: part } }] }, logprobs: null, finish_reason: null }]));
    }
  } else {
    frames.push(frame([{ index: 0, delta: { role: 'assistant', content: '', refusal: null }, logprobs: null, finish_reason: null }]));
    pieces.forEach((p, i) => {
      frames.push(frame([{ index: 0, delta: { content: p }, logprobs: wantLogprobs ? { content: [logprobEntry(p, i, topN, fixedLp, planted?.alt)], refusal: null } : null, finish_reason: null }]));
    });
  }
  frames.push(frame([{ index: 0, delta: {}, logprobs: null, finish_reason }]));
  if (sendUsage) frames.push(frame([], { usage }));
  frames.push('data: [DONE]\n\n');

  for (let i = 0; i < frames.length; i++) {
    if (ctl.silent_after_chunks != null && i === ctl.silent_after_chunks) {
      // A server that keeps the connection open and sends nothing more (llama-server on
      // SIGTERM): wait for the client to give up.
      rec.wentSilent = true;
      await new Promise((resolve) => { if (res.destroyed || rec.closed) resolve(); else res.on('close', resolve); });
      return;
    }
    if (ctl.error_after_chunks != null && i === ctl.error_after_chunks) {
      await w.write(errorFrame());
      rec.erroredMidStream = true;
      return w.end();
    }
    if (!(await w.write(frames[i]))) return;
  }
  w.end();
}

// Legacy completions (POST /v1/completions), as openai-node's completions.ts types them: the
// reply is "echo: <prompt>" cut to max_tokens words (default 16); echo: true puts the prompt
// in front; logprobs: N gives {tokens, token_logprobs, top_logprobs, text_offset}. Usage:
// prompt_tokens = words of the prompt. Streams are text_completion chunks, usage on a last
// chunk with choices [] when stream_options.include_usage.
async function handleCompletion(req, res, rec, body, ctl, reqId, opts) {
  const prompts = typeof body?.prompt === 'string' ? [body.prompt] : body?.prompt;
  if (typeof body?.model !== 'string') {
    rec.response = { status: 400 };
    return sendJSON(res, 400, openaiError(400, { message: 'you must provide a model parameter' }), { 'x-request-id': reqId });
  }
  if (!Array.isArray(prompts) || prompts.length !== 1 || typeof prompts[0] !== 'string') {
    rec.response = { status: 400 };
    return sendJSON(res, 400, openaiError(400, { message: "Invalid 'prompt'.", param: 'prompt' }), { 'x-request-id': reqId });
  }
  if (opts.models && !opts.models.includes(body.model)) {
    rec.response = { status: 404 };
    return sendJSON(res, 404, openaiError(404, { message: `The model \`${body.model}\` does not exist.`, code: 'model_not_found' }), { 'x-request-id': reqId });
  }
  const prompt = prompts[0];
  const maxTok = body.max_tokens ?? 16;
  const all = tokenize(ctl.reply ?? `echo: ${prompt}`);
  const pieces = all.slice(0, maxTok);
  const finish_reason = all.length > maxTok ? 'length' : 'stop';
  const text = (body.echo ? prompt : '') + pieces.join('');
  const prompt_tokens = countWords(prompt);
  const usage = { prompt_tokens, completion_tokens: pieces.length, total_tokens: prompt_tokens + pieces.length };
  const id = randomId('cmpl-', 29);
  const created = Math.floor(Date.now() / 1000);
  const lp = (ps) => Number.isInteger(body.logprobs) ? {
    tokens: ps, token_logprobs: ps.map((_, i) => ctl.logprob ?? -0.01 * ((i % 7) + 1)),
    top_logprobs: ps.map((p, i) => ({ [p]: ctl.logprob ?? -0.01 * ((i % 7) + 1) })),
    text_offset: ps.map((_, i) => ps.slice(0, i).join('').length),
  } : null;
  rec.response = { status: 200, usage, text, finish_reason, id, stream: !!body.stream };
  const headers = { 'x-request-id': reqId };
  if (!body.stream) {
    return sendJSON(res, 200, { id, object: 'text_completion', created, model: body.model,
      choices: [{ text, index: 0, logprobs: lp(pieces), finish_reason }], usage, system_fingerprint: 'fp_fake' }, headers);
  }
  const includeUsage = body.stream_options?.include_usage === true;
  const w = sseWriter(req, res, rec, ctl, headers);
  const frame = (choices, extra = {}) => `data: ${JSON.stringify({ id, object: 'text_completion', created, model: body.model, choices, system_fingerprint: 'fp_fake', ...(includeUsage ? { usage: null } : {}), ...extra })}\n\n`;
  const frames = pieces.map((p, i) => frame([{ text: (i === 0 && body.echo ? prompt : '') + p, index: 0, logprobs: lp([p]), finish_reason: null }]));
  frames.push(frame([{ text: '', index: 0, logprobs: null, finish_reason }]));
  if (includeUsage) frames.push(frame([], { usage }));
  frames.push('data: [DONE]\n\n');
  for (const f of frames) if (!(await w.write(f))) return;
  w.end();
}

// Embeddings (POST /v1/embeddings), as openai-node's embeddings.ts types them: one vector a
// string input, opts.embed_dims (default 8) or `dimensions` long, deterministic from the
// text, normalized; base64 when encoding_format is "base64" (float32 little-endian). Usage:
// prompt_tokens = words of the inputs. opts.embeddings === false plays llama-server started
// without --embeddings (501 not_supported_error).
export function fakeEmbedding(text, dims) {
  const v = [];
  let h = 2166136261;
  for (const ch of Buffer.from(String(text), 'utf8')) h = Math.imul(h ^ ch, 16777619) >>> 0;
  for (let k = 0; k < dims; k++) {
    h = Math.imul(h ^ (k + 1), 2246822519) >>> 0;
    v.push((h % 2000) / 1000 - 1);
  }
  const n = Math.hypot(...v) || 1;
  return v.map((x) => Math.fround(x / n));
}

async function handleEmbeddings(req, res, rec, body, ctl, reqId, opts) {
  if (opts.embeddings === false) {
    rec.response = { status: 501 };
    return sendJSON(res, 501, { error: { code: 501, message: 'This server does not support embeddings. Start it with `--embeddings`', type: 'not_supported_error' } });
  }
  const inputs = typeof body?.input === 'string' ? [body.input]
    : Array.isArray(body?.input) && body.input.every((x) => typeof x === 'string') ? body.input
    : Array.isArray(body?.input) && body.input.every(Number.isInteger) ? [body.input]
    : Array.isArray(body?.input) && body.input.every(Array.isArray) ? body.input : null;
  if (typeof body?.model !== 'string' || !inputs || inputs.length === 0) {
    rec.response = { status: 400 };
    return sendJSON(res, 400, openaiError(400, { message: "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.", param: null }), { 'x-request-id': reqId });
  }
  if (opts.models && !opts.models.includes(body.model)) {
    rec.response = { status: 404 };
    return sendJSON(res, 404, openaiError(404, { message: `The model \`${body.model}\` does not exist.`, code: 'model_not_found' }), { 'x-request-id': reqId });
  }
  const dims = Number.isInteger(body.dimensions) ? body.dimensions : opts.embed_dims ?? 8;
  const prompt_tokens = inputs.reduce((n, x) => n + (typeof x === 'string' ? countWords(x) : x.length), 0);
  const data = inputs.map((x, index) => {
    const v = fakeEmbedding(typeof x === 'string' ? x : x.join(','), dims);
    const embedding = body.encoding_format === 'base64' ? Buffer.from(new Float32Array(v).buffer).toString('base64') : v;
    return { object: 'embedding', index, embedding };
  });
  rec.response = { status: 200, usage: { prompt_tokens, total_tokens: prompt_tokens } };
  return sendJSON(res, 200, { object: 'list', data, model: body.model, usage: { prompt_tokens, total_tokens: prompt_tokens } }, { 'x-request-id': reqId });
}

// Responses (POST /v1/responses), as openai-node's resources/responses/responses.d.ts types
// them: `input` a string or items (messages, function_call, function_call_output), optional
// `instructions`. Reply as chat's: "echo: " + the last user text (or the last
// function_call_output's output), cut to max_output_tokens words (status "incomplete",
// incomplete_details.reason "max_output_tokens"); with function tools and "call a tool" in the
// last user text, a function_call of the first tool with arguments {"text": <that text>}.
// Usage: input_tokens = words of instructions and items + 3 per item; output_tokens = words of
// the reply. Streams: response.created, response.in_progress, output_item.added,
// content_part.added, output_text.delta..., output_text.done, content_part.done,
// output_item.done (function calls: function_call_arguments.delta / .done), response.completed
// (or response.incomplete), each with sequence_number; error_after_chunks sends `error`.
export function responsesInputTokens(body) {
  const items = typeof body.input === 'string' ? [{ role: 'user', content: body.input }] : body.input;
  let n = typeof body.instructions === 'string' ? 3 + countWords(body.instructions) : 0;
  for (const it of items) {
    n += 3;
    if (it.type === 'function_call') n += countWords(it.arguments ?? '');
    else if (it.type === 'function_call_output') n += countWords(typeof it.output === 'string' ? it.output : '');
    else n += countWords(contentText(it.content));
  }
  return n;
}

async function handleResponses(req, res, rec, body, ctl, reqId, opts) {
  const fail = (status, message, param = null, code = null) => {
    rec.response = { status };
    return sendJSON(res, status, openaiError(status, { message, param, code }), { 'x-request-id': reqId });
  };
  if (typeof body?.model !== 'string') return fail(400, "Missing required parameter: 'model'.", 'model', 'missing_required_parameter');
  if (!(typeof body.input === 'string' || Array.isArray(body.input))) return fail(400, "Invalid type for 'input'.", 'input', 'invalid_type');
  if (body.messages !== undefined) return fail(400, "Unknown parameter: 'messages'.", 'messages', 'unknown_parameter');
  if (opts.models && !opts.models.includes(body.model)) return fail(404, `The model \`${body.model}\` does not exist or you do not have access to it.`, null, 'model_not_found');
  const items = typeof body.input === 'string' ? [{ type: 'message', role: 'user', content: body.input }] : body.input;
  for (let i = 0; i < items.length; i++) {
    const it = items[i];
    const type = it?.type ?? 'message';
    if (!['message', 'function_call', 'function_call_output'].includes(type)) return fail(400, `Invalid value: '${type}'.`, `input[${i}].type`, 'invalid_value');
    if (type === 'message' && !['user', 'assistant', 'system', 'developer'].includes(it.role)) return fail(400, `Invalid value: '${it.role}'.`, `input[${i}].role`, 'invalid_value');
    if (type !== 'message' && typeof it.call_id !== 'string') return fail(400, `Missing required parameter: 'input[${i}].call_id'.`, `input[${i}].call_id`, 'missing_required_parameter');
  }
  const mt = body.max_output_tokens;
  if (mt != null && !(Number.isInteger(mt) && mt >= 16)) return fail(400, `Invalid 'max_output_tokens': integer below minimum value. Expected a value >= 16, but got ${mt} instead.`, 'max_output_tokens', 'integer_below_min_value');
  const id = randomId('resp_', 48);
  const created_at = Math.floor(Date.now() / 1000);
  const model = body.model;
  const last = items[items.length - 1];
  const afterTool = last?.type === 'function_call_output';
  let userText = '';
  for (const it of items) if ((it.type ?? 'message') === 'message' && it.role === 'user') userText = contentText(it.content);
  const tools = Array.isArray(body.tools) ? body.tools.filter((t) => t?.type === 'function') : [];
  const wantTool = !afterTool && tools.length > 0 && /call a tool/i.test(userText) && body.tool_choice !== 'none';
  const input_tokens = responsesInputTokens(body);
  let pieces = [];
  let call = null;
  let incomplete = false;
  if (wantTool) {
    call = { id: randomId('fc_', 48), type: 'function_call', status: 'completed', arguments: JSON.stringify({ text: userText }), call_id: randomId('call_', 24), name: tools[0].name };
  } else {
    const all = tokenize(ctl.reply ?? `echo: ${afterTool ? String(last.output) : userText}`);
    pieces = all.slice(0, mt ?? Infinity);
    incomplete = all.length > pieces.length;
  }
  const text = pieces.join('');
  const output_tokens = call ? countWords(call.arguments) : pieces.length;
  const usage = {
    input_tokens,
    input_tokens_details: { cached_tokens: ctl.cached_tokens ?? 0 },
    output_tokens,
    output_tokens_details: { reasoning_tokens: ctl.reasoning_tokens ?? 0 },
    total_tokens: input_tokens + output_tokens,
  };
  const msgId = randomId('msg_', 48);
  const part = { type: 'output_text', text, annotations: [], logprobs: [] };
  const message = { id: msgId, type: 'message', status: incomplete ? 'incomplete' : 'completed', role: 'assistant', content: [part] };
  const output = call ? [call] : [message];
  const status = incomplete ? 'incomplete' : 'completed';
  const response = (st, out, u) => ({
    id, object: 'response', created_at, status: st, background: false, error: null,
    incomplete_details: st === 'incomplete' ? { reason: 'max_output_tokens' } : null,
    instructions: body.instructions ?? null, max_output_tokens: mt ?? null, model, output: out,
    parallel_tool_calls: body.parallel_tool_calls ?? true, previous_response_id: null,
    reasoning: { effort: body.reasoning?.effort ?? null, summary: null }, store: body.store ?? true,
    temperature: body.temperature ?? 1, text: body.text ?? { format: { type: 'text' } },
    tool_choice: body.tool_choice ?? 'auto', tools: body.tools ?? [], top_p: body.top_p ?? 1,
    truncation: 'disabled', usage: u, user: body.user ?? null, metadata: {},
  });
  rec.response = { status: 200, usage, text, id, stream: !!body.stream, response_status: status, ...(call ? { tool_call: call } : {}) };
  const headers = { 'x-request-id': reqId, 'openai-processing-ms': '1' };
  if (!body.stream) return sendJSON(res, 200, response(status, output, usage), headers);

  const w = sseWriter(req, res, rec, ctl, headers);
  let seq = 0;
  const ev = (type, fields) => `event: ${type}\ndata: ${JSON.stringify({ type, sequence_number: seq++, ...fields })}\n\n`;
  const frames = [ev('response.created', { response: response('in_progress', [], null) }),
    ev('response.in_progress', { response: response('in_progress', [], null) })];
  if (call) {
    frames.push(ev('response.output_item.added', { output_index: 0, item: { ...call, status: 'in_progress', arguments: '' } }));
    const args = call.arguments;
    const half = Math.floor(args.length / 2);
    for (const d of [args.slice(0, half), args.slice(half)]) frames.push(ev('response.function_call_arguments.delta', { item_id: call.id, output_index: 0, delta: d }));
    frames.push(ev('response.function_call_arguments.done', { item_id: call.id, output_index: 0, name: call.name, arguments: args }));
    frames.push(ev('response.output_item.done', { output_index: 0, item: call }));
  } else {
    frames.push(ev('response.output_item.added', { output_index: 0, item: { ...message, status: 'in_progress', content: [] } }));
    frames.push(ev('response.content_part.added', { item_id: msgId, output_index: 0, content_index: 0, part: { ...part, text: '' } }));
    for (const p of pieces) frames.push(ev('response.output_text.delta', { item_id: msgId, output_index: 0, content_index: 0, delta: p, logprobs: [] }));
    frames.push(ev('response.output_text.done', { item_id: msgId, output_index: 0, content_index: 0, text, logprobs: [] }));
    frames.push(ev('response.content_part.done', { item_id: msgId, output_index: 0, content_index: 0, part }));
    frames.push(ev('response.output_item.done', { output_index: 0, item: message }));
  }
  frames.push(ev(incomplete ? 'response.incomplete' : 'response.completed', { response: response(status, output, usage) }));
  for (let i = 0; i < frames.length; i++) {
    if (ctl.error_after_chunks != null && i === ctl.error_after_chunks) {
      await w.write(ev('error', { code: 'server_error', message: ctl.message ?? 'The server had an error while processing your request.', param: null }));
      rec.erroredMidStream = true;
      return w.end();
    }
    if (!(await w.write(frames[i]))) return;
  }
  w.end();
}

export function startFakeOpenAI(opts = {}) {
  return createFake({
    name: 'openai',
    opts,
    requestIdHeader: 'x-request-id',
    requestIdPrefix: 'req_',
    errorReply,
    inferencePaths: ['/v1/chat/completions', '/v1/completions', '/v1/embeddings', '/v1/responses'],
    async handler(req, res, rec, body, ctl, reqId) {
      const p = rec.path;
      const isChat = p === '/v1/chat/completions' || p === '/v1/completions' || p === '/v1/embeddings' || p === '/v1/responses';
      const isModels = p === '/v1/models';
      if (opts.flavor === 'llama' && p === '/props' && req.method === 'GET') {
        rec.response = { status: 200 };
        return sendJSON(res, 200, {
          default_generation_settings: { id: 0, n_ctx: opts.n_ctx ?? 4096, is_processing: false, params: {} },
          total_slots: 1, model_path: `/models/${(opts.models ?? ['model'])[0]}.gguf`, chat_template: '', build_info: 'fake',
        });
      }
      if (opts.flavor && opts.tokenize !== false && p === '/tokenize' && req.method === 'POST') {
        const text = String((opts.flavor === 'llama' ? body?.content : body?.prompt) ?? '');
        const tokens = tokenize(text).map((_, i) => 1000 + i);
        rec.response = { status: 200 };
        return sendJSON(res, 200, opts.flavor === 'llama' ? { tokens } : { count: tokens.length, max_model_len: opts.n_ctx ?? 4096, tokens });
      }
      if (!isChat && !isModels) {
        rec.response = { status: 404 };
        return sendJSON(res, 404, openaiError(404, { message: `Invalid URL (${req.method} ${p})`, code: null }), { 'x-request-id': reqId });
      }
      if (opts.key) {
        const auth = String(req.headers.authorization ?? '');
        if (auth !== `Bearer ${opts.key}`) {
          const shown = auth.startsWith('Bearer ') ? auth.slice(7) : '';
          const masked = shown.length > 8 ? `${shown.slice(0, 3)}*****${shown.slice(-4)}` : shown;
          const message = auth === ''
            ? "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank username) if you're accessing the API from your browser and are prompted for a username and password. You can obtain an API key from https://platform.openai.com/account/api-keys."
            : `Incorrect API key provided: ${masked}. You can find your API key at https://platform.openai.com/account/api-keys.`;
          rec.response = { status: 401 };
          return sendJSON(res, 401, { error: { message, type: 'invalid_request_error', param: null, code: auth === '' ? null : 'invalid_api_key' } }, { 'x-request-id': reqId });
        }
      }
      if (isModels) {
        if (req.method !== 'GET') {
          rec.response = { status: 405 };
          return sendJSON(res, 405, openaiError(405, { message: `Invalid method for URL (${req.method} ${p})`, code: null }), { 'x-request-id': reqId });
        }
        const ids = opts.models ?? ['gpt-4o', 'gpt-4o-mini'];
        rec.response = { status: 200 };
        return sendJSON(res, 200, {
          object: 'list',
          data: ids.map((id) => ({ id, object: 'model', created: 1715367049, owned_by: 'system',
            ...(opts.flavor === 'vllm' ? { max_model_len: opts.n_ctx ?? 4096 } : {}) })),
        }, { 'x-request-id': reqId });
      }
      if (req.method !== 'POST') {
        rec.response = { status: 405 };
        return sendJSON(res, 405, openaiError(405, { message: `Invalid method for URL (${req.method} ${p})`, code: null }), { 'x-request-id': reqId });
      }
      if (p === '/v1/completions') return handleCompletion(req, res, rec, body, ctl, reqId, opts);
      if (p === '/v1/embeddings') return handleEmbeddings(req, res, rec, body, ctl, reqId, opts);
      if (p === '/v1/responses') return handleResponses(req, res, rec, body, ctl, reqId, opts);
      return handleChat(req, res, rec, body, ctl, reqId, opts);
    },
  });
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  runStandalone(startFakeOpenAI, process.argv.slice(2));
}
