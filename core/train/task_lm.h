/* Language-model pretraining: the LM task for the generic trainer, the quality check, and the
 * export of a trained model as a Hugging Face directory (docs/pretraining.md).
 *
 * Data. The corpus lines are tokenized once, each as the family's tokenizer does it with special
 * tokens (OPT: "</s> text"; Llama: "<s> text" + "</s>"; T5: "text </s>"). Each epoch concatenates
 * them in an order fixed by (seed, epoch) and cuts the stream into windows of seq_len tokens
 * (GPT-style packing: every position of the window is trained, so absolute position tables see
 * all positions a soft prompt may shift text to); a batch is batch_size consecutive windows.
 * Batch `index` of `epoch` is a pure function of (seed, epoch, index), as exact resume needs.
 *
 * Objectives. Decoder-only (OPT, Llama): causal LM loss over the window (HF's shifted CE).
 * T5: prefix LM — each window is split at a point drawn from (seed, epoch, window) in
 * [seq_len/4, 3*seq_len/4]: the encoder reads the prefix (right-padded, masked), the decoder
 * predicts the rest (labels right-padded with -100, decoder input = shift_right(labels)).
 * Evaluation splits at seq_len/2 for every window (deterministic).
 *
 * Units. By default each line is a unit; with `paragraphs` a unit is a paragraph (lines up to a
 * blank line), a document whose lines are framed one by one and stay together and in order. A
 * corpus of related lines (one scene's captions and answers) then teaches the LM that earlier
 * lines predict later ones: the in-context reading a soft prompt needs (docs/pretraining.md).
 * Everything below that says "line" means "unit".
 *
 * Held-out text: the val corpus files when given, else every k-th line of the corpus
 * (k = round(1 / val_fraction)), never trained on.
 *
 * Mixing. corpus_weights[i] scales how often file i's training lines occur in an epoch: weight
 * w puts floor(w) copies of every line in the epoch plus round(frac(w) * lines) more lines
 * drawn without repetition by (seed, epoch, file), so 3 means "each line three times", 0.5
 * "half of the lines, other ones each epoch", 0 "not trained on" (its held-out lines still
 * count). All copies are shuffled together by (seed, epoch). With fractional weights the token
 * count, hence the number of batches, can differ between epochs by a batch. */
#ifndef GRAFT_CORE_TASK_LM_H
#define GRAFT_CORE_TASK_LM_H

#include <jansson.h>
#include <stdint.h>

#include "graft/model.h"
#include "text/tokenizer.h"
#include "train/trainer.h"

typedef struct gr_lm_task_config {
    const gr_lm_iface *lm;
    gr_lm *model;
    const gr_tokenizer *tok;
    const char *const *corpus;
    int n_corpus;
    const double *corpus_weights;    /* n_corpus weights (>= 0, one > 0), or NULL: all 1 */
    const char *const *val_corpus;   /* may be NULL / 0: hold out every k-th corpus line */
    int n_val;
    double val_fraction;             /* used without val files; 0: no held-out text */
    int64_t seq_len, batch_size;
    int64_t eval_windows;            /* cap on held-out windows per evaluation (0: all) */
    uint64_t seed;
    int paragraphs;                  /* 1: a unit is a blank-line separated paragraph (a document) */
} gr_lm_task_config;

typedef struct gr_lm_task gr_lm_task;

gr_status gr_lm_task_create(const gr_lm_task_config *cfg, gr_lm_task **out);
void gr_lm_task_free(gr_lm_task *t);
/* The trainer's view (evaluate is NULL when there is no held-out text). */
gr_task gr_lm_task_iface(gr_lm_task *t);

typedef struct gr_lm_task_stats {
    int64_t train_lines, val_lines, train_tokens, val_tokens;
    int64_t epoch_tokens;            /* after weighting (of the epoch built last) */
    int64_t batches_per_epoch, val_windows;
} gr_lm_task_stats;
void gr_lm_task_stats_get(const gr_lm_task *t, gr_lm_task_stats *out);

/* Mean loss per predicted token over the held-out windows (grads off, ctx reset inside). */
gr_status gr_lm_task_eval_loss(gr_lm_task *t, gr_ctx *ctx, double *loss);

/* First held-out (or training) windows as a fixed batch, for reload checks: ids [B, T] and,
 * for T5, the evaluation split (enc [B, Te] + mask, labels [B, Tl]). Malloc'd arrays. */
typedef struct gr_lm_batch {
    int64_t batch, seq, label_len;
    int32_t *ids, *mask, *labels;
} gr_lm_batch;
gr_status gr_lm_task_fixed_batch(gr_lm_task *t, int64_t rows, gr_lm_batch *out);
void gr_lm_batch_free(gr_lm_batch *b);
/* Fills gr_lm_inputs for a batch (pointers into b). */
void gr_lm_batch_inputs(const gr_lm_batch *b, int encdec, gr_lm_inputs *in);

/* ---- quality check ---- */

/* probes: "PROMPT|ANSWER" strings (P(ANSWER | PROMPT) and whether ANSWER's first token is the
 * arg-max after PROMPT); colors: words whose input embeddings must stay apart (max pairwise
 * cosine; words that are not one token are reported and skipped). Returns a JSON object
 * {"val_loss", "val_ppl", "probes": [...], "probe_prob_mean", "probe_prob_min",
 *  "probe_top1", "color_cosine_max", "color_pair": [a, b], "colors": [...]}. */
gr_status gr_lm_quality(gr_lm_task *t, gr_ctx *ctx, const char *const *probes, int n_probes,
                        const char *const *colors, int n_colors, json_t **out);

/* ---- export as a Hugging Face model directory (lm_export.c) ---- */

typedef struct gr_lm_arch {
    const char *family;              /* "opt", "llama", "t5" */
    int64_t vocab_size, hidden_size, layers, heads, kv_heads, ffn_dim, max_positions;
    int64_t decoder_layers, d_kv;    /* T5 */
    const char *t5_ff;               /* T5 feed_forward_proj ("relu", "gated-gelu", ...) */
    int tie_embeddings;
    int32_t bos_id, eos_id, pad_id, decoder_start_id; /* -1: none */
} gr_lm_arch;

/* config.json as transformers' save_pretrained writes it for the family (sorted keys, only
 * the keys to_diff_dict keeps, torch_dtype float32). */
gr_status gr_lm_hf_config(const gr_lm_arch *a, json_t **out);
/* generation_config.json as save_pretrained writes it next to a generative model. */
json_t *gr_lm_hf_generation_config(const gr_lm_arch *a);

/* Writes DIR/config.json, generation_config.json, model.safetensors (every parameter once, F32,
 * HF names, metadata format=pt: tied heads are stored once as save_pretrained does) and copies
 * the tokenizer files found in tokenizer_dir. */
gr_status gr_lm_save_hf_dir(gr_ctx *ctx, const gr_lm_iface *lm, gr_lm *model, const json_t *config,
                            const gr_lm_arch *a, const char *tokenizer_dir, const char *dir);

#endif
