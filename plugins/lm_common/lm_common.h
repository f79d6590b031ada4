/* Shared pieces of the language-model plugins (opt, t5, llama): config reading with HF
 * defaults, parameter loading / HF-style random init, attention, losses, the device-side KV
 * cache, the interface slots every family fills the same way and the decoder-only driver
 * (forward, generate_begin/step, cache reorder/free) around a family's decoder stack.
 * Linked statically into each plugin; not part of the SDK. */
#ifndef GRAFT_LM_COMMON_H
#define GRAFT_LM_COMMON_H

#include <jansson.h>
#include <stdint.h>

#include "graft/model.h"

#define LMC_IGNORE (-100)

/* ---------------------------------------------------------------- config ---- */
/* Each getter: absent or null key -> default (and *present = 0 where asked); a value of the
 * wrong type is a one-line error naming the config file and the key. required: absent is an
 * error too. */
typedef struct lmc_cfg {
    const json_t *obj;
    const char *path;
} lmc_cfg;

gr_status lmc_int(const lmc_cfg *c, const char *key, int64_t def, int required, int64_t *out);
gr_status lmc_num(const lmc_cfg *c, const char *key, double def, double *out);
gr_status lmc_bool(const lmc_cfg *c, const char *key, int def, int *out);
gr_status lmc_str(const lmc_cfg *c, const char *key, const char *def, const char **out);
/* A token id: integer, null (-> def) or a list (first element, as eos lists of Llama 3). */
gr_status lmc_token(const lmc_cfg *c, const char *key, int32_t def, int32_t *out);
int lmc_has(const lmc_cfg *c, const char *key);
/* HF activation name -> op; unknown names are an error naming key. */
gr_status lmc_act(const lmc_cfg *c, const char *key, const char *name, gr_unary_op *out);
gr_status lmc_positive(const lmc_cfg *c, const char *key, int64_t v);

/* ---------------------------------------------------------------- params ---- */
typedef enum lmc_init { LMC_NORMAL = 0, LMC_ONES = 1, LMC_ZEROS = 2 } lmc_init;

typedef struct lmc_loader {
    gr_ctx *ctx;
    const gr_model_source *src;
    const char *prefix;          /* name prefix inside the checkpoint */
    gr_tensor **items;           /* every parameter, in load order */
    int count, cap;
    gr_status status;
} lmc_loader;

void lmc_loader_init(lmc_loader *L, gr_ctx *ctx, const gr_model_source *src, const char *prefix);
/* Loads `name` (HF name without src->prefix) checked against shape, or (random init) makes it
 * with the given init: normal(0, std) / ones / zeros; padding_row >= 0 is zeroed after a normal
 * init (nn.Embedding's padding_idx). Returns NULL after a failure (L->status set). */
gr_tensor *lmc_param(lmc_loader *L, const char *name, int ndim, const int64_t *shape,
                     lmc_init init, double std, int64_t padding_row);
