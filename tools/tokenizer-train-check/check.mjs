// check.mjs — checks `tuna tokenizer train` against Hugging Face.
//
//   cd tools/tokenizer-train-check && npm install && node check.mjs [SHARED_DATA_DIR]
//
// For each training corpus it
//  1. trains with build/tuna (timed: the benchmark figure),
//  2. trains HF's own BpeTrainer (Rust, through the official `tokenizers` Node
//     binding) on the same lines and compares the merge lists in order. The
//     binding's train() uses the default trainer (no special tokens, alphabet =
//     characters seen, min_frequency 0); ids keep their relative order under
//     that, so HF's tie-breaking picks the same pairs and the first merges must
//     agree exactly. Special-token text is removed from HF's copy of the corpus,
//     as tuna cuts it out before pre-tokenizing,
//  3. loads tuna's tokenizer.json with HF tokenizers (Rust) and with
//     @huggingface/tokenizers (the transformers.js port) and compares their ids
//     with `build/tuna tokenize` on unseen text lines, corpus.json of
//     ../tokenizer-fixtures and odd strings (emoji, CJK, control bytes), and
//     checks that decoding gives the text back.
// Exit status 0 only when everything matches.
import { createRequire } from "node:module";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Tokenizer as JsTokenizer } from "@huggingface/tokenizers";

const require = createRequire(import.meta.url);
const hf = require("tokenizers");

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "../..");
const shared = path.resolve(process.argv[2] || path.join(root, "../shared/data"));
const tuna = path.join(root, "build/tuna");
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "tuna-train-check-"));
const text = (rel) => path.join(shared, "text", rel);
// Llama 3's pre-tokenizer regex, to check the --regex (Split) path
const LLAMA3_REGEX = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];

let failures = 0;
const fail = (msg) => { failures++; console.log("MISMATCH " + msg); };

function linesOf(file, max) {
  return fs.readFileSync(file, "utf8").split("\n").map((l) => l.replace(/\r$/, "")).filter((l) => l.length).slice(0, max);
}

// Strings with no newline (tuna tokenize is line based); multi-line ones are split.
function probeLines() {
  const out = [
    "Once upon a time, there was a little girl named Lily.",
    "Completely unseen: Zyxwvut quokka 'cause y'all'd've QUUX_42 foo.bar(baz)",
    "Emoji: 🙂🚀👩‍👩‍👧‍👦 🇫🇷 ✨ and flags 🏳️‍🌈",
    "CJK: 我爱自然语言处理。日本語のテキスト、한국어 문장입니다.",
    "Control bytes: \u0001\u0002\u0003\u0007\u001b[31mred\u001b[0m \u007f end",
    "Specials inline: <|im_start|>user hi<|im_end|><|endoftext|>after",
    "Partial specials: <|im_start <|endoftext| |> <| im_end|>",
    "Accents: café naïve résumé Ångström ñandú Straße ΑΒΓ δέλτα Кириллица",
    "Numbers: 3.14159 1,000,000 0x1F 2024-11-28 ①②③ ٠١٢",
    "    spaces    and\ttabs\t\tand trailing   ",
    "\u00a0nbsp\u2003em-space\u3000ideographic",
    "Zero width: a\u200bb\u200cc\u200dd\ufeffe",
    "Math: ∀x∈ℝ, ∫₀¹ x² dx = ⅓ ≠ √2",
    "x".repeat(300),
    "ab".repeat(200) + " " + "the ".repeat(100),
  ];
  const corpus = path.join(root, "tools/tokenizer-fixtures/corpus.json");
  if (fs.existsSync(corpus))
    for (const s of JSON.parse(fs.readFileSync(corpus, "utf8"))) for (const l of s.split("\n")) if (l.length) out.push(l);
  for (const [rel, n] of [["tinystories/tinystories_validation_head.txt", 1500], ["wikitext-2/test.txt", 800],
                          ["general/war-and-peace.txt", 800], ["general/wiki_demo.txt", 10]])
    if (fs.existsSync(text(rel))) out.push(...linesOf(text(rel), n));
  const c4 = text("general/c4_demo.jsonl");
  if (fs.existsSync(c4))
    for (const l of linesOf(c4, 40)) out.push(...JSON.parse(l).text.split("\n").filter((x) => x.length));
  return out.map((l) => l.replace(/\r/g, ""));
}

function trainTuna(name, files, vocab, extra = []) {
  const out = path.join(tmp, name);
  const args = ["tokenizer", "train", ...files.flatMap((f) => ["--data", f]), "--vocab-size", String(vocab), "--out", out, ...extra];
  const t0 = process.hrtime.bigint();
  const summary = execFileSync(tuna, args, { encoding: "utf8" }).trim();
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  console.log(`tuna  ${name}: ${summary} [wall ${(ms / 1000).toFixed(2)} s]`);
  return out;
}

