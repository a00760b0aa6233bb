// generate.mjs — writes tests/fixtures/template/ with the reference renderer
// transformers.js uses (@huggingface/jinja), so that tests/test_template.c can
// compare tuna's renderings byte for byte.
//
//   cd tools/template-fixtures && npm install && node generate.mjs
//
// Inputs: every chat template under ../shared/data (the ollama collection and
// the chat_template of each tokenizer_config.json), the built-in templates
// (sources printed by `tuna template --template NAME --print-template`, binary
// from $TUNA_BIN, default build/tuna), and the hand-written templates below.
// Templates from shared data are NOT copied: templates.json names the file
// and line/key, and the C test reads them from ../shared at test time.
// Outputs:
//   templates.json      id -> {file, line?, key} | {builtin} | {text}
//   conversations.json  id -> messages
//   cases.jsonl         {template, conversation, add_generation_prompt,
//                        bos_token, eos_token, extra?, expected | error}
//                        (extra: more variables, e.g. tools)
//   spans.jsonl         {template, conversation, bos_token, eos_token,
//                        spans: [[begin, end, message], ...] (UTF-8 bytes) | error}
import { Template } from "@huggingface/jinja";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, "../..");
const shared = process.env.TUNA_SHARED_DATA || path.resolve(repo, "../shared/data");
const outDir = path.join(repo, "tests/fixtures/template");
const tunaBin = process.env.TUNA_BIN || path.join(repo, "build/tuna");

const conversations = {
  single: [{ role: "user", content: "Hello!" }],
  pair: [
    { role: "user", content: "What is 2+2?" },
    { role: "assistant", content: "2+2 is 4." },
  ],
  system_multi: [
    { role: "system", content: "You are a helpful assistant." },
    { role: "user", content: "Hi there." },
    { role: "assistant", content: "Hello! How can I help?" },
    { role: "user", content: "Tell me a joke." },
  ],
  no_system_multi: [
    { role: "user", content: "First question?" },
    { role: "assistant", content: "First answer." },
    { role: "user", content: "Second question?" },
    { role: "assistant", content: "Second answer." },
  ],
  system_two_turns: [
    { role: "system", content: "Be brief." },
    { role: "user", content: "Name a color." },
    { role: "assistant", content: "Blue." },
    { role: "user", content: "Another?" },
    { role: "assistant", content: "Red." },
  ],
  unicode: [
    { role: "system", content: "  Réponds en français — s'il te plaît.\n" },
    { role: "user", content: "naïve café 日本語 😀\n\"quoted\" 'single' \\ back\\slash\ttab\n\n  " },
    { role: "assistant", content: "\n D'accord: {\"a\": [1, 2]} <b>ok</b> 😀 " },
  ],
  tool_calls: [
    { role: "system", content: "You can call tools." },
    { role: "user", content: "Weather in Paris?" },
    { role: "assistant", content: "", tool_calls: [{ type: "function", function: { name: "get_weather", arguments: { city: "Paris", days: 2, metric: true } } }] },
    { role: "tool", content: "{\"temp\": 21.5, \"sky\": \"clear\"}" },
    { role: "assistant", content: "<think>\nWarm.\n</think>\n\nIt is 21.5°C and clear." },
  ],
};

// Variables besides messages for templates that use them (tool definitions).
const TOOLS = [
  { type: "function", function: { name: "get_weather", description: "Current weather — for a city", parameters: { type: "object", properties: { city: { type: "string" }, days: { type: "integer" } }, required: ["city"] } } },
];
const withTools = new Set(["hw_tools", "tokenizer_qwen2"]);

