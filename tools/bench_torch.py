#!/usr/bin/python3
"""bench_torch.py — the PyTorch side of tuna's training-step benchmark.

Times forward + backward of the same model shape, batch and thread count as
bench/bench_train.c, in plain PyTorch (no transformers package: GPT-2 and
Llama are written out below with HF's math), and prints one JSON line naming
the mode that ran. Run it with Debian's /usr/bin/python3 (python3-torch, which
links the same OpenBLAS as tuna through libblas.so.3, and the same oneDNN
through libdnnl.so.2). The OpenBLAS kernel that ran is read from libopenblas
with ctypes and reported, never changed.

Modes (combinable):
  --method full|lora   full fine-tuning (default), or LoRA as bench_peft.sh's
                       tuna row: r 16, alpha 32, dropout 0, every linear layer
                       of the blocks (PEFT's all-linear: not the lm_head),
                       A kaiming-uniform, B zero, base frozen
  --autocast none|bf16 bf16: forward and loss under torch.autocast("cpu",
                       dtype=torch.bfloat16), backward outside, fp32 master
                       weights (Transformers' bf16=True); matmuls go through
                       oneDNN, whose ISA and kernel are reported
  --base-dtype fp32|bf16  LoRA's frozen base weight matrices stored in bf16
                       (a bf16-stored base; needs --autocast bf16)
  --optim none|adamw   none: forward + backward only (bench_train's step);
                       adamw: + gradient clipping to 1.0 and an AdamW step
                       (lr 2e-5 full, 2e-4 lora), a whole `tuna sft` step

  /usr/bin/python3 tools/bench_torch.py --config bench/configs/gpt2-124m.json \
      --batch 4 --seq-len 256 --steps 3 --warmup 1 --threads 2 [--autocast bf16]
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
        # .float(): a bf16-stored base (--base-dtype bf16) keeps fp32 activations, as tuna
        x = self.wte(ids).float() + self.wpe(torch.arange(T)).float()
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
        x = self.embed_tokens(ids).float()  # fp32 activations from a bf16-stored base too
        for blk in self.layers:
            x = blk(x, cos, sin)
        x = self.norm(x)
        return x @ self.embed_tokens.weight.t() if self.lm_head is None else self.lm_head(x)


class LoRALinear(nn.Module):
    """PEFT's LoRA Linear: base(x) + (dropout 0) x A^T B^T * alpha/r, base frozen."""

    def __init__(self, base, r, alpha):
        super().__init__()
        self.base = base
        self.lora_A = nn.Linear(base.in_features, r, bias=False)
        self.lora_B = nn.Linear(r, base.out_features, bias=False)
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B.weight)
        self.scaling = alpha / r

    def forward(self, x):
        return self.base(x) + self.lora_B(self.lora_A(x)) * self.scaling


def apply_lora(model, r, alpha, base_dtype):
    """Freezes the model and wraps every nn.Linear of its blocks (PEFT's
    all-linear: the lm_head is not one) in LoRALinear; with base_dtype bf16
    the frozen weight matrices (linears, embeddings) are stored in bf16,
    biases and norms stay fp32."""
    for p in model.parameters():
        p.requires_grad_(False)
    if base_dtype == torch.bfloat16:
        for p in model.parameters():
            if p.dim() == 2:
                p.data = p.data.to(torch.bfloat16)
    for blocks in (getattr(model, "h", None), getattr(model, "layers", None)):
        for blk in blocks or ():
            for name, mod in list(blk.named_children()):
                if isinstance(mod, nn.Linear):
                    setattr(blk, name, LoRALinear(mod, r, alpha))


def first_linear(model):
    return next(m for m in model.modules() if isinstance(m, (LoRALinear, nn.Linear)))


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


DNNL_ISA = {0x0: "all", 0x1: "sse41", 0x3: "avx", 0x7: "avx2", 0xf: "avx512_mic", 0x1f: "avx512_mic_4ops",
            0x27: "avx512_core", 0x67: "avx512_core_vnni", 0xe7: "avx512_core_bf16",
            0x3e7: "avx512_core_amx", 0x407: "avx2_vnni"}


