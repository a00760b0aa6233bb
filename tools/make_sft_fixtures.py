#!/usr/bin/python3
"""make_sft_fixtures.py — PyTorch reference for 5 optimizer steps of full fine-tuning.

Writes tests/fixtures/sft/<name>/ for gpt2_cosine, llama_cosine, gpt2_constant
and llama_constant: the initial model (config.json + model.safetensors, F32),
10 pre-tokenized records (data.jsonl), every training setting (args.json), and
expected.safetensors with the weights after the last step under the model's
own tensor names plus per-step `step_loss`, `step_lr`, `step_grad_norm` (F32
[5]) and `step_tokens` (I32 [5], counted tokens of each step).

Run with Debian's interpreter, which has torch and numpy:
    /usr/bin/python3 tools/make_sft_fixtures.py [--out-root tests/fixtures]

The models (forward passes, weight layout, initial weights, safetensors
writer) are those of make_parity_fixtures.py, imported from it: the initial
weights are the parity fixtures `gpt2` and `llama_gqa` (same seeds, same
draws), so model.safetensors here equals parity/<that>/model.safetensors.

Training semantics (what `tuna sft --method full` implements):
  * Data: data.jsonl holds 10 records {"input_ids":[..],"labels":[..]} of
    distinct lengths in 8..30 (labels = ids, some with 1..6 leading -100 = a
    masked prompt), taken in file order (--no-shuffle). With --batch 2
    --micro-batch 1 an optimizer step consumes the next 2 records as two
    micro-batches of one sequence each (no padding, none truncated at
    seq_len 64); 5 steps consume all 10 once.
  * Loss normalisation "token": the step's loss is
        sum of per-token cross-entropy over both micro-batches / N,
    N = counted tokens of the step, where a micro-batch's tokens are scored
    as in HF causal LMs (logits[:, :-1] against labels[:, 1:], -100 not
    counted). Gradients accumulate over the micro-batches, each backward of
    (its CE sum) / N, so the accumulated gradient is that of the step's loss.
    step_loss is this value at the weights before the step's update.
  * Clipping: torch.nn.utils.clip_grad_norm_(params, grad_clip) on the
    accumulated gradient: norm = L2 norm over all parameters (a tied tensor
    counted once), every gradient multiplied by min(1, clip / (norm + 1e-6)).
    grad_clip 0 means no clipping; step_grad_norm is the pre-clip norm and
    is recorded either way.
  * Schedule (HF get_scheduler, S = steps, W = warmup steps, s = 0-based
    optimizer step): constant: 1; cosine with warmup: s / max(1, W) for
    s < W, else max(0, 0.5 * (1 + cos(pi * (s - W) / max(1, S - W)))).
    Step s uses lr * lambda(s); with warmup the first step has lr 0 (HF's
    behaviour) and still counts as an Adam step. step_lr is lr * lambda(s).
  * AdamW exactly as torch.optim.AdamW (betas 0.9/0.999, eps 1e-8, no
    amsgrad), step t = s + 1:
        p -= lr_s * wd * p                       (decoupled decay, first)
        m = b1 m + (1 - b1) g;   v = b2 v + (1 - b2) g^2
        p -= lr_s / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
    Weight decay (HF Trainer's get_decay_parameter_names) applies to every
    tensor except biases and norm weights (LayerNorm / RMSNorm); here that
    is exactly the tensors with 2 or more dimensions (embeddings, wpe,
    linear weights, lm_head). args.json lists the undecayed names.
  * Tied embeddings (GPT-2): one parameter, wte, receives the gradient of
    both the embedding lookup and the output projection.

Precision: the reference runs in float64 from the F32 initial weights and is
stored as F32. The script then repeats the 5 steps with the same code in
float32 (weights, Adam moments, forward, backward: what the C trainer does)
and asserts it agrees with the float64 run within the C test's budgets:
relative L2 error <= 1e-4 per final weight tensor, <= 1e-5 per step loss
(and per grad norm). Exception: the key third of GPT-2's c_attn.bias has an
exact gradient of zero (softmax is invariant to adding q.b_k to every score
of a row), so it receives only rounding noise, which Adam turns into steps of
up to lr * noise / (noise + eps); it is compared in absolute terms and
excluded from that tensor's relative error. The worst figures are printed.

Deterministic: fixed seeds, one thread, no timestamps; two runs give
identical bytes. Also checks torch.optim.AdamW against the formula above.
"""
import argparse
import json
import math
import os
import random
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_parity_fixtures as mpf  # noqa: E402  (sets the default dtype to float64)

