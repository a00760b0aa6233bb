// `tuna serve` through the official OpenAI Node client (tests/serve/package.json
// pins it). Run by tests/test_serve.sh against a running server; standalone:
//   SERVE_URL=http://127.0.0.1:8080 SERVE_API_KEY=KEY BASE_MODEL=tuna-stories \
//   ADAPTER_MODEL=NAME TUNA=build/tuna MODEL_DIR=models/tuna-stories ADAPTER_DIR=DIR \
//   node tests/serve/client.test.mjs
// References come from `$TUNA generate ... --temperature 0 --json` (the server at
// temperature 0 must give the same text and token counts). Each check prints
// "ok - WHAT", "not ok - WHAT: DETAIL" or "skip - WHAT: WHY"; exit 1 if any failed.
import OpenAI from 'openai';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const env = process.env;
const SERVE_URL = (env.SERVE_URL || 'http://127.0.0.1:8080').replace(/\/+$/, '');
const API_KEY = env.SERVE_API_KEY || '';
const BASE = env.BASE_MODEL || 'tuna-stories';
const ADAPTER = env.ADAPTER_MODEL || '';
const TUNA = env.TUNA || '';
const MODEL_DIR = env.MODEL_DIR || '';
const ADAPTER_DIR = env.ADAPTER_DIR || '';
const CTX = Number(env.SERVE_CTX || 0);   // the server's --ctx, when known
const TIMEOUT_MS = Number(env.CLIENT_TIMEOUT_MS || 60000);   // one request
const GLOBAL_MS = Number(env.CLIENT_GLOBAL_TIMEOUT_MS || 240000);

const client = new OpenAI({
  baseURL: SERVE_URL + '/v1',
  apiKey: API_KEY || 'no-key',
  maxRetries: 0,          // a 429 or 5xx must show, not be retried
  timeout: TIMEOUT_MS,
});

let passed = 0, failed = 0, skipped = 0;
const one = (s) => String(s).replace(/\s*\n\s*/g, ' ').slice(0, 600);
class Skip extends Error {}

async function check(what, fn) {
  try {
    await fn();
    passed++; console.log(`ok - ${what}`);
  } catch (e) {
    if (e instanceof Skip) { skipped++; console.log(`skip - ${what}: ${e.message}`); return; }
    failed++;
    let detail = e && e.message ? e.message : String(e);
    if (e && e.status !== undefined && !/^expected/.test(detail)) detail = `${e.constructor?.name} status ${e.status}: ${detail}`;
    console.log(`not ok - ${what}: ${one(detail)}`);
  }
}
const show = (v) => JSON.stringify(v);
function eq(got, want, label) {
  if (show(got) !== show(want)) throw new Error(`${label}: expected ${show(want)}, got ${show(got)}`);
}
function ok(cond, msg) { if (!cond) throw new Error(msg); }
async function expectError(promise, Cls, status, code, label) {
  let res;
  try { res = await promise; } catch (e) {
    ok(e instanceof Cls, `${label}: expected ${Cls.name}, got ${e?.constructor?.name} (status ${e?.status}): ${e?.message}`);
    eq(e.status, status, `${label}: status`);
    if (code !== undefined) eq(e.code, code, `${label}: error.code`);
    ok(e.error && typeof e.error.message === 'string' && typeof e.error.type === 'string',
       `${label}: error body lacks message/type: ${show(e.error)}`);
    return e;
  }
  throw new Error(`${label}: expected ${status} ${Cls.name}, request succeeded: ${one(show(res))}`);
}

