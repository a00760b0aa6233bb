// generate.mjs — writes tests/fixtures/tokenizer/<name>.jsonl: for every string
// of corpus.json, the ids Hugging Face's tokenizers (@huggingface/tokenizers,
// the JS port used by transformers.js) give without and with special tokens,
// and the decoded text. tests/test_tokenizer.c compares tuna against them.
//
//   cd tools/tokenizer-fixtures && npm install && node generate.mjs [SHARED_DATA_DIR]
//
// Tokenizers come from ../shared/data/tokenizers. Qwen2 and Llama 3.2 are stored
// there as vocab/merges files only; their tokenizer.json is assembled here from
// the published structure of those files (see assemble*). tuna builds the Qwen2
// one the same way from the folder, and test_tokenizer.c the Llama 3.2 one.
import { Tokenizer } from "@huggingface/tokenizers";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "../..");
const shared = path.resolve(process.argv[2] || path.join(root, "../shared/data"));
const outDir = path.join(root, "tests/fixtures/tokenizer");
const corpus = JSON.parse(fs.readFileSync(path.join(here, "corpus.json"), "utf8"));

const readJson = (p) => JSON.parse(fs.readFileSync(p, "utf8"));
const tokDir = (name) => path.join(shared, "tokenizers", name);

const QWEN2_REGEX = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const LLAMA3_REGEX = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

function mergesFromText(text) {
  return text.split("\n").map((l) => l.replace(/\r$/, "")).filter((l) => l.length && !l.startsWith("#version"));
}

function byteLevelBpe(vocab, merges, ignoreMerges) {
  return { type: "BPE", dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null,
           fuse_unk: false, byte_fallback: false, ignore_merges: ignoreMerges, vocab, merges };
}

// Qwen2Tokenizer: NFC, the Qwen regex, byte-level BPE; added tokens from tokenizer_config.json.
function assembleQwen2() {
  const dir = tokDir("qwen2");
  const config = readJson(path.join(dir, "tokenizer_config.json"));
  const added = Object.entries(config.added_tokens_decoder).map(([id, t]) => ({
    id: Number(id), content: t.content, single_word: !!t.single_word, lstrip: !!t.lstrip, rstrip: !!t.rstrip,
    normalized: !!t.normalized, special: !!t.special }));
  const tokenizer = {
    version: "1.0", truncation: null, padding: null, added_tokens: added,
    normalizer: { type: "NFC" },
    pre_tokenizer: { type: "Sequence", pretokenizers: [
      { type: "Split", pattern: { Regex: QWEN2_REGEX }, behavior: "Isolated", invert: false },
      { type: "ByteLevel", add_prefix_space: false, trim_offsets: false, use_regex: false }] },
    post_processor: null,
    decoder: { type: "ByteLevel", add_prefix_space: false, trim_offsets: false, use_regex: false },
    model: byteLevelBpe(readJson(path.join(dir, "vocab.json")),
                        mergesFromText(fs.readFileSync(path.join(dir, "merges.txt"), "utf8")), false),
  };
  return { tokenizer, config };
}

// Llama 3 special tokens: 128000.. in the order of Meta's release.
export function llama3Specials() {
  const names = ["<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>", "<|reserved_special_token_1|>",
    "<|finetune_right_pad_id|>", "<|reserved_special_token_2|>", "<|start_header_id|>", "<|end_header_id|>",
    "<|eom_id|>", "<|eot_id|>", "<|python_tag|>"];
  for (let i = 3; names.length < 256; i++) names.push(`<|reserved_special_token_${i}|>`);
  return names;
}

