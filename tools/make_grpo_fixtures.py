#!/usr/bin/python3
"""make_grpo_fixtures.py — PyTorch reference for 3 optimizer steps of GRPO.

Writes tests/fixtures/grpo/<name>/ for the cases of FIXTURES (full fine-tuning
with each of TRL's loss types, and LoRA with num_iterations 2), all with
beta > 0, on the parity fixture `llama_gqa` (a tiny Llama, F32; tuna grpo
--model tests/fixtures/parity/llama_gqa, not copied here). Each folder holds
  completions.jsonl             the groups: {"prompt_ids","completion_ids","rewards"}
                                (G = 4 completions a line; one group has equal
                                rewards: zero advantage)
  args.json                     settings and `cli`, the tuna grpo options
  adapter0/                     LoRA runs: the starting adapter (A random, B zero)
  expected.safetensors          full: the weights after step 3
  expected/adapter_model.safetensors   LoRA: the adapter after step 3
  expected_steps.safetensors    step_loss, step_kl, step_clip (F32 [3]): the logged
                                loss, kl and clip_ratio/region_mean of each step

Run with Debian's interpreter (torch + numpy):
    /usr/bin/python3 tools/make_grpo_fixtures.py [--out-root tests/fixtures]

TRL semantics implemented (GRPOTrainer of trl >= 0.22: _generate_and_score_completions,
_compute_loss), the completions being given rather than generated:
  * advantages: A = r - mean(group); scale_rewards "group": / (std(group) + 1e-4),
    "batch": / (std(all the step's rewards) + 1e-4), "none": as is (torch.std,
    unbiased).
  * per-token log-probabilities of the completion tokens under the policy at
    temperature 1 (log_softmax of logits[:, :-1] gathered at ids[1:]).
  * old_per_token_logps: the policy's at generation time when num_iterations > 1
    (no gradient), else per_token_logps.detach(); a generation batch (batch
    groups) serves num_iterations consecutive optimizer steps.
  * coef_1 = exp(logp - old), coef_2 = clamp(coef_1, 1 - epsilon, 1 + epsilon_high),
    per_token_loss = -min(coef_1 A, coef_2 A) + beta (exp(ref - logp) - (ref - logp) - 1),
    ref = the starting model's log-probabilities (LoRA: the adapter disabled,
    i.e. the base).
  * loss over the completion tokens: grpo mean over sequences of sum / len;
    bnpo sum / total tokens; dr_grpo sum / (sequences * max_completion_length);
    dapo sum / total tokens of the generation batch. The micro-batch is the
    batch (one backward per step), where TRL's per-micro-batch grpo/bnpo equal
    tuna's whole-step aggregation.
  * clip_ratio/region_mean: share of completion tokens with (coef_1 < 1 - eps and
    A < 0) or (coef_1 > 1 + eps_high and A > 0); kl: mean per-token KL.
  * torch.optim.AdamW lr 1e-3 constant, betas 0.9/0.999, eps 1e-8, no weight decay,
    no clipping; full runs train every tensor, LoRA runs the adapter.

Precision: float64 reference from F32 inputs, stored F32; the same code in
float32 must agree within the C test's budgets (1e-4 relative L2 per final
tensor, 1e-5 per step loss relative to |loss| + 1e-2: a first step's loss
can be ~0 as the advantages of a group sum to 0), checked here; worst figures printed.
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
STEPS, BATCH, G, LR, MAX_NEW = 3, 2, 4, 1e-3, 12
TARGETS = ["q_proj", "v_proj"]

# name, method, loss type, scale_rewards, beta, epsilon, epsilon_high, num_iterations, data seed, temperature
FIXTURES = [("full_grpo", "full", "grpo", "group", 0.04, 0.2, 0.2, 1, 601, 1.0),
            ("full_bnpo", "full", "bnpo", "batch", 0.1, 0.2, 0.2, 1, 602, 1.0),
            ("full_dr_grpo", "full", "dr_grpo", "none", 0.1, 0.2, 0.2, 1, 603, 1.0),
            ("full_dapo", "full", "dapo", "group", 0.04, 0.2, 0.28, 2, 604, 1.0),
            ("lora_dapo", "lora", "dapo", "group", 0.1, 0.002, 0.003, 2, 605, 1.0),
            # TRL scores completions at the sampling temperature: logits / temperature
            ("full_dapo_t07", "full", "dapo", "group", 0.04, 0.2, 0.28, 2, 606, 0.7)]


def make_groups(seed, V, eos):
    rng = random.Random(seed)
    recs = []
    for i in range(STEPS * BATCH):
        p = [rng.randrange(3, V) for _ in range(rng.randrange(2, 7))]
        comps = []
        for _ in range(G):
            c = [rng.randrange(3, V) for _ in range(rng.randrange(1, MAX_NEW))]
            if rng.random() < 0.5:
                c.append(eos)  # ended by EOS (counted, as TRL's completion mask counts it)
            comps.append(c)
        rw = [round(rng.uniform(-1, 2), 3) for _ in range(G)]
        if i == 1:
            rw = [0.5] * G  # all equal: zero advantage, frac_reward_zero_std
        recs.append({"prompt_ids": p, "completion_ids": comps, "rewards": rw})
    return recs


def token_logps(P, cfg, prompt, comp, temperature=1.0):
    ids = torch.tensor([prompt + comp])
    logits = mpf.llama_forward(P, cfg, ids)[0] / temperature
    lsm = torch.log_softmax(logits[:-1], dim=-1)
    return lsm.gather(1, ids[0, 1:].unsqueeze(1)).squeeze(1)[len(prompt) - 1:]


def advantages(r, scale):
    r = torch.tensor(r, dtype=F64).view(-1, G)
    mean = r.mean(dim=1, keepdim=True)
    if scale == "group":
        std = r.std(dim=1, keepdim=True)
    elif scale == "batch":
        std = r.std().expand_as(r)
    a = r - mean
    if scale != "none":
        a = a / (std + 1e-4)
    return a.view(-1)


def step_loss(lps, olds, refs, adv, fx):
    _, _, kind, _, beta, eps, eps_h, _, _, _ = fx
    per_seq, tokens, kl_sum, clip = [], 0, 0.0, 0
    for lp, old, ref, a in zip(lps, olds, refs, adv):
        c1 = torch.exp(lp - old)
        c2 = torch.clamp(c1, 1 - eps, 1 + eps_h)
        ptl = -torch.min(c1 * a, c2 * a)
        kl = torch.exp(ref - lp) - (ref - lp) - 1
        ptl = ptl + beta * kl
        per_seq.append(ptl)
        tokens += len(lp)
        kl_sum += float(kl.sum())
        clip += int((((c1 < 1 - eps) & (a < 0)) | ((c1 > 1 + eps_h) & (a > 0))).sum())
    n = len(per_seq)
    if kind == "grpo":
        loss = sum(p.sum() / max(1, len(p)) for p in per_seq) / n
    elif kind == "dr_grpo":
        loss = sum(p.sum() for p in per_seq) / (n * MAX_NEW)
    else:  # bnpo, dapo: the step's (generation batch's) tokens
        loss = sum(p.sum() for p in per_seq) / max(1, tokens)
    return loss, kl_sum / tokens, clip / tokens


def train(W0, spec, cfg, recs, fx, dtype, A0=None, mods=None):
    method, mu = fx[1], fx[7]
    Wb = {n: W0[n].to(dtype) for n, _, _ in spec}
    if method == "full":
        T = {n: Wb[n].clone().requires_grad_(True) for n, _, _ in spec}
        params = [T[n] for n, _, _ in spec]
        weights = lambda: T
    else:
        T = {k: v.to(dtype).clone().requires_grad_(True) for k, v in A0}
        params = [T[k] for k, _ in A0]
        weights = lambda: mpe.effective_weights(Wb, T, "lora", "llama", mods)
    opt = torch.optim.AdamW(params, lr=LR, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    losses, kls, clips = [], [], []
    rows = olds = refs = adv = None
    for s in range(STEPS):
        if s % mu == 0:  # a new generation batch: the next BATCH groups
            g0 = (s // mu) * BATCH
            rows = [(r["prompt_ids"], c) for r in recs[g0:g0 + BATCH] for c in r["completion_ids"]]
            adv = advantages([x for r in recs[g0:g0 + BATCH] for x in r["rewards"]], fx[3]).to(dtype)
            with torch.no_grad():
                P = weights()
                olds = [token_logps(P, cfg, p, c, fx[9]) for p, c in rows] if mu > 1 else None
                refs = [token_logps(Wb, cfg, p, c, fx[9]) for p, c in rows]
        for p in params:
            p.grad = None
        P = weights()
        lps = [token_logps(P, cfg, p, c, fx[9]) for p, c in rows]
        old = olds if mu > 1 else [x.detach() for x in lps]
        loss, kl, clip = step_loss(lps, old, refs, adv, fx)
        loss.backward()
        opt.step()
        losses.append(float(loss))
        kls.append(kl)
        clips.append(clip)
    return {k: v.detach() for k, v in T.items()}, losses, kls, clips


def build(out_root, fx):
    name, method, kind, scale, beta, eps, eps_h, mu, data_seed, temperature = fx
    _, seed, family, dt, cfg, pre = msf.parity_entry("llama_gqa")
    d = os.path.join(out_root, "grpo", name)
    os.makedirs(d, exist_ok=True)
    spec, W0 = msf.initial_weights(seed, family, cfg, pre)
    base_dir = os.path.join(out_root, "parity", "llama_gqa")
    tmp = os.path.join(d, ".check.safetensors")
    mpf.write_safetensors(tmp, [(n, "F32", W0[n].numpy()) for n, _, _ in spec])
    with open(tmp, "rb") as f1, open(os.path.join(base_dir, "model.safetensors"), "rb") as f2:
        same = f1.read() == f2.read()
    os.remove(tmp)
    if not same:
        sys.exit("tests/fixtures/parity/llama_gqa is not the model this script trains; rerun make_parity_fixtures.py")
    recs = make_groups(data_seed, cfg["vocab_size"], cfg["eos_token_id"])
    with open(os.path.join(d, "completions.jsonl"), "w") as f:
        for r in recs:
            f.write(json.dumps(r) + "\n")
    cli = ["--method", method]
    A0 = mods = None
    if method == "lora":
        mods = mpe.target_modules(spec, TARGETS)
        g = torch.Generator().manual_seed(data_seed + 2000)
        A0 = []
        for mod, shape in mods:
            fout, fin = shape
            key = "base_model.model." + mod
            # B nonzero too, so the policy differs from the reference from step 1
            A0 += [(key + ".lora_A.weight", 0.05 * torch.randn([mpe.R, fin], generator=g, dtype=F32)),
                   (key + ".lora_B.weight", 0.05 * torch.randn([fout, mpe.R], generator=g, dtype=F32))]
        mpe.write_adapter(os.path.join(d, "adapter0"), mpe.adapter_config("lora", TARGETS, family, ".."), A0)
        cli += ["--adapter", "adapter0", "--lora-targets", ",".join(TARGETS)]
    cli += ["--loss-type", kind, "--scale-rewards", scale, "--beta", "%g" % beta, "--epsilon", "%g" % eps,
            "--epsilon-high", "%g" % eps_h, "--num-iterations", str(mu), "--num-generations", str(G),
            "--max-new-tokens", str(MAX_NEW), "--steps", str(STEPS), "--batch", str(BATCH), "--micro-batch", str(BATCH),
            "--lr", "%g" % LR, "--schedule", "constant", "--warmup", "0", "--weight-decay", "0", "--grad-clip", "0",
            "--seed", "0"]
    if temperature != 1.0:
        cli += ["--temperature", "%g" % temperature]
    with open(os.path.join(d, "args.json"), "w") as f:
        json.dump({"method": method, "loss_type": kind, "scale_rewards": scale, "beta": beta, "epsilon": eps,
                   "epsilon_high": eps_h, "num_iterations": mu, "steps": STEPS, "batch": BATCH, "G": G, "lr": LR,
                   "cli": cli}, f, indent=2, sort_keys=True)
        f.write("\n")
    Wf, losses, kls, clips = train(W0, spec, cfg, recs, fx, F64, A0, mods)
    W32, l32, _, c32 = train(W0, spec, cfg, recs, fx, F32, A0, mods)
    worst, wname = 0.0, ""
    for k in Wf:
        e = msf.rel_l2(W32[k], Wf[k])
        if e > worst:
            worst, wname = e, k
    loss_err = max(abs(x - y) / (abs(y) + 1e-2) for x, y in zip(l32, losses))  # step 1's loss can be ~0
    start = W0 if method == "full" else dict(A0)
    moved = max(msf.rel_l2(Wf[k], start[k]) for k in Wf)
    if method == "full":
        mpf.write_safetensors(os.path.join(d, "expected.safetensors"), [(n, "F32", mpf.f32(Wf[n])) for n, _, _ in spec])
    else:
        mpe.write_adapter(os.path.join(d, "expected"), mpe.adapter_config("lora", TARGETS, family, ".."),
                          [(k, Wf[k]) for k, _ in A0])
    mpf.write_safetensors(os.path.join(d, "expected_steps.safetensors"),
                          [("step_loss", "F32", np.array(losses, dtype="<f4")),
                           ("step_kl", "F32", np.array(kls, dtype="<f4")),
                           ("step_clip", "F32", np.array(clips, dtype="<f4"))])
    size = mpe.dir_size(d)
    print("%-13s loss %s  kl %s  clip %s" % (name, " ".join("%.6f" % x for x in losses), " ".join("%.3g" % x for x in kls),
                                            " ".join("%.3f" % x for x in clips)))
    print("%-13s fp32 vs fp64: tensors rel %.2e (%s), loss rel %.2e, clip %s; largest move rel %.4f; %d KB" % (
        "", worst, wname, loss_err, "same" if c32 == clips else "DIFFERENT", moved, (size + 1023) // 1024))
    if not (worst <= REL_TENSOR and loss_err <= REL_LOSS and c32 == clips):
        sys.exit("%s: float32 run differs from float64 beyond the C test's budgets" % name)
    return size


def main():
    msf.fixtures_main(__doc__, "grpo", FIXTURES, build)


if __name__ == "__main__":
    main()
