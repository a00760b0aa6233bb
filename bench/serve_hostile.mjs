// Hostile clients for the serve soak (scripts/soak_serve.sh), Node 20, no
// packages: for S seconds, against a running `tuna serve --api-key KEY`:
//   slowloris-header  request headers sent one byte per second
//   slowloris-body    complete headers, then the body one byte per second
//   big-body          a 100 MB body (Content-Length given), again and again
//   big-chunked       a 100 MB chunked body (no Content-Length), again and again
//   bad-utf8          JSON whose strings hold invalid UTF-8, again and again
//   wrong-key         a wrong Bearer key, again and again
//   idle              N connections (default 1000) opened and left silent
// Each attempt ends as: answered with a status (counted per status), closed by
// the server without an answer ("closed"), or still open at the end ("open").
//   node bench/serve_hostile.mjs --url URL --api-key KEY [--seconds S] [--idle N] [--json]
// Prints one JSON object (--json) or a table. Loopback only: refuses any
// other host.
import net from 'node:net';

const args = process.argv.slice(2);
const opt = { url: 'http://127.0.0.1:8080', apiKey: '', seconds: 60, idle: 1000, json: false };
for (let i = 0; i < args.length; i++) {
  const a = args[i], v = () => args[++i];
  if (a === '--url') opt.url = v();
  else if (a === '--api-key') opt.apiKey = v();
  else if (a === '--seconds') opt.seconds = Number(v());
  else if (a === '--idle') opt.idle = Number(v());
  else if (a === '--json') opt.json = true;
  else { console.error(`serve_hostile: unknown option ${a}`); process.exit(2); }
}
const u = new URL(opt.url);
if (u.hostname !== '127.0.0.1') { console.error('serve_hostile: loopback (127.0.0.1) only'); process.exit(2); }
const host = u.hostname, port = Number(u.port);
const t_start = performance.now(), deadline = t_start + opt.seconds * 1000;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const results = {};
// per kind: attempts, outcomes, the longest attempt, and when (s after the
// start) each outcome was first and last seen
function count(kind, outcome, ms) {
  const r = (results[kind] ??= { attempts: 0, outcomes: {}, max_ms: 0, seen_s: {} });
  r.attempts++;
  r.outcomes[outcome] = (r.outcomes[outcome] || 0) + 1;
  const at = Math.round((performance.now() - t_start) / 100) / 10;
  r.seen_s[outcome] = [r.seen_s[outcome]?.[0] ?? at, at];
  if (ms !== undefined) r.max_ms = Math.max(r.max_ms, Math.round(ms));
}

// One raw connection. send(sock) writes the request; resolves with the
// outcome: "status NNN", "closed", "refused" (connect failed) or "open".
function attempt(send, { keepUntil = deadline } = {}) {
  return new Promise((resolve) => {
    const t0 = performance.now();
    let got = '', done = false, timer;
    const sock = net.connect({ host, port });
    const end = (outcome) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve({ outcome, ms: performance.now() - t0 });
    };
    sock.on('data', (d) => {
      got += d.toString('latin1');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(got);
      if (m) end(`status ${m[1]}`);
    });
    sock.on('error', (e) => end(sock.connecting || e.code === 'ECONNREFUSED' ? 'refused' : 'closed'));
    sock.on('close', () => end('closed'));
    sock.on('connect', () => send(sock, () => done));
    timer = setTimeout(() => end('open'), Math.max(0, keepUntil - performance.now()));
  });
}

const head = (extra, len) =>
  `POST /v1/chat/completions HTTP/1.1\r\nHost: ${host}:${port}\r\nAuthorization: Bearer ${opt.apiKey}\r\n` +
  `Content-Type: application/json\r\n${extra}${len !== undefined ? `Content-Length: ${len}\r\n` : ''}\r\n`;
const chatBody = (content) => Buffer.concat([Buffer.from('{"messages":[{"role":"user","content":"'), content,
  Buffer.from('"}],"max_tokens":4}')]);

async function trickle(sock, isDone, bytes) {
  for (let i = 0; i < bytes.length && !isDone() && performance.now() < deadline; i++) {
    sock.write(bytes.subarray(i, i + 1));
    await sleep(1000);
  }
}

async function slowlorisHeader() {
  const r = await attempt((s, d) => trickle(s, d, Buffer.from(head('', 20) + '{"messages":[]}    ')));
  count('slowloris-header', r.outcome, r.ms);
}

async function slowlorisBody() {
  const body = chatBody(Buffer.from('x'.repeat(200)));
  const r = await attempt((s, d) => { s.write(head('', body.length)); trickle(s, d, body); });
  count('slowloris-body', r.outcome, r.ms);
}

// writes total bytes in 1 MB pieces, waiting for the socket to drain
async function pour(sock, isDone, total, chunked) {
  const piece = Buffer.alloc(1 << 20, 0x61);
  for (let sent = 0; sent < total && !isDone(); sent += piece.length) {
    const data = chunked ? Buffer.concat([Buffer.from(`${piece.length.toString(16)}\r\n`), piece, Buffer.from('\r\n')]) : piece;
    if (!sock.write(data)) {
      await new Promise((r) => {
        const go = () => { sock.off('drain', go); sock.off('close', go); r(); };
        sock.on('drain', go);
        sock.on('close', go);
      });
    }
  }
  if (chunked && !isDone()) sock.write('0\r\n\r\n');
}

// attempts of the repeated kinds still unanswered 5 s after the end count as "open"
const GRACE = { keepUntil: deadline + 5000 };
async function repeat(kind, once) {
  while (performance.now() < deadline) {
    const r = await once();
    count(kind, r.outcome, r.ms);
    await sleep(20);
  }
}

const MB100 = 100 << 20;
const bigBody = () => attempt((s, d) => { s.write(head('', MB100)); pour(s, d, MB100, false); }, GRACE);
const bigChunked = () => attempt((s, d) => { s.write(head('Transfer-Encoding: chunked\r\n')); pour(s, d, MB100, true); }, GRACE);
const badUtf8 = () => {
  const body = chatBody(Buffer.from([0x68, 0x69, 0xff, 0xfe, 0xc3, 0x28, 0xed, 0xa0, 0x80]));
  return attempt((s) => { s.write(head('', body.length)); s.write(body); }, GRACE);
};
const wrongKey = () => {
  const body = Buffer.from('{"messages":[{"role":"user","content":"hi"}],"max_tokens":4}');
  return attempt((s) => { s.write(head('', body.length).replace(`Bearer ${opt.apiKey}`, 'Bearer wrong-key')); s.write(body); }, GRACE);
};

async function idle() {
  const all = [];
  for (let i = 0; i < opt.idle; i++) {
    all.push(attempt(() => {}));
    if (i % 100 === 99) await sleep(50);
  }
  for (const r of await Promise.all(all)) count('idle', r.outcome, r.ms);
}

await Promise.all([
  slowlorisHeader(), slowlorisBody(), idle(),
  repeat('big-body', bigBody), repeat('big-chunked', bigChunked),
  repeat('bad-utf8', badUtf8), repeat('wrong-key', wrongKey),
]);
if (opt.json) console.log(JSON.stringify(results));
else for (const [k, r] of Object.entries(results)) console.log(`${k.padEnd(18)} ${r.attempts} attempts: ${JSON.stringify(r.outcomes)}, longest ${r.max_ms} ms`);
