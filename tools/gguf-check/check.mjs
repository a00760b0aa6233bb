// check.mjs — the outside check of `tuna export --format gguf`: llama.cpp
// (through node-llama-cpp's prebuilt CPU build) loads the file, tokenizes a
// prompt and decodes greedily; tuna does the same from the source model
// folder; the token ids must be equal. The prompt is encoded as each side
// encodes a plain prompt: with BOS when the tokenizer adds it (llama.cpp:
// tokenizer.ggml.add_bos_token; tuna: the post-processor, as HF).
// MODEL_DIR may be the .gguf itself (tuna then reads the file too).
//   node check.mjs MODEL_DIR FILE.gguf "prompt" [N]   (tuna at ../../build/tuna)
import {execFileSync} from "node:child_process";
import {getLlama} from "node-llama-cpp";

const [dir, gguf, prompt, nArg] = process.argv.slice(2);
if (!dir || !gguf || prompt === undefined) {
  console.error("usage: node check.mjs MODEL_DIR FILE.gguf PROMPT [N]");
  process.exit(2);
}
const n = Number(nArg || 32);
const tuna = new URL("../../build/tuna", import.meta.url).pathname;
const ref = JSON.parse(execFileSync(tuna, ["generate", "--model", dir, "--prompt", prompt, "--max-new-tokens", String(n), "--json"],
                                    {stdio: ["ignore", "pipe", "ignore"]}).toString());
const tunaPrompt = JSON.parse(execFileSync(tuna, ["tokenize", "--model", dir, "--add-special", "--json"], {input: prompt + "\n"}).toString());

const llama = await getLlama({gpu: false, build: "never"});
const model = await llama.loadModel({modelPath: gguf});
// one thread: llama.cpp's worker threads spin while they wait, which on a
// busy 2-core machine made a 40-token check take 100 s instead of 5
const ctx = await model.createContext({threads: 1, contextSize: Math.max(64, tunaPrompt.length + n + 8)});
const seq = ctx.getSequence();
let toks = Array.from(model.tokenize(prompt, true));
if (model.tokens.shouldPrependBosToken && model.tokens.bos != null) toks = [model.tokens.bos].concat(toks);
const gen = [];
for await (const t of seq.evaluate(toks, {temperature: 0})) {
  gen.push(t);
  if (gen.length >= n || t === model.tokens.eos) break;
}
const samePrompt = JSON.stringify(toks) === JSON.stringify(tunaPrompt);
let agree = 0;
while (agree < Math.min(gen.length, ref.ids.length) && gen[agree] === ref.ids[agree]) agree++;
console.log(JSON.stringify({gguf, prompt_tokens_equal: samePrompt, prompt_tokens: toks.length, generated: gen.length,
                            tuna_generated: ref.ids.length, first_tokens_equal: agree, llama_cpp_text: model.detokenize(gen)}));
process.exit(samePrompt && agree === Math.min(gen.length, ref.ids.length) ? 0 : 1);
