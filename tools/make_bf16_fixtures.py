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
all F32, in the same layout as expected.safetensors.

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
One thread, no randomness, no timestamps: a second run gives identical bytes.
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


def forward_backward(P, cfg, family, pre, ids, lab, autocast):
    """Logits, loss and gradients (name -> tensor) of the padded batch; P's
    tensors are leaves of the dtype the run is in."""
    for p in P.values():
        p.grad = None
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        if family == "gpt2":
            logits = mpf.gpt2_forward(P, cfg, pre, ids)
        else:
            logits = mpf.llama_forward(P, cfg, ids)
        loss, _ = mpf.causal_lm_loss(logits, lab)
    loss.backward()
    return logits.detach(), loss.detach(), {n: p.grad for n, p in P.items()}


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


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--root", default=os.path.join(here, "..", "tests", "fixtures", "parity"))
    a = ap.parse_args()
    torch.set_num_threads(1)  # reductions in one fixed order
    for name, _seed, family, _dt, _cfg, pre in mpf.FIXTURES:
        build(a.root, name, family, pre)


if __name__ == "__main__":
    main()
