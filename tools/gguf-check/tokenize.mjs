// tokenize.mjs — the outside check of the vocabulary `tuna export --format
// gguf` writes: llama.cpp (node-llama-cpp's prebuilt CPU build) tokenizes a
// set of texts with the .gguf, tuna with the source folder's tokenizer.json
// (HF semantics); the ids, BOS/EOS included as each side adds them, must be
// equal.
//   node tokenize.mjs MODEL_DIR FILE.gguf [--corpus FILE.txt [--lines N]] [--texts FILE.json]
// Built-in texts: leading / multiple spaces, newlines, tabs, digits,
// punctuation, accented letters, CJK, emoji that need byte fallback, [INST],
// special tokens inside text. --corpus adds the first N (default 2000)
// non-empty lines of a text file; --texts a JSON array of strings.
// Texts are classed: "plain" (no added token's text inside, no leading
// whitespace) must all be equal (exit 1 otherwise); "leading-space" and
// "special" ones are reported: there the HF fast tokenizer and llama.cpp's
// SPM tokenizer (as SentencePiece) handle text differently for some files
// (see README.md), whatever the vocabulary.
// tuna runs as ../../build/tuna: single-line texts through `tuna tokenize
// --add-special --json`, multi-line ones through `tuna data tokenize` of
// {"text": ...} records (its BOS/EOS framing removed, the --add-special one
// put back).
import {execFileSync} from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import {getLlama} from "node-llama-cpp";

const args = process.argv.slice(2);
const [dir, gguf] = args;
if (!dir || !gguf) {
  console.error("usage: node tokenize.mjs MODEL_DIR FILE.gguf [--corpus FILE.txt [--lines N]] [--texts FILE.json]");
  process.exit(2);
}
const opt = (name) => { const i = args.indexOf(name); return i > 0 ? args[i + 1] : undefined; };

let texts = [
  "Hello world!", "The quick brown fox jumps over the lazy dog.", "Hello  world,   three   spaces", "trailing spaces   ",
  " Hello", "  two leading spaces", "\tTab first", "line one\nline two", "para one\n\npara two\n", "tabs\tand\tmore\tcolumns",
  "    indented code();\n        return 0;", "digits 1234567890 3.14159 -42 1e-5 0x1F", "2024-11-29 12:34:56",
  "punctuation: (a), [b]; {c}! ¿qué? «guillemets» — dash… ellipsis", "\"quotes\" and 'apostrophes' don't won't",
  "café naïve résumé Zürich Ångström", "Ünïcödé ümläüts ßtraße œuvre", "日本語のテキストです。", "中文文本，标点符号。",
  "한국어 텍스트", "Русский текст и цифры 42", "עברית ועربية", "emoji 🦙🔥 and ❤️ ok 👍🏽", "🦙", "math ∑∫√ ≤≥ ∞",
  "zero\u200bwidth and\u00a0no-break", "ﬁ ligature", "[INST] What is 2+2? [/INST]", "<<SYS>>\nYou are helpful.\n<</SYS>>",
  "Hello</s>world", "Hello </s> world", "</s>", "<s>Hi", "<s>[INST] Hi [/INST] Hello</s>", "x<unk>y",
  "<|user|>\nHi there<|end|>\n<|assistant|>\n", "a".repeat(60), " ".repeat(20) + "x", "x" + " ".repeat(33) + "y",
  "https://example.com/path?q=1&r=2#frag", "C:\\Users\\name\\file.txt", "snake_case camelCase PascalCase kebab-case",
];
if (opt("--texts")) texts = texts.concat(JSON.parse(fs.readFileSync(opt("--texts"), "utf8")));
if (opt("--corpus")) {
  const n = Number(opt("--lines") || 2000);
  texts = texts.concat(fs.readFileSync(opt("--corpus"), "utf8").split("\n").filter((l) => l.trim() !== "").slice(0, n));
}

const tuna = new URL("../../build/tuna", import.meta.url).pathname;
const run = (argv, input) => execFileSync(tuna, argv, {input, stdio: ["pipe", "pipe", "pipe"], maxBuffer: 1 << 28}).toString();
const framing = JSON.parse(run(["tokenize", "--model", dir, "--add-special", "--json"], "\n").trim()); // e.g. [1]: BOS
const tunaIds = new Array(texts.length);
const single = texts.map((t, i) => [t, i]).filter(([t]) => !t.includes("\n") && !t.includes("\r"));
const outs = run(["tokenize", "--model", dir, "--add-special", "--json"], single.map(([t]) => t + "\n").join("")).trim().split("\n");
single.forEach(([, i], k) => { tunaIds[i] = JSON.parse(outs[k]); });
const multi = texts.map((t, i) => [t, i]).filter(([t]) => t.includes("\n") || t.includes("\r"));
// added tokens' texts (for the classes); MODEL_DIR may also be a .gguf tuna reads
const tj = path.join(dir, "tokenizer.json");
const specials = fs.existsSync(tj) ? (JSON.parse(fs.readFileSync(tj, "utf8")).added_tokens ?? []).map((a) => a.content)
                                   : ["<s>", "</s>", "<unk>", "<|"];
if (multi.length) {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "tuna-tok-"));
  fs.writeFileSync(path.join(tmp, "in.jsonl"), multi.map(([t]) => JSON.stringify({text: t})).join("\n") + "\n");
  run(["data", "tokenize", "--model", dir, path.join(tmp, "in.jsonl"), "--out", path.join(tmp, "out.jsonl")], "");
  const recs = fs.readFileSync(path.join(tmp, "out.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l).input_ids);
  fs.rmSync(tmp, {recursive: true});
  // data tokenize writes the tokenizer's prefix (BOS; the same as --add-special's
  // when it adds no EOS) unless the text's ids start with it, the ids, and EOS
  // unless a special token is among them
  multi.forEach(([t, i], k) => {
    let d = recs[k];
    const sp = specials.some((s) => t.includes(s));
    if (!specials.some((s) => framing.length && t.startsWith(s))) d = d.slice(framing.length);
    if (!sp) d = d.slice(0, -1);
    tunaIds[i] = framing.concat(d);
  });
}

const llama = await getLlama({gpu: false, build: "never", logLevel: "error"});
const model = await llama.loadModel({modelPath: gguf});
const classify = (t) => specials.some((s) => t.includes(s)) ? "special" : /^\s/.test(t) ? "leading-space" : "plain";
const tally = {};
let plainBad = 0;
texts.forEach((t, i) => {
  let ids = Array.from(model.tokenize(t, true));
  if (model.tokens.shouldPrependBosToken && model.tokens.bos != null) ids = [model.tokens.bos].concat(ids);
  if (model.tokens.shouldAppendEosToken && model.tokens.eos != null) ids = ids.concat([model.tokens.eos]);
  const c = classify(t), same = JSON.stringify(ids) === JSON.stringify(tunaIds[i]);
  tally[c] = tally[c] || {equal: 0, differ: 0};
  tally[c][same ? "equal" : "differ"]++;
  if (!same) {
    if (c === "plain") plainBad++;
    if (i < 200 || c === "plain") console.log(JSON.stringify({class: c, text: t.length > 80 ? t.slice(0, 80) + "…" : t, llama_cpp: ids, tuna: tunaIds[i]}));
  }
});
console.log(JSON.stringify({gguf, texts: texts.length, bos: model.tokens.shouldPrependBosToken, eos: model.tokens.shouldAppendEosToken, by_class: tally}));
process.exit(plainBad ? 1 : 0);
