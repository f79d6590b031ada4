/* Caption and VQA metrics, computed exactly as the reference evaluators compute them:
 *   captions: pycocoevalcap (coco-caption) — PTB tokenization, BLEU-1..4 (closest reference length),
 *             ROUGE-L (beta 1.2), CIDEr-D (sigma 6, clipping, x10, document frequencies from the refs);
 *   VQA:      GT-Vision-Lab vqaEval.py — the current code (`official`) or the 2017 one LAVIS copies.
 * Same double-precision operations in the same order, so the numbers match to the last bit or nearly.
 *
 * Layers: in-memory functions here (what `graft eval` calls with the predictions it generated), and
 * the COCO/VQA JSON readers at the end (what `graft score` calls). See docs/metrics.md. */
#ifndef GRAFT_METRICS_METRICS_H
#define GRAFT_METRICS_METRICS_H

#include <stddef.h>

#include "graft/status.h"

/* ---------------------------------------------------------------- PTB tokenization */

/* Tokenizes texts[0..n) as pycocoevalcap's PTBTokenizer wrapper does for one side of an evaluation:
 * the texts are joined by '\n' (a '\n' inside a text becomes a space) and tokenized as one document by
 * the rules of Stanford PTBTokenizer 3.4.1 (-preserveLines -lowerCase); the 17 punctuation tokens the
 * wrapper drops are dropped; the rest is joined by single spaces. out[i] (malloc'd) is text i's line.
 * The texts are one document because a few rules look across the line break (as the reference does). */
gr_status gr_ptb_tokenize(const char *const *texts, size_t n, char **out);

/* ---------------------------------------------------------------- caption metrics */

typedef struct gr_caption_image {
    const char *pred;        /* the prediction */
    const char *const *refs; /* its reference captions, in annotation-file order */
    size_t n_refs;           /* >= 1 */
} gr_caption_image;

typedef struct gr_caption_scores {
    double bleu[4]; /* Bleu_1..Bleu_4 */
    double rouge_l; /* ROUGE_L */
    double cider;   /* CIDEr (CIDEr-D as coco-caption computes it) */
} gr_caption_scores;

/* BLEU's corpus statistics (what bleu_scorer prints with verbose=1). */
typedef struct gr_bleu_totals {
    long long testlen, reflen, guess[4], correct[4];
    double ratio;
} gr_bleu_totals;

/* Scores already-tokenized captions of n images (n >= 1), in evaluation order: corpus scores in
 * *corpus, per-image scores in per_image[0..n) (may be NULL), BLEU totals in *totals (may be NULL).
 * CIDEr's document frequencies come from these n images' references. */
gr_status gr_caption_score_tokenized(const gr_caption_image *images, size_t n, gr_caption_scores *corpus,
                                     gr_caption_scores *per_image, gr_bleu_totals *totals);

/* Tokenized copies of raw captions: references of all images first (one tokenizer call, as
 * COCOEvalCap does), then predictions (a second call). */
typedef struct gr_caption_tokens {
    gr_caption_image *images; /* n entries pointing into the strings below */
    char **strings;           /* every tokenized string (refs then preds) */
    size_t n, n_strings;
} gr_caption_tokens;
gr_status gr_caption_tokenize(const gr_caption_image *raw, size_t n, gr_caption_tokens *out);
void gr_caption_tokens_free(gr_caption_tokens *t);

/* gr_caption_tokenize + gr_caption_score_tokenized. */
gr_status gr_caption_score(const gr_caption_image *raw, size_t n, gr_caption_scores *corpus,
                           gr_caption_scores *per_image, gr_bleu_totals *totals);

/* ---------------------------------------------------------------- VQA accuracy */

typedef enum gr_vqa_evaluator {
    GR_VQA_OFFICIAL = 0, /* GT-Vision-Lab/VQA a013f00 (2021, current) */
    GR_VQA_LAVIS = 1     /* GT-Vision-Lab/VQA a4f1afd (2017), vendored by LAVIS and so VPGTrans */
} gr_vqa_evaluator;

typedef struct gr_vqa_answer {
    const char *answer;
    const char *confidence; /* answer_confidence, or NULL */
    long long id;           /* answer_id */
} gr_vqa_answer;

typedef struct gr_vqa_item {
    long long question_id;
    const char *question_type, *answer_type;
    const gr_vqa_answer *answers; /* the annotators' answers (10 in VQAv2) */
    size_t n_answers;             /* >= 1 */
    const char *prediction;
} gr_vqa_item;

typedef struct gr_vqa_group {
    char *name;
    double percent; /* unrounded, as handed to round() */
    size_t count;
} gr_vqa_group;

typedef struct gr_vqa_scores {
    double overall;                 /* percent, unrounded */
    gr_vqa_group *answer_types;     /* in order of first appearance */
    size_t n_answer_types;
    gr_vqa_group *question_types;   /* in order of first appearance */
    size_t n_question_types;
    double *per_question;           /* accuracy 0..1 of items[i] */
    size_t n;
} gr_vqa_scores;

/* Accuracy of one question (0..1): min(1, matches/3) averaged over the leave-one-out subsets. */
gr_status gr_vqa_question_accuracy(const gr_vqa_item *item, gr_vqa_evaluator ev, double *acc);
/* All items, in the given (annotation-file) order. Free with gr_vqa_scores_free. */
gr_status gr_vqa_score(const gr_vqa_item *items, size_t n, gr_vqa_evaluator ev, gr_vqa_scores *out);
void gr_vqa_scores_free(gr_vqa_scores *s);

/* The evaluator's two normalisation steps (malloc'd results; NULL when out of memory). */
char *gr_vqa_process_punctuation(const char *s);
char *gr_vqa_process_digit_article(const char *s);

/* Python's round(x, ndigits) (correctly rounded, ties to even on the exact binary value). */
double gr_round_py(double x, int ndigits);

/* ---------------------------------------------------------------- JSON readers */

/* A COCO caption evaluation read from files: the images to evaluate, in evaluation order. */
typedef struct gr_caption_eval {
    gr_caption_image *images; /* raw captions */
    long long *image_ids;
    size_t n;
    void *owner; /* the parsed JSON documents the strings live in */
} gr_caption_eval;

/* Reads a COCO caption annotation file and a COCO result file (list of {image_id, caption}).
 * Evaluated images: every image of the annotation file (its `images` order), as COCOEvalCap does by
 * default; with `subset`, only those with a prediction (cocoEval.params['image_id'] =
 * cocoRes.getImgIds()). Errors name the file and the entry. */
gr_status gr_caption_eval_load(const char *refs_path, const char *pred_path, int subset, gr_caption_eval *out);
void gr_caption_eval_free(gr_caption_eval *e);

/* A VQA evaluation read from files, in annotation-file order. */
typedef struct gr_vqa_eval {
    gr_vqa_item *items;
    size_t n;
    void *owner;
} gr_vqa_eval;

/* Reads a VQA question file, annotation file and result file (list of {question_id, answer}); the
 * result question ids must be exactly the annotation file's. Errors name the file and the entry. */
gr_status gr_vqa_eval_load(const char *questions_path, const char *annotations_path, const char *results_path,
                           gr_vqa_eval *out);
void gr_vqa_eval_free(gr_vqa_eval *e);

#endif
