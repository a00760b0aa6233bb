#!/usr/bin/env bash
# make_fixtures.sh KQUANT_REF — writes tests/fixtures/kquant/ from llama.cpp
# itself (README.md says how KQUANT_REF is built):
#   input.f32            10 rows of 512 floats (kquant_ref's fixed generator)
#   <type>.bin           ggml_quantize_chunk of every row, no imatrix
#   mix_<model>.txt      the type llama_model_quantize gives each tensor of a
#                        model (tuna's F32 export) for each k-quant file type
# Run from the repository root after `make`.
set -eu
ref=$(realpath "$1")
out=tests/fixtures/kquant
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$out"
"$ref" input "$out/input.f32"
"$ref" rows "$out/input.f32" 512 "$out"

# the models: the shipped one (tied, GQA 3, rows of 192 and 512), a random
# 8-layer Llama whose rows are multiples of 256 (untied, GQA 4), and a random
# 8-layer GPT-2 of width 256 (fused attn_qkv, position_embd, tied) with
# GPT-2's tokenizer from ../shared
cat > "$tmp/l256.json" <<'EOF'
{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 4096, "hidden_size": 256,
 "intermediate_size": 768, "num_hidden_layers": 8, "num_attention_heads": 4, "num_key_value_heads": 1,
 "head_dim": 64, "max_position_embeddings": 256, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
 "hidden_act": "silu", "tie_word_embeddings": false, "initializer_range": 0.02, "bos_token_id": 0, "eos_token_id": 0}
EOF
cat > "$tmp/g256.json" <<'EOF'
{"activation_function": "gelu_new", "architectures": ["GPT2LMHeadModel"], "bos_token_id": 50256, "eos_token_id": 50256,
 "initializer_range": 0.02, "layer_norm_epsilon": 1e-05, "model_type": "gpt2", "n_ctx": 128, "n_embd": 256, "n_head": 4,
 "n_inner": null, "n_layer": 8, "n_positions": 128, "tie_word_embeddings": true, "vocab_size": 50257}
EOF
build/tuna init --config "$tmp/l256.json" --out "$tmp/l256" >/dev/null
cp models/tuna-stories/tokenizer*.json models/tuna-stories/special_tokens_map.json "$tmp/l256/"
build/tuna init --config "$tmp/g256.json" --out "$tmp/g256" >/dev/null
cp ../shared/data/tokenizers/gpt2/{tokenizer.json,tokenizer_config.json,vocab.json,merges.txt} "$tmp/g256/"
for m in stories:models/tuna-stories llama256:"$tmp/l256" gpt2:"$tmp/g256"; do
  name=${m%%:*} dir=${m#*:}
  build/tuna export --model "$dir" --format gguf --type f32 --out "$tmp/$name.gguf" >/dev/null
  : > "$out/mix_$name.txt"
  for ft in 10:q2_k 11:q3_k_s 12:q3_k_m 13:q3_k_l 14:q4_k_s 15:q4_k_m 16:q5_k_s 17:q5_k_m 18:q6_k; do
    "$ref" quantize "$tmp/$name.gguf" "$tmp/$name-${ft#*:}.gguf" "${ft%%:*}" > "$tmp/log" 2>&1 || { cat "$tmp/log"; exit 1; }
    node tools/kquant-check/compare.mjs --types "$tmp/$name-${ft#*:}.gguf" | sed "s/^/${ft#*:} /" >> "$out/mix_$name.txt"
  done
done
ls -l "$out"
