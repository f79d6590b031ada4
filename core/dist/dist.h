/* Data-parallel training over MPI (see docs/distributed.md).
 *
 * The process group is process-global, like MPI itself: gr_dist_init once at start-up,
 * gr_dist_finalize at exit. Without mpirun (no launcher in the environment), or in a build
 * without MPI (GRAFT_MPI=OFF), graft is one rank of a world of one and every call below is a
 * no-op that succeeds, so single-process code paths stay exactly as they were.
 *
 * Only the main thread talks to MPI (MPI_THREAD_FUNNELED). MPI errors return to graft
 * (MPI_ERRORS_RETURN) and become one-line gr_fail messages naming the rank and the operation;
 * gr_dist_abort then ends the job on every rank.
 *
 * Gradients (gr_dist_reducer): the gradients of trainable tensors are summed over ranks with
 * non-blocking MPI_Iallreduce on contiguous host buckets. A bucket is launched as soon as the
 * last of its tensors' gradients is final, which the tape reports through the gradient-ready
 * hook (gr_ctx_set_grad_ready_hook), so communication overlaps the rest of the backward pass.
 * Buckets are launched strictly in bucket order on every rank (MPI matches collectives by
 * order), whatever order gradients complete in. Frozen tensors never cross the network: the
 * reducer and the broadcast refuse them.
 *
 * Typical use in a training step (the trainer does this; see core/train/trainer.c):
 *
 *     gr_dist_reducer *red;
 *     gr_dist_reducer_create(ctx, params, n, 0, &red);     // once
 *     gr_dist_broadcast(ctx, params, n);                     // rank 0's initial values
 *     ...
 *     gr_dist_reducer_begin(red);                            // before the step's last backward
 *     gr_backward(ctx, loss, seed);                          // buckets leave as grads finish
 *     gr_dist_reducer_finish(red);                           // gr_grad(p) = sum over ranks
 */
#ifndef GRAFT_CORE_DIST_DIST_H
#define GRAFT_CORE_DIST_DIST_H

#include <stddef.h>
#include <stdint.h>

#include "graft/ops.h"

/* ------------------------------------------------------------------ process group ---- */

/* Joins the MPI job when graft was started by a launcher (mpirun/mpiexec/srun: OpenMPI,
 * MPICH-Hydra or PMIx variables in the environment), else stays a single rank. Idempotent.
 * A build without MPI started by a launcher with more than one rank fails, naming the build
 * option, instead of running N unrelated copies on the same run directory. */
gr_status gr_dist_init(void);
/* MPI_Finalize (after a barrier) when gr_dist_init joined a job; safe to call always. */
void gr_dist_finalize(void);

int gr_dist_rank(void);      /* 0 when single */
int gr_dist_world(void);     /* 1 when single */
int gr_dist_is_root(void);   /* rank 0: the one that writes logs, plots and checkpoints */
int gr_dist_compiled(void);  /* 1 when built with MPI (GRAFT_MPI) */
/* The launcher seen by gr_dist_init ("mpirun" or "" when none). */
const char *gr_dist_launcher(void);

/* Prints "graft: rank R of W failed (<message>); ending the job on every rank" (the thread's
 * last error) to stderr and ends the whole
 * job (MPI_Abort) so no rank waits forever on a dead peer. In a world of one it only prints
 * and returns `code`; with more ranks it does not return. */
int gr_dist_abort(int code);

gr_status gr_dist_barrier(void);
/* Element-wise sum / max over ranks, in place, on every rank (blocking; for a few scalars). */
gr_status gr_dist_sum_f64(double *v, int n);
gr_status gr_dist_max_f64(double *v, int n);

/* Copies rank 0's values of `tensors` to every other rank (initial parameters). Every tensor
 * must be trainable: frozen ones are loaded from the same files on every rank and never sent. */
gr_status gr_dist_broadcast(gr_ctx *ctx, gr_tensor *const *tensors, int n);

/* Checks that every rank holds bit-identical values of `tensors` (a 64-bit hash per tensor,
 * compared with a min/max reduction); fails naming the first tensor that differs and `what`. */
gr_status gr_dist_check_equal(gr_ctx *ctx, gr_tensor *const *tensors, int n, const char *what);

/* ------------------------------------------------------------------ gradient buckets ---- */

typedef struct gr_dist_reducer gr_dist_reducer;

typedef struct gr_dist_reducer_stats {
    int buckets;              /* number of buckets */
    int64_t floats;           /* gradient floats per reduction (all buckets) */
    int64_t reductions;       /* gr_dist_reducer_finish calls that reduced */
    int64_t early;            /* buckets launched during backward (before finish), in total */
    int64_t launched;         /* buckets launched in total */
} gr_dist_reducer_stats;

/* Buckets for `params` (trainable, persistent, F32), at most `bucket_bytes` each (0: 25 MiB,
 * PyTorch DDP's default; a tensor larger than that gets a bucket of its own). Buckets hold the
 * tensors in reverse order, the order in which a backward pass usually finishes them. */
gr_status gr_dist_reducer_create(gr_ctx *ctx, gr_tensor *const *params, int n, size_t bucket_bytes,
                                 gr_dist_reducer **out);
void gr_dist_reducer_free(gr_dist_reducer *r);
/* Arms the reducer for the next gr_backward on its context (installs the gradient-ready hook).
 * With gradient accumulation call it before the LAST micro-batch's backward only: the earlier
 * micro-batches accumulate locally. */
void gr_dist_reducer_begin(gr_dist_reducer *r);
/* Launches the buckets not launched yet (tensors the backward did not reach count as zero
 * gradients), waits for all, and writes the sums over ranks into gr_grad() of each tensor; a
 * tensor that no rank produced a gradient for keeps none (as in a single process). Removes the
 * hook. In a world of one it only removes the hook. */
gr_status gr_dist_reducer_finish(gr_dist_reducer *r);
void gr_dist_reducer_get_stats(const gr_dist_reducer *r, gr_dist_reducer_stats *out);

#endif