// Hand-written templates: each exercises features real templates use.
const handwritten = {
  hw_whitespace: "{% for m in messages %}\n  {%- if m.role == 'user' %}\n    U: {{ m.content }}\n  {% else %}\n    A: {{ m.content -}}   \n  {% endif %}\n{% endfor %}\n{# a comment #}\n  {#- trimmed comment -#}  end\n",
  hw_namespace_loop: "{%- set ns = namespace(sys='', n=0) -%}{%- for m in messages -%}{%- if m['role'] == 'system' -%}{%- set ns.sys = m['content'] -%}{%- else -%}{%- set ns.n = ns.n + 1 -%}[{{ loop.index0 }}/{{ loop.index }}/{{ loop.length }}{{ '*' if loop.first }}{{ '$' if loop.last }}{{ loop.revindex }}]{{ m.role | upper }}:{{ m.content | length }}\n{%- endif -%}{%- endfor -%}sys={{ ns.sys | tojson }} n={{ ns.n }}{% if add_generation_prompt %}>>{% endif %}",
  hw_filters: "{% for m in messages %}{{ m.content | trim | lower }}|{{ m.content | upper | replace('E', '3') }}|{{ m.content.strip().split(' ') | tojson }}|{{ m.content[:5] }}|{{ m.content[-3:] }}|{{ m.content[::2] | length }}|{{ m.role.title() }}|{{ m.content.startswith('H') }}/{{ m.content.endswith(('?', '.')) }}\n{% endfor %}",
  hw_tojson: "{{ messages | tojson }}\n{{ messages | tojson(indent=2) }}\n{{ {'b': 1, 'a': [true, false, none, 1.5, 2.0, -3], 'c': {'x': 'y'}} | tojson }}\n{{ messages[0] | tojson(indent=4) }}\n{{ {'k': messages[0].content} | tojson(ensure_ascii=true) }}",
  hw_macro: "{%- macro turn(role, text, tag='msg') -%}<{{ tag }} role=\"{{ role }}\">{{ text }}</{{ tag }}>{%- endmacro -%}{%- for m in messages -%}{{ turn(m.role, m.content) }}{{ turn(m.role, 'x', tag='t') }}\n{%- endfor -%}",
  hw_raise: "{% for m in messages %}{% if m.role == 'system' %}{{ raise_exception('System role not supported by this template') }}{% endif %}{{ m.content }}{% endfor %}",
  hw_tests: "{% set x = 1 %}{{ x is defined }} {{ y is defined }} {{ y is undefined }} {{ none is none }} {{ 'a' is string }} {{ 3 is number }} {{ 3 is odd }} {{ 4 is even }} {{ messages is iterable }} {{ messages[0] is mapping }} {{ tools is not defined }} {{ x is not none }}\n{% if tools %}TOOLS{% else %}no tools{% endif %}|{{ undefined_var }}|{{ none }}|{{ true }}|{{ 1.0 }}|{{ 7 // 2 }}|{{ 7 / 2 }}|{{ 7 % 3 }}|{{ 2 ** 10 }}|{{ -3 | abs }}|{{ '5' | int + 1 }}|{{ 'a' ~ 1 ~ 2.5 ~ true }}",
  hw_items: "{%- set d = {'name': 'tuna', 'size': 3, 'tags': ['a', 'b']} -%}{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}|{% for k in d %}{{ k }},{% endfor %}|{{ d.get('size') }} {{ d.get('missing', 'dflt') }} {{ d.keys() | list | length }} {{ 'name' in d }} {{ 'zz' not in d }}|{{ d | dictsort | tojson }}|{% for m in messages if m.role != 'system' %}{{ m.role[0] }}{% else %}empty{% endfor %}|{{ messages | map(attribute='role') | join(', ') }}|{{ messages | selectattr('role', 'equalto', 'user') | list | length }}",
  hw_break_continue: "{% for m in messages %}{% if loop.index0 == 1 %}{% continue %}{% endif %}{% if loop.index0 == 3 %}{% break %}{% endif %}<{{ m.role }}>{% endfor %}{% for i in range(3) %}{{ i }}{% endfor %}{% for i in range(1, 10, 3) %}{{ i }}{% endfor %}",
  hw_set_block: "{% set greeting %}Hi {{ messages[0].role }}!{% endset %}{{ greeting | upper }} {{ greeting | length }}{% set a, b = 1, 2 %} {{ a + b }}{% filter upper %}shout {{ messages[-1].content }}{% endfilter %}",
  hw_strings: "{{ 'a\\tb\\nc' }}|{{ \"dq 'x'\" }}|{{ 'x' 'y' }}|{{ 'abc'[1] }}|{{ 'a,b,,c'.split(',') | tojson }}|{{ '  pad  '.lstrip() }}.{{ '  pad  '.rstrip() }}.|{{ 'hello world'.capitalize() }}|{{ 'Hello'.replace('l', 'L', 1) }}|{{ 'x y  z'.split() | tojson }}|{{ 'abc' | join('-') }}|{{ 'ab' * 0 if false else 'no-mul' }}|{{ '%d' }}",
  hw_ternary_logic: "{% for m in messages %}{{ 'S' if m.role == 'system' else ('U' if m.role == 'user' else 'A') }}{{ (loop.index0 > 0 and not loop.last) or (m.role == 'assistant') }}{% endfor %}|{{ [] or 'empty-or' }}|{{ [1] and 'and-ok' }}|{{ 0 == false }}|{{ '1' == 1 }}|{{ none == undefined_thing }}|{{ 1 < 2 }}|{{ 3 >= 3.0 }}",
  hw_generation_tag: "{% for m in messages %}{% if m.role == 'assistant' %}{% generation %}{{ m.content }}<end>{% endgeneration %}{% else %}{{ m.content }}\n{% endif %}{% endfor %}",
  hw_tools: "{%- if tools %}[TOOLS]{% for t in tools %}\n{{ t.function | tojson(indent=2) }}{% endfor %}\n[/TOOLS]\n{% endif %}\n{%- set ns = namespace(last_user=-1) %}\n{%- for m in messages[::-1] %}\n  {%- if ns.last_user < 0 and m.role == 'user' %}{% set ns.last_user = (messages | length - 1) - loop.index0 %}{% endif %}\n{%- endfor %}\n{%- for m in messages %}\n  {%- set content = m.content if m.content is string else '' %}\n  {%- if m.role == 'assistant' %}\n    {%- if '</think>' in content %}\n      {%- set thought = content.split('</think>')[0].split('<think>')[-1].strip() %}\n      {%- set content = content.split('</think>')[-1].lstrip() %}\n      {%- if loop.index0 > ns.last_user %}(thought: {{ thought }}){% endif %}\n    {%- endif %}\n    {{- '<A>' + content }}\n    {%- for tc in m.tool_calls if m.tool_calls is defined %}\n      {%- set f = tc.function if tc.function is defined else tc %}\n      {{- '<call>' ~ f.name ~ ' ' ~ (f.arguments if f.arguments is string else f.arguments | tojson) ~ '</call>' }}\n    {%- endfor %}\n    {{- '</A>\\n' }}\n  {%- elif m.role == 'tool' %}\n    {{- '<result>' + content + '</result>\\n' }}\n  {%- else %}\n    {{- '<' + m.role[0] | upper + '>' + content + '\\n' }}\n  {%- endif %}\n{%- endfor %}\n{%- if add_generation_prompt %}<A>{% endif %}",
  hw_syntax_error: "{% for m in messages %}{{ m.content }\n{% endfor %}",
  hw_unknown_filter: "{{ messages[0].content | frobnicate }}",
};