F64, F32 = torch.float64, torch.float32
REL_TENSOR = 1e-4   # C test budget: relative L2 error per final weight tensor
REL_LOSS = 1e-5     # C test budget: per step loss

COMMON = {"steps": 5, "batch": 2, "micro_batch": 1, "seq_len": 64, "lr": 1e-3,
          "loss_norm": "token", "betas": [0.9, 0.999], "eps": 1e-8,
          "method": "full", "shuffle": False, "seed": 0}
COSINE = {"schedule": "cosine", "warmup": 2, "weight_decay": 0.1, "grad_clip": 1.0}
CONSTANT = {"schedule": "constant", "warmup": 0, "weight_decay": 0.0, "grad_clip": 0.0}

# name, parity fixture the model comes from, data seed, schedule settings
FIXTURES = [("gpt2_cosine", "gpt2", 301, COSINE),
            ("llama_cosine", "llama_gqa", 302, COSINE),
            ("gpt2_constant", "gpt2", 303, CONSTANT),
            ("llama_constant", "llama_gqa", 304, CONSTANT)]


def parity_entry(name):
    for f in mpf.FIXTURES:
        if f[0] == name:
            return f
    raise KeyError(name)


def initial_weights(seed, family, cfg, pre):
    """The parity fixture's weights (same generator, same order of draws), F32.
    Returns (spec, {name: float32 tensor})."""
    gen = torch.Generator().manual_seed(seed)
    spec = mpf.gpt2_params(cfg, pre) if family == "gpt2" else mpf.llama_params(cfg)
    W = {}
    for pname, shape, kind in spec:
        z = torch.randn(shape, generator=gen, dtype=F32)
        W[pname] = {"w": 0.02 * z, "b": 0.02 * z, "norm": 1.0 + 0.1 * z}[kind]
    return spec, W


def make_records(seed, V):
    """10 records of distinct lengths in [8,30]; ids in [3,V); labels = ids
    with 0..6 leading -100 (0 for about a third of them)."""
    rng = random.Random(seed)
    recs = []
    for n in rng.sample(range(8, 31), 10):
        ids = [rng.randrange(3, V) for _ in range(n)]
        k = rng.choice([0, 0, 0, 1, 2, 3, 4, 5, 6])
        recs.append({"input_ids": ids, "labels": [-100] * k + ids[k:]})
    return recs


def counted(rec):
    return sum(1 for t in rec["labels"][1:] if t != -100)


def lr_lambda(schedule, s, W, S):
    if schedule == "constant":
        return float(s) / max(1, W) if s < W else 1.0   # constant_with_warmup when W > 0
    if schedule == "cosine":
        if s < W:
            return float(s) / max(1, W)
        progress = float(s - W) / max(1, S - W)
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))
    raise ValueError(schedule)


def no_decay_names(spec):
    """HF get_decay_parameter_names complement: biases and norm weights."""
    names = [n for n, shape, kind in spec if "bias" in n or kind == "norm"]
    # the C trainer's rule (tensors of one dimension) selects the same set
    assert names == [n for n, shape, _ in spec if len(shape) == 1]
    return names


