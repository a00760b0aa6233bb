#!/usr/bin/python3
"""make_peft_fixtures.py — PyTorch references for LoRA, IA3 and NF4 (QLoRA).

Writes under tests/fixtures/peft/:
  llama_lora/  LoRA r=4 alpha=8 on q_proj,v_proj of the parity `llama_gqa` model
  gpt2_lora/   LoRA r=4 alpha=8 on c_attn (Conv1D) of the parity `gpt2` model
  llama_ia3/   IA3 (PEFT defaults for Llama: k_proj, v_proj, down_proj) on `llama_gqa`
  nf4/         bitsandbytes NF4 + double quantization of a few matrices

Run with Debian's interpreter (torch 1.13 + numpy):
    /usr/bin/python3 tools/make_peft_fixtures.py [--out-root tests/fixtures]

Training folders (llama_lora, gpt2_lora, llama_ia3) hold:
  config.json, model.safetensors  base model, F32, byte-identical to parity/<base>
  adapter0/adapter_config.json, adapter0/adapter_model.safetensors
                                  the starting adapter (PEFT file format)
  data.jsonl                      10 records, same format as tests/fixtures/sft
  args.json                       every setting + `cli` (tuna sft options)
  expected/adapter_config.json, expected/adapter_model.safetensors
                                  the adapter after step 5 (F32, same keys)
  expected_steps.safetensors      step_loss (F32 [5]), step_grad_norm (F32 [5],
                                  L2 over the adapter tensors), step_tokens (I32 [5])

Step semantics are those of make_sft_fixtures.py (imported; see its docstring):
batch 2 = two micro-batches of one record, records in file order, token-
normalised loss (CE sum / counted tokens of the step), torch.optim.AdamW
(betas 0.9/0.999, eps 1e-8), constant lr 1e-3, no warmup, weight decay 0,
no clipping. Only the adapter tensors are trained; the base is frozen.

PEFT semantics implemented (PEFT source read: src/peft/tuners/lora/layer.py,
src/peft/tuners/ia3/layer.py of huggingface/peft):
  * LoRA Linear (Llama q_proj/v_proj): y = W x + b + s * B(A(dropout(x))),
    lora_A.weight [r, in], lora_B.weight [out, r], s = lora_alpha / r
    (alpha / sqrt(r) with use_rslora). Dropout 0 here, so the forward equals
    x @ (W + s B A)^T exactly in real arithmetic; the reference uses that
    merged form (gradients dL/dA = s B^T G, dL/dB = s G A^T with G = dL/dW_eff,
    identical to the unmerged chain rule).
  * LoRA on GPT-2 Conv1D (c_attn, weight stored [in, out], y = x W + b): PEFT
    forces fan_in_fan_out=True for Conv1D, but lora_A / lora_B are still plain
    nn.Linear modules, so the saved tensors are lora_A.weight [r, in] and
    lora_B.weight [out, r] in the usual layout; only the *merged* delta is
    transposed (get_delta_weight = transpose(B @ A, fan_in_fan_out) * s, shape
    [in, out]). Forward: y = x W + b + s * (x A^T) B^T.
  * IA3 (PEFT defaults for Llama: target_modules k_proj, v_proj, down_proj;
    feedforward_modules down_proj). Non-feedforward: ia3_l shape [out, 1], the
    layer OUTPUT is scaled: y = (W x) * l (bias would be scaled too; Llama has
    none). Feedforward (down_proj): ia3_l shape [1, in], the INPUT is scaled:
    y = W (x * l). PEFT initialises l = 1; here l0 = 1 + 0.1 N(0,1) so that the
    start is not the identity.
  * Key names as PEFT's get_peft_model_state_dict writes them (adapter name
    removed): base_model.model.<module path>.lora_A.weight / .lora_B.weight /
    .ia3_l, e.g. base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight
    and base_model.model.transformer.h.0.attn.c_attn.lora_A.weight.
  * Starting LoRA adapter: A and B both 0.05 * N(0,1) (seeded), NOT PEFT's
    Kaiming-uniform A / zero B init, so that gradients reach A from step 1.

The script checks (check_unmerged_forms) that the folded forms give the same
outputs and gradients as the unmerged PEFT forwards, for all four layer kinds.

Precision: reference in float64 from the F32 base and F32 starting adapter,
stored F32. The script reruns the same code in float32 and fails unless every
final adapter tensor is within relative L2 1e-4 and every step loss within
relative 1e-5 of float64 (the C test's budgets); it prints the worst figures.

NF4 (nf4/nf4.safetensors), bitsandbytes' algorithm re-implemented in numpy
float32. Sources read (bitsandbytes-foundation/bitsandbytes):
  * csrc/kernels.cu  kQuantizeBlockwise (DATA_TYPE NF4, blocksize 64):
      absmax_b = max |x| over the block's valid elements (partial last block:
      only its n % 64 real elements; the load pads with 0, which cannot raise
      the max); the kernel stores absmax_b and multiplies by the fp32
      reciprocal: xn = x * (1.0f / absmax_b)   (NOT x / absmax_b);
      qvals[j] = dQuantizeNF4(x[2j]) << 4 | dQuantizeNF4(x[2j+1])
      -> element 2j goes in the HIGH nibble, 2j+1 in the LOW nibble; the byte
      count is (n + 1) / 2 (an odd n leaves the last low nibble = code of 0.0,
      i.e. 7; not exercised here, all sizes are even).
  * csrc/kernels.cu  dQuantizeNF4: a decision tree with strict `x > t` tests
      on 15 fp32 thresholds (midpoints of adjacent code values, listed below as
      NF4_THRESH); it equals q = #{t : xn > t}. Ties go to the LOWER code.
  * csrc/kernels.cu  dDequantizeNF4 / kDequantizeBlockwise: w = code[q] *
      absmax_b in fp32 (one rounding); NF4_CODE below is that table.
  * bitsandbytes/functional.py quantize_4bit(compress_statistics=True):
      offset = absmax.mean() (fp32 torch mean); absmax -= offset;
      qabsmax, state2 = quantize_blockwise(absmax, blocksize=256) with the
      default code create_dynamic_map(signed=True) (256 fp32 values, sorted).
      dequantize_4bit: absmax' = dequantize_blockwise(qabsmax, state2) + offset,
      i.e. code8[qa] * absmax2_c (fp32) + offset (fp32), then w = NF4_CODE[q] *
      absmax'.
  * csrc/kernels.cu  kQuantizeBlockwise (General8bit) + dQuantize<0>: per
      256-block absmax2_c = max |a|, an = a * (1.0f / absmax2_c), then the
      7-step binary search over the sorted code with the midpoint rule
      reproduced in quantize8_dynamic below (not argmin: identical except at
      exact midpoints, where this rule decides).
  Uncertain / not established from source with confidence:
  * The offset is a torch fp32 mean; its last bit depends on the summation
    order (torch CPU here; CUDA reductions may differ by an ulp). The fixture
    stores `offset`; a C test should use the stored value when comparing the
    8-bit codes and the dequantized weights, and compare its own mean with a
    1-ulp-ish tolerance.
  * Newer bitsandbytes CPU backends (pure torch / cpu_ops.cpp) may implement
    nearest-code search differently (e.g. argmin of |x - code|); they agree with
    the CUDA rule except at exact ties, which random data does not hit. The
    fixture follows the CUDA kernel.
  * Packing order was read from the current CUDA kernel source (and its SYCL
    port); older releases used the same expression.
"""
import argparse
import json
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_parity_fixtures as mpf  # noqa: E402  (sets the default dtype to float64)
import make_sft_fixtures as msf     # noqa: E402

