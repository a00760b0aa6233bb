// compare.mjs — compares the tensors of two GGUF files (types, shapes, data
// bytes), e.g. tuna's k-quant export against llama-quantize's output for
// the same model; or, with --types, lists one file's tensors as
// "name type ne0 ndim" lines (the mixture fixture of tests/test_kquant.c).
//   node compare.mjs A.gguf B.gguf      exit 0 when every tensor is equal
//   node compare.mjs --types F.gguf
import { readFileSync } from "node:fs";

const TYPES = { 0: "F32", 1: "F16", 2: "Q4_0", 6: "Q5_0", 7: "Q5_1", 8: "Q8_0", 10: "Q2_K", 11: "Q3_K", 12: "Q4_K", 13: "Q5_K", 14: "Q6_K" };
const SCALAR = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };

function parse(path) {
  const b = readFileSync(path);
  let p = 0;
  const u32 = () => { const v = b.readUInt32LE(p); p += 4; return v; };
  const u64 = () => { const v = Number(b.readBigUInt64LE(p)); p += 8; return v; };
  const str = () => { const n = u64(); const s = b.toString("utf8", p, p + n); p += n; return s; };
  const skip = (t) => {
    if (t === 8) { str(); return; }
    if (t === 9) { const et = u32(), n = u64(); for (let i = 0; i < n; i++) skip(et); return; }
    p += SCALAR[t];
  };
  if (b.toString("latin1", 0, 4) !== "GGUF") throw new Error(`${path}: not GGUF`);
  p = 4; u32();
  const nt = u64(), nkv = u64();
  const kv = {};
  for (let i = 0; i < nkv; i++) {
    const k = str(), t = u32(), at = p;
    skip(t);
    if (t === 4) kv[k] = b.readUInt32LE(at);
  }
  const tensors = [];
  for (let i = 0; i < nt; i++) {
    const name = str(), nd = u32(), ne = [];
    for (let d = 0; d < nd; d++) ne.push(u64());
    tensors.push({ name, ne, type: u32(), off: u64() });
  }
  const align = kv["general.alignment"] || 32;
  const data = Math.ceil(p / align) * align;
  tensors.sort((x, y) => x.off - y.off);
  tensors.forEach((t, i) => { t.start = data + t.off; t.end = i + 1 < tensors.length ? data + tensors[i + 1].off : b.length; });
  return { b, kv, tensors: new Map(tensors.map((t) => [t.name, t])) };
}

const args = process.argv.slice(2);
if (args[0] === "--types") {
  const f = parse(args[1]);
  console.log(`# general.file_type ${f.kv["general.file_type"]}`);
  for (const t of f.tensors.values()) console.log(`${t.name} ${TYPES[t.type] ?? t.type} ${t.ne[0]} ${t.ne.length}`);
  process.exit(0);
}
const [a, c] = [parse(args[0]), parse(args[1])];
let bad = 0, same = 0;
if (a.kv["general.file_type"] !== c.kv["general.file_type"]) { console.log(`general.file_type ${a.kv["general.file_type"]} vs ${c.kv["general.file_type"]}`); bad++; }
for (const [name, t] of a.tensors) {
  const u = c.tensors.get(name);
  if (!u) { console.log(`${name}: only in ${args[0]}`); bad++; continue; }
  const n = Math.min(t.end - t.start, u.end - u.start);
  const eq = t.type === u.type && t.ne.join() === u.ne.join() && a.b.subarray(t.start, t.start + n).equals(c.b.subarray(u.start, u.start + n));
  if (eq) same++;
  else { bad++; console.log(`${name}: ${TYPES[t.type]} [${t.ne}] vs ${TYPES[u.type]} [${u.ne}]: data ${eq ? "equal" : "differs"}`); }
}
for (const name of c.tensors.keys()) if (!a.tensors.has(name)) { console.log(`${name}: only in ${args[1]}`); bad++; }
console.log(`${same} tensors equal (type, shape, bytes), ${bad} differences`);
process.exit(bad ? 1 : 0);
