/* Per-kernel wall-time profile of a benchmark (bench_profile.c): a timing shim around the
 * backend interface. One profiled backend per process. */
#ifndef GRAFT_CLI_BENCH_PROFILE_H
#define GRAFT_CLI_BENCH_PROFILE_H

#include "bench.h"

/* *out becomes `be` with every kernel slot timed; `be` must outlive it. */
void gr_bench_profile_wrap(gr_backend *be, gr_backend *out);
void gr_bench_profile_reset(void);
/* Prints per-step milliseconds and shares of each kernel over `steps` steps. */
void gr_bench_profile_print(int steps, double step_seconds);

#endif
