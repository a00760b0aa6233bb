#!/usr/bin/python3
"""make_reward_fixtures.py — PyTorch reference for 3 optimizer steps of a reward model.

Writes tests/fixtures/reward/<name>/ for
  llama_plain   the parity model llama_gqa as a LlamaForSequenceClassification,
                TRL's reward loss without centring
  llama_center  the same with center_rewards_coefficient 0.5
  gpt2_center   the parity model gpt2 as a GPT2ForSequenceClassification, centring 0.5
                (without centring the gradient of ln_f.bias is exactly 0 — a pair's two
                rows get opposite weights — and AdamW would follow its rounding noise)
each holding data.jsonl (6 pre-tokenized preference records {"prompt_ids",
"chosen_ids","rejected_ids"}), score0.safetensors (the starting score head,
score.weight [1, C], a fixed draw: the C test puts it on the parity model turned
into a reward model), args.json (settings and `cli`, the tuna reward options),
  expected.safetensors        the weights after step 3 (HF names: the base's
                              model.* / transformer.* and score.weight; no lm_head)
  expected_steps.safetensors  step_loss, step_accuracy (F32 [3])
and gpt2_center also start/ — a Hugging Face GPT2ForSequenceClassification folder
(config.json with num_labels 1, model.safetensors: transformer.* + score.weight)
as transformers' save_pretrained lays it out — with start_scores.safetensors:
the score of every row of data.jsonl (chosen_scores, rejected_scores, F32 [6])
under the starting weights, which tuna must reproduce loading start/ (1e-5).

Run with Debian's interpreter (torch + numpy):
    /usr/bin/python3 tools/make_reward_fixtures.py [--out-root tests/fixtures]

TRL semantics implemented (RewardTrainer.compute_loss, read from huggingface/trl):
  * rewards_chosen = model(prompt + chosen).logits, rewards_rejected likewise,
    where a …ForSequenceClassification model's logit is score(h) at the row's
    last token (HF: the last non-padding position; rows here are whole, so the
    last token): h is the final-norm hidden state (GPT-2: after ln_f; Llama:
    after model.norm), score an nn.Linear(C, 1, bias=False).
  * loss = -logsigmoid(rewards_chosen - rewards_rejected).mean()
           + center_rewards_coefficient * mean((rewards_chosen + rewards_rejected) ** 2)
  * accuracy (TRL's compute_accuracy) = share of pairs with chosen > rejected.
  * Batch 2 pairs per step in file order; the mean over the step's 2 pairs is
    one batch of the loss above (centring's mean too); step_loss is the loss
    at the weights before the update.
  * torch.optim.AdamW lr 1e-3 constant, betas 0.9/0.999, eps 1e-8, no weight
    decay, no clipping; every base tensor (lm_head dropped) and score.weight.

Precision: float64 reference from F32 inputs, stored F32; the same code in
float32 must agree within the C test's budgets (1e-4 relative L2 per final
tensor, 1e-5 relative per step loss), checked here; worst figures printed.
Exception, as in make_sft_fixtures.py: the key third of GPT-2's c_attn.bias
has an exactly-zero gradient (softmax ignores q.b_k added to a whole row), so
AdamW steps it by rounding noise; it is left out of the comparison.
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

F64, F32 = torch.float64, torch.float32
REL_TENSOR, REL_LOSS = 1e-4, 1e-5
STEPS, BATCH, LR = 3, 2, 1e-3

# name, parity model, centring coefficient, data seed
FIXTURES = [("llama_plain", "llama_gqa", 0.0, 601),
            ("llama_center", "llama_gqa", 0.5, 602),
            ("gpt2_center", "gpt2", 0.5, 603)]


def make_pairs(seed, V):
    rng = random.Random(seed)
    recs = []
    for _ in range(STEPS * BATCH):
        p = [rng.randrange(3, V) for _ in range(rng.randrange(2, 9))]
        c = [rng.randrange(3, V) for _ in range(rng.randrange(2, 11))]
        r = [rng.randrange(3, V) for _ in range(rng.randrange(2, 11))]
        recs.append({"prompt_ids": p, "chosen_ids": c, "rejected_ids": r})
    return recs


def hidden(P, family, cfg, pre, ids):
    """final-norm hidden states [T, C] of one row: the parity forwards with an
    identity head (GPT-2's head is the tied wte: identity rows appended to it,
    read past the vocabulary, so wte's gradient comes from the lookup alone)"""
    t = torch.tensor([ids])
    if family == "gpt2":
        C, V = cfg["n_embd"], cfg["vocab_size"]
        Q = dict(P)
        wte = P[pre + "wte.weight"]
        Q[pre + "wte.weight"] = torch.cat([wte, torch.eye(C, dtype=wte.dtype)])
        return mpf.gpt2_forward(Q, cfg, pre, t)[0][:, V:]
    C = cfg["hidden_size"]
    Q = dict(P)
    Q["lm_head.weight"] = torch.eye(C, dtype=P["model.embed_tokens.weight"].dtype)
    return mpf.llama_forward(Q, dict(cfg, tie_word_embeddings=False), t)[0]


def score(P, family, cfg, pre, ids):
    return hidden(P, family, cfg, pre, ids)[-1] @ P["score.weight"][0]


def train(W0, names, family, cfg, pre, recs, center, dtype):
    T = {n: W0[n].to(dtype).clone().requires_grad_(True) for n in names}
    opt = torch.optim.AdamW([T[n] for n in names], lr=LR, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    losses, accs = [], []
    for s in range(STEPS):
        opt.zero_grad(set_to_none=True)
        batch = recs[s * BATCH:(s + 1) * BATCH]
        rc = torch.stack([score(T, family, cfg, pre, r["prompt_ids"] + r["chosen_ids"]) for r in batch])
        rr = torch.stack([score(T, family, cfg, pre, r["prompt_ids"] + r["rejected_ids"]) for r in batch])
        loss = -torch.nn.functional.logsigmoid(rc - rr).mean()
        if center:
            loss = loss + center * torch.mean((rc + rr) ** 2)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        accs.append(float((rc > rr).to(F64).mean()))
    return {n: T[n].detach() for n in names}, losses, accs


def seqcls_config(cfg, family):
    c = dict(cfg)
    c["architectures"] = ["GPT2ForSequenceClassification" if family == "gpt2" else "LlamaForSequenceClassification"]
    c["id2label"] = {"0": "LABEL_0"}
    c["label2id"] = {"LABEL_0": 0}
    return c


def build(out_root, fx):
    name, base, center, data_seed = fx
    _, seed, family, dt, cfg, pre = msf.parity_entry(base)
    pre = pre or ""
    d = os.path.join(out_root, "reward", name)
    os.makedirs(d, exist_ok=True)
    spec, W0 = msf.initial_weights(seed, family, cfg, pre)
    names = [n for n, _, _ in spec if n != "lm_head.weight"] + ["score.weight"]
    C = cfg["n_embd"] if family == "gpt2" else cfg["hidden_size"]
    g = torch.Generator().manual_seed(data_seed + 1000)
    W0["score.weight"] = 0.02 * torch.randn([1, C], generator=g, dtype=F32)
    mpf.write_safetensors(os.path.join(d, "score0.safetensors"), [("score.weight", "F32", W0["score.weight"].numpy())])
    recs = make_pairs(data_seed, cfg["vocab_size"])
    with open(os.path.join(d, "data.jsonl"), "w") as f:
        for r in recs:
            f.write(json.dumps(r) + "\n")
    cli = ["--steps", str(STEPS), "--batch", str(BATCH), "--micro-batch", "2", "--seq-len", "64", "--lr", "%g" % LR,
           "--schedule", "constant", "--warmup", "0", "--weight-decay", "0", "--grad-clip", "0", "--no-shuffle",
           "--seed", "0"]
    if center:
        cli += ["--center-rewards", "%g" % center]
    with open(os.path.join(d, "args.json"), "w") as f:
        json.dump({"base": base, "center_rewards": center, "steps": STEPS, "batch": BATCH, "lr": LR, "cli": cli},
                  f, indent=2, sort_keys=True)
        f.write("\n")
    if family == "gpt2":  # an HF folder as save_pretrained writes it, and its scores
        sd = os.path.join(d, "start")
        os.makedirs(sd, exist_ok=True)
        with open(os.path.join(sd, "config.json"), "w") as f:
            json.dump(seqcls_config(cfg, family), f, indent=2, sort_keys=True)
            f.write("\n")
        mpf.write_safetensors(os.path.join(sd, "model.safetensors"), [(n, "F32", W0[n].numpy()) for n in names])
        with torch.no_grad():
            P = {n: W0[n].to(F64) for n in names}
            sc = [float(score(P, family, cfg, pre, r["prompt_ids"] + r["chosen_ids"])) for r in recs]
            sr = [float(score(P, family, cfg, pre, r["prompt_ids"] + r["rejected_ids"])) for r in recs]
        mpf.write_safetensors(os.path.join(d, "start_scores.safetensors"),
                              [("chosen_scores", "F32", np.array(sc, dtype="<f4")),
                               ("rejected_scores", "F32", np.array(sr, dtype="<f4"))])
    Wf, losses, accs = train(W0, names, family, cfg, pre, recs, center, F64)
    W32, l32, _ = train(W0, names, family, cfg, pre, recs, center, F32)
    worst, wname = 0.0, ""
    for k in Wf:
        got, ref = W32[k], Wf[k]
        if family == "gpt2" and k.endswith("attn.c_attn.bias"):  # the key third: see the docstring
            keep = torch.cat((torch.arange(0, C), torch.arange(2 * C, 3 * C)))
            got, ref = got[keep], ref[keep]
        e = msf.rel_l2(got, ref)
        if e > worst:
            worst, wname = e, k
    loss_err = max(abs(x - y) / abs(y) for x, y in zip(l32, losses))
    moved = max(msf.rel_l2(Wf[k], W0[k]) for k in Wf)
    mpf.write_safetensors(os.path.join(d, "expected.safetensors"), [(n, "F32", mpf.f32(Wf[n])) for n in names])
    mpf.write_safetensors(os.path.join(d, "expected_steps.safetensors"),
                          [("step_loss", "F32", np.array(losses, dtype="<f4")),
                           ("step_accuracy", "F32", np.array(accs, dtype="<f4"))])
    size = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(d) for f in fs)
    print("%-13s loss %s  accuracy %s" % (name, " ".join("%.6f" % x for x in losses), accs))
    print("%-13s fp32 vs fp64: tensors rel %.2e (%s), loss rel %.2e; largest move rel %.4f; %d KB" % (
        "", worst, wname, loss_err, moved, (size + 1023) // 1024))
    if not (worst <= REL_TENSOR and loss_err <= REL_LOSS):
        sys.exit("%s: float32 run differs from float64 beyond the C test's budgets" % name)
    return size


def main():
    msf.fixtures_main(__doc__, "reward", FIXTURES, build)


if __name__ == "__main__":
    main()
