#!/usr/bin/env bash
# Checks the Debian packages tuna builds and tests with; installs missing ones
# with apt-get when run as root, otherwise prints the exact command and stops.
set -euo pipefail
# libmicrohttpd: tuna serve. curl, chromium, node + npm: its tests (the npm
# packages of tests/serve/ are installed by tests/test_serve.sh).
# libopenmpi-dev + openmpi-bin: data-parallel training (mpirun -np N tuna sft).
# strace: tests/test_durability.sh (the order of fsync and rename calls).
# libdnnl-dev: oneDNN, the bf16 GEMMs (src/kernels/gemm_bf16.c); libxsmm-dev: a
# bf16 GEMM candidate compared in bench/bench_gemm_bf16.c.
# libcurl4-openssl-dev: tuna pull (the Hugging Face Hub), libssl-dev: its sha256
# checks (libcrypto); libyaml-dev: recipe files.
need=(gcc make libopenblas-openmp-dev libpcre2-dev libjansson-dev libutf8proc-dev libmicrohttpd-dev clang libclang-rt-14-dev
      curl chromium libopenmpi-dev openmpi-bin strace libdnnl-dev libxsmm-dev libcurl4-openssl-dev libssl-dev libyaml-dev)
missing=()
for p in "${need[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node may come from Debian (nodejs + npm) or another nodejs build that carries npm
command -v node >/dev/null && command -v npm >/dev/null || missing+=(nodejs npm)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ]; then
  echo "deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "deps: missing Debian packages; run:" >&2
  echo "  sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