function tokenString(v) {
  if (typeof v === "string") return v;
  if (v && typeof v === "object" && typeof v.content === "string") return v.content;
  return undefined;
}

const templates = {}; // id -> descriptor (what goes in templates.json)
const sources = {}; // id -> {text, bos, eos}

// 1. the ollama collection, one template per line
{
  const rel = "chat_templates/hf_chat_templates_ollama.jsonl";
  const lines = fs.readFileSync(path.join(shared, rel), "utf8").split("\n");
  lines.forEach((line, i) => {
    if (!line.trim()) return;
    const obj = JSON.parse(line);
    for (const [key, text] of Object.entries(obj)) {
      const id = `ollama_L${i + 1}_${key}`;
      templates[id] = { file: rel, line: i + 1, key };
      sources[id] = { text, bos: "<s>", eos: "</s>" };
    }
  });
}
// 2. tokenizer_config.json files that carry a chat_template
for (const dir of fs.readdirSync(path.join(shared, "tokenizers")).sort()) {
  const rel = `tokenizers/${dir}/tokenizer_config.json`;
  const p = path.join(shared, rel);
  if (!fs.existsSync(p)) continue;
  const cfg = JSON.parse(fs.readFileSync(p, "utf8"));
  let ct = cfg.chat_template;
  if (Array.isArray(ct)) ct = (ct.find((e) => e.name === "default") || {}).template;
  if (typeof ct !== "string") continue;
  const id = `tokenizer_${dir}`;
  templates[id] = { file: rel, key: "chat_template" };
  sources[id] = { text: ct, bos: tokenString(cfg.bos_token), eos: tokenString(cfg.eos_token) };
}
// 3. built-ins, as the CLI prints them
for (const name of ["chatml", "llama3", "llama2", "alpaca", "zephyr"]) {
  const text = execFileSync(tunaBin, ["template", "--template", name, "--print-template"], { encoding: "utf8" });
  const id = `builtin_${name}`;
  templates[id] = { builtin: name };
  sources[id] = { text, bos: name === "llama3" ? "<|begin_of_text|>" : "<s>", eos: name === "llama3" ? "<|eot_id|>" : "</s>" };
  // without a model folder bos_token/eos_token are undefined
  templates[`${id}_no_tokens`] = { builtin: name };
  sources[`${id}_no_tokens`] = { text };
}
// 4. hand-written
for (const [id, text] of Object.entries(handwritten)) {
  templates[id] = { text };
  sources[id] = { text, bos: "<s>", eos: "</s>" };
}