function assembleLlama32() {
  const dir = tokDir("llama3.2");
  const added = llama3Specials().map((content, i) => ({ id: 128000 + i, content, single_word: false, lstrip: false,
    rstrip: false, normalized: false, special: true }));
  const tokenizer = {
    version: "1.0", truncation: null, padding: null, added_tokens: added,
    normalizer: null,
    pre_tokenizer: { type: "Sequence", pretokenizers: [
      { type: "Split", pattern: { Regex: LLAMA3_REGEX }, behavior: "Isolated", invert: false },
      { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: false }] },
    post_processor: { type: "TemplateProcessing",
      single: [{ SpecialToken: { id: "<|begin_of_text|>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
      pair: [{ SpecialToken: { id: "<|begin_of_text|>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } },
             { SpecialToken: { id: "<|begin_of_text|>", type_id: 1 } }, { Sequence: { id: "B", type_id: 1 } }],
      special_tokens: { "<|begin_of_text|>": { id: "<|begin_of_text|>", ids: [128000], tokens: ["<|begin_of_text|>"] } } },
    decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: byteLevelBpe(readJson(path.join(dir, "encoder.json")),
                        mergesFromText(fs.readFileSync(path.join(dir, "vocab.bpe"), "utf8")), true),
  };
  const config = { bos_token: "<|begin_of_text|>", eos_token: "<|end_of_text|>", clean_up_tokenization_spaces: false };
  return { tokenizer, config };
}

function fromFolder(name) {
  const dir = tokDir(name);
  const cfgPath = path.join(dir, "tokenizer_config.json");
  return { tokenizer: readJson(path.join(dir, "tokenizer.json")), config: fs.existsSync(cfgPath) ? readJson(cfgPath) : {} };
}

const sources = {
  "gpt2": () => fromFolder("gpt2"),
  "llama2": () => fromFolder("llama2"),
  "Mistral-7B-v0.1": () => fromFolder("Mistral-7B-v0.1"),
  "SmolLM2-135M-Instruct": () => fromFolder("SmolLM2-135M-Instruct"),
  "phi-3-mini": () => fromFolder("phi-3-mini"),
  "qwen2": assembleQwen2,
  "llama3.2": assembleLlama32,
};

// Variants: a real tokenizer with other pipeline components (variants.json),
// so components no shipped file uses are compared too. test_tokenizer.c builds
// the same files from variants.json.
const variants = readJson(path.join(here, "variants.json"));
for (const v of variants) {
  sources[v.name] = () => {
    const base = sources[v.base]();
    const tokenizer = { ...base.tokenizer, normalizer: v.normalizer, pre_tokenizer: v.pre_tokenizer, decoder: v.decoder };
    return { tokenizer, config: base.config };
  };
}

// Where the JS port is known to differ from HF's Rust tokenizers (what
// transformers uses), the line says so and the C test does not compare its ids.
function hasType(node, type) {
  if (!node || typeof node !== "object") return false;
  if (node.type === type) return true;
  return Object.values(node).some((v) => Array.isArray(v) ? v.some((x) => hasType(x, type)) : false);
}
function jsDiffers(tokenizer, text) {
  // Rust's Digits splits on char::is_numeric (all of \p{N}); the JS port on ASCII digits only.
  if (hasType(tokenizer.pre_tokenizer, "Digits") && /[^\P{N}0-9]/u.test(text))
    return "Digits: Rust splits every \\p{N} character, the JS port only 0-9";
  // Rust's WhitespaceSplit uses char::is_whitespace (U+0085 yes, U+FEFF no); the JS port JS's \s (the reverse).
  if (hasType(tokenizer.pre_tokenizer, "WhitespaceSplit") && /[\u0085\ufeff]/.test(text))
    return "WhitespaceSplit: Rust splits on U+0085 and not U+FEFF, the JS port the reverse";
  // Rust's Metaspace(split) keeps each U+2581 of a run apart ("▁", "▁", "▁x"); the JS port merges them.
  const ms = tokenizer.pre_tokenizer && tokenizer.pre_tokenizer.type === "Metaspace" && tokenizer.pre_tokenizer.split;
  if (ms && / {2,}/.test(text.normalize("NFKC")))
    return "Metaspace split: Rust keeps each U+2581 of a run apart, the JS port merges the run";
  return null;
}
// Rust's Metaspace decoder drops every U+2581 of the first token; the JS port only a leading one.
function jsDecodeDiffers(tokenizer, tok, ids) {
  if (!ids.length || !tokenizer.decoder || tokenizer.decoder.type !== "Metaspace") return null;
  const first = tok.id_to_token(ids[0]) || "";
  return first.slice(1).includes("\u2581") ? "Metaspace decoder: Rust drops every U+2581 of the first token" : null;
}

fs.mkdirSync(outDir, { recursive: true });
for (const [name, load] of Object.entries(sources)) {
  let src;
  try { src = load(); } catch (e) { console.log(`skip ${name}: ${e.message}`); continue; }
  const tok = new Tokenizer(src.tokenizer, src.config);
  const lines = corpus.map((text) => {
    const ids = tok.encode(text, { add_special_tokens: false }).ids;
    const ids_special = tok.encode(text, { add_special_tokens: true }).ids;
    const decoded = ids.length ? tok.decode(ids, { skip_special_tokens: false, clean_up_tokenization_spaces: false }) : "";
    const line = { text, ids, ids_special, decoded };
    const differs = jsDiffers(src.tokenizer, text), decDiffers = jsDecodeDiffers(src.tokenizer, tok, ids);
    if (differs) line.js_differs = differs;
    if (decDiffers) line.js_differs_decode = decDiffers;
    return JSON.stringify(line);
  });
  fs.writeFileSync(path.join(outDir, `${name}.jsonl`), lines.join("\n") + "\n");
  console.log(`wrote ${name}.jsonl (${lines.length} strings)`);
}
