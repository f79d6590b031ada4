/* The VLM training task (captioning or VQA) for the trainer, and the VLM text generation and
 * evaluation it shares with `graft generate` and `graft eval`.
 *
 * Batches follow LAVIS's BLIP-2 recipes:
 *  - decoder-only LM (OPT, Llama): text [BOS prompt output "\n"], right padded with the pad id;
 *    labels are the text with -100 on BOS, the prompt and the padding (the soft prompt is put
 *    in front by the LM and never labelled). Captioning has an empty prompt.
 *  - encoder-decoder LM (T5): encoder [soft prompt][text_input </s>], decoder target
 *    [text_output </s>]. Captions are split prefix-LM style at a word index drawn uniformly
 *    from [0, words/2] (words = whitespace-separated words); VQA: input = prompt, output =
 *    the answer.
 * Batch `index` of epoch `e` is a pure function of (seed, e, index): data order from
 * gr_epoch_order(seed, e), the caption of a multi-caption sample, the split point and the
 * augmentation from (seed, e, sample id). So resuming mid-epoch needs only the step.
 *
 * Frozen vision tower: its forward records no tape nodes; with `cache_features` (and no
 * augmentation) its outputs are computed once per image and kept on the host. */
#ifndef GRAFT_CORE_VLM_TASK_H
#define GRAFT_CORE_VLM_TASK_H

#include "data/dataset.h"
#include "gen/generate.h"
#include "image/image.h"
#include "metrics/metrics.h"
#include "text/tokenizer.h"
#include "train/trainer.h"
#include "vlm/vlm.h"

typedef enum gr_vlm_task_kind { GR_VLM_CAPTION = 0, GR_VLM_VQA = 1 } gr_vlm_task_kind;

/* Generation settings of a VLM (prompt template + search). */
typedef struct gr_vlm_gen {
    const char *prompt;          /* "" for captions; "{}" is replaced by the question */
    gr_gen_config search;        /* eos_ids/pad filled by gr_vlm_gen_eos when n_eos == 0 */
} gr_vlm_gen;

/* The EOS rules of a model: OPT/Llama stop at the "\n" token (LAVIS sets eos to it for
 * captioning) and at </s>; T5 at </s>. Fills search.eos_ids, n_eos and pad_id. */
gr_status gr_vlm_gen_eos(const gr_vlm *vlm, const gr_tokenizer *tok, gr_gen_config *search);
/* The id a caption's closing "\n" gets after text (decoder-only captions stop at it): a lone
 * "\n" when that is one token, else what "a\n" adds to "a" (metaspace: "<0x0A>"). */
gr_status gr_caption_newline_id(const gr_tokenizer *tok, int32_t *id);

/* Generates one text per image: pixels host [n, 3, H, W] (or image_embeds host [n, N, D] when
 * `embeds` is set), prompts[i] the already-filled prompt of row i (NULL: ""). texts[i] gets a
 * malloc'd string (decoded without special tokens, trimmed). Batched with left padding. */
gr_status gr_vlm_generate(gr_vlm *vlm, gr_ctx *ctx, const gr_tokenizer *tok, const float *pixels,
                          const float *embeds, int64_t n, int height, int width,
                          const char *const *prompts, const gr_gen_config *search, char **texts);

/* LAVIS's VQA prompt template for the model's LM: "Question: {} Short answer:" for an
 * encoder-decoder (Flan-T5), "Question: {} Answer:" otherwise. Used when train.prompt or
 * gen.vqa_prompt is empty (their default). */
const char *gr_vlm_vqa_prompt(const gr_vlm *vlm);

/* Fills a prompt template: every "{}" becomes `question` (malloc'd). */
char *gr_prompt_fill(const char *tmpl, const char *question);

typedef struct gr_vlm_task_config {
    gr_vlm *vlm;
    const gr_tokenizer *tok;
    gr_vlm_task_kind kind;
    const gr_dataset *train;     /* NULL: evaluation only */
    const gr_dataset *eval;      /* NULL: no evaluation */
    int64_t batch_size, eval_batch_size;
    uint64_t seed;
    int rank, world_size;        /* data parallel: this rank's shard of every epoch (0, 1 or
                                    0, 0: all of it); see gr_epoch_order */
    gr_image_preproc preproc;
    gr_image_augment augment;    /* training only */
    int cache_features;          /* keep frozen-tower outputs on the host (needs no augment):
                                    computed for every training image before the first step
                                    (so step FLOPs do not depend on what is cached) */
    gr_ctx *ctx;                 /* the model's context (feature cache warm-up) */
    const char *train_prompt;    /* template for VQA training input ("{}" = question; NULL or
                                    "": gr_vlm_vqa_prompt) */
    int max_text_tokens;         /* truncation of training text (0: 64) */
    gr_vlm_gen gen;              /* evaluation generation */
    int64_t eval_limit;          /* evaluate on the first N samples only (0: all) */
    gr_vqa_evaluator vqa_evaluator;
} gr_vlm_task_config;

typedef struct gr_vlm_task gr_vlm_task;

gr_status gr_vlm_task_create(const gr_vlm_task_config *cfg, gr_vlm_task **out);
void gr_vlm_task_free(gr_vlm_task *t);
/* The trainer's view of the task. */
void gr_vlm_task_bind(gr_vlm_task *t, gr_task *out);

/* One evaluation with predictions: metrics (CIDEr, Bleu_1..4, ROUGE_L or vqa_acc) and, when
 * preds is not NULL, a malloc'd array of n malloc'd predictions in dataset order. */
typedef struct gr_vlm_eval_out {
    gr_task_eval eval;
    char **preds;
    size_t n;
} gr_vlm_eval_out;
gr_status gr_vlm_task_evaluate(gr_vlm_task *t, gr_ctx *ctx, gr_vlm_eval_out *out, int keep_preds);
void gr_vlm_eval_out_free(gr_vlm_eval_out *o);

/* Blind baseline: the same evaluation with every image replaced by a constant grey one. */
void gr_vlm_task_set_blind(gr_vlm_task *t, int blind);

#endif