function compareMerges(name, files, dir) {
  const ours = JSON.parse(fs.readFileSync(path.join(dir, "tokenizer.json"), "utf8"));
  // HF's copy of the corpus, without special-token text
  const copies = files.map((f, i) => {
    let s = fs.readFileSync(f, "utf8");
    for (const sp of SPECIALS) s = s.split(sp).join("");
    const p = path.join(tmp, `${name}.hfcorpus.${i}.txt`);
    fs.writeFileSync(p, s);
    return p;
  });
  const tok = hf.Tokenizer.fromFile(path.join(dir, "tokenizer.json"));
  const t0 = Date.now();
  tok.train(copies);
  const ms = Date.now() - t0;
  const saved = path.join(tmp, `${name}.hf.json`);
  tok.save(saved, false);
  const theirs = JSON.parse(fs.readFileSync(saved, "utf8")).model.merges.map((m) => (Array.isArray(m) ? m : m.split(" ")));
  const a = ours.model.merges, n = Math.min(a.length, theirs.length);
  let first = -1;
  for (let i = 0; i < n && first < 0; i++) if (a[i][0] !== theirs[i][0] || a[i][1] !== theirs[i][1]) first = i;
  if (first >= 0) fail(`${name}: merge ${first} differs: tuna ${JSON.stringify(a[first])} HF ${JSON.stringify(theirs[first])}`);
  else if (n < a.length) fail(`${name}: HF made only ${theirs.length} merges, tuna ${a.length}`);
  else console.log(`merges ${name}: all ${n} of tuna's merges equal HF BpeTrainer's first ${n} (HF trained in ${ms} ms)`);
}

async function compareEncodings(name, dir, lines) {
  const json = JSON.parse(fs.readFileSync(path.join(dir, "tokenizer.json"), "utf8"));
  const config = JSON.parse(fs.readFileSync(path.join(dir, "tokenizer_config.json"), "utf8"));
  const rust = hf.Tokenizer.fromFile(path.join(dir, "tokenizer.json"));
  const js = new JsTokenizer(json, config);
  const input = path.join(tmp, `${name}.lines.txt`);
  fs.writeFileSync(input, lines.join("\n") + "\n");
  const tunaIds = execFileSync(tuna, ["tokenize", "--model", dir, "--file", input, "--json"], { encoding: "utf8", maxBuffer: 1 << 28 })
    .trimEnd().split("\n").map((l) => JSON.parse(l));
  const tunaText = execFileSync(tuna, ["detokenize", "--model", dir], {
    input: tunaIds.map((ids) => ids.join(" ")).join("\n") + "\n", encoding: "utf8", maxBuffer: 1 << 28 }).split("\n");
  if (tunaIds.length !== lines.length) { fail(`${name}: tuna printed ${tunaIds.length} lines for ${lines.length}`); return; }
  let bad = 0, tokens = 0;
  for (let i = 0; i < lines.length; i++) {
    const r = (await rust.encode(lines[i], null, { addSpecialTokens: false })).getIds();
    const j = js.encode(lines[i], { add_special_tokens: false }).ids;
    const t = tunaIds[i];
    tokens += t.length;
    const same = (x, y) => x.length === y.length && x.every((v, k) => v === y[k]);
    const decoded = await rust.decode(r, false);
    let why = null;
    if (!same(r, t)) why = `HF(Rust) ${JSON.stringify(r.slice(0, 20))} tuna ${JSON.stringify(t.slice(0, 20))}`;
    else if (!same(j, t)) why = `transformers.js ${JSON.stringify(j.slice(0, 20))} tuna ${JSON.stringify(t.slice(0, 20))}`;
    else if (decoded !== lines[i]) why = `HF decode gives ${JSON.stringify(decoded.slice(0, 80))}`;
    else if (tunaText[i] !== lines[i]) why = `tuna detokenize gives ${JSON.stringify(tunaText[i].slice(0, 80))}`;
    if (why) { bad++; if (bad <= 5) fail(`${name} line ${i} ${JSON.stringify(lines[i].slice(0, 60))}: ${why}`); }
  }
  if (bad > 5) fail(`${name}: ${bad} lines differ in all`);
  if (!bad) console.log(`encode ${name}: ${lines.length} lines (${tokens} tokens): HF Rust, transformers.js and tuna agree; decode round-trips`);
}

if (!fs.existsSync(tuna)) { console.error(`${tuna} not found: run make first`); process.exit(2); }
const lines = probeLines();
const corpora = [
  ["tinystories-4k", [text("tinystories/tinystories_train_head_2MiB.txt")], 4096, []],
  ["shakespeare-8k-minfreq0", [text("tinyshakespeare/input.txt")], 8000, ["--min-frequency", "0"]],
  ["war-and-peace-4k", [text("general/war-and-peace.txt")], 4096, []],
  ["wikitext-16k", [text("wikitext-2/test.txt"), text("wikitext-2/valid.txt")], 16000, ["--min-frequency", "0"]],
  ["war-and-peace-llama3-regex-4k", [text("general/war-and-peace.txt")], 4096, ["--regex", LLAMA3_REGEX]],
  // JSONL records are whole sequences, HF's train(files) reads lines: no merge comparison
  ["c4-jsonl-8k", [text("general/c4_demo.jsonl")], 8000, []],
];
for (const [name, files, vocab, extra] of corpora) {
  if (!files.every((f) => fs.existsSync(f))) { console.log(`SKIP ${name}: ${files.join(", ")} not found`); continue; }
  const dir = trainTuna(name, files, vocab, extra);
  if (!files.some((f) => f.endsWith(".jsonl"))) compareMerges(name, files, dir);
  await compareEncodings(name, dir, lines);
}
fs.rmSync(tmp, { recursive: true, force: true });
console.log(failures ? `FAILED: ${failures} mismatches` : "all checks passed");
process.exit(failures ? 1 : 0);
