#!/usr/bin/python3
"""make_dpo_fixtures.py — PyTorch reference for 3 optimizer steps of DPO.

Writes tests/fixtures/dpo/<name>/ for
  full_sigmoid  full fine-tuning, sigmoid loss, beta 0.1, reference = the start
  full_ipo      full fine-tuning, IPO, beta 0.5, reference = ref/ (another model,
                given with --ref-model)
  lora_sigmoid  LoRA r=4 alpha=8 on q_proj,v_proj, sigmoid, label smoothing 0.1
  lora_ipo      LoRA, IPO, beta 0.5
on the parity fixture `llama_gqa` (a tiny Llama, F32; tuna dpo --model
tests/fixtures/parity/llama_gqa, not copied here), each holding data.jsonl (6 pre-tokenized preference records
{"prompt_ids","chosen_ids","rejected_ids"}), args.json (settings and `cli`,
the tuna dpo options), the LoRA runs' adapter0/ (the starting adapter: A
random, B zero, as PEFT initialises it, so base + adapter0 = the base:
the reference is the base with the adapter switched off) and
  expected.safetensors          full: the weights after step 3 (model names)
  expected/adapter_model.safetensors   LoRA: the adapter after step 3
  expected_steps.safetensors    step_loss, step_margin, step_accuracy (F32 [3])

Run with Debian's interpreter (torch + numpy):
    /usr/bin/python3 tools/make_dpo_fixtures.py [--out-root tests/fixtures]

TRL semantics implemented (DPOTrainer, read from huggingface/trl):
  * A pair's sequences are prompt + chosen and prompt + rejected; logits[:, :-1]
    are scored against ids[1:] on the response positions only; a response's
    log-probability is the SUM of its tokens' log-softmax (IPO: divided by the
    response's token count, TRL's `if loss_type == "ipo": logps / length`).
  * h = (pi_c - pi_r) - (ref_c - ref_r);
    sigmoid: -(1 - e) logsigmoid(beta h) - e logsigmoid(-beta h)
    ipo:     (h - 1 / (2 beta))^2
    rewards: beta (pi - ref) per response; accuracy = chosen reward > rejected.
  * Reference log-probabilities computed once from the reference weights
    (TRL's precompute_ref_log_probs; for LoRA the adapter-disabled base).
  * Batch 2 pairs per step in file order, micro-batch 1 pair: the micro-batch
    loss is its pair's loss, backward of loss / 2 (HF Trainer divides by the
    accumulation steps), so the step's gradient is that of the mean over its
    2 pairs; step_loss is that mean at the weights before the update.
  * torch.optim.AdamW lr 1e-3 constant, betas 0.9/0.999, eps 1e-8, no weight
    decay, no clipping; full runs train every tensor, LoRA runs the adapter.

Precision: float64 reference from F32 inputs, stored F32; the same code in
float32 must agree within the C test's budgets (1e-4 relative L2 per final
tensor, 1e-5 relative per step loss), checked here; worst figures printed.
Deterministic: fixed seeds, one thread.
"""
import json
import os
import random
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_parity_fixtures as mpf  # noqa: E402  (sets the default dtype to float64)
import make_sft_fixtures as msf     # noqa: E402
import make_peft_fixtures as mpe    # noqa: E402

F64, F32 = torch.float64, torch.float32
REL_TENSOR, REL_LOSS = 1e-4, 1e-5
STEPS, BATCH, LR = 3, 2, 1e-3
TARGETS = ["q_proj", "v_proj"]

# name, method, loss, beta, label smoothing, separate reference model, data seed
FIXTURES = [("full_sigmoid", "full", "sigmoid", 0.1, 0.0, False, 501),
            ("full_ipo", "full", "ipo", 0.5, 0.0, True, 502),
            ("lora_sigmoid", "lora", "sigmoid", 0.1, 0.1, False, 503),
            ("lora_ipo", "lora", "ipo", 0.5, 0.0, False, 504)]


def make_pairs(seed, V):
    rng = random.Random(seed)
    recs = []
    for _ in range(STEPS * BATCH):
        p = [rng.randrange(3, V) for _ in range(rng.randrange(2, 9))]
        c = [rng.randrange(3, V) for _ in range(rng.randrange(2, 11))]
        r = [rng.randrange(3, V) for _ in range(rng.randrange(2, 11))]
        recs.append({"prompt_ids": p, "chosen_ids": c, "rejected_ids": r})
    return recs


