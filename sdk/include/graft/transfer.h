/* graft — the pieces transfer strategies share (VPGTrans TaS/TaT, inherit, surrogate grafting),
 * on top of the engine (graft/engine.h). A strategy plugin sequences these and
 * gr_engine_run_stage(); see docs/strategies.md.
 *
 * Report keys written here: "converter.*" (pairs per source, losses, FLOPs),
 * "transfer.extra_flops" (FLOPs spent outside the trainer: the converter),
 * "transfer.source_flops" (the source VPG's own training, read from its run), and
 * "speedup.<metric>.*" (graft/../core/transfer/speedup.h: epochs and FLOPs to reach scratch's
 * best, the paper's e_scratch / e_transfer and the FLOP ratios). */
#ifndef GRAFT_TRANSFER_H
#define GRAFT_TRANSFER_H

#include <stdint.h>

#include "graft/engine.h"
#include "graft/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Loads tensors matching `pattern` from a finished run (RUN_DIR: its latest checkpoint's
 * trainable tensors), a .safetensors file or an HF directory (model.safetensors, sharded too)
 * into model m, whatever m's role. The run is one
 * that trained the model as the "target" role (the usual single-model run: scratch), so its
 * tensors carry plain HF names. Names of the file matching the pattern that m lacks are an
 * error; *loaded (may be NULL) gets the count. */
gr_status gr_transfer_load_run(gr_engine_model *m, const char *run, const char *pattern, int *loaded);

/* Total training FLOPs of a finished run (its report.json "totals.flops", else the last
 * cumulative count of its log): what the source VPG cost. */
gr_status gr_transfer_run_flops(const char *run, double *flops);

/* A number of a finished run's report.json by dotted path ("final.test.CIDEr.value");
 * GR_ERR_NOT_FOUND naming run and path when absent. */
gr_status gr_transfer_report_value(const char *run, const char *path, double *value);

/* VPGTrans stage 0: trains the word-embedding converter Linear(d_src, d_tgt) between the two
 * models' input embedding tables on token pairs from the training captions (pairs: "position",
 * "string" or "union"; see core/transfer/pairs.h), and writes the fusion of the source's
 * projector with it into dst's projector: W_t = W_w W_s, b_t = W_w b_s + b_w. Logs an event,
 * reports "converter.*" and adds its FLOPs to "transfer.extra_flops". Deterministic (seeded), so
 * a resumed run recomputes the same projector. */
typedef struct gr_converter_opts {
    uint32_t struct_size;
    const char *pairs;            /* "position", "string", "union" */
    double lr;                    /* 5.0 */
    int epochs;                   /* 5 within a family, 8 across */
    int64_t captions_per_batch;   /* 4096 */
    int64_t max_captions;         /* captions of data.train used (0: all) */
    uint64_t seed;
} gr_converter_opts;

typedef struct gr_converter_summary {
    uint32_t struct_size;
    int64_t captions, captions_matched, position_pairs, position_distinct, string_pairs, string_in_position;
    int64_t pairs_used;           /* pair occurrences the converter trained on */
    double first_loss, final_loss, final_cos;
    double flops;                 /* converter training + fusion */
} gr_converter_summary;

gr_status gr_transfer_convert_projector(gr_engine *e, gr_engine_model *src, gr_engine_model *dst,
                                        const gr_converter_opts *opts, gr_converter_summary *out);

/* Speed-up of this run against scratch run(s) (one per seed): for each metric evaluated on the
 * "val" split by both, epochs and FLOPs to reach scratch's best (within max_epochs, 0 = all),
 * with extra_flops added to this run's and source_flops reported separately. Writes
 * "speedup.<metric>.*" to the report and prints the paper-style table on stdout. Metrics that
 * neither run evaluated are skipped; none at all is an error. */
gr_status gr_transfer_speedup(gr_engine *e, const char *const *scratch_runs, int n_scratch,
                              const char *const *metrics, int n_metrics, double max_epochs, double extra_flops,
                              double source_flops);

/* Compares two models' tensors matching `pattern` byte for byte (names present in both);
 * *differ gets the count of tensors whose bytes differ, *compared the count compared. */
gr_status gr_transfer_compare_params(const gr_engine_model *a, const gr_engine_model *b, const char *pattern,
                                     int *compared, int *differ);

/* ------------------------------------------------------------ the VPGTrans recipe ---- */