/* printf-style name. */
gr_tensor *lmc_paramf(lmc_loader *L, int ndim, const int64_t *shape, lmc_init init, double std,
                      const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* True when the checkpoint stores `name` (with the prefix); random init: 0. */
int lmc_stored(const lmc_loader *L, const char *name);
void lmc_loader_free_all(lmc_loader *L); /* frees every parameter and the list */

/* ---------------------------------------------------------------- compute ---- */
/* Scaled dot-product attention. q [B, Tq, H, D]; k, v [B, Tk, Hkv, D] (H a multiple of Hkv:
 * KV head j serves query heads j*g..). scale multiplies q before q.k when scale_q, else the
 * scores; add_mask [B, 1, Tq, Tk] and bias [1 or B, H, Tq, Tk] may be NULL. -> [B, Tq, H*D]. */
gr_tensor *lmc_attention(gr_ctx *ctx, gr_tensor *q, gr_tensor *k, gr_tensor *v, float scale,
                         int scale_q, gr_tensor *add_mask, gr_tensor *bias);
/* lmc_attention on projected q [B, Tq, H*D] and k, v [B, Tk, Hkv*D] (heads consecutive in
 * the last dim, as every HF attention lays them out) -> [B, Tq, H*D]. */
gr_tensor *lmc_mha(gr_ctx *ctx, gr_tensor *q, gr_tensor *k, gr_tensor *v, int64_t heads, float scale,
                   int scale_q, gr_tensor *add_mask, gr_tensor *bias);
/* x [.., n] -> view [B, T, H, D]. */
gr_tensor *lmc_heads(gr_ctx *ctx, gr_tensor *x, int64_t B, int64_t T, int64_t H, int64_t D);
/* HF causal-LM loss: logits [B, T, V], labels host [B, T] (full sequence, -100 ignored),
 * shifted inside. */
gr_tensor *lmc_causal_loss(gr_ctx *ctx, gr_tensor *logits, const int32_t *labels, int64_t B,
                           int64_t T);
/* Mean CE without shift (T5). */
gr_tensor *lmc_seq2seq_loss(gr_ctx *ctx, gr_tensor *logits, const int32_t *labels, int64_t B,
                            int64_t T);
/* Token embeddings of the text, or the given inputs_embeds, with the prefix in front:
 * -> [B, P + seq, E]; *ntok gets P + seq. */
gr_tensor *lmc_input_embeds(gr_ctx *ctx, const gr_lm_inputs *in, gr_tensor *table, int64_t E,
                            int32_t padding_idx, int64_t *ntok);
/* Full key mask [B, P + seq] (prefix rows 1) as malloc'd host ints. */
int32_t *lmc_full_mask(const gr_lm_inputs *in, int64_t P);
/* Labels [B, P + seq] with -100 over the prefix (malloc'd), or NULL when in->labels is NULL. */
int32_t *lmc_full_labels(const gr_lm_inputs *in, int64_t P);
int64_t lmc_prefix_len(const gr_lm_inputs *in);
/* Checks the inputs' shapes against the model; names the field on error. */
gr_status lmc_check_inputs(gr_ctx *ctx, const gr_lm_inputs *in, int64_t E, int64_t vocab,
                           const char *family);

/* set_layers: *order becomes `layers` (count entries, each in 0..nlayers-1), or 0..nlayers-1
 * when layers is NULL / count 0. On error the order is unchanged. */
gr_status lmc_set_layers(int **order, int *norder, int nlayers, const int *layers, int count, const char *family);

/* ---------------------------------------------------------------- KV cache ---- */
/* Keys and values live on the backend: per layer a persistent F32 tensor [B, cap, width]
 * (capacity doubling), so a cache survives gr_ctx_reset between steps and nothing crosses
 * the bus per step. The key mask and the per-row token counts are small and stay on the host
 * (they build the additive mask and the positions). */
typedef struct lmc_kv {
    int layers;
    int64_t B, T, cap, width;
    gr_tensor **k, **v;   /* [layers], each [B, cap, width] */
    int32_t *mask;        /* [B, cap] */
    int32_t *pos;         /* [B]: real tokens so far (the position of the next one) */
} lmc_kv;

gr_status lmc_kv_init(gr_ctx *ctx, lmc_kv *kv, int layers, int64_t B, int64_t width);
void lmc_kv_free(gr_ctx *ctx, lmc_kv *kv);
/* A step of Tn new positions: reserve (room for T + Tn, their mask from host [B, Tn], NULL =
 * all real), then per layer append, then commit (T += Tn; rows' counts advance by their real
 * tokens). */
gr_status lmc_kv_reserve(gr_ctx *ctx, lmc_kv *kv, const int32_t *mask, int64_t Tn);
/* Writes *k, *v ([B, Tn, width], any shape with that numel) at positions T.. of `layer` and
 * replaces them with the layer's keys/values over all T + Tn positions ([B, T + Tn, width]). */
gr_status lmc_kv_append(gr_ctx *ctx, lmc_kv *kv, int layer, gr_tensor **k, gr_tensor **v, int64_t Tn);
/* The committed T positions of a layer, [B, T, width] (a view when the cache is full). */
gr_status lmc_kv_past(gr_ctx *ctx, lmc_kv *kv, int layer, gr_tensor **k, gr_tensor **v);
void lmc_kv_commit(lmc_kv *kv, int64_t Tn);
/* Row i of the cache becomes old row rows[i] (beam search), on the device. */
gr_status lmc_kv_reorder(gr_ctx *ctx, lmc_kv *kv, const int32_t *rows, int64_t count);

/* ---------------------------------------------------------------- ABI ---- */
/* A struct a plugin fills (info, outputs) arrives with struct_size set by the host: copy the
 * plugin's complete struct `own` (own_size bytes) into it, writing at most that many bytes
 * and leaving struct_size = bytes written. 0 (a host built from these very headers that did
 * not say) means the whole struct. */
void lmc_fill(void *dst, const void *own, size_t own_size);

/* ---------------------------------------------------------------- common slots ---- */
/* What every family keeps the same way. It is the first member of each family's struct
 * gr_lm (directly or through lmc_causal), so the slots below take the gr_lm itself. */
typedef struct lmc_lm {
    gr_lm_info info;             /* filled by the family's open */
    lmc_loader L;                /* every parameter, HF names without the source prefix */
    gr_tensor *embed;            /* input embedding table */
    int *order, norder;          /* decoder layers run (set_layers), over info.num_layers */
    gr_tensor **hs;              /* the last forward's hidden_states (norder + 1) */
} lmc_lm;

void lmc_lm_info(const gr_lm *m, gr_lm_info *out);
void lmc_lm_params(gr_lm *m, gr_param_list *out);
gr_tensor *lmc_lm_input_embeddings(gr_lm *m);
gr_status lmc_lm_set_layers(gr_lm *m, const int *layers, int count);
/* hs for a forward: norder + 1 entries, or NULL (and the ctx failed) when out of memory. */
gr_tensor **lmc_lm_hidden(gr_ctx *ctx, lmc_lm *b);
void lmc_lm_free(lmc_lm *b);

/* ---------------------------------------------------------------- decoder-only ---- */
/* The family's decoder stack over x [B, T, E] (new positions) at positions pos (host [B, T])
 * with the key mask over past + new (host [B, Tk]). With kv, the past comes from the cache
 * and the new keys/values are appended (lmc_kv_append). hs, when given, gets norder + 1
 * entries. -> the last hidden state [B, T, E] (after the final norm / projection). */
typedef gr_tensor *(*lmc_stack_fn)(gr_lm *m, gr_ctx *ctx, gr_tensor *x, int64_t B, int64_t T,
                                   const int32_t *pos, const int32_t *key_mask, int64_t Tk,
                                   lmc_kv *kv, gr_tensor **hs);
/* Positions of T new tokens (host [B, T]) from their mask and the real tokens each row has
 * seen (start, NULL: none); `generating` says whether generate() or forward() computes them. */
typedef void (*lmc_pos_fn)(const int32_t *mask, int64_t B, int64_t T, const int32_t *start,
                           int generating, int32_t *pos);

typedef struct lmc_causal {
    lmc_lm base;
    gr_tensor *head;             /* lm_head (or the tied embedding) */
    int64_t kv_width;            /* per layer: key width (KV heads x head_dim) */
    lmc_stack_fn stack;
    lmc_pos_fn positions;
} lmc_causal;

/* The gr_lm_iface slots of a decoder-only family whose struct gr_lm starts with lmc_causal. */
gr_status lmc_causal_forward(gr_lm *m, gr_ctx *ctx, const gr_lm_inputs *in, gr_lm_outputs *out);
gr_status lmc_causal_begin(gr_lm *m, gr_ctx *ctx, const gr_lm_inputs *in, gr_lm_cache **cache,
                           gr_tensor **logits);
gr_status lmc_causal_step(gr_lm *m, gr_ctx *ctx, gr_lm_cache *cache, const int32_t *next_ids,
                          gr_tensor **logits);
gr_status lmc_causal_reorder(gr_lm *m, gr_ctx *ctx, gr_lm_cache *cache, const int32_t *rows,
                             int64_t count);
void lmc_causal_free(gr_lm *m, gr_ctx *ctx, gr_lm_cache *cache);

#endif
