#!/usr/bin/python3
"""make_bf16_fixtures.py — PyTorch bf16 autocast references for tests/test_parity_bf16.c.

For each parity fixture tests/fixtures/parity/<name>/ (written by
make_parity_fixtures.py) this reads the committed config.json,
model.safetensors and data.jsonl, runs the SAME model code (gpt2_forward /
llama_forward / causal_lm_loss, imported from make_parity_fixtures.py) on the
same right-padded batch, but with the weights in torch.float32 and the forward
under torch.autocast("cpu", dtype=torch.bfloat16) — what Transformers'
bf16=True does on CPU — and writes expected_bf16.safetensors beside
expected.safetensors: `logits`, `loss` and `grad.<param>` for every parameter,
all F32, in the same layout as expected.safetensors. Also
llama_gqa/expected_bf16_lora.safetensors: the PEFT LoRA adapter
tests/fixtures/peft/llama_lora/adapter0 on that base and batch, under autocast
and (float64.* names) in float64 (build_lora).

Under torch 1.13's CPU autocast the matmuls (linear layers, lm_head and the
two attention products) take bf16 inputs and give bf16 outputs; the loss is
computed in fp32; elementwise ops run in the dtype they are given (bf16 after
a matmul without bias, fp32 once added to an fp32 tensor). The backward runs
the matmul gradients in bf16 as well; the gradients of the fp32 leaves are
fp32.

The header's __metadata__ records how far this reference is from the float64
one (expected.safetensors): relative L2 and max-norm relative error of the
logits (max|a-b| / max|b|), relative error of the loss, worst gradient
relative L2 and its tensor. Before that the script re-runs the float64
forward/backward from the weights it read and asserts it reproduces
expected.safetensors, which proves the weights, batch and model code are the
parity fixture's.

Run with Debian's interpreter (torch 1.13 + numpy), from the repository root:
    /usr/bin/python3 tools/make_bf16_fixtures.py [--root tests/fixtures/parity]
                     [--peft tests/fixtures/peft/llama_lora]
One thread, no randomness, no timestamps: a second run on the same machine
gives identical bytes (torch picks its bf16 matmul kernels by CPU).
"""
import argparse
import json
import os
import struct
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_parity_fixtures as mpf  # noqa: E402  (sets the default dtype to float64)