def onednn_isa():
    """The highest ISA oneDNN (libdnnl.so.2, the one torch links) may use in this
    process: dnnl_get_effective_cpu_isa, after ONEDNN_MAX_CPU_ISA if set."""
    try:
        lib = ctypes.CDLL("libdnnl.so.2")
        lib.dnnl_get_effective_cpu_isa.restype = ctypes.c_int
        v = lib.dnnl_get_effective_cpu_isa()
        return DNNL_ISA.get(v, hex(v))
    except (OSError, AttributeError):
        return "unknown"


def onednn_bf16_kernel(K=768, N=768):
    """Runs one nn.Linear under CPU autocast bf16 with oneDNN's verbose mode on;
    returns the primitive and implementation oneDNN printed (e.g.
    matmul:brg:avx512_core_amx_bf16), or "none" if no oneDNN primitive ran
    (ATen's own bf16 GEMM then), and oneDNN's ISA line (printed once a process)."""
    lin = nn.Linear(K, N)
    x = torch.rand(64, K)
    r, w = os.pipe()
    saved = os.dup(1)
    sys.stdout.flush()
    os.dup2(w, 1)
    try:
        with torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON):
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
                lin(x)
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
        os.close(w)
    with os.fdopen(r) as f:
        lines = f.read().splitlines()
    ex = [ln.split(",") for ln in lines if ",exec,cpu," in ln]
    impls = [f"{e[3]}:{e[4]}" for e in ex if len(e) > 4 and e[3] != "reorder"]
    isa = [ln.split("isa:", 1)[1] for ln in lines if ",info,cpu,isa:" in ln]
    return (impls[-1] if impls else "none"), (isa[0] if isa else "")


def cpu_capability():
    """ATen's vector ISA ("CPU capability usage" in torch.__config__.show())."""
    for ln in torch.__config__.show().splitlines():
        if "CPU capability usage" in ln:
            return ln.split(":", 1)[1].strip()
    return "unknown"


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", required=True)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--method", choices=("full", "lora"), default="full")
    ap.add_argument("--lora-r", type=int, default=16)
    ap.add_argument("--lora-alpha", type=float, default=32.0)
    ap.add_argument("--autocast", choices=("none", "bf16"), default="none")
    ap.add_argument("--base-dtype", choices=("fp32", "bf16"), default="fp32")
    ap.add_argument("--optim", choices=("none", "adamw"), default="none")
    a = ap.parse_args()
    if min(a.batch, a.seq_len, a.steps, a.threads, a.lora_r) <= 0 or a.warmup < 0:
        ap.error("batch, seq-len, steps, threads and lora-r must be positive; warmup >= 0")
    if a.base_dtype == "bf16" and (a.method != "lora" or a.autocast != "bf16"):
        ap.error("--base-dtype bf16 is LoRA's frozen base and needs --autocast bf16")
    return a


def build_model(a, cfg):
    model = GPT2(cfg) if cfg["family"] == "gpt2" else Llama(cfg)
    init_weights(model, cfg["std"])
    if a.method == "lora":
        dt = torch.bfloat16 if a.base_dtype == "bf16" else torch.float32
        apply_lora(model, a.lora_r, a.lora_alpha, dt)
    return model


def make_step(a, model, ids, V, seen):
    """One training step as a function returning the loss: forward and loss
    under autocast when asked, backward outside it, then the optimizer if any.
    seen["linear_out"] gets the output dtype of the first linear layer (a
    forward hook, first step only), seen["grad"] the dtype of a gradient."""
    params = [p for p in model.parameters() if p.requires_grad]
    opt = None
    if a.optim == "adamw":
        opt = torch.optim.AdamW(params, lr=2e-4 if a.method == "lora" else 2e-5, weight_decay=0.0)

    def record(mod, inp, out):
        seen.setdefault("linear_out", str(out.dtype).replace("torch.", ""))

    hook = first_linear(model).register_forward_hook(record)
    use_ac = a.autocast == "bf16"

    def step():
        model.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=use_ac):
            logits = model(ids)
            # mean over the B*(T-1) shifted targets, as tuna's 1/tokens weight;
            # fp32 loss, as Transformers' loss upcasts the logits
            loss = F.cross_entropy(logits[:, :-1].float().reshape(-1, V), ids[:, 1:].reshape(-1))
        loss.backward()
        hook.remove()
        seen.setdefault("grad", str(params[0].grad.dtype).replace("torch.", ""))
        if opt is not None:
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
        return loss.item()

    return step


