/* Speed-up accounting: how much sooner a transfer reaches what training from scratch reaches.
 *
 * VPGTrans's definition: p = the best score scratch reaches within `max_epochs` (the paper: 10),
 * e_scratch = the first epoch it reaches p; e_transfer = the first epoch at which the transfer
 * run reaches p; speed-up = e_scratch / e_transfer. "Reaches" is >= (<= for losses), so a tie
 * counts. The same in FLOPs: F_scratch = cumulative training FLOPs of scratch at e_scratch;
 * F_transfer = cumulative FLOPs of the transfer run at e_transfer (every stage of that run: the
 * warm-up counts) plus `extra_flops` (the word converter, computed off the trainer) — and,
 * reported separately, plus `source_flops` (the source VPG's own training, which a user who has
 * the source checkpoint does not pay; methods.md: report both).
 *
 * Epochs are the run log's: a transfer run's stages log one continuing epoch axis (stage 1 is
 * epoch 1). Evaluations at epoch 0 (before any training) are not candidates: an epoch count of
 * 0 has no ratio. With several seeds, the curves of each side are averaged point by point (the
 * runs must evaluate at the same epochs) before the rule is applied, and each seed pair's own
 * speed-up is kept too: the rule moves with per-epoch noise. */
#ifndef GRAFT_CORE_TRANSFER_SPEEDUP_H
#define GRAFT_CORE_TRANSFER_SPEEDUP_H

#include <stdio.h>

#include "graft/status.h"

#define GR_SPEEDUP_MAX_SEEDS 8

typedef struct gr_speedup_input {
    const char *const *scratch;  /* scratch run directories (or metrics.jsonl files), one per seed */
    int n_scratch;
    const char *const *transfer; /* transfer runs, one per seed */
    int n_transfer;
    const char *split;           /* evaluation split; NULL: the first split holding the metric */
    double max_epochs;           /* scratch's best within this many epochs; 0: all */
    /* < 0: read from each transfer run's report.json ("transfer.extra_flops",
     * "transfer.source_flops"; absent = 0) and average; >= 0: use as given. */
    double extra_flops, source_flops;
} gr_speedup_input;

typedef struct gr_speedup {
    char metric[64];
    int n_seeds;                      /* curves averaged on each side (min of the two counts) */
    double scratch_best;              /* p */
    double scratch_epoch, scratch_flops;
    int reached;                      /* the transfer (mean curve) reached p */
    double transfer_value;            /* its score at that point */
    double transfer_epoch, transfer_flops; /* transfer_flops includes extra_flops */
    double source_flops;
    double speedup_epochs, speedup_flops, speedup_flops_with_source; /* valid when reached */
    double transfer_best;             /* best of the transfer's mean curve */
    /* per seed pair i (scratch[i] vs transfer[i]); 0 where that seed never reached its p */
    double seed_speedup_epochs[GR_SPEEDUP_MAX_SEEDS];
} gr_speedup;

/* Computes the speed-up of `metric`. Errors name the run and the metric (a run without the
 * metric, runs evaluated at different epochs, no scratch evaluation after epoch 0). */
gr_status gr_speedup_compute(const gr_speedup_input *in, const char *metric, gr_speedup *out);

/* The numbers of a result as (name, value) pairs for report.json under
 * "speedup.<metric>.<name>"; the speed-ups are left out when the transfer never reached p
 * ("reached" = 0 says so). Returns the count (at most 16). */
int gr_speedup_fields(const gr_speedup *s, const char **names, double *values, int cap);

/* A paper-style table: one row per result, `labels[i]` naming the transfer ("OPT-s -> OPT-l"). */
void gr_speedup_print_table(FILE *f, const char *title, const char *const *labels, const gr_speedup *rows,
                            int n);

#endif