F64, F32 = torch.float64, torch.float32
REL_TENSOR, REL_LOSS = 1e-4, 1e-5

COMMON = dict(msf.COMMON, **msf.CONSTANT)
R, ALPHA = 4, 8

# name, parity base, method, targets, data seed, adapter seed
FIXTURES = [("llama_lora", "llama_gqa", "lora", ["q_proj", "v_proj"], 401, 411),
            ("gpt2_lora", "gpt2", "lora", ["c_attn"], 402, 412),
            ("llama_ia3", "llama_gqa", "ia3", ["k_proj", "v_proj", "down_proj"], 403, 413)]
IA3_FF = ["down_proj"]


def target_modules(spec, targets):
    """Module paths (weight names without .weight) whose last component is a target."""
    out = []
    for n, shape, _ in spec:
        if n.endswith(".weight") and len(shape) == 2:
            mod = n[:-len(".weight")]
            if mod.split(".")[-1] in targets:
                out.append((mod, shape))
    return out


def make_adapter(method, mods, family, seed):
    """Returns ordered list of (peft key, float32 tensor)."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for mod, shape in mods:
        if family == "gpt2":
            fin, fout = shape          # Conv1D weight [in, out]
        else:
            fout, fin = shape          # nn.Linear weight [out, in]
        key = "base_model.model." + mod
        if method == "lora":
            A = 0.05 * torch.randn([R, fin], generator=gen, dtype=F32)
            B = 0.05 * torch.randn([fout, R], generator=gen, dtype=F32)
            out += [(key + ".lora_A.weight", A), (key + ".lora_B.weight", B)]
        else:
            ff = mod.split(".")[-1] in IA3_FF
            shp = [1, fin] if ff else [fout, 1]
            out.append((key + ".ia3_l", 1.0 + 0.1 * torch.randn(shp, generator=gen, dtype=F32)))
    return out


def effective_weights(Wb, ad, method, family, mods):
    """Base weights with the adapter folded in (differentiable in the adapter)."""
    P = dict(Wb)
    s = ALPHA / R
    for mod, _ in mods:
        key = "base_model.model." + mod
        W = Wb[mod + ".weight"]
        if method == "lora":
            delta = s * (ad[key + ".lora_B.weight"] @ ad[key + ".lora_A.weight"])  # [out, in]
            P[mod + ".weight"] = W + (delta.t() if family == "gpt2" else delta)
        else:
            P[mod + ".weight"] = W * ad[key + ".ia3_l"]  # [out,1] scales rows, [1,in] columns
    return P


def check_unmerged_forms():
    """Self-check: the folded weights used by the reference give the same
    outputs and gradients as PEFT's own (unmerged) layer forwards."""
    g = torch.Generator().manual_seed(7)
    rn = lambda *sh: torch.randn(list(sh), generator=g, dtype=F64)
    x, s = rn(5, 12), ALPHA / R
    cases = []
    W, b, A, B = rn(7, 12), rn(7), rn(R, 12), rn(7, R)        # nn.Linear [out,in]
    cases.append(((W, b, A, B), lambda W, b, A, B: x @ (W + s * B @ A).t() + b,
                  lambda W, b, A, B: x @ W.t() + b + s * ((x @ A.t()) @ B.t())))
    Wc, bc, Ac, Bc = rn(12, 7), rn(7), rn(R, 12), rn(7, R)    # Conv1D [in,out]
    cases.append(((Wc, bc, Ac, Bc), lambda W, b, A, B: x @ (W + (s * B @ A).t()) + b,
                  lambda W, b, A, B: x @ W + b + s * ((x @ A.t()) @ B.t())))
    lo, li = rn(7, 1), rn(1, 12)                               # IA3 vectors
    cases.append(((W, lo), lambda W, l: x @ (W * l).t(), lambda W, l: (x @ W.t()) * l.flatten()))
    cases.append(((W, li), lambda W, l: x @ (W * l).t(), lambda W, l: (x * l.flatten()) @ W.t()))
    for ts, merged, peft in cases:
        outs = []
        for f in (merged, peft):
            t = [v.clone().requires_grad_(True) for v in ts]
            y = f(*t)
            (y * torch.sin(torch.arange(y.numel(), dtype=F64).reshape(y.shape))).sum().backward()
            outs.append([y.detach()] + [v.grad for v in t])
        for u, v in zip(*outs):
            assert torch.allclose(u, v, rtol=1e-12, atol=1e-12)


