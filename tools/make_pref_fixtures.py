#!/usr/bin/python3
"""make_pref_fixtures.py — PyTorch reference for 3 optimizer steps of ORPO, SimPO and KTO.

Writes tests/fixtures/pref/<name>/ for
  orpo_full        full fine-tuning, `tuna dpo --loss orpo`, beta (TRL's lambda) 0.1
  simpo_full       full, `tuna dpo --loss simpo`, beta 2, gamma 0.5, cpo_alpha 0
  simpo_cpo_full   full, simpo with cpo_alpha 1 (TRL's CPO-SimPO) and label smoothing 0.1
  kto_full         full, `tuna kto`, beta 0.1, desirable weight 1, undesirable 1.5
  kto_lora         LoRA r=4 alpha=8 on q_proj,v_proj, `tuna kto`, beta 0.5
on the parity fixture `llama_gqa` (tests/fixtures/parity/llama_gqa, not
copied), each holding data.jsonl (pre-tokenized records: preference
{"prompt_ids","chosen_ids","rejected_ids"}, or KTO
{"prompt_ids","completion_ids","label"}), args.json (settings and `cli`,
the tuna options), the LoRA run's adapter0/ (A random, B zero, as PEFT
initialises it) and
  expected.safetensors                 full: the weights after step 3
  expected/adapter_model.safetensors   LoRA: the adapter after step 3
  expected_steps.safetensors           step_loss, step_a, step_b (F32 [3]):
        orpo: loss, nll_loss, log_odds_chosen; simpo: loss, margin, nll_loss;
        kto: loss, kl, rewards/chosen

Run with Debian's interpreter (torch + numpy):
    /usr/bin/python3 tools/make_pref_fixtures.py [--out-root tests/fixtures]

TRL semantics implemented (written from huggingface/trl's trainers):
  * A response's log-probability: logits[:, :-1] scored against ids[1:] on the
    response positions (prompt masked). ORPO and SimPO AVERAGE it over the
    response's tokens (ORPOTrainer/CPOTrainer get_batch_logps with
    average_log_prob=True); KTO SUMS it (KTOTrainer.get_batch_logps).
  * NLL: cross-entropy mean over the batch's chosen sequences' tokens:
    ORPOTrainer.concatenated_forward scores the whole chosen sequence, prompt
    included (its labels are concatenated_input_ids; TRL PRs #1516 and #2527:
    the original ORPO code's default), CPOTrainer.concatenated_forward the
    chosen responses only (concatenated_labels).
  * ORPO (ORPOTrainer.odds_ratio_loss): log_odds = (pc - pr) -
    (log1p(-exp(pc)) - log1p(-exp(pr))); loss = NLL - mean(beta logsigmoid(log_odds)).
  * SimPO (CPOTrainer.cpo_loss, loss_type "simpo"): logits = (pc - pr) - gamma / beta;
    losses = -(1-ls) logsigmoid(beta logits) - ls logsigmoid(-beta logits);
    loss = mean(losses) + cpo_alpha NLL.
  * KTO (KTOTrainer: _get_kl_dataset, forward, kto_loss): the KL row of item i
    is its prompt with the previous completion of its chunk of `batch`
    consecutive items (the first takes the chunk's last); the KL rows' policy
    log-probabilities under torch.no_grad; kl = mean(policy_KL - ref_KL)
    clamped at 0; desirable 1 - sigmoid(beta ((pc - rc) - kl)), undesirable
    1 - sigmoid(beta (kl - (pc - rc))), times the weights, mean over the items.
    Reference log-probabilities computed once from the starting weights
    (LoRA: the base with the starting adapter, whose B is zero).
  * Batch 4 per step in file order, one micro-batch (micro-batch = batch, so
    TRL's per-micro-batch NLL and KL are the step's).
  * torch.optim.AdamW lr 1e-3 constant, betas 0.9/0.999, eps 1e-8, no weight
    decay, no clipping; full runs train every tensor, LoRA runs the adapter.
    orpo_full uses eps 1e-6: with the prompt in its NLL a few weights get
    gradients of about 1e-8, where AdamW's first step g / (|g| + eps) turns
    float32's last-bit differences into 1e-4 of the learning rate (measured:
    one gate_proj weight, 8.5e-5 relative L2 for its tensor); a larger eps
    bounds that sensitivity by |error in g| / eps.

Precision: float64 reference from F32 inputs, stored F32; the same code in
float32 must agree within the C test's budgets (1e-4 relative L2 per final
tensor, 1e-5 relative per step loss), checked here; worst figures printed.
"""
import json
import os
import random
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_parity_fixtures as mpf  # noqa: E402  (sets the default dtype to float64)
import make_sft_fixtures as msf     # noqa: E402
import make_peft_fixtures as mpe    # noqa: E402