def logp(P, cfg, prompt, resp, avg):
    ids = torch.tensor([prompt + resp])
    logits = mpf.llama_forward(P, cfg, ids)[0]
    lsm = torch.log_softmax(logits[:-1], dim=-1)
    tgt = ids[0, 1:]
    tok = lsm.gather(1, tgt.unsqueeze(1)).squeeze(1)[len(prompt) - 1:]
    s = tok.sum()
    return s / len(resp) if avg else s


def pair_loss(h, kind, beta, ls):
    if kind == "ipo":
        return (h - 1.0 / (2 * beta)) ** 2
    return -(1 - ls) * torch.nn.functional.logsigmoid(beta * h) - ls * torch.nn.functional.logsigmoid(-beta * h)


def train(W0, Wref, spec, cfg, recs, fx, dtype, A0=None, mods=None):
    name, method, kind, beta, ls, _, _ = fx
    avg = kind == "ipo"
    Wb = {n: W0[n].to(dtype) for n, _, _ in spec}
    with torch.no_grad():  # reference log-probabilities, once
        Pr = {n: Wref[n].to(dtype) for n, _, _ in spec}
        ref = [(logp(Pr, cfg, r["prompt_ids"], r["chosen_ids"], avg),
                logp(Pr, cfg, r["prompt_ids"], r["rejected_ids"], avg)) for r in recs]
    if method == "full":
        T = {n: Wb[n].clone().requires_grad_(True) for n, _, _ in spec}
        params = [T[n] for n, _, _ in spec]
        weights = lambda: T
    else:
        T = {k: v.to(dtype).clone().requires_grad_(True) for k, v in A0}
        params = [T[k] for k, _ in A0]
        weights = lambda: mpe.effective_weights(Wb, T, "lora", "llama", mods)
    opt = torch.optim.AdamW(params, lr=LR, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    losses, margins, accs = [], [], []
    for s in range(STEPS):
        for p in params:
            p.grad = None
        loss = margin = acc = 0.0
        for i in range(s * BATCH, (s + 1) * BATCH):
            r = recs[i]
            P = weights()
            pc = logp(P, cfg, r["prompt_ids"], r["chosen_ids"], avg)
            pr = logp(P, cfg, r["prompt_ids"], r["rejected_ids"], avg)
            h = (pc - pr) - (ref[i][0] - ref[i][1])
            lo = pair_loss(h, kind, beta, ls)
            (lo / BATCH).backward()
            rc, rr = beta * float(pc - ref[i][0]), beta * float(pr - ref[i][1])
            loss += lo.item() / BATCH
            margin += (rc - rr) / BATCH
            acc += (1.0 if rc > rr else 0.0) / BATCH
        opt.step()
        losses.append(loss)
        margins.append(margin)
        accs.append(acc)
    out = {k: v.detach() for k, v in T.items()}
    return out, losses, margins, accs


def build(out_root, fx):
    name, method, kind, beta, ls, sep_ref, data_seed = fx
    _, seed, family, dt, cfg, pre = msf.parity_entry("llama_gqa")
    d = os.path.join(out_root, "dpo", name)
    os.makedirs(d, exist_ok=True)
    spec, W0 = msf.initial_weights(seed, family, cfg, pre)
    # the model is the parity fixture itself (not copied): check it is these weights
    base_dir = os.path.join(out_root, "parity", "llama_gqa")
    tmp = os.path.join(d, ".check.safetensors")
    mpf.write_safetensors(tmp, [(n, "F32", W0[n].numpy()) for n, _, _ in spec])
    with open(tmp, "rb") as f1, open(os.path.join(base_dir, "model.safetensors"), "rb") as f2:
        same = f1.read() == f2.read()
    os.remove(tmp)
    if not same:
        sys.exit("tests/fixtures/parity/llama_gqa is not the model this script trains; rerun make_parity_fixtures.py")
    Wref = W0
    cli = ["--method", method]
    if sep_ref:
        g = torch.Generator().manual_seed(data_seed + 1000)
        Wref = {n: W0[n] + 0.01 * torch.randn(W0[n].shape, generator=g, dtype=F32) for n, _, _ in spec}
        rd = os.path.join(d, "ref")
        os.makedirs(rd, exist_ok=True)
        mpf.write_safetensors(os.path.join(rd, "model.safetensors"), [(n, "F32", Wref[n].numpy()) for n, _, _ in spec])
        with open(os.path.join(rd, "config.json"), "w") as f:
            json.dump(cfg, f, indent=2)
            f.write("\n")
        cli += ["--ref-model", "ref"]
    recs = make_pairs(data_seed, cfg["vocab_size"])
    with open(os.path.join(d, "data.jsonl"), "w") as f:
        for r in recs:
            f.write(json.dumps(r) + "\n")
    A0 = mods = None
    if method == "lora":
        mods = mpe.target_modules(spec, TARGETS)
        g = torch.Generator().manual_seed(data_seed + 2000)
        A0 = []
        for mod, shape in mods:
            fout, fin = shape
            key = "base_model.model." + mod
            A0 += [(key + ".lora_A.weight", 0.05 * torch.randn([mpe.R, fin], generator=g, dtype=F32)),
                   (key + ".lora_B.weight", torch.zeros([fout, mpe.R], dtype=F32))]
        acfg = mpe.adapter_config("lora", TARGETS, family, "..")
        mpe.write_adapter(os.path.join(d, "adapter0"), acfg, A0)
        cli += ["--adapter", "adapter0", "--lora-targets", ",".join(TARGETS)]
    cli += ["--loss", kind, "--beta", "%g" % beta]
    if ls:
        cli += ["--label-smoothing", "%g" % ls]
    cli += ["--steps", str(STEPS), "--batch", str(BATCH), "--micro-batch", "1", "--seq-len", "64", "--lr", "%g" % LR,
            "--schedule", "constant", "--warmup", "0", "--weight-decay", "0", "--grad-clip", "0", "--no-shuffle",
            "--seed", "0"]
    with open(os.path.join(d, "args.json"), "w") as f:
        json.dump({"method": method, "loss": kind, "beta": beta, "label_smoothing": ls, "separate_reference": sep_ref,
                   "steps": STEPS, "batch": BATCH, "micro_batch": 1, "lr": LR, "cli": cli}, f, indent=2, sort_keys=True)
        f.write("\n")

    Wf, losses, margins, accs = train(W0, Wref, spec, cfg, recs, fx, F64, A0, mods)
    W32, l32, _, _ = train(W0, Wref, spec, cfg, recs, fx, F32, A0, mods)
    worst, wname = 0.0, ""
    for k in Wf:
        e = msf.rel_l2(W32[k], Wf[k])
        if e > worst:
            worst, wname = e, k
    loss_err = max(abs(x - y) / abs(y) for x, y in zip(l32, losses))
    start = W0 if method == "full" else dict(A0)
    moved = max(msf.rel_l2(Wf[k], start[k]) for k in Wf)
    if method == "full":
        mpf.write_safetensors(os.path.join(d, "expected.safetensors"), [(n, "F32", mpf.f32(Wf[n])) for n, _, _ in spec])
    else:
        mpe.write_adapter(os.path.join(d, "expected"), mpe.adapter_config("lora", TARGETS, family, ".."),
                          [(k, Wf[k]) for k, _ in A0])
    mpf.write_safetensors(os.path.join(d, "expected_steps.safetensors"),
                          [("step_loss", "F32", np.array(losses, dtype="<f4")),
                           ("step_margin", "F32", np.array(margins, dtype="<f4")),
                           ("step_accuracy", "F32", np.array(accs, dtype="<f4"))])
    size = mpe.dir_size(d)
    print("%-13s loss %s  margin %s  accuracy %s" % (name, " ".join("%.6f" % x for x in losses),
                                                    " ".join("%.5f" % x for x in margins), accs))
    print("%-13s fp32 vs fp64: tensors rel %.2e (%s), loss rel %.2e; largest move rel %.4f; %d KB" % (
        "", worst, wname, loss_err, moved, (size + 1023) // 1024))
    if not (worst <= REL_TENSOR and loss_err <= REL_LOSS):
        sys.exit("%s: float32 run differs from float64 beyond the C test's budgets" % name)
    return size


def main():
    msf.fixtures_main(__doc__, "dpo", FIXTURES, build)


if __name__ == "__main__":
    main()
