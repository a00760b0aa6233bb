// Load test for a running `tuna serve` (Node 20, plain fetch; no packages).
//   node bench/serve_load.mjs [--url URL] [--api-key KEY] [--model ID] [--clients N]
//        [--seconds S] [--max-tokens N] [--temperature T] [--json]
// N clients (default 32) each loop streaming chat requests with varied prompts
// (stream_options.include_usage) for S seconds (default 60); requests running at
// the deadline are finished and counted. Reports requests/s, generated tokens/s
// (from usage), time to first token (first non-empty content delta) and full
// latency p50/p99, and errors (HTTP status ≠ 200, no [DONE], no usage, network).
// Defaults: --url $SERVE_URL or http://127.0.0.1:8080, --api-key $SERVE_API_KEY,
// --model the first id of GET /v1/models. Exit 1 when any request failed.

const args = process.argv.slice(2);
const opt = { url: process.env.SERVE_URL || 'http://127.0.0.1:8080', apiKey: process.env.SERVE_API_KEY || '',
              model: '', clients: 32, seconds: 60, maxTokens: 64, temperature: 0.7, json: false };
for (let i = 0; i < args.length; i++) {
  const a = args[i], v = () => { if (i + 1 >= args.length) usage(`${a} needs a value`); return args[++i]; };
  if (a === '--url') opt.url = v();
  else if (a === '--api-key') opt.apiKey = v();
  else if (a === '--model') opt.model = v();
  else if (a === '--clients') opt.clients = Number(v());
  else if (a === '--seconds') opt.seconds = Number(v());
  else if (a === '--max-tokens') opt.maxTokens = Number(v());
  else if (a === '--temperature') opt.temperature = Number(v());
  else if (a === '--json') opt.json = true;
  else usage(`unknown option ${a}`);
}
function usage(msg) {
  console.error(`serve_load: ${msg}\nusage: node bench/serve_load.mjs [--url URL] [--api-key KEY] [--model ID] ` +
                `[--clients N] [--seconds S] [--max-tokens N] [--temperature T] [--json]`);
  process.exit(2);
}
if (!(opt.clients >= 1) || !(opt.seconds > 0) || !(opt.maxTokens >= 1)) usage('--clients, --seconds, --max-tokens must be positive');
opt.url = opt.url.replace(/\/+$/, '');
const headers = { 'Content-Type': 'application/json' };
if (opt.apiKey) headers.Authorization = `Bearer ${opt.apiKey}`;

if (!opt.model) {
  const r = await fetch(`${opt.url}/v1/models`, { headers, signal: AbortSignal.timeout(10000) });
  if (r.status !== 200) { console.error(`serve_load: GET /v1/models: ${r.status} ${await r.text()}`); process.exit(2); }
  opt.model = (await r.json()).data[0].id;
}

// varied prompts: who × what × where, a different one per request
const WHO = ['Lily', 'Tom', 'Sue', 'Ben', 'Mia', 'Max', 'Anna', 'Sam'];
const WHAT = ['found a red ball', 'saw a big dog', 'lost her hat', 'wanted a cake', 'met a little bird',
              'built a tall tower', 'was afraid of the dark', 'made a new friend'];
const WHERE = ['in the park', 'at home', 'near the river', 'at school', 'in the garden'];
const prompt = (n) => `Write a short story: ${WHO[n % 8]} ${WHAT[(n >> 3) % 8]} ${WHERE[(n >> 6) % 5]}.`;

const stats = { ok: 0, errors: 0, tokens: 0, promptTokens: 0, ttft: [], latency: [], errorSamples: [] };
let seq = 0;
const deadline = performance.now() + opt.seconds * 1000;

function fail(msg) {
  stats.errors++;
  if (stats.errorSamples.length < 5) stats.errorSamples.push(msg);
}