def train(W0, spec, family, cfg, pre, recs, a, A0, method, mods, dtype):
    Wb = {n: W0[n].to(dtype) for n, _, _ in spec}
    ad = {k: v.to(dtype).clone().requires_grad_(True) for k, v in A0}
    params = [ad[k] for k, _ in A0]
    opt = torch.optim.AdamW(params, lr=a["lr"], betas=tuple(a["betas"]), eps=a["eps"],
                            weight_decay=a["weight_decay"])
    S, B = a["steps"], a["batch"]
    losses, norms, toks = [], [], []
    for s in range(S):
        step_recs = recs[s * B:(s + 1) * B]
        N = sum(msf.counted(r) for r in step_recs)
        for p in params:
            p.grad = None
        loss = 0.0
        for r in step_recs:
            P = effective_weights(Wb, ad, method, family, mods)
            ids = torch.tensor([r["input_ids"][:a["seq_len"]]])
            lab = torch.tensor([r["labels"][:a["seq_len"]]])
            logits = mpf.gpt2_forward(P, cfg, pre, ids) if family == "gpt2" else \
                mpf.llama_forward(P, cfg, ids)
            V = logits.shape[-1]
            ce = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, V), lab[:, 1:].reshape(-1),
                                                   ignore_index=-100, reduction="sum")
            (ce / N).backward()
            loss += ce.item() / N
        norms.append(float(torch.norm(torch.stack([torch.norm(p.grad, 2) for p in params]), 2)))
        for g in opt.param_groups:
            g["lr"] = a["lr"] * msf.lr_lambda(a["schedule"], s, a["warmup"], S)
        opt.step()
        losses.append(loss)
        toks.append(N)
    return {k: ad[k].detach() for k, _ in A0}, losses, norms, toks


