#!/usr/bin/env bash
# `tuna pull` and Hub ids against a fake Hub on the loopback (tests/hub/server.mjs,
# node's http module only): tests/test_hub.sh BUILD_DIR, from the repository root.
# Repositories laid out here from the shipped model (one plain, one sharded by
# `tuna export --shard-size`, a gated one, one whose file is served with a
# byte changed); checks: bad ids and 404s (repository, revision), the gated
# repository (401 without the token, the token from HF_TOKEN and from
# $HF_HOME/token, never sent to the LFS host), --dry-run, the default
# selection (no *.bin / ONNX), --include/--exclude, an index's shards, a
# transfer cut in the middle of a file resumed with Range, a wrong checksum,
# revisions (refs/v1; a commit writes no ref), huggingface_hub's layout
# (relative links, refs/main), a second pull with nothing to fetch, a cache
# written here in that layout used with HF_HUB_OFFLINE=1 and an unreachable
# endpoint, a local folder winning over an id, and `tuna generate --model
# ORG/NAME` end to end. Nothing leaves the machine.
set -u
cd "$(dirname "$0")/.."
root=$PWD
source tests/tap.sh
tap_cli "${1:-build}"
command -v node >/dev/null || { absent "node (scripts/deps.sh installs it)"; finish; }
server_pid=
tap_tmp hub '[ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null'