def train(W0, spec, family, cfg, pre, recs, a, dtype, manual_adam=False):
    """a: args dict. Returns (final weights {name: tensor}, losses, lrs, norms, tokens).
    manual_adam: use the formula of the docstring instead of torch.optim.AdamW."""
    P = {n: W0[n].to(dtype).clone().requires_grad_(True) for n, _, _ in spec}
    params = [P[n] for n, _, _ in spec]
    nd = set(no_decay_names(spec))
    groups = [{"params": [P[n] for n, _, _ in spec if n not in nd], "weight_decay": a["weight_decay"]},
              {"params": [P[n] for n, _, _ in spec if n in nd], "weight_decay": 0.0}]
    b1, b2 = a["betas"]
    opt = torch.optim.AdamW(groups, lr=a["lr"], betas=(b1, b2), eps=a["eps"])
    mstate = {n: (torch.zeros_like(P[n]), torch.zeros_like(P[n])) for n, _, _ in spec}
    if family == "gpt2":
        fwd = lambda ids: mpf.gpt2_forward(P, cfg, pre, ids)
    else:
        fwd = lambda ids: mpf.llama_forward(P, cfg, ids)
    S, mb, B = a["steps"], a["micro_batch"], a["batch"]
    assert mb == 1, "records are not padded: one sequence per micro-batch"
    losses, lrs, norms, toks = [], [], [], []
    for s in range(S):
        step_recs = recs[s * B:(s + 1) * B]
        N = sum(counted(r) for r in step_recs)
        lr = a["lr"] * lr_lambda(a["schedule"], s, a["warmup"], S)
        for p in params:
            p.grad = None
        loss = 0.0
        for r in step_recs:
            ids = torch.tensor([r["input_ids"][:a["seq_len"]]])
            lab = torch.tensor([r["labels"][:a["seq_len"]]])
            logits = fwd(ids)
            V = logits.shape[-1]
            ce = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, V), lab[:, 1:].reshape(-1),
                                                   ignore_index=-100, reduction="sum")
            (ce / N).backward()
            loss += ce.item() / N
        if a["grad_clip"] > 0:
            norm = float(torch.nn.utils.clip_grad_norm_(params, a["grad_clip"]))
        else:
            norm = float(torch.norm(torch.stack([torch.norm(p.grad, 2) for p in params]), 2))
        with torch.no_grad():
            if manual_adam:
                t = s + 1
                for n, _, _ in spec:
                    p, g = P[n], P[n].grad
                    m, v = mstate[n]
                    if n not in nd:
                        p.mul_(1 - lr * a["weight_decay"])
                    m.mul_(b1).add_(g, alpha=1 - b1)
                    v.mul_(b2).addcmul_(g, g, value=1 - b2)
                    denom = v.sqrt() / math.sqrt(1 - b2 ** t) + a["eps"]
                    p.sub_(lr / (1 - b1 ** t) * m / denom)
            else:
                for gr in opt.param_groups:
                    gr["lr"] = lr
                opt.step()
        losses.append(loss)
        lrs.append(lr)
        norms.append(norm)
        toks.append(N)
    return {n: P[n].detach() for n, _, _ in spec}, losses, lrs, norms, toks


def rel_l2(a, b):
    a, b = a.to(F64), b.to(F64)
    nb = float(torch.norm(b))
    return float(torch.norm(a - b)) / (nb if nb > 0 else 1.0)