F64, F32 = torch.float64, torch.float32
REL_TENSOR, REL_LOSS = 1e-4, 1e-5
STEPS, BATCH, LR = 3, 4, 1e-3
TARGETS = ["q_proj", "v_proj"]

# name, method, loss, settings, data seed
FIXTURES = [("orpo_full", "full", "orpo", {"beta": 0.1, "eps": 1e-6}, 601),
            ("simpo_full", "full", "simpo", {"beta": 2.0, "gamma": 0.5, "alpha": 0.0, "ls": 0.0}, 602),
            ("simpo_cpo_full", "full", "simpo", {"beta": 2.0, "gamma": 0.5, "alpha": 1.0, "ls": 0.1}, 603),
            ("kto_full", "full", "kto", {"beta": 0.1, "wd": 1.0, "wu": 1.5}, 604),
            ("kto_lora", "lora", "kto", {"beta": 0.5, "wd": 1.0, "wu": 1.0}, 605)]


def make_records(kind, seed, V):
    rng = random.Random(seed)
    seq = lambda lo, hi: [rng.randrange(3, V) for _ in range(rng.randrange(lo, hi))]
    recs = []
    for i in range(STEPS * BATCH):
        if kind == "kto":
            # both labels in every step; the file order is the training order
            recs.append({"prompt_ids": seq(2, 9), "completion_ids": seq(2, 11), "label": (i * 7 + seed) % 3 != 0})
        else:
            recs.append({"prompt_ids": seq(2, 9), "chosen_ids": seq(2, 11), "rejected_ids": seq(2, 11)})
    return recs


def token_logps(P, cfg, prompt, resp, whole=False):
    """log-probabilities of resp's tokens after prompt (whole: of every
    token after the first, prompt included)"""
    ids = torch.tensor([prompt + resp])
    logits = mpf.llama_forward(P, cfg, ids)[0]
    lsm = torch.log_softmax(logits[:-1], dim=-1)
    tok = lsm.gather(1, ids[0, 1:].unsqueeze(1)).squeeze(1)
    return tok if whole else tok[len(prompt) - 1:]


def kl_completion(recs, i):
    """TRL _get_kl_dataset: completions rolled by one within chunks of BATCH"""
    c0 = i - i % BATCH
    c1 = min(c0 + BATCH, len(recs))
    return recs[i - 1 if i > c0 else c1 - 1]["completion_ids"]


def paired_step(P, cfg, batch, kind, st):
    """ORPO / SimPO loss of one batch of pairs, and its reported values"""
    pcs, prs, nll_sum, nll_n = [], [], 0.0, 0
    for r in batch:
        # ORPO's NLL: the whole chosen sequence (TRL's ORPOTrainer labels are
        # concatenated_input_ids, prompt included); CPO's: the chosen response
        # (concatenated_labels)
        whole = token_logps(P, cfg, r["prompt_ids"], r["chosen_ids"], whole=True)
        tc = whole[len(r["prompt_ids"]) - 1:]
        tr = token_logps(P, cfg, r["prompt_ids"], r["rejected_ids"])
        pcs.append(tc.mean())
        prs.append(tr.mean())
        nll_part = whole if kind == "orpo" else tc
        nll_sum = nll_sum - nll_part.sum()
        nll_n += len(nll_part)
    pc, pr = torch.stack(pcs), torch.stack(prs)
    nll = nll_sum / nll_n
    beta = st["beta"]
    if kind == "orpo":
        log_odds = (pc - pr) - (torch.log1p(-torch.exp(pc)) - torch.log1p(-torch.exp(pr)))
        losses = beta * F.logsigmoid(log_odds)
        loss = nll - losses.mean()
        return loss, [float(nll), float(log_odds.mean())]
    logits = (pc - pr) - st["gamma"] / beta
    ls = st["ls"]
    losses = -F.logsigmoid(beta * logits) * (1 - ls) - F.logsigmoid(-beta * logits) * ls
    loss = losses.mean() + st["alpha"] * nll
    margin = float((beta * pc - beta * pr).mean())
    return loss, [margin, float(nll)]