/* The keys of a VPGTrans-style strategy NAME (tas, tat, inherit differ only in defaults):
 * PAIRS "position"/"union", CONV_EPOCHS 5/8, CONVERTER "true"/"false", WARMUP epochs "1"/"0". */
#define GR_VPGTRANS_KEYS(N, PAIRS, CONV_EPOCHS, CONVERTER, WARMUP)                                          \
    {"strategy." N ".source_run", GR_CFG_STRING, "", "the trained source VPG: a graft run, a safetensors file or an HF dir (\"\": model.source as is)"}, \
    {"strategy." N ".inherit", GR_CFG_STRING_LIST, "[\"vision_model.*\", \"query_tokens\", \"qformer.*\"]",      \
     "tensors the target takes from the source (the VPG)"},                                               \
    {"strategy." N ".converter", GR_CFG_BOOL, CONVERTER, "initialise the projector with the word converter fused into the source's"}, \
    {"strategy." N ".pairs", GR_CFG_STRING, PAIRS, "converter token pairs: position, string or union"},   \
    {"strategy." N ".converter_lr", GR_CFG_FLOAT, "5.0", "converter SGD learning rate"},                  \
    {"strategy." N ".converter_epochs", GR_CFG_INT, CONV_EPOCHS, "converter epochs (5 within a family, 8 across)"}, \
    {"strategy." N ".converter_batch", GR_CFG_INT, "4096", "captions per converter batch"},                \
    {"strategy." N ".converter_captions", GR_CFG_INT, "0", "captions of data.train for the converter (0: all)"}, \
    {"strategy." N ".converter_seed", GR_CFG_INT, "0", "converter init and shuffling"},                   \
    {"strategy." N ".warmup_epochs", GR_CFG_INT, WARMUP, "stage 1: epochs training only the projector (0: none)"}, \
    {"strategy." N ".warmup_lr_mult", GR_CFG_FLOAT, "5.0", "stage 1: constant lr = this x train.lr"},     \
    {"strategy." N ".finetune_epochs", GR_CFG_INT, "-1", "stage 2 epochs (-1: train.epochs - warmup_epochs)"}, \
    {"strategy." N ".compare", GR_CFG_STRING_LIST, "[]", "scratch run(s) on the target: speed-up in report.json"}, \
    {"strategy." N ".speedup_metrics", GR_CFG_STRING_LIST, "[\"CIDEr\", \"Bleu_4\", \"vqa_acc\"]",               \
     "metrics the speed-up is reported for"},                                                             \
    {"strategy." N ".speedup_max_epochs", GR_CFG_FLOAT, "0", "scratch's best within this many epochs (0: all; paper: 10)"}, \
    {"strategy." N ".verify_stage1", GR_CFG_BOOL, "false", "check that stage 1 changed no tensor but the projector"}, \
    {"strategy." N ".test", GR_CFG_BOOL, "false", "evaluate on data.test after training"}

#define GR_VPGTRANS_KEY_COUNT 17

/* Runs the recipe with the keys of strategy NAME: open "source" and "target"; load the source
 * run into the source; copy the inherited tensors; optionally the converter-fused projector;
 * stage "warmup" (projector only, constant lr x warmup_lr_mult, VPG frozen); stage "finetune"
 * (train.* as for scratch); optional test evaluation; speed-up against strategy.NAME.compare. */
gr_status gr_transfer_run_vpgtrans(gr_engine *e, const char *name);

/* ------------------------------------------------------------ surrogate grafting ---- */

/* A surrogate directory's surrogate.json (written by `graft surrogate build`): surrogate layer
 * i is target layer kept[i]; translators[] are surrogate positions of the translator layers. */
#define GR_SURROGATE_MAX_LAYERS 512
typedef struct gr_surrogate_map {
    int num_layers;                       /* of the target */
    int num_kept;
    int kept[GR_SURROGATE_MAX_LAYERS];
    int num_translators;
    int translators[GR_SURROGATE_MAX_LAYERS];
} gr_surrogate_map;
gr_status gr_transfer_read_surrogate(const char *surrogate_dir, gr_surrogate_map *out);

/* Compares every language_model.* tensor of the surrogate VLM with the target's tensor it was
 * copied from (layer indices mapped through `map`), byte for byte. *first_diff (cap bytes) gets
 * the first differing name, "" when none. */
gr_status gr_transfer_check_surrogate(const gr_engine_model *surrogate, const gr_engine_model *target,
                                      const gr_surrogate_map *map, int *compared, int *differ,
                                      char *first_diff, size_t cap);

#ifdef __cplusplus
}
#endif
#endif