def build(out_root, name, base, data_seed, sched):
    _, seed, family, dt, cfg, pre = parity_entry(base)
    assert dt == "F32"
    cfg = dict(cfg)
    a = dict(COMMON, **sched)
    d = os.path.join(out_root, "sft", name)
    os.makedirs(d, exist_ok=True)
    spec, W0 = initial_weights(seed, family, cfg, pre)
    mpf.write_safetensors(os.path.join(d, "model.safetensors"),
                          [(n, "F32", W0[n].numpy()) for n, _, _ in spec])
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    recs = make_records(data_seed, cfg["vocab_size"])
    assert len(set(len(r["input_ids"]) for r in recs)) == 10
    assert all(len(r["input_ids"]) <= a["seq_len"] for r in recs)
    with open(os.path.join(d, "data.jsonl"), "w") as f:
        for r in recs:
            f.write(json.dumps(r) + "\n")
    cli = ["--method", "full", "--steps", str(a["steps"]), "--batch", str(a["batch"]),
           "--micro-batch", str(a["micro_batch"]), "--seq-len", str(a["seq_len"]),
           "--lr", "%g" % a["lr"], "--schedule", a["schedule"], "--warmup", str(a["warmup"]),
           "--weight-decay", "%g" % a["weight_decay"], "--grad-clip", "%g" % a["grad_clip"],
           "--no-shuffle", "--seed", str(a["seed"])]
    args_out = dict(a, no_decay=no_decay_names(spec), cli=cli)
    with open(os.path.join(d, "args.json"), "w") as f:
        json.dump(dict(sorted(args_out.items())), f, indent=2)
        f.write("\n")

    # reference (float64, torch.optim.AdamW)
    Wf, losses, lrs, norms, toks = train(W0, spec, family, cfg, pre, recs, a, F64)
    # self-check 1: torch.optim.AdamW is the formula of the docstring
    Wm, lm, _, _, _ = train(W0, spec, family, cfg, pre, recs, a, F64, manual_adam=True)
    adam_err = max(float((Wf[n] - Wm[n]).abs().max()) for n in Wf)
    assert adam_err < 1e-12 and max(abs(x - y) for x, y in zip(losses, lm)) < 1e-12, adam_err
    # self-check 2: the same code in float32 stays within the C test's budgets
    W32, l32, _, n32, _ = train(W0, spec, family, cfg, pre, recs, a, F32)
    worst_t, worst_name, key_abs, bias_whole = 0.0, "", 0.0, 0.0
    for n, _, _ in spec:
        ref, got = Wf[n], W32[n]
        if family == "gpt2" and n.endswith("attn.c_attn.bias"):
            C = cfg["n_embd"]
            key_abs = max(key_abs, float((got[C:2 * C].to(F64) - ref[C:2 * C]).abs().max()))
            bias_whole = max(bias_whole, rel_l2(got, ref))
            keep = torch.cat((torch.arange(0, C), torch.arange(2 * C, 3 * C)))
            ref, got = ref[keep], got[keep]
        e = rel_l2(got, ref)
        if e > worst_t:
            worst_t, worst_name = e, n
    loss_err = max(abs(x - y) / abs(y) for x, y in zip(l32, losses))
    norm_err = max(abs(x - y) / abs(y) for x, y in zip(n32, norms))
    moved = max(rel_l2(Wf[n], W0[n]) for n in Wf)
    ok = worst_t <= REL_TENSOR and loss_err <= REL_LOSS and norm_err <= REL_LOSS
    exp = [(n, "F32", mpf.f32(Wf[n])) for n, _, _ in spec]
    exp += [("step_loss", "F32", np.array(losses, dtype="<f4")),
            ("step_lr", "F32", np.array(lrs, dtype="<f4")),
            ("step_grad_norm", "F32", np.array(norms, dtype="<f4")),
            ("step_tokens", "I32", np.array(toks, dtype="<i4"))]
    mpf.write_safetensors(os.path.join(d, "expected.safetensors"), exp)
    size = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
    print("%-15s tokens/step %s  loss %s  grad norm %s  lr %s" % (
        name, toks, " ".join("%.5f" % x for x in losses), " ".join("%.4f" % x for x in norms),
        " ".join("%.2e" % x for x in lrs)))
    print("%-15s fp32 vs fp64: weights rel %.2e (%s), loss rel %.2e, grad norm rel %.2e%s; "
          "AdamW vs formula %.1e; largest move rel %.3f; %d KB" % (
              "", worst_t, worst_name, loss_err, norm_err,
              ", c_attn.bias key third abs %.2e (whole tensor rel %.2e)" % (key_abs, bias_whole)
              if family == "gpt2" else "",
              adam_err, moved, (size + 1023) // 1024))
    if not ok:
        sys.exit("%s: float32 run differs from float64 beyond the C test's budgets" % name)
    return size


def fixtures_main(doc, kind, fixtures, build):
    """The command line the trainers' fixture scripts share: --out-root, then
    build(out_root, fixture) for each fixture (returning its bytes), single
    threaded and seeded as the committed fixtures were made."""
    ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out-root", default=os.path.join(here, "..", "tests", "fixtures"))
    a = ap.parse_args()
    torch.set_num_threads(1)  # one reduction order, so reruns give the same bits
    torch.manual_seed(0)      # nothing should use the global generator
    total = sum(build(a.out_root, fx) for fx in fixtures)
    print("%s fixtures: %d folders, %d KB in all" % (kind, len(fixtures), (total + 1023) // 1024))


def main():
    fixtures_main(__doc__, "sft", FIXTURES, lambda out_root, fx: build(out_root, *fx))


if __name__ == "__main__":
    main()