def kto_step(P, cfg, recs, idx, ref, st):
    """KTO loss of items idx, and its reported values"""
    pcs, pkl = [], []
    for i in idx:
        r = recs[i]
        pcs.append(token_logps(P, cfg, r["prompt_ids"], r["completion_ids"]).sum())
        with torch.no_grad():
            pkl.append(token_logps(P, cfg, r["prompt_ids"], kl_completion(recs, i)).sum())
    pc = torch.stack(pcs)
    rc = torch.stack([ref[i][0] for i in idx])
    kl = (torch.stack(pkl) - torch.stack([ref[i][1] for i in idx])).mean().clamp(min=0)
    beta = st["beta"]
    lab = torch.tensor([recs[i]["label"] for i in idx])
    logr = pc - rc
    ch = 1 - torch.sigmoid(beta * (logr - kl))
    rj = 1 - torch.sigmoid(beta * (kl - logr))
    losses = torch.cat((st["wd"] * ch[lab], st["wu"] * rj[~lab]), 0)
    rw_ch = float((beta * logr.detach()[lab]).mean()) if lab.any() else 0.0
    return losses.mean(), [float(kl), rw_ch]


def train(W0, spec, cfg, recs, fx, dtype, A0=None, mods=None):
    name, method, kind, st, _ = fx
    Wb = {n: W0[n].to(dtype) for n, _, _ in spec}
    if method == "full":
        T = {n: Wb[n].clone().requires_grad_(True) for n, _, _ in spec}
        params = [T[n] for n, _, _ in spec]
        weights = lambda: T
    else:
        T = {k: v.to(dtype).clone().requires_grad_(True) for k, v in A0}
        params = [T[k] for k, _ in A0]
        weights = lambda: mpe.effective_weights(Wb, T, "lora", "llama", mods)
    ref = None
    if kind == "kto":  # reference log-probabilities, once, at the start
        with torch.no_grad():
            P = weights()
            ref = [(token_logps(P, cfg, r["prompt_ids"], r["completion_ids"]).sum(),
                    token_logps(P, cfg, r["prompt_ids"], kl_completion(recs, i)).sum()) for i, r in enumerate(recs)]
    opt = torch.optim.AdamW(params, lr=LR, betas=(0.9, 0.999), eps=st.get("eps", 1e-8), weight_decay=0.0)
    rows = []
    for s in range(STEPS):
        for p in params:
            p.grad = None
        idx = list(range(s * BATCH, (s + 1) * BATCH))
        P = weights()
        if kind == "kto":
            loss, extra = kto_step(P, cfg, recs, idx, ref, st)
        else:
            loss, extra = paired_step(P, cfg, [recs[i] for i in idx], kind, st)
        loss.backward()
        opt.step()
        rows.append([loss.item()] + extra)
    return {k: v.detach() for k, v in T.items()}, rows


