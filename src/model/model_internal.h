/* model_internal.h — the model's structs, shared by src/model, src/train and
 * src/infer (not public). Split by lifetime as in llama2.c: config; weights
 * and gradients (one allocation each, pointers carved from a table of named
 * tensors); activations for one (B,T) batch (one allocation, sized by
 * tuna_model_activation_bytes, plus one small table of per-layer pointers). */
#ifndef TUNA_MODEL_INTERNAL_H
#define TUNA_MODEL_INTERNAL_H
#include "model/linear.h"
#include "tuna.h"
#include "tuna_peft.h"

typedef struct {
    /* norms: weight [C] (+ bias [C] for LayerNorm) */
    float *ln1_w, *ln1_b, *ln2_w, *ln2_b;
    float *dln1_w, *dln1_b, *dln2_w, *dln2_b;
    /* attention: fused c_attn (GPT-2) or q/k/v (Llama family) */
    tuna_linear qkv, q, k, v, o;
    /* MLP: c_fc/c_proj (GPT-2) or gate/up/down (Llama family) */
    tuna_linear fc, gate, up, down;
} tuna_block;

typedef struct {
    int B, T, train, mode;  /* mode: TUNA_MODE_*; T includes the prompt-tuning prefix */
    int ckpt;               /* training: layers [0, ckpt) are checkpointed (backward recomputes them) */
    int P;                  /* virtual tokens prepended to every row (prompt tuning) */
    int fwd_B, fwd_T, fwd_packed; /* the last forward's batch: backward and row losses must be given the same */
    /* indexed by layer l (N = B*T rows). [L] means one buffer per layer in
     * training, except that checkpointed layers (l < ckpt) share one; in eval
     * every l points to the one buffer of slot 0. The pointer arrays are one
     * small block. */
    float **resid;      /* [L+1][N,C] residual stream entering layer l; resid[L] = final (eval: two, alternating) */
    float **norm1;      /* [L] -> one [N,C] buffer (backward recomputes it from mean1/rstd1) */
    float **mean1, **rstd1; /* [L][N] (mean only for LayerNorm) */
    float **qkv;        /* [L][N,(NH+2NKV)*HD]: q,k,v (post-RoPE) */
    float **attn_out;   /* [L][N,NH*HD] */
    float **resid_mid;  /* [L][N,C] */
    float **norm2;      /* [L] -> one [N,C] buffer (backward recomputes it from mean2/rstd2) */
    float **mean2, **rstd2; /* [L][N] (mean only for LayerNorm) */
    float **mlp_a;      /* [L][N,FF] fc output (GELU) or gate (SwiGLU) */
    float **mlp_b;      /* [L][N,FF] up (SwiGLU only; NULL otherwise) */
    float **mlp_act;    /* [L] -> one [N,FF] buffer (backward recomputes it) */
    float *normf, *meanf, *rstdf; /* [N,C], [N], [N] */
    float *logits;      /* [head_rows,V] one chunk of rows (head.c); becomes dlogits in backward */
    float *lse;         /* [N] log-sum-exp of each row's logits */
    float *tgt_logit;   /* [N] logit of each row's target (0 where not counted): the row losses */
    int head_rows;      /* R: rows per chunk of lm_head + cross-entropy (head_rows()) */
    float *full_logits; /* [N,V] only when tuna_model_logits asked for them and R < N (own allocation) */
    int full_fresh;     /* full_logits hold the last forward's */
    int head_fused;     /* the last forward put a frozen head's input gradient (weight 1) in dtmp */
    float *tok_w;       /* [N] loss weight per position (backward) */
    int32_t *targets;   /* [N] labels shifted left; -1 where not counted */
    int32_t *pos;       /* [N] positions */
    float *rope_cos, *rope_sin; /* [T, HD/2] (Llama family only) */
    /* backward scratch (train modes only), one of each for all layers:
     * dresid, dtmp [N,C]; dqkv [N,(NH+2NKV)*HD]; dattn [N,NH*HD];
     * dmlp_a, dmlp_b (SwiGLU only), dmlp_act [N,FF] */
    float *dresid, *dtmp, *dqkv, *dattn, *dmlp_a, *dmlp_b, *dmlp_act;
    float *att_scratch; /* [att_slots, 2, T, T] attention probabilities (never kept) */
    int att_slots;      /* threads of the team that prepared: the kernels run on at most this many */
    void *base;         /* the single allocation */
    size_t bytes;
} tuna_acts;

/* One entry of the parameter table: name as in the checkpoint; in pub, the
 * file shape and whether our fp32 layout is the transpose of the file layout
 * (GPT-2 Conv1D). */
typedef struct {
    tuna_param pub;        /* the public view; pub.name points to name */
    char name[160];
    int optional_in_file;  /* e.g. lm_head when tied */
    int external;          /* kept as stored (model->stored[sidx]), outside the fp32 buffer: pub.data NULL */
    int sidx;
} tuna_param_entry;

/* An attached adapter: its state is private to src/model/peft.c; the model
 * reaches it only through model/adapter_hooks.h. */
typedef struct tuna_peft_state tuna_peft_state;
typedef struct adapter_ops adapter_ops;   /* model/adapter_hooks.h */

