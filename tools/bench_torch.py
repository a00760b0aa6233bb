#!/usr/bin/python3
"""bench_torch.py — the PyTorch side of tuna's training-step benchmark.

Times forward + backward of the same model shape, batch and thread count as
bench/bench_train.c, in plain fp32 PyTorch (no transformers package: GPT-2 and
Llama are written out below with HF's math), and prints one JSON line.
Run it with Debian's /usr/bin/python3 (python3-torch, which links the same
OpenBLAS as tuna through libblas.so.3). The OpenBLAS kernel that ran is read
from libopenblas with ctypes and reported, never changed.

  /usr/bin/python3 tools/bench_torch.py --config bench/configs/gpt2-124m.json \
      --batch 4 --seq-len 256 --steps 3 --warmup 1 --threads 2
"""
import argparse
import ctypes
import ctypes.util
import json
import math
import os
import resource
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def load_config(path):
    with open(path) as f:
        c = json.load(f)
    arch = (c.get("architectures") or [""])[0]
    if arch == "GPT2LMHeadModel" or c.get("model_type") == "gpt2":
        C = c.get("n_embd", 768)
        return dict(family="gpt2", V=c.get("vocab_size", 50257), C=C, L=c.get("n_layer", 12),
                    NH=c.get("n_head", 12), NKV=c.get("n_head", 12), FF=c.get("n_inner") or 4 * C,
                    maxT=c.get("n_positions", 1024), eps=c.get("layer_norm_epsilon", 1e-5), tied=True,
                    std=c.get("initializer_range", 0.02))
    C = c.get("hidden_size", 4096)
    NH = c.get("num_attention_heads", 32)
    return dict(family="llama", V=c.get("vocab_size", 32000), C=C, L=c.get("num_hidden_layers", 32), NH=NH,
                NKV=c.get("num_key_value_heads", NH), HD=c.get("head_dim", C // NH),
                FF=c.get("intermediate_size", 11008), maxT=c.get("max_position_embeddings", 2048),
                eps=c.get("rms_norm_eps", 1e-6), theta=c.get("rope_theta", 10000.0),
                tied=c.get("tie_word_embeddings", False), std=c.get("initializer_range", 0.02))


def causal_attention(q, k, v):
    # q [B,NH,T,HD], k/v [B,NH,T,HD]: full T x T scores, masked, as tuna computes
    T, HD = q.shape[-2], q.shape[-1]
    s = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(HD))
    mask = torch.ones(T, T, dtype=torch.bool).triu(1)
    s = s.masked_fill(mask, float("-inf"))
    return F.softmax(s, dim=-1) @ v


