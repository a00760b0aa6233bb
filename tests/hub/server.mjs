// tests/hub/server.mjs — a fake Hugging Face Hub on the loopback for
// tests/test_hub.sh (node's http module only). Usage:
//   node server.mjs CONFIG.json LOG
// CONFIG: {"token": "...", "repos": {"ORG/NAME": {"gated": bool,
//   "revisions": {"main": {"commit": "40 hex", "dir": "folder"}, ...},
//   "cut": {"FILE": BYTES}   (the first GET of FILE's bytes stops after BYTES)
//   "corrupt": ["FILE"],     (FILE's bytes served with one byte changed)
//   "norange": true}}        (Range ignored: 200 and the whole file, as some servers do)
// Two servers on free ports, printed as one JSON line {"port", "lfs_port"}:
// the Hub (api/models/{repo}/revision/{rev}, {repo}/resolve/{rev}/{file}),
// and the "LFS host" that *.safetensors files redirect to (302), as the Hub's
// CDN. Headers as the Hub sends them: X-Repo-Commit, ETag (a git blob hash) or
// X-Linked-Etag (the sha256) with X-Linked-Size, X-Error-Code on 401/404.
// Each request is appended to LOG as "host METHOD URL range=R auth=A".
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';

const [cfgPath, logPath] = process.argv.slice(2);
const cfg = JSON.parse(fs.readFileSync(cfgPath, 'utf8'));
const cutDone = new Set();
let lfsPort = 0;

const log = (host, req) => fs.appendFileSync(logPath,
  `${host} ${req.method} ${req.url} range=${req.headers.range || '-'} auth=${req.headers.authorization || '-'}\n`);

function listFiles(dir, prefix = '') {
  const out = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...listFiles(path.join(dir, e.name), rel));
    else out.push(rel);
  }
  return out;
}

// a file's bytes and hashes, read once
const files = new Map();
function load(full) {
  if (!files.has(full)) {
    const body = fs.readFileSync(full);
    files.set(full, { body, sha256: crypto.createHash('sha256').update(body).digest('hex'),
      sha1: crypto.createHash('sha1').update(`blob ${body.length}\0`).update(body).digest('hex') });
  }
  return files.get(full);
}
const isLfs = (file) => file.endsWith('.safetensors');

function fail(res, code, errorCode, msg) {
  res.writeHead(code, { 'Content-Type': 'application/json', ...(errorCode ? { 'X-Error-Code': errorCode } : {}) });
  res.end(JSON.stringify({ error: msg }));
}

// the repository and revision a URL names, or an error already sent
function lookup(req, res, repoId, rev) {
  const repo = cfg.repos[repoId];
  if (!repo) return fail(res, 404, 'RepoNotFound', 'Repository not found');
  if (repo.gated && req.headers.authorization !== `Bearer ${cfg.token}`)
    return fail(res, 401, 'GatedRepo', 'Access to this model is restricted');
  const revs = repo.revisions;
  const r = revs[rev] || Object.values(revs).find((v) => v.commit === rev);
  if (!r) return fail(res, 404, 'RevisionNotFound', 'Invalid rev id');
  return { repo, rev: r };
}

function hub(req, res) {
  log('hub', req);
  const url = new URL(req.url, 'http://x');
  let m = url.pathname.match(/^\/api\/models\/([^/]+\/[^/]+)\/revision\/([^/]+)$/);
  if (m && req.method === 'GET') {
    const found = lookup(req, res, m[1], decodeURIComponent(m[2]));
    if (!found) return;
    const siblings = listFiles(found.rev.dir).map((f) => ({ rfilename: f }));
    res.writeHead(200, { 'Content-Type': 'application/json' });
    return res.end(JSON.stringify({ id: m[1], sha: found.rev.commit, siblings }));
  }
  m = url.pathname.match(/^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/);
  if (!m) return fail(res, 404, null, 'not found');
  const found = lookup(req, res, m[1], decodeURIComponent(m[2]));
  if (!found) return;
  const file = decodeURIComponent(m[3]);
  const full = path.join(found.rev.dir, file);
  if (!fs.existsSync(full)) return fail(res, 404, 'EntryNotFound', 'Entry not found');
  const { body, sha256: sha, sha1 } = load(full);
  const h = { 'X-Repo-Commit': found.rev.commit };
  if (isLfs(file)) {
    res.writeHead(302, { ...h, 'X-Linked-Etag': `"${sha}"`, 'X-Linked-Size': body.length, ETag: `W/"${sha1}"`,
      Location: `http://127.0.0.1:${lfsPort}/lfs/${encodeURIComponent(m[1])}/${found.rev.commit}/${encodeURIComponent(file)}`,
      'Content-Length': 0 });
    return res.end();
  }
  res.writeHead(200, { ...h, ETag: `"${sha1}"`, 'Content-Length': body.length });
  res.end(req.method === 'HEAD' ? undefined : body);
}

// the CDN: the bytes of an LFS file, with Range
function lfs(req, res) {
  log('lfs', req);
  const m = new URL(req.url, 'http://x').pathname.match(/^\/lfs\/([^/]+)\/([0-9a-f]{40})\/(.+)$/);
  const repo = m && cfg.repos[decodeURIComponent(m[1])];
  const rev = repo && Object.values(repo.revisions).find((v) => v.commit === m[2]);
  if (!rev) return fail(res, 404, null, 'no such object');
  const file = decodeURIComponent(m[3]);
  let body = load(path.join(rev.dir, file)).body;
  if ((repo.corrupt || []).includes(file)) { body = Buffer.from(body); body[body.length >> 1] ^= 0xff; }
  let start = 0;
  const rg = (req.headers.range || '').match(/^bytes=(\d+)-$/);
  if (rg && !repo.norange) start = Number(rg[1]);
  const part = body.subarray(start);
  const partial = rg && !repo.norange;
  res.writeHead(partial ? 206 : 200, { 'Content-Length': part.length,
    ...(partial ? { 'Content-Range': `bytes ${start}-${body.length - 1}/${body.length}` } : {}) });
  const cut = (repo.cut || {})[file];
  const key = `${m[1]}/${file}`;
  if (cut !== undefined && !cutDone.has(key) && req.method === 'GET') {
    cutDone.add(key);
    res.flushHeaders();
    return res.write(part.subarray(0, cut), () => setTimeout(() => res.socket.destroy(), 50));
  }
  res.end(req.method === 'HEAD' ? undefined : part);
}

const a = http.createServer(hub), b = http.createServer(lfs);
b.listen(0, '127.0.0.1', () => {
  lfsPort = b.address().port;
  a.listen(0, '127.0.0.1', () => console.log(JSON.stringify({ port: a.address().port, lfs_port: lfsPort })));
});