def adapter_config(method, targets, family, base):
    if method == "lora":
        c = {"alpha_pattern": {}, "base_model_name_or_path": base, "bias": "none",
             "fan_in_fan_out": family == "gpt2", "inference_mode": True,
             "init_lora_weights": True, "lora_alpha": ALPHA, "lora_dropout": 0.0,
             "modules_to_save": None, "peft_type": "LORA", "r": R, "rank_pattern": {},
             "target_modules": targets, "task_type": "CAUSAL_LM", "use_dora": False,
             "use_rslora": False}
    else:
        c = {"base_model_name_or_path": base, "fan_in_fan_out": False,
             "feedforward_modules": IA3_FF, "inference_mode": True, "init_ia3_weights": True,
             "modules_to_save": None, "peft_type": "IA3", "target_modules": targets,
             "task_type": "CAUSAL_LM"}
    return c


def write_adapter(d, cfgd, tensors):
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "adapter_config.json"), "w") as f:
        json.dump(cfgd, f, indent=2, sort_keys=True)
        f.write("\n")
    mpf.write_safetensors(os.path.join(d, "adapter_model.safetensors"),
                          [(k, "F32", mpf.f32(v)) for k, v in tensors])


def dir_size(d):
    return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(d) for f in fs)


def build_train(out_root, name, base, method, targets, data_seed, ad_seed):
    _, seed, family, dt, cfg, pre = msf.parity_entry(base)
    a = dict(COMMON, method=method)
    d = os.path.join(out_root, "peft", name)
    os.makedirs(d, exist_ok=True)
    spec, W0 = msf.initial_weights(seed, family, cfg, pre)
    mpf.write_safetensors(os.path.join(d, "model.safetensors"),
                          [(n, "F32", W0[n].numpy()) for n, _, _ in spec])
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    recs = msf.make_records(data_seed, cfg["vocab_size"])
    with open(os.path.join(d, "data.jsonl"), "w") as f:
        for r in recs:
            f.write(json.dumps(r) + "\n")
    mods = target_modules(spec, targets)
    A0 = make_adapter(method, mods, family, ad_seed)
    acfg = adapter_config(method, targets, family, "..")  # the fixture folder holds the base
    write_adapter(os.path.join(d, "adapter0"), acfg, A0)
    cli = ["--method", method, "--adapter", "adapter0"]
    if method == "lora":
        cli += ["--lora-r", str(R), "--lora-alpha", str(ALPHA), "--lora-dropout", "0"]
    if method == "lora":
        cli += ["--lora-targets", ",".join(targets)]   # IA3: PEFT's Llama defaults, no option
    cli += ["--steps", "5", "--batch", "2", "--micro-batch", "1", "--seq-len", "64",
            "--lr", "1e-3", "--schedule", "constant", "--warmup", "0", "--weight-decay", "0",
            "--grad-clip", "0", "--no-shuffle", "--seed", "0"]
    extra = {"adapter": "adapter0", "targets": targets, "cli": cli}
    if method == "lora":
        extra.update(lora_r=R, lora_alpha=ALPHA, lora_dropout=0.0, scale=ALPHA / R)
    else:
        extra.update(feedforward_modules=IA3_FF)
    with open(os.path.join(d, "args.json"), "w") as f:
        json.dump(dict(sorted(dict(a, **extra).items())), f, indent=2)
        f.write("\n")

    Af, losses, norms, toks = train(W0, spec, family, cfg, pre, recs, a, A0, method, mods, F64)
    A32, l32, n32, _ = train(W0, spec, family, cfg, pre, recs, a, A0, method, mods, F32)
    worst, wname = 0.0, ""
    for k, _ in A0:
        e = msf.rel_l2(A32[k], Af[k])
        if e > worst:
            worst, wname = e, k
    loss_err = max(abs(x - y) / abs(y) for x, y in zip(l32, losses))
    norm_err = max(abs(x - y) / abs(y) for x, y in zip(n32, norms))
    moved = max(msf.rel_l2(Af[k], v) for k, v in A0)
    write_adapter(os.path.join(d, "expected"), acfg, [(k, Af[k]) for k, _ in A0])
    mpf.write_safetensors(os.path.join(d, "expected_steps.safetensors"),
                          [("step_loss", "F32", np.array(losses, dtype="<f4")),
                           ("step_grad_norm", "F32", np.array(norms, dtype="<f4")),
                           ("step_tokens", "I32", np.array(toks, dtype="<i4"))])
    size = dir_size(d)
    print("%-11s %d adapter tensors; tokens/step %s; loss %s; grad norm %s" % (
        name, len(A0), toks, " ".join("%.5f" % x for x in losses), " ".join("%.4f" % x for x in norms)))
    print("%-11s fp32 vs fp64: adapter rel %.2e (%s), loss rel %.2e, grad norm rel %.2e; "
          "largest move rel %.4f; %d KB" % ("", worst, wname, loss_err, norm_err, moved,
                                            (size + 1023) // 1024))
    if not (worst <= REL_TENSOR and loss_err <= REL_LOSS):
        sys.exit("%s: float32 run differs from float64 beyond the C test's budgets" % name)
    return size


# --------------------------------------------------------------------------
# NF4 (bitsandbytes) in numpy float32
# --------------------------------------------------------------------------
# dDequantizeNF4 table (csrc/kernels.cu)
NF4_CODE = np.array([
    -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
    -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
    0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
    0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0], dtype=np.float32)
# dQuantizeNF4 thresholds (csrc/kernels.cu), as fp32 literals, ascending
NF4_THRESH = np.array([
    -0.8480964004993439, -0.6106329262256622, -0.4599952697753906, -0.33967943489551544,
    -0.23460740596055984, -0.13791173323988914, -0.045525018125772476, 0.03979014977812767,
    0.1202552504837513, 0.2035212516784668, 0.2920137718319893, 0.3893125355243683,
    0.5016634166240692, 0.6427869200706482, 0.8614784181118011], dtype=np.float32)


def create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8):
    """bitsandbytes functional.create_dynamic_map (default arguments), same
    float32 linspace / means / scaling steps, sorted, as float32."""
    data = []
    non_sign_bits = total_bits - 1
    additional_items = 2 ** (non_sign_bits - max_exponent_bits) - 1
    for i in range(max_exponent_bits):
        fraction_items = int(2 ** (i + non_sign_bits - max_exponent_bits) + 1 if signed
                             else 2 ** (i + non_sign_bits - max_exponent_bits + 1) + 1)
        boundaries = torch.linspace(0.1, 1, fraction_items, dtype=torch.float32)
        means = (boundaries[:-1] + boundaries[1:]) / 2.0
        data += ((10 ** (-(max_exponent_bits - 1) + i)) * means).tolist()
        if signed:
            data += (-(10 ** (-(max_exponent_bits - 1) + i)) * means).tolist()
    assert additional_items == 0
    data.append(0)
    data.append(1.0)
    data += [0] * (256 - len(data))
    data.sort()
    return np.array(data, dtype=np.float32)


def dquantize8(code, x):
    """dQuantize<0> of csrc/kernels.cu for one fp32 value (binary search + midpoint)."""
    f = np.float32
    pivot, upper_pivot, lower_pivot = 127, 255, 0
    lower, upper = f(-1.0), f(1.0)
    val = code[pivot]
    i = 64
    while i > 0:
        if x > val:
            lower_pivot, lower = pivot, val
            pivot += i
        else:
            upper_pivot, upper = pivot, val
            pivot -= i
        val = code[pivot]
        i >>= 1
    if upper_pivot == 255:
        upper = code[upper_pivot]
    if lower_pivot == 0:
        lower = code[lower_pivot]
    if x > val:
        mid = f((upper + val) * f(0.5))
        return upper_pivot if x > mid else pivot
    mid = f((lower + val) * f(0.5))
    return lower_pivot if x < mid else pivot


def quantize_blockwise8(a, code, bs=256):
    n = a.size
    nb = (n + bs - 1) // bs
    amax = np.zeros(nb, dtype=np.float32)
    q = np.zeros(n, dtype=np.uint8)
    for b in range(nb):
        blk = a[b * bs:(b + 1) * bs]
        m = np.float32(np.abs(blk).max())
        amax[b] = m
        inv = np.float32(1.0) / m
        for j, x in enumerate(blk):
            xn = np.float32(x * inv)
            q[b * bs + j] = dquantize8(code, xn)
            # cross-check: the search lands on a nearest code (ties aside)
            d = np.abs(code.astype(np.float64) - float(xn))
            assert d[q[b * bs + j]] <= d.min() * (1 + 1e-6) + 1e-12, (xn, q[b * bs + j])
    return q, amax


def quantize_nf4(w):
    flat = np.ascontiguousarray(w, dtype=np.float32).reshape(-1)
    n = flat.size
    assert n % 2 == 0
    nb = (n + 63) // 64
    absmax = np.zeros(nb, dtype=np.float32)
    idx = np.zeros(n, dtype=np.uint8)
    for b in range(nb):
        blk = flat[b * 64:(b + 1) * 64]
        m = np.float32(np.abs(blk).max())
        absmax[b] = m
        xn = blk * (np.float32(1.0) / m)                      # fp32 multiply by reciprocal
        assert xn.dtype == np.float32
        idx[b * 64:b * 64 + blk.size] = (xn[:, None] > NF4_THRESH[None, :]).sum(1)
    packed = ((idx[0::2] << 4) | idx[1::2]).astype(np.uint8)  # even element -> high nibble
    return packed, absmax, idx


def build_nf4(out_root):
    d = os.path.join(out_root, "peft", "nf4")
    os.makedirs(d, exist_ok=True)
    code8 = create_dynamic_map()
    assert code8.size == 256 and np.all(np.diff(code8) >= 0)
    gen = torch.Generator().manual_seed(501)
    # [96,64]: 96 blocks (one partial 256 absmax block); [64,64]: 64 blocks;
    # [100,30]: 3000 = 46 full blocks + a partial one of 56; [160,128]: 320
    # blocks -> two absmax blocks of 256 and 64.
    shapes = [("w96x64", [96, 64]), ("w64x64", [64, 64]), ("w100x30", [100, 30]),
              ("w160x128", [160, 128])]
    out = [("dynamic_map", "F32", code8), ("nf4_code", "F32", NF4_CODE)]
    for nm, shp in shapes:
        w = (0.02 * torch.randn(shp, generator=gen, dtype=F32)).numpy()
        if nm == "w64x64":   # a few outliers and an exact zero block element
            w.reshape(-1)[[5, 700, 3000]] = [0.3, -0.25, 0.0]
        packed, absmax, idx = quantize_nf4(w)
        deq_plain = (NF4_CODE[idx] * np.repeat(absmax, 64)[:idx.size]).astype(np.float32)
        offset = np.float32(torch.from_numpy(absmax).mean().item())  # torch fp32 mean, as bnb
        centered = (absmax - offset).astype(np.float32)
        qa, amax2 = quantize_blockwise8(centered, code8, 256)
        absmax_dq = (code8[qa] * np.repeat(amax2, 256)[:qa.size]).astype(np.float32) + offset
        absmax_dq = absmax_dq.astype(np.float32)
        deq = (NF4_CODE[idx] * np.repeat(absmax_dq, 64)[:idx.size]).astype(np.float32)
        # sanity: unpack reproduces the indices, errors are as expected
        un = np.stack([packed >> 4, packed & 15], 1).reshape(-1)
        assert np.array_equal(un, idx)
        err_plain = float(np.abs(deq_plain - w.reshape(-1)).max() / np.abs(w).max())
        err_abs = float(np.abs(absmax_dq - absmax).max() / absmax.max())
        print("nf4 %-9s %5d values, %3d blocks of 64, %d of 256; max |w - deq| / max|w| = %.3f; "
              "double-quant absmax rel err %.2e" % (nm, idx.size, absmax.size, amax2.size,
                                                   err_plain, err_abs))
        out += [(nm + ".weight", "F32", w),
                (nm + ".packed", "U8", packed),
                (nm + ".absmax", "F32", absmax),
                (nm + ".dequant_plain", "F32", deq_plain.reshape(shp)),
                (nm + ".absmax_q", "U8", qa),
                (nm + ".absmax2", "F32", amax2),
                (nm + ".offset", "F32", np.array([offset], dtype=np.float32)),
                (nm + ".absmax_dq", "F32", absmax_dq),
                (nm + ".dequant", "F32", deq.reshape(shp))]
    mpf.write_safetensors(os.path.join(d, "nf4.safetensors"), out)
    return dir_size(d)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out-root", default=os.path.join(here, "..", "tests", "fixtures"))
    a = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    mpf._ST_DTYPES.setdefault("U8", np.dtype("u1"))
    check_unmerged_forms()
    total = 0
    for fx in FIXTURES:
        total += build_train(a.out_root, *fx)
    total += build_nf4(a.out_root)
    print("peft fixtures: %d KB in all" % ((total + 1023) // 1024))


if __name__ == "__main__":
    main()