def check_autocast(a, seen):
    """Exits 1 when --autocast bf16 did not make the linears compute in bf16,
    or the gradients (master weights) are not fp32."""
    want = "bfloat16" if a.autocast == "bf16" else "float32"
    if seen.get("linear_out") != want or seen.get("grad") != "float32":
        print(f"bench_torch: autocast {a.autocast}: a linear layer's output is {seen.get('linear_out')} "
              f"(expected {want}), gradients {seen.get('grad')} (expected float32)", file=sys.stderr)
        sys.exit(1)


def main():
    a = parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1234)
    cfg = load_config(a.config)
    model = build_model(a, cfg)
    B, T, V = a.batch, a.seq_len, cfg["V"]
    ids = torch.randint(0, V, (B, T))
    kernel, isa_line = onednn_bf16_kernel()
    seen = {}
    step = make_step(a, model, ids, V, seen)

    probe = SgemmProbe()
    times, probes = [], []
    cpu = 0.0
    loss0 = None
    load0 = os.getloadavg()[0]
    for i in range(a.warmup + a.steps):
        t0, c0 = time.perf_counter(), time.process_time()
        loss_val = step()
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        g = probe.run(2)
        if loss0 is None:
            loss0 = loss_val
            check_autocast(a, seen)
        if i >= a.warmup:
            times.append(dt)
            probes.append(g)
            cpu += dc
        print(f"  torch step {i}{' (warmup)' if i < a.warmup else ''}: {dt * 1e3:.1f} ms; "
              f"sgemm probe after it {g:.1f} GFLOP/s", file=sys.stderr)

    cores = cpu / sum(times)  # cores this process actually got
    norm = [B * T / t / g for t, g in zip(times, probes)]
    med = median(times)
    per_step = [round(B * T / t, 2) for t in times]
    times.sort()
    mode = a.method + ("+autocast_bf16" if a.autocast == "bf16" else "+fp32") + \
        ("+bf16_base" if a.base_dtype == "bf16" else "") + ("+adamw" if a.optim == "adamw" else "")
    print(json.dumps({
        "impl": "pytorch", "mode": mode, "method": a.method, "autocast": a.autocast,
        "base_dtype": a.base_dtype, "optim": a.optim, "linear_out_dtype": seen["linear_out"],
        "grad_dtype": seen["grad"], "torch_version": torch.__version__, "config": a.config, "B": B, "T": T,
        "threads": torch.get_num_threads(), "steps": a.steps, "warmup": a.warmup,
        "params": sum(p.numel() for p in model.parameters()),
        "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "ms_per_step": round(med * 1e3, 3), "ms_per_step_min": round(times[0] * 1e3, 3),
        "tokens_per_s": round(B * T / med, 2),
        "tokens_per_s_best": round(B * T / times[0], 2), "tokens_per_s_steps": per_step,
        "sgemm_probe_gflops": round(median(probes), 3),
        "tokens_per_s_per_sgemm_gflops": round(median(norm), 5), "loss0": round(loss0, 4),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
        "openblas_core": openblas_core(), "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE", ""),
        "onednn_isa": onednn_isa(), "onednn_isa_line": isa_line, "onednn_bf16_linear": kernel,
        "ONEDNN_MAX_CPU_ISA": os.environ.get("ONEDNN_MAX_CPU_ISA", ""), "aten_cpu_capability": cpu_capability(),
        "mkldnn_available": torch.backends.mkldnn.is_available(),
        "cores_used": round(cores, 2), "loadavg_start": round(load0, 2), "loadavg_end": round(os.getloadavg()[0], 2),
    }))


if __name__ == "__main__":
    main()