C1=1111111111111111111111111111111111111111
C2=2222222222222222222222222222222222222222
C3=3333333333333333333333333333333333333333
mkdir -p "$tmp/main" "$tmp/v1" "$tmp/sharded" "$tmp/corrupt"
cp "$model"/*.json "$model/model.safetensors" "$tmp/main/"
echo "not a checkpoint" > "$tmp/main/pytorch_model.bin"
mkdir -p "$tmp/main/onnx" && echo "onnx" > "$tmp/main/onnx/model.onnx"
cp "$model"/*.json "$tmp/v1/" && echo '{"v": 1}' > "$tmp/v1/extra.json"
run export "$tuna" export --model "$model" --format hf --out "$tmp/sharded" --overwrite --shard-size 2MB
[ "$rc" = 0 ] && [ -f "$tmp/sharded/model.safetensors.index.json" ] || bad "sharded export" "$err"
echo "not in the index" > "$tmp/sharded/consolidated.safetensors"
cp "$model"/*.json "$model/model.safetensors" "$tmp/corrupt/"
cat > "$tmp/hub.json" <<JSON
{"token": "hf_test_token", "repos": {
  "tuna/stories": {"revisions": {"main": {"commit": "$C1", "dir": "$tmp/main"}, "v1": {"commit": "$C2", "dir": "$tmp/v1"}},
                   "cut": {"model.safetensors": 1000000}},
  "tuna/lora": {"revisions": {"main": {"commit": "$C2", "dir": "$root/tests/fixtures/peft/llama_lora/adapter0"}}},
  "tuna/norange": {"revisions": {"main": {"commit": "$C1", "dir": "$tmp/corrupt"}}, "cut": {"model.safetensors": 500000}, "norange": true},
  "tuna/sharded": {"revisions": {"main": {"commit": "$C3", "dir": "$tmp/sharded"}}},
  "tuna/gated": {"gated": true, "revisions": {"main": {"commit": "$C1", "dir": "$tmp/v1"}}},
  "tuna/corrupt": {"revisions": {"main": {"commit": "$C1", "dir": "$tmp/corrupt"}}, "corrupt": ["model.safetensors"]}}}
JSON
node tests/hub/server.mjs "$tmp/hub.json" "$tmp/log" > "$tmp/ports" 2>"$tmp/server.err" &
server_pid=$!
for _ in $(seq 50); do [ -s "$tmp/ports" ] && break; sleep 0.1; done
port=$(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1])).port)' "$tmp/ports" 2>/dev/null)
[ -n "$port" ] || { bad "server start" "$(cat "$tmp/server.err")"; finish; }

unset HF_TOKEN HF_TOKEN_PATH HF_HUB_OFFLINE XDG_CACHE_HOME
export HF_ENDPOINT=http://127.0.0.1:$port HF_HOME=$tmp/hf HF_HUB_CACHE=$tmp/cache
repo=$tmp/cache/models--tuna--stories
sha() { sha256sum "$1" | cut -d' ' -f1; }
lines() { grep -c -- "$1" "$tmp/log"; }

# ---- ids and 404s ----
run badid "$tuna" pull tuna--x
expect "a malformed id: exit 2" 2 "is not a Hub id"
run norepo "$tuna" pull tuna/nothing
expect "404 repository: exit 2, named" 2 "tuna/nothing: no such model repository"
run norev "$tuna" pull tuna/stories@nope
expect "404 revision: exit 2, named" 2 "no revision 'nope'"
run down env HF_ENDPOINT=http://127.0.0.1:1 "$tuna" pull tuna/stories
expect "no server: exit 1, curl's message and the host" 1 "cannot reach the Hub: 127.0.0.1"

# ---- --dry-run: the default selection, nothing written ----
run dry "$tuna" pull tuna/stories --dry-run
if [ "$rc" = 0 ] && grep -q " model.safetensors$" "$tmp/dry.out" && grep -q " tokenizer.json$" "$tmp/dry.out" &&
   grep -q "6302472  model.safetensors" "$tmp/dry.out" && ! grep -q "pytorch_model.bin\|onnx" "$tmp/dry.out" && [ ! -d "$repo" ]; then
  ok "--dry-run lists the default selection with sizes (no .bin, no ONNX), writes nothing"
else bad "--dry-run" "rc $rc: $(cat "$tmp/dry.out") $err"; fi

# ---- a transfer cut in the middle, then resumed with Range ----
run cut "$tuna" pull tuna/stories
expect "a cut transfer fails (exit 1) and says it resumes" 1 "run again to resume"
inc=$(ls "$repo"/blobs/*.incomplete 2>/dev/null | head -1)
[ -n "$inc" ] && [ "$(stat -c %s "$inc")" -gt 0 ] && [ "$(stat -c %s "$inc")" -le 1000000 ] &&
  ok "the partial download is kept as blobs/ETAG.incomplete" || bad "partial download" "$(ls -la "$repo/blobs" 2>&1)"
have=$(stat -c %s "$inc" 2>/dev/null)
run resume "$tuna" pull tuna/stories
snap=$(cat "$tmp/resume.out")
want=$(sha "$model/model.safetensors")
[ "$rc" = 0 ] && [ "$snap" = "$repo/snapshots/$C1" ] && ok "the second pull succeeds and prints the snapshot folder" ||
  bad "resume" "rc $rc, stdout '$snap', $err"
grep -q "^lfs GET .*model.safetensors range=bytes=$have- " "$tmp/log" && ok "it resumed with Range: bytes=$have-" ||
  bad "Range request" "$(grep lfs "$tmp/log")"
[ -f "$repo/blobs/$want" ] && [ "$(sha "$repo/blobs/$want")" = "$want" ] && [ -z "$(ls "$repo"/blobs/*.incomplete 2>/dev/null)" ] &&
  ok "the blob is named by its sha256 and its bytes hash to it" || bad "blob" "$(ls -la "$repo/blobs")"

run norange1 "$tuna" pull tuna/norange --quiet
run norange2 "$tuna" pull tuna/norange --quiet
nr=$tmp/cache/models--tuna--norange
[ "$rc" = 0 ] && [ "$(sha "$nr/blobs/$want")" = "$want" ] && grep -q "^lfs GET /lfs/tuna%2Fnorange/.*range=bytes=" "$tmp/log" &&
  ok "a server that ignores Range (200): the download restarts from 0 and is right" || bad "Range ignored" "rc $rc $err"

# ---- huggingface_hub's layout ----
[ "$(readlink "$repo/snapshots/$C1/model.safetensors")" = "../../blobs/$want" ] && [ "$(cat "$repo/refs/main")" = "$C1" ] &&
  ok "snapshot entries are relative links ../../blobs/ETAG; refs/main holds the commit" ||
  bad "layout" "$(readlink "$repo/snapshots/$C1/model.safetensors") $(cat "$repo/refs/main" 2>&1)"
got=$(cd "$repo/snapshots/$C1" && ls | tr '\n' ' ')
[ "$got" = "config.json generation_config.json model.safetensors special_tokens_map.json tokenizer.json tokenizer_config.json " ] &&
  ok "the default selection: config, generation config, tokenizer, safetensors" || bad "selection" "$got"
! grep -q "^lfs.*auth=Bearer\|^hub.*auth=Bearer" "$tmp/log" && ok "no token, no Authorization header" || bad "auth without token"

# ---- a second pull fetches nothing ----
before=$(grep -c " GET /tuna/\| GET /lfs/" "$tmp/log")
run again "$tuna" pull tuna/stories --quiet
[ "$rc" = 0 ] && [ "$(grep -c " GET /tuna/\| GET /lfs/" "$tmp/log")" = "$before" ] && [ -z "$err" ] &&
  ok "a pull of what the cache holds downloads nothing (and --quiet prints nothing on stderr)" || bad "second pull" "$err"

# ---- include / exclude, subfolders, JSON ----
run inc "$tuna" pull tuna/stories --include 'onnx/*' --include '*.bin' --exclude 'pytorch*' --json
[ "$rc" = 0 ] && [ "$(readlink "$repo/snapshots/$C1/onnx/model.onnx")" = "../../../blobs/$(sha1sum < "$tmp/main/onnx/model.onnx" >/dev/null; \
  node -e 'const c=require("crypto"),b=require("fs").readFileSync(process.argv[1]);console.log(c.createHash("sha1").update("blob "+b.length+"\0").update(b).digest("hex"))' "$tmp/main/onnx/model.onnx")" ] &&
  [ ! -e "$repo/snapshots/$C1/pytorch_model.bin" ] && grep -q '"path":"onnx/model.onnx"' "$tmp/inc.out" &&
  ok "--include takes a subfolder's file (link ../../../blobs/ETAG), --exclude wins, --json lists it" ||
  bad "include/exclude" "rc $rc $(cat "$tmp/inc.out") $err"
run exc "$tuna" pull tuna/stories --exclude 'tokenizer*' --dry-run
! grep -q tokenizer "$tmp/exc.out" && grep -q config.json "$tmp/exc.out" && ok "--exclude removes files from the default selection" ||
  bad "exclude" "$(cat "$tmp/exc.out")"

# ---- revisions ----
run rev "$tuna" pull tuna/stories@v1 --quiet
[ "$rc" = 0 ] && [ "$(cat "$repo/refs/v1")" = "$C2" ] && [ -L "$repo/snapshots/$C2/config.json" ] && [ ! -e "$repo/snapshots/$C2/extra.json" ] && ok "@v1: refs/v1 holds its commit" ||
  bad "@v1" "$err"
run commit "$tuna" pull "tuna/stories@$C2" --quiet
[ "$rc" = 0 ] && [ "$(cat "$tmp/commit.out")" = "$repo/snapshots/$C2" ] && [ ! -e "$repo/refs/$C2" ] &&
  ok "@COMMIT: the snapshot, and no ref written" || bad "@commit" "$err"

# ---- an index: its shards, not the other safetensors ----
run shard "$tuna" pull tuna/sharded --quiet
sdir=$(cat "$tmp/shard.out")
n_shards=$(ls "$tmp/sharded" | grep -c '^model-.*safetensors$')
[ "$rc" = 0 ] && [ -f "$sdir/model.safetensors.index.json" ] && [ "$(ls "$sdir" | grep -c '^model-.*safetensors$')" = "$n_shards" ] &&
  [ "$n_shards" -ge 2 ] && [ ! -e "$sdir/consolidated.safetensors" ] && ok "an index: the $n_shards shards it names, not consolidated.safetensors" ||
  bad "shards" "rc $rc $(ls "$sdir" 2>&1) $err"

# ---- gated ----
run gated "$tuna" pull tuna/gated
expect "gated without a token: exit 1, says what to do" 1 "gated or private model"
grep -q "HF_TOKEN" <<<"$err" && ok "the message names HF_TOKEN" || bad "gated message" "$err"
run gated_tok env HF_TOKEN=hf_test_token "$tuna" pull tuna/gated --quiet
[ "$rc" = 0 ] && grep -q "^hub GET /api/models/tuna/gated/revision/main .*auth=Bearer hf_test_token" "$tmp/log" &&
  ok "HF_TOKEN is sent as Authorization: Bearer" || bad "gated with HF_TOKEN" "$err"
rm -rf "$tmp/cache/models--tuna--gated"
mkdir -p "$tmp/hf" && printf 'hf_test_token\n' > "$tmp/hf/token"
run gated_file "$tuna" pull tuna/gated --quiet
[ "$rc" = 0 ] && ok "the token file \$HF_HOME/token is used" || bad "token file" "$err"
rm -rf "$repo"
run gated_lfs env HF_TOKEN=hf_test_token "$tuna" pull tuna/stories --quiet
[ "$rc" = 0 ] && [ "$(grep -c "^lfs GET .*auth=-" "$tmp/log")" -ge 3 ] && ! grep -q "^lfs .*auth=Bearer" "$tmp/log" && ok "the token never reaches the LFS host (a redirect to another host)" ||
  bad "token leaked" "$(grep '^lfs' "$tmp/log")"
rm -f "$tmp/hf/token"

# ---- a wrong checksum ----
run bad_sum "$tuna" pull tuna/corrupt
crepo=$tmp/cache/models--tuna--corrupt
expect "a wrong checksum: exit 1" 1 "checksum mismatch: expected sha256 $want, got "
[ ! -e "$crepo/blobs/$want" ] && [ -z "$(ls "$crepo"/blobs/*.incomplete 2>/dev/null)" ] && [ ! -e "$crepo/snapshots/$C1/model.safetensors" ] &&
  ok "nothing of the bad download is left or linked" || bad "bad download left" "$(ls -la "$crepo/blobs")"

# ---- end to end: a Hub id as --model ----
run gen_local "$tuna" generate --model "$model" --prompt "Once upon a time" --max-new-tokens 12
rm -rf "$tmp/cache/models--tuna--stories"
run gen_hub "$tuna" generate --model tuna/stories --prompt "Once upon a time" --max-new-tokens 12
[ "$rc" = 0 ] && [ -s "$tmp/gen_hub.out" ] && cmp -s "$tmp/gen_local.out" "$tmp/gen_hub.out" && grep -q "pulling tuna/stories" <<<"$err" &&
  ok "generate --model tuna/stories pulls it (progress on stderr) and writes the local folder's text" ||
  bad "generate --model ORG/NAME" "rc $rc $(cat "$tmp/gen_hub.out") $err"
run gen_shard "$tuna" generate --model tuna/sharded --prompt "Once upon a time" --max-new-tokens 12
[ "$rc" = 0 ] && cmp -s "$tmp/gen_local.out" "$tmp/gen_shard.out" && ok "a sharded repository by id generates the same text" ||
  bad "sharded generate" "rc $rc $err"

# ---- a recipe naming its model by id (resolved after the recipe's expansion) ----
printf '{"prompt":"Once upon a time","completion":" there was a cat."}\n' > "$tmp/r.jsonl"
printf 'model: tuna/stories\ndata: %s\nmethod: lora\nsteps: 1\nbatch: 1\nseq_len: 32\n' "$tmp/r.jsonl" > "$tmp/r.yaml"
run recipe_hub "$tuna" sft --config "$tmp/r.yaml" --out "$tmp/r-out" --quiet
[ "$rc" = 0 ] && [ -s "$tmp/r-out/adapter_model.safetensors" ] && grep -q "models--tuna--stories/snapshots/" "$tmp/r-out/recipe.yaml" &&
  ok "sft --config with model: tuna/stories trains on the cached snapshot" || bad "recipe with a Hub id" "rc $rc $err"

# ---- --adapter ORG/NAME: an adapter repository ----
lora=tests/fixtures/peft/llama_lora
run merge_local "$tuna" merge --model "$lora" --adapter "$lora/adapter0" --out "$tmp/merged_local"
run merge_hub "$tuna" merge --model "$lora" --adapter tuna/lora --out "$tmp/merged_hub"
[ "$rc" = 0 ] && [ -L "$tmp/cache/models--tuna--lora/snapshots/$C2/adapter_model.safetensors" ] &&
  cmp -s "$tmp/merged_local/model.safetensors" "$tmp/merged_hub/model.safetensors" &&
  ok "merge --adapter tuna/lora pulls the adapter and merges the same weights as the local folder" || bad "--adapter ORG/NAME" "rc $rc $err"

# ---- a local folder of that name wins ----
mkdir -p "$tmp/cwd/tuna" && cp -r "$model" "$tmp/cwd/tuna/stories"
before=$(wc -l < "$tmp/log")
run local_wins sh -c "cd '$tmp/cwd' && exec '$tuna' info --model tuna/stories"
[ "$rc" = 0 ] && [ "$(wc -l < "$tmp/log")" = "$before" ] && ok "a local folder named like an id is used, the Hub not asked" ||
  bad "local folder" "$err"

# ---- a cache in huggingface_hub's layout, offline ----
py=$tmp/pycache/models--py--model
mkdir -p "$py/blobs" "$py/refs" "$py/snapshots/$C3"
for f in config.json generation_config.json model.safetensors special_tokens_map.json tokenizer.json tokenizer_config.json; do
  h=$(sha "$model/$f"); cp "$model/$f" "$py/blobs/$h"; ln -s "../../blobs/$h" "$py/snapshots/$C3/$f"
done
printf '%s' "$C3" > "$py/refs/main"
export HF_HUB_OFFLINE=1 HF_HUB_CACHE=$tmp/pycache HF_ENDPOINT=http://127.0.0.1:1
run off_info "$tuna" info --model py/model
[ "$rc" = 0 ] && ok "offline: a cache written in huggingface_hub's layout serves --model py/model" || bad "offline info" "$err"
run off_pull "$tuna" pull py/model --quiet
[ "$rc" = 0 ] && [ "$(cat "$tmp/off_pull.out")" = "$py/snapshots/$C3" ] && ok "offline: tuna pull prints the cached snapshot" ||
  bad "offline pull" "$err"
run off_gen "$tuna" generate --model py/model --prompt "Once upon a time" --max-new-tokens 12
cmp -s "$tmp/gen_local.out" "$tmp/off_gen.out" && ok "offline: generate from the cache writes the local folder's text" || bad "offline generate" "$err"
rm "$py/blobs/$(sha "$model/model.safetensors")"
run off_missing "$tuna" pull py/model
expect "offline, a file missing: exit 2 naming it and HF_HUB_OFFLINE" 2 "model.safetensors is missing from the cache"
grep -q "HF_HUB_OFFLINE=1" <<<"$err" || bad "offline message names HF_HUB_OFFLINE" "$err"
run off_none "$tuna" generate --model py/other --prompt x
expect "offline, a repository not cached: exit 2" 2 "py/other@main: not in the cache"
finish