class GPT2Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        C, FF = cfg["C"], cfg["FF"]
        self.NH = cfg["NH"]
        self.ln_1 = nn.LayerNorm(C, eps=cfg["eps"])
        self.c_attn = nn.Linear(C, 3 * C)
        self.attn_proj = nn.Linear(C, C)
        self.ln_2 = nn.LayerNorm(C, eps=cfg["eps"])
        self.c_fc = nn.Linear(C, FF)
        self.mlp_proj = nn.Linear(FF, C)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(C, dim=2)
        q, k, v = (t.view(B, T, self.NH, C // self.NH).transpose(1, 2) for t in (q, k, v))
        y = causal_attention(q, k, v).transpose(1, 2).reshape(B, T, C)
        x = x + self.attn_proj(y)
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class GPT2(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.wte = nn.Embedding(cfg["V"], cfg["C"])
        self.wpe = nn.Embedding(cfg["maxT"], cfg["C"])
        self.h = nn.ModuleList(GPT2Block(cfg) for _ in range(cfg["L"]))
        self.ln_f = nn.LayerNorm(cfg["C"], eps=cfg["eps"])

    def forward(self, ids):
        T = ids.shape[1]
        x = self.wte(ids) + self.wpe(torch.arange(T))
        for blk in self.h:
            x = blk(x)
        return self.ln_f(x) @ self.wte.weight.t()  # tied lm_head


class RMSNorm(nn.Module):
    def __init__(self, C, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(C))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


class LlamaBlock(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        C, HD, NH, NKV, FF = cfg["C"], cfg["HD"], cfg["NH"], cfg["NKV"], cfg["FF"]
        self.NH, self.NKV, self.HD = NH, NKV, HD
        self.input_layernorm = RMSNorm(C, cfg["eps"])
        self.q_proj = nn.Linear(C, NH * HD, bias=False)
        self.k_proj = nn.Linear(C, NKV * HD, bias=False)
        self.v_proj = nn.Linear(C, NKV * HD, bias=False)
        self.o_proj = nn.Linear(NH * HD, C, bias=False)
        self.post_attention_layernorm = RMSNorm(C, cfg["eps"])
        self.gate_proj = nn.Linear(C, FF, bias=False)
        self.up_proj = nn.Linear(C, FF, bias=False)
        self.down_proj = nn.Linear(FF, C, bias=False)

    def forward(self, x, cos, sin):
        B, T, _ = x.shape
        h = self.input_layernorm(x)
        q = self.q_proj(h).view(B, T, self.NH, self.HD).transpose(1, 2)
        k = self.k_proj(h).view(B, T, self.NKV, self.HD).transpose(1, 2)
        v = self.v_proj(h).view(B, T, self.NKV, self.HD).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        rep = self.NH // self.NKV  # grouped KV heads, as HF repeat_kv
        k = k.repeat_interleave(rep, dim=1)
        v = v.repeat_interleave(rep, dim=1)
        y = causal_attention(q, k, v).transpose(1, 2).reshape(B, T, self.NH * self.HD)
        x = x + self.o_proj(y)
        h = self.post_attention_layernorm(x)
        return x + self.down_proj(F.silu(self.gate_proj(h)) * self.up_proj(h))


class Llama(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.embed_tokens = nn.Embedding(cfg["V"], cfg["C"])
        self.layers = nn.ModuleList(LlamaBlock(cfg) for _ in range(cfg["L"]))
        self.norm = RMSNorm(cfg["C"], cfg["eps"])
        self.lm_head = None if cfg["tied"] else nn.Linear(cfg["C"], cfg["V"], bias=False)

    def forward(self, ids):
        T, HD = ids.shape[1], self.cfg["HD"]
        inv = 1.0 / (self.cfg["theta"] ** (torch.arange(0, HD, 2, dtype=torch.float32) / HD))
        f = torch.outer(torch.arange(T, dtype=torch.float32), inv)
        emb = torch.cat((f, f), dim=-1)
        cos, sin = emb.cos(), emb.sin()
        x = self.embed_tokens(ids)
        for blk in self.layers:
            x = blk(x, cos, sin)
        x = self.norm(x)
        return x @ self.embed_tokens.weight.t() if self.lm_head is None else self.lm_head(x)


def init_weights(model, std):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:
                p.fill_(0.0 if name.endswith("bias") else 1.0)
            else:
                p.normal_(0.0, std)


class SgemmProbe:
    """The sgemm of bench_train's probe (1024x768 @ (3072x768)^T, the same
    OpenBLAS call through torch.mm), timed right after each step: the machine's
    speed changes with what else runs on it, so each step is paired with it."""

    def __init__(self):
        g = torch.Generator().manual_seed(42)
        self.a = torch.rand(1024, 768, generator=g) - 0.5
        self.b = torch.rand(3072, 768, generator=g) - 0.5
        self.run(1)

    def run(self, reps):
        best = float("inf")
        with torch.no_grad():
            for _ in range(reps):
                t0 = time.perf_counter()
                torch.mm(self.a, self.b.t())
                best = min(best, time.perf_counter() - t0)
        return 2.0 * 1024 * 3072 * 768 / best / 1e9


def median(v):
    v = sorted(v)
    n = len(v)
    return v[n // 2] if n % 2 else 0.5 * (v[n // 2 - 1] + v[n // 2])


def openblas_core():
    """Name of the OpenBLAS kernel in this process (the library torch loaded)."""
    for lib in ("libopenblas.so.0", ctypes.util.find_library("openblas")):
        if not lib:
            continue
        try:
            ob = ctypes.CDLL(lib)
            ob.openblas_get_corename.restype = ctypes.c_char_p
            return ob.openblas_get_corename().decode()
        except OSError:
            continue
    return "unknown"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", required=True)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    if min(a.batch, a.seq_len, a.steps, a.threads) <= 0 or a.warmup < 0:
        ap.error("batch, seq-len, steps and threads must be positive; warmup >= 0")

    torch.set_num_threads(a.threads)
    torch.manual_seed(1234)
    cfg = load_config(a.config)
    model = GPT2(cfg) if cfg["family"] == "gpt2" else Llama(cfg)
    init_weights(model, cfg["std"])
    B, T, V = a.batch, a.seq_len, cfg["V"]
    ids = torch.randint(0, V, (B, T))

    probe = SgemmProbe()
    times, probes = [], []
    cpu = 0.0
    loss0 = None
    load0 = os.getloadavg()[0]
    for i in range(a.warmup + a.steps):
        t0, c0 = time.perf_counter(), time.process_time()
        model.zero_grad(set_to_none=True)
        logits = model(ids)
        # mean over the B*(T-1) shifted targets, as tuna's 1/tokens weight
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, V), ids[:, 1:].reshape(-1))
        loss.backward()
        loss_val = loss.item()
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        del logits, loss
        g = probe.run(2)
        if loss0 is None:
            loss0 = loss_val
        if i >= a.warmup:
            times.append(dt)
            probes.append(g)
            cpu += dc
        print(f"  torch step {i}{' (warmup)' if i < a.warmup else ''}: {dt * 1e3:.1f} ms; "
              f"sgemm probe after it {g:.1f} GFLOP/s", file=sys.stderr)

    cores = cpu / sum(times)  # cores this process actually got
    norm = [B * T / t / g for t, g in zip(times, probes)]
    med = median(times)
    times.sort()
    nparams = sum(p.numel() for p in model.parameters())
    print(json.dumps({
        "impl": "pytorch", "torch_version": torch.__version__, "config": a.config, "B": B, "T": T,
        "threads": torch.get_num_threads(), "steps": a.steps, "warmup": a.warmup, "params": nparams,
        "ms_per_step": round(med * 1e3, 3), "ms_per_step_min": round(times[0] * 1e3, 3),
        "tokens_per_s": round(B * T / med, 2),
        "tokens_per_s_best": round(B * T / times[0], 2), "sgemm_probe_gflops": round(median(probes), 3),
        "tokens_per_s_per_sgemm_gflops": round(median(norm), 5), "loss0": round(loss0, 4),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
        "openblas_core": openblas_core(), "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE", ""),
        "cores_used": round(cores, 2), "loadavg_start": round(load0, 2), "loadavg_end": round(os.getloadavg()[0], 2),
    }))


if __name__ == "__main__":
    main()