def cli_of(fx, method):
    name, method, kind, st, _ = fx
    cli = ["--method", method]
    if method == "lora":
        cli += ["--adapter", "adapter0", "--lora-targets", ",".join(TARGETS)]
    cli += ["--beta", "%g" % st["beta"]]
    if kind == "kto":
        cli += ["--desirable-weight", "%g" % st["wd"], "--undesirable-weight", "%g" % st["wu"]]
    else:
        cli += ["--loss", kind]
    if kind == "simpo":
        cli += ["--simpo-gamma", "%g" % st["gamma"], "--cpo-alpha", "%g" % st["alpha"]]
        if st["ls"]:
            cli += ["--label-smoothing", "%g" % st["ls"]]
    cli += ["--steps", str(STEPS), "--batch", str(BATCH), "--micro-batch", str(BATCH), "--seq-len", "64", "--lr",
            "%g" % LR, "--schedule", "constant", "--warmup", "0", "--weight-decay", "0", "--grad-clip", "0",
            "--no-shuffle", "--seed", "0"]
    if "eps" in st:
        cli += ["--eps", "%g" % st["eps"]]
    return cli


def build(out_root, fx):
    name, method, kind, st, data_seed = fx
    _, seed, family, dt, cfg, pre = msf.parity_entry("llama_gqa")
    d = os.path.join(out_root, "pref", name)
    os.makedirs(d, exist_ok=True)
    spec, W0 = msf.initial_weights(seed, family, cfg, pre)
    tmp = os.path.join(d, ".check.safetensors")
    mpf.write_safetensors(tmp, [(n, "F32", W0[n].numpy()) for n, _, _ in spec])
    with open(tmp, "rb") as f1, open(os.path.join(out_root, "parity", "llama_gqa", "model.safetensors"), "rb") as f2:
        same = f1.read() == f2.read()
    os.remove(tmp)
    if not same:
        sys.exit("tests/fixtures/parity/llama_gqa is not the model this script trains; rerun make_parity_fixtures.py")
    recs = make_records(kind, data_seed, cfg["vocab_size"])
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
        mpe.write_adapter(os.path.join(d, "adapter0"), mpe.adapter_config("lora", TARGETS, family, ".."), A0)
    with open(os.path.join(d, "args.json"), "w") as f:
        json.dump({"command": "kto" if kind == "kto" else "dpo", "method": method, "loss": kind, "settings": st,
                   "steps": STEPS, "batch": BATCH, "micro_batch": BATCH, "lr": LR, "cli": cli_of(fx, method)},
                  f, indent=2, sort_keys=True)
        f.write("\n")
    Wf, rows = train(W0, spec, cfg, recs, fx, F64, A0, mods)
    W32, rows32 = train(W0, spec, cfg, recs, fx, F32, A0, mods)
    worst, wname = 0.0, ""
    for k in Wf:
        e = msf.rel_l2(W32[k], Wf[k])
        if e > worst:
            worst, wname = e, k
    loss_err = max(abs(x[0] - y[0]) / abs(y[0]) for x, y in zip(rows32, rows))
    start = W0 if method == "full" else dict(A0)
    moved = max(msf.rel_l2(Wf[k], start[k]) for k in Wf)
    if method == "full":
        mpf.write_safetensors(os.path.join(d, "expected.safetensors"), [(n, "F32", mpf.f32(Wf[n])) for n, _, _ in spec])
    else:
        mpe.write_adapter(os.path.join(d, "expected"), mpe.adapter_config("lora", TARGETS, family, ".."),
                          [(k, Wf[k]) for k, _ in A0])
    cols = np.array(rows, dtype="<f4")
    mpf.write_safetensors(os.path.join(d, "expected_steps.safetensors"),
                          [("step_loss", "F32", cols[:, 0].copy()), ("step_a", "F32", cols[:, 1].copy()),
                           ("step_b", "F32", cols[:, 2].copy())])
    size = mpe.dir_size(d)
    print("%-15s steps %s" % (name, "  ".join(" ".join("%.6f" % v for v in r) for r in rows)))
    print("%-15s fp32 vs fp64: tensors rel %.2e (%s), loss rel %.2e; largest move rel %.4f; %d KB" % (
        "", worst, wname, loss_err, moved, (size + 1023) // 1024))
    if not (worst <= REL_TENSOR and loss_err <= REL_LOSS):
        sys.exit("%s: float32 run differs from float64 beyond the C test's budgets" % name)
    return size


def main():
    msf.fixtures_main(__doc__, "pref", FIXTURES, build)


if __name__ == "__main__":
    main()