struct tuna_model {
    tuna_config cfg;
    char prefix[32];         /* "transformer." or "" for GPT-2 files; "" otherwise */
    tuna_param_entry *params;/* table of named tensors (tied tensors listed once) */
    int n_params;
    float *weights;          /* all parameters, fp32 */
    float *grads;            /* all gradients or NULL */
    int64_t n_weights;       /* scalars in weights */
    /* views into weights/grads */
    float *wte, *dwte;       /* [V,C] */
    float *wpe, *dwpe;       /* [maxT,C] (GPT-2) */
    float *lnf_w, *lnf_b, *dlnf_w, *dlnf_b;
    tuna_block *blocks;      /* [L] */
    tuna_linear lm_head;     /* w = wte when tied */
    tuna_acts acts;
    int have_forward;        /* a forward ran since the last backward */
    int head_rows;           /* rows per lm_head chunk; 0: as many as fit HEAD_CHUNK_BYTES (tests set it) */
    float logit_scale;       /* 1 / the loss's softmax temperature (tuna_model_set_logit_temperature); 0: 1 */
    char (*linear_names)[64];/* module paths of the block linears [L*7] */
    int base_frozen;         /* no base gradients (an adapter is trained) */
    tuna_peft_state *peft;   /* attached adapter or NULL */
    const adapter_ops *peft_ops; /* its hooks (set with peft) */
    int quant_type;          /* tuna_quant_type: which frozen weights are kept as stored */
    tuna_stored *stored;     /* [n_stored] the 2-D weights kept as stored (external entries) */
    int n_stored;
    float *stored_scratch;   /* fp32 tile for converted weights (LINEAR_TILE values) */
    int wte_param, wpe_param;/* table indices of the embeddings (wpe: -1 without) */
    struct model_map { void *addr; size_t len; } *maps; /* safetensors mappings stored tensors point into */
    int n_maps;
    int shares_weights;      /* weights, stored tensors and maps belong to another model (tuna_model_share) */
    linear_bf16 *bf16;       /* bf16 compute on (model_bf16.c), NULL: fp32 */
    int bf16_fresh;          /* the optimizer wrote every bf16 copy: the next forward need not */
    void *att16;             /* bf16 attention's scratch (k_attention_bf16_scratch bytes), grown on use */
    size_t att16_bytes;
    int fold_on_write;       /* the adapter is folded into the weights as they are written (tuna_peft_merge_on_write) */
    /* called by backward when gradients are final for block `layer` (L-1 down
     * to 0), then with -1 once everything else is too (data-parallel
     * training starts summing each part across ranks while backward goes on) */
    void (*grad_ready)(void *ctx, int layer);
    void *grad_ready_ctx;
};

/* The tensors an optimizer updates: the adapter's when one is attached, else
 * every parameter. */
typedef struct {
    tuna_param_entry *params;
    int n_params;
    float *weights, *grads;
    int64_t n_weights;
} tuna_trainable;
void model_trainable(tuna_model *m, tuna_trainable *t);
/* Block linears in module order (Llama: q k v o gate up down; GPT-2: c_attn
 * attn.c_proj c_fc mlp.c_proj); returns the count (at most 7 * L). */
int model_linears(tuna_model *m, tuna_linear **out);
/* model_linears, then lm_head: every linear layer; out holds MODEL_LINEARS_MAX
 * (model_build refuses more than 8 * 1024 block linears) */
#define MODEL_LINEARS_MAX (8 * 1024 + 1)
int model_all_linears(tuna_model *m, tuna_linear **out);
/* A weightless model of config cfg (parameter table, linear sizes and names;
 * every tensor external): what planning measures. */
tuna_status model_skeleton(tuna_model **out, const tuna_config *cfg);
/* RoPE cos/sin tables [T, HD/2] for positions 0..T-1 (HF's inv_freq and scaling). */
void model_rope_tables(const tuna_config *c, float *cos_t, float *sin_t, int T);
/* Frees the base's gradients and marks it frozen (an adapter is attached);
 * model_unfreeze_base undoes the mark (the adapter is gone). Both make the
 * next prepare rebuild the activations. */
void model_freeze_base(tuna_model *m);
void model_unfreeze_base(tuna_model *m);

/* bf16 compute (model_bf16.c): a forward's start (refreshes a trainable
 * model's bf16 weight copies, forgets the cached input) and the release of
 * everything bf16 compute holds (tuna_model_free). */
void model_bf16_begin(tuna_model *m);
void model_bf16_free(tuna_model *m);
/* The bf16 copy made from the fp32 weight starting at w (NULL: none), and
 * how many copies there are: an optimizer that rewrites every copy as it
 * updates the weights (k_f32_to_bf16_serial from each weight's start) says
 * so with model_bf16_copies_written; the next forward then keeps them. Any
 * other writer of the weights (tuna_model_load_weights) calls
 * model_bf16_copies_stale. */