// ---- references from the command line --------------------------------------
const refCache = new Map();
function reference({ prompt, chat = false, adapter = false, max = 40, system = null }) {
  if (!TUNA || !MODEL_DIR) throw new Skip('env TUNA and MODEL_DIR not set (no reference)');
  if (adapter && !ADAPTER_DIR) throw new Skip('env ADAPTER_DIR not set (no reference)');
  const key = show([prompt, chat, adapter, max, system]);
  if (refCache.has(key)) return refCache.get(key);
  const args = ['generate', '--model', MODEL_DIR, '--prompt', prompt, '--max-new-tokens', String(max),
                '--temperature', '0', '--json'];
  if (chat) args.push('--chat');
  if (adapter) args.push('--adapter', ADAPTER_DIR);
  if (system !== null) args.push('--system', system);
  let out;
  try {
    out = execFileSync(TUNA, args, { encoding: 'utf8', timeout: 120000, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    throw new Error(`reference \`tuna ${args.join(' ')}\` failed: ${one(e.stderr || e.message)}`);
  }
  const lines = out.trim().split('\n');
  const r = JSON.parse(lines[lines.length - 1]);
  refCache.set(key, r);
  return r;
}

// a whole conversation: rendered by `tuna template` (the model's chat template, the
// generation prompt), then continued as a plain prompt (BOS added as --chat does)
function referenceConversation(messages, max) {
  if (!TUNA || !MODEL_DIR) throw new Skip('env TUNA and MODEL_DIR not set (no reference)');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tuna-client-test-'));
  try {
    const f = path.join(dir, 'messages.json');
    fs.writeFileSync(f, JSON.stringify(messages));
    const rendered = execFileSync(TUNA, ['template', '--model', MODEL_DIR, '--messages', f, '--add-generation-prompt'],
                                  { encoding: 'utf8', timeout: 60000, stdio: ['ignore', 'pipe', 'pipe'] });
    const out = execFileSync(TUNA, ['generate', '--model', MODEL_DIR, '--prompt', rendered, '--max-new-tokens', String(max),
                                    '--temperature', '0', '--json'],
                             { encoding: 'utf8', timeout: 120000, stdio: ['ignore', 'pipe', 'pipe'] });
    const lines = out.trim().split('\n');
    return JSON.parse(lines[lines.length - 1]);
  } catch (e) {
    if (e instanceof SyntaxError) throw e;
    throw new Error(`reference for a conversation failed: ${one(e.stderr || e.message)}`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function health() {
  const r = await fetch(SERVE_URL + '/health', { signal: AbortSignal.timeout(10000) });
  ok(r.status === 200, `/health: status ${r.status}`);
  return r.json();
}
const sleep = (ms) => new Promise((res) => setTimeout(res, ms));

// The whole run is bounded: a hung server fails the test instead of hanging it.
setTimeout(() => {
  failed++; console.log(`not ok - client test finished within ${GLOBAL_MS / 1000} s: global timeout`);
  console.log(`# client: ${passed} passed, ${failed} failed, ${skipped} skipped`);
  process.exit(1);
}, GLOBAL_MS).unref();

const CHAT_PROMPT = 'Tell me a story about a cat.';
const TEXT_PROMPT = 'Once upon a time';
const chatMsg = (content) => [{ role: 'user', content }];

// ---- models ----------------------------------------------------------------
await check('models.list() holds the base and the adapter ids', async () => {
  const ids = [];
  const page = await client.models.list();
  for (const m of page.data) {
    ids.push(m.id);
    eq(m.object, 'model', `model ${m.id}: object`);
    ok(Number.isInteger(m.created), `model ${m.id}: created ${show(m.created)} is not an integer`);
    eq(m.owned_by, 'tuna', `model ${m.id}: owned_by`);
  }
  ok(ids.includes(BASE), `base ${show(BASE)} missing from ${show(ids)}`);
  if (ADAPTER) ok(ids.includes(ADAPTER), `adapter ${show(ADAPTER)} missing from ${show(ids)}`);
});

await check('models.retrieve() of the base (and adapter) id; an unknown id is NotFoundError 404', async () => {
  const m = await client.models.retrieve(BASE);
  eq(m.id, BASE, 'retrieve(base).id'); eq(m.object, 'model', 'retrieve(base).object');
  if (ADAPTER) eq((await client.models.retrieve(ADAPTER)).id, ADAPTER, 'retrieve(adapter).id');
  await expectError(client.models.retrieve('no-such-model'), OpenAI.NotFoundError, 404, 'model_not_found',
                    'retrieve(no-such-model)');
});

// ---- chat, non-streaming -----------------------------------------------------
function checkUsage(usage, ref, label) {
  ok(usage, `${label}: no usage`);
  eq(usage.prompt_tokens, ref.prompt_tokens, `${label}: usage.prompt_tokens`);
  eq(usage.completion_tokens, ref.completion_tokens, `${label}: usage.completion_tokens`);
  eq(usage.total_tokens, usage.prompt_tokens + usage.completion_tokens, `${label}: usage.total_tokens`);
}

let chatText = null;
await check('chat (temperature 0, max_tokens 40) equals `tuna generate --chat --json`: text, finish_reason, usage', async () => {
  const ref = reference({ prompt: CHAT_PROMPT, chat: true, max: 40 });
  const r = await client.chat.completions.create({ model: BASE, messages: chatMsg(CHAT_PROMPT), temperature: 0, max_tokens: 40 });
  ok(/^chatcmpl-/.test(r.id), `id ${show(r.id)} does not start with chatcmpl-`);
  eq(r.object, 'chat.completion', 'object');
  ok(Number.isInteger(r.created), `created ${show(r.created)}`);
  eq(r.model, BASE, 'model');
  eq(r.choices.length, 1, 'choices.length');
  const c = r.choices[0];
  eq(c.index, 0, 'choices[0].index');
  eq(c.message.role, 'assistant', 'message.role');
  chatText = c.message.content;
  eq(c.message.content, ref.text, 'text');
  eq(c.finish_reason, ref.finish_reason, 'finish_reason');
  checkUsage(r.usage, ref, 'chat');
});

await check('chat through the adapter equals `tuna generate --chat --adapter --json`; response.model is the adapter id', async () => {
  if (!ADAPTER) throw new Skip('env ADAPTER_MODEL not set');
  const ref = reference({ prompt: CHAT_PROMPT, chat: true, adapter: true, max: 40 });
  const r = await client.chat.completions.create({ model: ADAPTER, messages: chatMsg(CHAT_PROMPT), temperature: 0, max_tokens: 40 });
  eq(r.model, ADAPTER, 'model');
  eq(r.choices[0].message.content, ref.text, 'text');
  eq(r.choices[0].finish_reason, ref.finish_reason, 'finish_reason');
  checkUsage(r.usage, ref, 'adapter chat');
  const base = reference({ prompt: CHAT_PROMPT, chat: true, max: 40 });
  if (base.text === ref.text) console.log('# note: the adapter\'s reference text equals the base\'s; this check cannot tell them apart');
});

// ---- chat, streaming -----------------------------------------------------------
async function collect(stream) {
  const chunks = [];
  for await (const ch of stream) chunks.push(ch);
  return chunks;
}

await check('streaming chat: deltas equal the non-streaming text; role first; one finish_reason; usage chunk last', async () => {
  const ref = reference({ prompt: CHAT_PROMPT, chat: true, max: 40 });
  const stream = await client.chat.completions.create({ model: BASE, messages: chatMsg(CHAT_PROMPT), temperature: 0,
    max_tokens: 40, stream: true, stream_options: { include_usage: true } });
  const chunks = await collect(stream);
  ok(chunks.length >= 2, `only ${chunks.length} chunks`);
  const id = chunks[0].id;
  ok(/^chatcmpl-/.test(id), `id ${show(id)} does not start with chatcmpl-`);
  for (const c of chunks) {
    eq(c.object, 'chat.completion.chunk', 'chunk object');
    eq(c.id, id, 'every chunk has the same id');
    eq(c.model, BASE, 'chunk model');
  }
  const last = chunks[chunks.length - 1];
  eq(last.choices, [], 'last chunk (include_usage) choices');
  checkUsage(last.usage, ref, 'stream usage chunk');
  const body = chunks.slice(0, -1);
  for (const c of body) ok(c.choices.length === 1, `a content chunk has ${c.choices.length} choices`);
  eq(body[0].choices[0].delta.role, 'assistant', 'first delta role');
  const text = body.map((c) => c.choices[0].delta.content ?? '').join('');
  eq(text, chatText ?? ref.text, 'concatenated deltas vs non-streaming text');
  const fin = body.filter((c) => c.choices[0].finish_reason != null);
  eq(fin.length, 1, 'chunks with a finish_reason');
  eq(fin[0].choices[0].finish_reason, ref.finish_reason, 'finish_reason');
  eq(fin[0], body[body.length - 1], 'the finish_reason chunk is the last content chunk');
});

// ---- completions ----------------------------------------------------------------
await check('completion (temperature 0, max_tokens 40) equals `tuna generate --prompt --json`', async () => {
  const ref = reference({ prompt: TEXT_PROMPT, max: 40 });
  const r = await client.completions.create({ model: BASE, prompt: TEXT_PROMPT, temperature: 0, max_tokens: 40 });
  ok(/^cmpl-/.test(r.id), `id ${show(r.id)} does not start with cmpl-`);
  eq(r.object, 'text_completion', 'object');
  eq(r.model, BASE, 'model');
  eq(r.choices.length, 1, 'choices.length');
  eq(r.choices[0].index, 0, 'choices[0].index');
  eq(r.choices[0].text, ref.text, 'text');
  eq(r.choices[0].finish_reason, ref.finish_reason, 'finish_reason');
  checkUsage(r.usage, ref, 'completion');
});

await check('streaming completion equals the reference; one finish_reason; usage chunk last', async () => {
  const ref = reference({ prompt: TEXT_PROMPT, max: 40 });
  const stream = await client.completions.create({ model: BASE, prompt: TEXT_PROMPT, temperature: 0, max_tokens: 40,
    stream: true, stream_options: { include_usage: true } });
  const chunks = await collect(stream);
  ok(chunks.length >= 2, `only ${chunks.length} chunks`);
  for (const c of chunks) eq(c.object, 'text_completion', 'chunk object');
  ok(/^cmpl-/.test(chunks[0].id), `id ${show(chunks[0].id)}`);
  const last = chunks[chunks.length - 1];
  eq(last.choices, [], 'last chunk (include_usage) choices');
  checkUsage(last.usage, ref, 'stream usage chunk');
  const body = chunks.slice(0, -1);
  eq(body.map((c) => c.choices[0].text).join(''), ref.text, 'concatenated text');
  const fin = body.filter((c) => c.choices[0].finish_reason != null);
  eq(fin.length, 1, 'chunks with a finish_reason');
  eq(fin[0].choices[0].finish_reason, ref.finish_reason, 'finish_reason');
});

// ---- sampling ---------------------------------------------------------------------
await check('seeded sampling: temperature 1 seed 7 twice gives the same text', async () => {
  const req = (seed) => client.chat.completions.create({ model: BASE, messages: chatMsg('Tell me a story about a dog.'),
    temperature: 1, seed, max_tokens: 40 }).then((r) => r.choices[0].message.content);
  const a = await req(7), b = await req(7), c = await req(8);
  eq(b, a, 'second seed-7 text');
  ok(a.length > 0, 'empty text');
  if (c === a) console.log('# note: seed 8 gave the same text as seed 7 (allowed, unlikely)');
});

await check('top_p 0.9 with a seed is reproducible too (completions)', async () => {
  const req = () => client.completions.create({ model: BASE, prompt: TEXT_PROMPT, temperature: 0.8, top_p: 0.9,
    seed: 11, max_tokens: 24 }).then((r) => r.choices[0].text);
  eq(await req(), await req(), 'second text');
});

// ---- length and stop ------------------------------------------------------------
await check('max_tokens 5: completion_tokens <= 5, finish_reason "length" (the reference runs longer), a prefix of the reference', async () => {
  const ref = reference({ prompt: CHAT_PROMPT, chat: true, max: 40 });
  const r = await client.chat.completions.create({ model: BASE, messages: chatMsg(CHAT_PROMPT), temperature: 0, max_tokens: 5 });
  const u = r.usage;
  ok(u.completion_tokens <= 5, `completion_tokens ${u.completion_tokens} > 5`);
  const stoppedEarly = ref.finish_reason === 'stop' && ref.completion_tokens < 5;
  eq(r.choices[0].finish_reason, stoppedEarly ? 'stop' : 'length', 'finish_reason');
  if (!stoppedEarly) eq(u.completion_tokens, 5, 'completion_tokens');
  ok(ref.text.startsWith(r.choices[0].message.content),
     `text ${show(r.choices[0].message.content)} is not a prefix of the reference ${show(ref.text)}`);
});

await check('max_completion_tokens 5 (chat) limits like max_tokens', async () => {
  const ref = reference({ prompt: CHAT_PROMPT, chat: true, max: 40 });
  const r = await client.chat.completions.create({ model: BASE, messages: chatMsg(CHAT_PROMPT), temperature: 0, max_completion_tokens: 5 });
  if (ref.completion_tokens > 5) {
    eq(r.usage.completion_tokens, 5, 'completion_tokens');
    eq(r.choices[0].finish_reason, 'length', 'finish_reason');
  }
  ok(ref.text.startsWith(r.choices[0].message.content), `text ${show(r.choices[0].message.content)} is not a prefix of the reference`);
});

await check('completion without max_tokens generates 16 tokens (the default)', async () => {
  const ref = reference({ prompt: TEXT_PROMPT, max: 40 });
  const r = await client.completions.create({ model: BASE, prompt: TEXT_PROMPT, temperature: 0 });
  if (ref.completion_tokens > 16) {
    eq(r.usage.completion_tokens, 16, 'completion_tokens');
    eq(r.choices[0].finish_reason, 'length', 'finish_reason');
  }
  ok(ref.text.startsWith(r.choices[0].text), `text ${show(r.choices[0].text)} is not a prefix of the reference`);
});

await check('chat without max_tokens runs to the end of the context (--ctx), as `tuna generate` with the rest', async () => {
  if (!CTX) throw new Skip('env SERVE_CTX (the server\'s --ctx) not set');
  const short = reference({ prompt: CHAT_PROMPT, chat: true, max: 40 });
  const ref = reference({ prompt: CHAT_PROMPT, chat: true, max: CTX - short.prompt_tokens });
  const r = await client.chat.completions.create({ model: BASE, messages: chatMsg(CHAT_PROMPT), temperature: 0 });
  eq(r.choices[0].finish_reason, ref.finish_reason, 'finish_reason');
  checkUsage(r.usage, ref, 'usage');
  eq(r.choices[0].message.content, ref.text, 'text');
  if (ref.finish_reason === 'length') eq(r.usage.total_tokens, CTX, 'total_tokens (= --ctx)');
});

await check('chat with a system message equals `tuna generate --chat --system`', async () => {
  const system = 'You are a kind storyteller.';
  const ref = reference({ prompt: CHAT_PROMPT, chat: true, max: 32, system });
  const r = await client.chat.completions.create({ model: BASE, temperature: 0, max_tokens: 32,
    messages: [{ role: 'system', content: system }, { role: 'user', content: CHAT_PROMPT }] });
  eq(r.choices[0].message.content, ref.text, 'text');
  checkUsage(r.usage, ref, 'usage');
});

await check('a conversation (system, user, assistant, user) equals `tuna template` + `tuna generate` of the rendered prompt', async () => {
  const messages = [{ role: 'system', content: 'You tell short stories.' }, { role: 'user', content: 'Tell me about a dog.' },
                    { role: 'assistant', content: 'The dog ran in the park.' }, { role: 'user', content: 'What did the dog find?' }];
  const ref = referenceConversation(messages, 32);
  const r = await client.chat.completions.create({ model: BASE, messages, temperature: 0, max_tokens: 32 });
  eq(r.choices[0].message.content, ref.text, 'text');
  checkUsage(r.usage, ref, 'usage');
});

function stopCase(text) {
  // a stop string from the middle of the reference: the answer must end right before its first occurrence
  const k = Math.max(1, Math.floor(text.length / 2));
  let stop = text.slice(k, k + 5);
  if (!stop.trim()) stop = text.slice(k, k + 8);
  return { stop, expect: text.slice(0, text.indexOf(stop)) };
}

await check('a stop string (chat) cuts the text right before it, finish_reason "stop"', async () => {
  const ref = reference({ prompt: CHAT_PROMPT, chat: true, max: 40 });
  const { stop, expect } = stopCase(ref.text);
  const r = await client.chat.completions.create({ model: BASE, messages: chatMsg(CHAT_PROMPT), temperature: 0, max_tokens: 40, stop });
  eq(r.choices[0].message.content, expect, `text with stop ${show(stop)}`);
  eq(r.choices[0].finish_reason, 'stop', 'finish_reason');
  ok(r.usage.completion_tokens <= ref.completion_tokens, `completion_tokens ${r.usage.completion_tokens}`);
});

await check('a stop array (streaming completion) cuts the text right before the first match', async () => {
  const ref = reference({ prompt: TEXT_PROMPT, max: 40 });
  const { stop, expect } = stopCase(ref.text);
  const stream = await client.completions.create({ model: BASE, prompt: TEXT_PROMPT, temperature: 0, max_tokens: 40,
    stop: ['@@never@@', stop], stream: true });
  const chunks = await collect(stream);
  const text = chunks.map((c) => c.choices[0]?.text ?? '').join('');
  eq(text, expect, `text with stop [${show(stop)}]`);
  const fin = chunks.filter((c) => c.choices[0]?.finish_reason != null);
  eq(fin.map((c) => c.choices[0].finish_reason), ['stop'], 'finish_reasons');
});

// ---- batching -----------------------------------------------------------------------
const ANIMALS = ['cat', 'dog', 'bird', 'fish', 'frog', 'bear', 'rabbit', 'duck'];
const batchReq = (i) => client.chat.completions.create({ model: i % 3 === 2 && ADAPTER ? ADAPTER : BASE,
  messages: chatMsg(`Write a story about a ${ANIMALS[i]} ${i % 2 ? 'in the park' : 'who was sad'}.`),
  temperature: 0, max_tokens: 24 + 8 * i });
const answer = (r) => ({ text: r.choices[0].message.content, tokens: r.usage.completion_tokens, finish: r.choices[0].finish_reason });

await check('batching: 8 chat requests at once (Promise.all) give the texts of the same 8 sent one by one', async () => {
  const one = [];
  for (let i = 0; i < 8; i++) one.push(answer(await batchReq(i)));
  let maxActive = 0, polling = true;
  const poll = (async () => {
    while (polling) {
      try { maxActive = Math.max(maxActive, (await health()).active); } catch { /* the result tells */ }
      await sleep(5);
    }
  })();
  const together = (await Promise.all(ANIMALS.map((_, i) => batchReq(i)))).map(answer);
  polling = false; await poll;
  for (let i = 0; i < 8; i++) eq(together[i], one[i], `request ${i}`);
  console.log(`# batching: at most ${maxActive} requests active at once (seen by /health)`);
});

await check('batching: concurrent requests run together (/health "active" reaches >= 2)', async () => {
  let maxActive = 0, polling = true;
  const poll = (async () => {
    while (polling) {
      try { maxActive = Math.max(maxActive, (await health()).active); } catch { /* below */ }
      await sleep(5);
    }
  })();
  await Promise.all([0, 1, 2, 3].map((i) => client.completions.create({ model: BASE, prompt: `The ${ANIMALS[i]}`,
    temperature: 0, max_tokens: 200 })));
  polling = false; await poll;
  ok(maxActive >= 2, `at most ${maxActive} active`);
});

// ---- errors ----------------------------------------------------------------------------
await check('unknown model → NotFoundError 404, code model_not_found', async () => {
  await expectError(client.chat.completions.create({ model: 'no-such-model', messages: chatMsg('hi'), max_tokens: 4 }),
                    OpenAI.NotFoundError, 404, 'model_not_found', 'chat');
  await expectError(client.completions.create({ model: 'no-such-model', prompt: 'hi', max_tokens: 4 }),
                    OpenAI.NotFoundError, 404, 'model_not_found', 'completions');
});

await check('max_tokens "x" → BadRequestError 400', async () => {
  await expectError(client.chat.completions.create({ model: BASE, messages: chatMsg('hi'), max_tokens: 'x' }),
                    OpenAI.BadRequestError, 400, undefined, 'chat');
});

await check('messages missing / not an array, temperature "hot" → BadRequestError 400', async () => {
  await expectError(client.chat.completions.create({ model: BASE, max_tokens: 4 }), OpenAI.BadRequestError, 400, undefined, 'no messages');
  await expectError(client.chat.completions.create({ model: BASE, messages: 'hi', max_tokens: 4 }), OpenAI.BadRequestError, 400, undefined, 'messages string');
  await expectError(client.completions.create({ model: BASE, prompt: 'hi', temperature: 'hot', max_tokens: 4 }), OpenAI.BadRequestError, 400, undefined, 'temperature');
});

await check('n 2 → BadRequestError 400', async () => {
  await expectError(client.chat.completions.create({ model: BASE, messages: chatMsg('hi'), max_tokens: 4, n: 2 }),
                    OpenAI.BadRequestError, 400, undefined, 'chat');
  await expectError(client.completions.create({ model: BASE, prompt: 'hi', max_tokens: 4, n: 2 }),
                    OpenAI.BadRequestError, 400, undefined, 'completions');
});

await check('a prompt longer than the context → BadRequestError 400, code context_length_exceeded', async () => {
  const long = 'word '.repeat(5000);
  await expectError(client.chat.completions.create({ model: BASE, messages: chatMsg(long), max_tokens: 4 }),
                    OpenAI.BadRequestError, 400, 'context_length_exceeded', 'chat');
  await expectError(client.completions.create({ model: BASE, prompt: long, max_tokens: 4 }),
                    OpenAI.BadRequestError, 400, 'context_length_exceeded', 'completions');
});

await check('a wrong API key → AuthenticationError 401, code invalid_api_key', async () => {
  if (!API_KEY) throw new Skip('env SERVE_API_KEY not set (server without --api-key)');
  const bad = new OpenAI({ baseURL: SERVE_URL + '/v1', apiKey: API_KEY + '-wrong', maxRetries: 0, timeout: TIMEOUT_MS });
  await expectError(bad.models.list(), OpenAI.AuthenticationError, 401, 'invalid_api_key', 'models.list');
  await expectError(bad.chat.completions.create({ model: BASE, messages: chatMsg('hi'), max_tokens: 4 }),
                    OpenAI.AuthenticationError, 401, 'invalid_api_key', 'chat');
});

// ---- disconnect --------------------------------------------------------------------------
await check('an aborted stream stops its generation (/health: active back to 0, cancelled + 1 within 5 s)', async () => {
  const before = await health();
  ok(typeof before.cancelled === 'number', `/health has no "cancelled": ${show(before)}`);
  const ac = new AbortController();
  const stream = await client.completions.create({ model: BASE, prompt: TEXT_PROMPT, temperature: 0, max_tokens: 450,
    stream: true }, { signal: ac.signal });
  let got = 0;
  try {
    for await (const _ of stream) { got++; ac.abort(); break; }
  } catch (e) {
    if (!(e instanceof OpenAI.APIUserAbortError) && e?.name !== 'AbortError') throw e;
  }
  ok(got === 1, `received ${got} chunks before the abort`);
  const t0 = Date.now();
  let h = before;
  while (Date.now() - t0 < 5000) {
    h = await health();
    if (h.active === 0 && h.cancelled > before.cancelled) break;
    await sleep(50);
  }
  ok(h.active === 0 && h.cancelled > before.cancelled,
     `after 5 s /health is ${show(h)} (before the request: ${show(before)})`);
});

console.log(`# client: ${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(failed ? 1 : 0);