async function one(n) {
  const body = JSON.stringify({ model: opt.model, messages: [{ role: 'user', content: prompt(n) }], max_tokens: opt.maxTokens,
    temperature: opt.temperature, seed: n, stream: true, stream_options: { include_usage: true } });
  const t0 = performance.now();
  let ttft = null, usage = null, done = false, buf = '';
  try {
    const r = await fetch(`${opt.url}/v1/chat/completions`, { method: 'POST', headers, body,
                                                             signal: AbortSignal.timeout(120000) });
    if (r.status !== 200) { fail(`HTTP ${r.status}: ${(await r.text()).slice(0, 200)}`); return; }
    const dec = new TextDecoder();
    for await (const part of r.body) {
      buf += dec.decode(part, { stream: true });
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i).replace(/\r$/, ''); buf = buf.slice(i + 1);
        if (!line.startsWith('data:')) continue;
        const data = line.slice(5).trim();
        if (data === '[DONE]') { done = true; continue; }
        const ch = JSON.parse(data);
        if (ch.error) { fail(`stream error: ${JSON.stringify(ch.error).slice(0, 200)}`); return; }
        if (ttft === null && ch.choices?.[0]?.delta?.content) ttft = performance.now() - t0;
        if (ch.usage) usage = ch.usage;
      }
    }
  } catch (e) { fail(`${e.name}: ${e.message}`); return; }
  if (!done) { fail('stream ended without data: [DONE]'); return; }
  if (!usage) { fail('no usage chunk (stream_options.include_usage)'); return; }
  stats.ok++;
  stats.tokens += usage.completion_tokens; stats.promptTokens += usage.prompt_tokens;
  stats.latency.push(performance.now() - t0);
  if (ttft !== null) stats.ttft.push(ttft);
}

async function client() {
  while (performance.now() < deadline) await one(seq++);
}

const start = performance.now();
await Promise.all(Array.from({ length: opt.clients }, client));
const wall = (performance.now() - start) / 1000;

const pct = (xs, p) => {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
};
const r1 = (x) => (x === null ? null : Math.round(x * 10) / 10);
const res = {
  url: opt.url, model: opt.model, clients: opt.clients, seconds: opt.seconds, max_tokens: opt.maxTokens,
  temperature: opt.temperature, wall_s: r1(wall), requests: stats.ok, errors: stats.errors,
  requests_per_s: Math.round((stats.ok / wall) * 100) / 100, tokens_per_s: r1(stats.tokens / wall),
  completion_tokens: stats.tokens, mean_completion_tokens: stats.ok ? r1(stats.tokens / stats.ok) : null,
  mean_prompt_tokens: stats.ok ? r1(stats.promptTokens / stats.ok) : null,
  ttft_ms_p50: r1(pct(stats.ttft, 50)), ttft_ms_p99: r1(pct(stats.ttft, 99)),
  latency_ms_p50: r1(pct(stats.latency, 50)), latency_ms_p99: r1(pct(stats.latency, 99)),
  error_samples: stats.errorSamples,
};
if (opt.json) {
  console.log(JSON.stringify(res));
} else {
  const rows = [
    ['clients', res.clients], ['wall (s)', res.wall_s], ['requests', res.requests], ['errors', res.errors],
    ['requests/s', res.requests_per_s], ['generated tokens/s', res.tokens_per_s],
    ['mean completion tokens', res.mean_completion_tokens], ['mean prompt tokens', res.mean_prompt_tokens],
    ['TTFT p50 / p99 (ms)', `${res.ttft_ms_p50} / ${res.ttft_ms_p99}`],
    ['latency p50 / p99 (ms)', `${res.latency_ms_p50} / ${res.latency_ms_p99}`],
  ];
  console.log(`serve_load: ${res.model} at ${res.url}, max_tokens ${res.max_tokens}, temperature ${res.temperature}`);
  for (const [k, v] of rows) console.log(`  ${k.padEnd(24)} ${v}`);
  for (const e of stats.errorSamples) console.log(`  error: ${e}`);
}
process.exit(stats.errors || !stats.ok ? 1 : 0);