def read_safetensors(path):
    """name -> float32 torch tensor (F32, F16 and BF16 upcast exactly)."""
    with open(path, "rb") as f:
        raw = f.read()
    (hlen,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + hlen])
    base = 8 + hlen
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        buf = raw[base + a:base + b]
        if t["dtype"] == "F32":
            arr = np.frombuffer(buf, dtype="<f4").astype(np.float32)
        elif t["dtype"] == "F16":
            arr = np.frombuffer(buf, dtype="<f2").astype(np.float32)
        elif t["dtype"] == "BF16":
            arr = (np.frombuffer(buf, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            continue  # I32 extras of expected.safetensors are not needed here
        out[name] = torch.from_numpy(arr.reshape(t["shape"]).copy())
    return out


def read_records(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def forward_backward(P, cfg, family, pre, ids, lab, autocast, train=None, lin=None):
    """Logits, loss and the gradients (name -> tensor) of the trainable leaves
    `train` (default: P's tensors) for the padded batch. lin: llama_forward's
    block linears (an adapter's wrapper; default plain)."""
    train = P if train is None else train
    for p in train.values():
        p.grad = None
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        if family == "gpt2":
            logits = mpf.gpt2_forward(P, cfg, pre, ids)
        else:
            logits = mpf.llama_forward(P, cfg, ids, lin=lin)
        loss, _ = mpf.causal_lm_loss(logits, lab)
    loss.backward()
    return logits.detach(), loss.detach(), {n: p.grad for n, p in train.items()}


def rel_l2(a, b):
    a, b = a.to(torch.float64), b.to(torch.float64)
    return float((a - b).norm() / b.norm())


def rel_max(a, b):
    a, b = a.to(torch.float64), b.to(torch.float64)
    return float((a - b).abs().max() / b.abs().max())


def check_float64(W, cfg, family, pre, ids, lab, ref):
    """The float64 run from the weights read back must give expected.safetensors."""
    P = {n: w.to(torch.float64).requires_grad_(True) for n, w in W.items()}
    logits, loss, grads = forward_backward(P, cfg, family, pre, ids, lab, False)
    assert rel_l2(logits, ref["logits"]) < 1e-6 and rel_l2(loss, ref["loss"]) < 1e-6, "float64 rerun differs"
    for n, g in grads.items():
        assert rel_l2(g, ref["grad." + n]) < 1e-6, "float64 rerun: grad.%s differs" % n


def distance_note(logits, loss, grads, ref):
    """One line: how far the autocast results are from the float64 reference."""
    worst, worst_name = -1.0, "-"
    for n, g in grads.items():
        e = rel_l2(g, ref["grad." + n])
        if e > worst:
            worst, worst_name = e, n
    return ("vs float64 expected.safetensors: logits rel L2 %.2e, max-norm rel %.2e; loss rel %.2e; "
            "grads worst rel L2 %.2e (%s)" % (rel_l2(logits, ref["logits"]), rel_max(logits, ref["logits"]),
                                            rel_l2(loss, ref["loss"]), worst, worst_name))


def build(root, name, family, pre):
    d = os.path.join(root, name)
    with open(os.path.join(d, "config.json")) as f:
        cfg = json.load(f)
    W = read_safetensors(os.path.join(d, "model.safetensors"))
    ref = read_safetensors(os.path.join(d, "expected.safetensors"))
    ids, lab = mpf.pad_batch(read_records(os.path.join(d, "data.jsonl")))
    check_float64(W, cfg, family, pre, ids, lab, ref)

    P = {n: w.clone().requires_grad_(True) for n, w in W.items()}  # float32 leaves
    logits, loss, grads = forward_backward(P, cfg, family, pre, ids, lab, True)
    note = distance_note(logits, loss, grads, ref)
    exp = [("logits", "F32", mpf.f32(logits)), ("loss", "F32", mpf.f32(loss.reshape(1)))]
    exp += [("grad." + n, "F32", mpf.f32(g)) for n, g in grads.items()]
    meta = {"reference": "torch %s autocast cpu bfloat16 over make_parity_fixtures.py's model code, "
                         "float32 weights" % torch.__version__,
            "vs_float64": note}
    mpf.write_safetensors(os.path.join(d, "expected_bf16.safetensors"), exp, meta)
    print("%-14s logits dtype %s; %s" % (name, str(logits.dtype).replace("torch.", ""), note))


LORA_KEY = "base_model.model.%s.lora_%s.weight"  # PEFT's saved key of module path %s


def lora_linear(P, ad, scale):
    """PEFT LoRA Linear (dropout 0): base(x) + lora_B(lora_A(x)) * scale on
    the modules the adapter has, in PEFT's order of operations (under
    autocast both terms are bf16 matmul outputs, added in bf16)."""
    def lin(x, n):
        y = mpf.linear(P, x, n)
        a = ad.get(LORA_KEY % (n, "A"))
        if a is None:
            return y
        return y + (x @ a.t()) @ ad[LORA_KEY % (n, "B")].t() * scale
    return lin


def build_lora(root, peft_dir):
    """The LoRA adapter of peft_dir/adapter0 on the fp32 llama_gqa base, the
    llama_gqa batch: expected_bf16_lora.safetensors with logits, loss and
    grad.<adapter key> under autocast, and the same run in float64 under the
    names float64.logits, float64.loss, float64.grad.<adapter key> (there is
    no other float64 reference of this batch with this adapter)."""
    d = os.path.join(root, "llama_gqa")
    with open(os.path.join(d, "config.json")) as f:
        cfg = json.load(f)
    with open(os.path.join(peft_dir, "adapter0", "adapter_config.json")) as f:
        acfg = json.load(f)
    assert not acfg.get("use_rslora") and acfg["lora_dropout"] == 0
    scale = acfg["lora_alpha"] / acfg["r"]
    W = read_safetensors(os.path.join(d, "model.safetensors"))
    A = read_safetensors(os.path.join(peft_dir, "adapter0", "adapter_model.safetensors"))
    ids, lab = mpf.pad_batch(read_records(os.path.join(d, "data.jsonl")))
    runs = []
    for dtype, autocast in ((torch.float64, False), (torch.float32, True)):
        P = {n: w.to(dtype) for n, w in W.items()}  # frozen base
        ad = {n: a.to(dtype).requires_grad_(True) for n, a in A.items()}
        runs.append(forward_backward(P, cfg, "llama", None, ids, lab, autocast, ad, lora_linear(P, ad, scale)))
    (l64, s64, g64), (logits, loss, grads) = runs
    ref = dict({"logits": l64, "loss": s64.reshape(1)}, **{"grad." + n: g for n, g in g64.items()})
    note = distance_note(logits, loss, grads, ref).replace("expected.safetensors", "run of the same adapter")
    exp = [("logits", "F32", mpf.f32(logits)), ("loss", "F32", mpf.f32(loss.reshape(1)))]
    exp += [("grad." + n, "F32", mpf.f32(g)) for n, g in grads.items()]
    exp += [("float64." + n, "F32", mpf.f32(t)) for n, t in ref.items()]
    meta = {"reference": "torch %s autocast cpu bfloat16, PEFT LoRA %s/adapter0 (r %d, alpha %g) on the "
                         "float32 base" % (torch.__version__, os.path.relpath(peft_dir), acfg["r"], acfg["lora_alpha"]),
            "vs_float64": note}
    mpf.write_safetensors(os.path.join(d, "expected_bf16_lora.safetensors"), exp, meta)
    print("%-14s %s" % ("llama_gqa+lora", note))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--root", default=os.path.join(here, "..", "tests", "fixtures", "parity"))
    ap.add_argument("--peft", default=os.path.join(here, "..", "tests", "fixtures", "peft", "llama_lora"))
    a = ap.parse_args()
    torch.set_num_threads(1)  # reductions in one fixed order
    for name, _seed, family, _dt, _cfg, pre in mpf.FIXTURES:
        build(a.root, name, family, pre)
    build_lora(a.root, a.peft)


if __name__ == "__main__":
    main()