function render(tmpl, messages, src, agp, extra = null) {
  const vars = { ...(extra || {}), messages, add_generation_prompt: agp };
  if (src.bos !== undefined) vars.bos_token = src.bos;
  if (src.eos !== undefined) vars.eos_token = src.eos;
  return tmpl.render(vars);
}

const cases = [];
const spans = [];
let nOk = 0, nErr = 0;
for (const id of Object.keys(templates)) {
  const src = sources[id];
  let tmpl = null, compileError = null;
  try {
    tmpl = new Template(src.text);
  } catch (e) {
    compileError = String(e.message || e);
  }
  for (const [cid, msgs] of Object.entries(conversations)) {
    for (const [agp, extra] of [[false, null], [true, null], ...(withTools.has(id) ? [[false, { tools: TOOLS }], [true, { tools: TOOLS }]] : [])]) {
      const c = { template: id, conversation: cid, add_generation_prompt: agp };
      if (extra) c.extra = extra;
      if (src.bos !== undefined) c.bos_token = src.bos;
      if (src.eos !== undefined) c.eos_token = src.eos;
      if (compileError) { c.error = compileError; c.stage = "compile"; }
      else {
        try { c.expected = render(tmpl, msgs, src, agp, extra); nOk++; }
        catch (e) { c.error = String(e.message || e); c.stage = "render"; nErr++; }
      }
      cases.push(c);
    }
    if (compileError || !msgs.some((m) => m.role === "assistant")) continue;
    // templates with {% generation %} blocks get those blocks as spans, which
    // the reference cannot report (it drops the tags); tested by hand in C
    if (/\{%-?\s*generation/.test(src.text)) continue;
    // spans by the definition in include/tuna_template.h, in UTF-8 bytes
    const s = { template: id, conversation: cid };
    if (src.bos !== undefined) s.bos_token = src.bos;
    if (src.eos !== undefined) s.eos_token = src.eos;
    try {
      const full = render(tmpl, msgs, src, false);
      const bytes = (str) => Buffer.byteLength(str, "utf8");
      const out = [];
      for (let i = 0; i < msgs.length; i++) {
        if (msgs[i].role !== "assistant") continue;
        const pre = render(tmpl, msgs.slice(0, i), src, true);
        if (!full.startsWith(pre)) throw new Error(`prompt before message ${i} is not a prefix`);
        let end = full;
        if (i + 1 < msgs.length) {
          end = render(tmpl, msgs.slice(0, i + 1), src, false);
          if (!full.startsWith(end)) throw new Error(`conversation up to message ${i} is not a prefix`);
        }
        if (end.length < pre.length) throw new Error(`assistant message ${i} ends before its prompt`);
        out.push([bytes(pre), bytes(end), i]);
      }
      s.spans = out;
    } catch (e) {
      s.error = String(e.message || e);
    }
    spans.push(s);
  }
}

fs.mkdirSync(outDir, { recursive: true });
fs.writeFileSync(path.join(outDir, "templates.json"), JSON.stringify(templates, null, 1) + "\n");
fs.writeFileSync(path.join(outDir, "conversations.json"), JSON.stringify(conversations, null, 1) + "\n");
fs.writeFileSync(path.join(outDir, "cases.jsonl"), cases.map((c) => JSON.stringify(c)).join("\n") + "\n");
fs.writeFileSync(path.join(outDir, "spans.jsonl"), spans.map((c) => JSON.stringify(c)).join("\n") + "\n");
console.log(`templates: ${Object.keys(templates).length}, cases: ${cases.length} (${nOk} rendered, ${nErr} render errors), span cases: ${spans.length}`);
