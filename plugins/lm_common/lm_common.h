/* Shared pieces of the language-model plugins (opt, t5, llama): config reading with HF
 * defaults, parameter loading / HF-style random init, attention, losses and the host-side KV
 * cache. Linked statically into each plugin; not part of the SDK. */
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
/* Keys and values on the host, [B, cap, width] per layer, plus the key mask; uploaded as
 * transient tensors each step (so a cache survives gr_ctx_reset between steps). */
typedef struct lmc_kv {
    int layers;
    int64_t B, T, cap, width;
    float **k, **v;
    int32_t *mask;        /* [B, cap] */
    int32_t *pos;         /* [B]: position of the next token (real tokens so far) */
} lmc_kv;

gr_status lmc_kv_init(lmc_kv *kv, int layers, int64_t B, int64_t width);
void lmc_kv_free(lmc_kv *kv);
/* A step of Tn new positions: reserve (writes their mask, host [B, Tn]), then store each
 * layer's new keys/values [B, Tn, width] at positions T.., then commit (T += Tn; positions of
 * rows advance by their real tokens). The committed past of a layer is loaded with load(). */
gr_status lmc_kv_reserve(lmc_kv *kv, const int32_t *mask, int64_t Tn);
gr_status lmc_kv_store(gr_ctx *ctx, lmc_kv *kv, int layer, gr_tensor *k, gr_tensor *v, int64_t Tn);
void lmc_kv_commit(lmc_kv *kv, int64_t Tn);
/* The committed T positions of a layer as transient [B, T, width] tensors (NULL when T = 0). */
gr_status lmc_kv_load(gr_ctx *ctx, lmc_kv *kv, int layer, gr_tensor **k, gr_tensor **v);
gr_status lmc_kv_reorder(lmc_kv *kv, const int32_t *rows, int64_t count);

#endif