uint16_t *model_bf16_copy_of(tuna_model *m, const float *w);
int model_bf16_copies(tuna_model *m);
void model_bf16_copies_written(tuna_model *m);
void model_bf16_copies_stale(tuna_model *m);
/* What bf16 compute adds to a run of N rows (tuna plan): the buffers of the
 * rounded inputs and output gradients at their largest (the widest linear,
 * lm_head's chunk of rows), the tile when tiles (weights converted by tiles),
 * the bf16 copies of copy_values fp32 weights and attention's scratch for
 * rows of T; full (every weight trained): lm_head's larger chunk of logits
 * (HEAD_CHUNK_BYTES_BF16) too. */
double model_bf16_bytes(const tuna_config *c, long N, int T, int tiles, double copy_values, int full);
/* Attention with bf16 products (k_attention_fwd_bf16 / _bwd_bf16) when bf16
 * compute is on: 1 when done, 0 when not (off, no memory for its scratch, or
 * oneDNN refused): the caller runs the fp32 kernel. */
int model_bf16_attention_fwd(tuna_model *m, float *out, const float *q, const float *k, const float *v, const int32_t *pos,
                             int B, int T, int sq, int sk, int sv);
int model_bf16_attention_bwd(tuna_model *m, float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                             const float *v, const int32_t *pos, int B, int T, int sq, int sk, int sv);

/* lm_head + cross-entropy in chunks of rows (head.c). A chunk's logits take
 * at most HEAD_CHUNK_BYTES: 64 MiB, well under one layer's activations of the
 * models that need it, and >= 100 rows for a 152K vocabulary, so each chunk's
 * GEMM stays compute-bound while streaming the [V,C] head weight. */
#define HEAD_CHUNK_BYTES (64L << 20)
/* Training every weight in bf16, a chunk may take HEAD_CHUNK_BYTES_BF16: the
 * logits of a small vocabulary's whole batch then stay from forward to
 * backward (GPT-2 at 4 x 256: 206 MB) instead of being computed again for
 * all chunks but the last (a third more lm_head GEMM time for 3 chunks). */
#define HEAD_CHUNK_BYTES_BF16 (256L << 20)
/* Rows per chunk for N rows of a V vocabulary: knob when > 0, else as many as
 * fit HEAD_CHUNK_BYTES; at least 1, at most N. */
int head_rows(int V, long N, int knob);
/* The same within HEAD_CHUNK_BYTES_BF16 (a model training every weight in bf16). */
int head_rows_bf16_full(int V, long N);
/* Forward of the head over the N rows of acts.normf: fills lse, tgt_logit;
 * returns the sum of counted losses and their count. */
double head_forward(tuna_model *m, int N, int64_t *count);
/* Backward of the head: dtmp[N,C] = dnormf (overwritten), the head's weight
 * gradient added to; reads lse, targets, tok_w; the chunk buffer is scratch.
 * A frozen head's forward in training already left dnormf for weight 1 in
 * dtmp: backward scales its rows by tok_w. */
void head_backward(tuna_model *m, int N);
/* A sequence-classification model's head (cfg.num_labels 1) over B rows of
 * TT positions: row b's score r = score.weight . normf at its last counted
 * position p (labels[p] != -100: the position after the last counted target;
 * the row's last position when none is counted), kept as a target of logit r
 * and log-sum-exp 0 at p alone, so a row's loss is -r and its
 * "log-probability" r. Returns the sum of -r, count B. */
double head_score_forward(tuna_model *m, int B, int TT, int64_t *count);
/* Its backward: dtmp = the gradient of sum_b tok_w[p_b] * (-r_b) w.r.t.
 * normf (zero off the scored positions); score.weight's gradient added to. */
void head_score_backward(tuna_model *m, int B, int TT);
/* Rows per chunk of this model's lm_head (0: the default); the next prepare
 * rebuilds the activations. For tests that need several chunks on a small model. */
void model_set_head_rows(tuna_model *m, int rows);

/* Builds the parameter table and carves weights (and grads if with_grads);
 * with quant_type set, the 2-D weights become external entries whose
 * model->stored[] the loader fills, then calls model_link_stored. */
tuna_status model_build(tuna_model *m, int with_grads);
/* Points the linears and embeddings at their stored tensors and sizes the
 * shared conversion tile (after the loader filled model->stored). */
tuna_status model_link_stored(tuna_model *m);
/* out[0..count) = values start..start+count-1 of parameter i as fp32, in our
 * layout, whatever its storage (fp32, as stored, NF4). */
void model_param_read(const tuna_model *m, int i, int64_t start, int64_t count, float *out);
/* out[0..C) = row `row` of the token embedding; model_pos_add: out += row of
 * the learned positions (GPT-2). Either table fp32 or stored. */
void model_embed_row(const tuna_model *m, int64_t row, float *out);
void model_pos_add(const tuna_model *m, int64_t row, float *out);
/* After each STORED_LOOKUP_ROWS lookups: an untied embedding used in place
 * from the mapping hands its pages back. */
void model_embed_done(const tuna_model *m);
/* Bytes of the weights the model itself allocated (fp32 buffer, owned and NF4
 * stored tensors; not the mapped file), and of the stored tensors mapped in
 * place. */
void model_weight_bytes(const tuna_model *m, size_t *own, size_t *mapped);
#endif
