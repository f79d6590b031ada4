/* `graft bench KIND`: each benchmark is one function in its own bench_KIND.c, listed in the
 * table of cmd_bench.c. A benchmark gets the opened backend and the remaining arguments, prints
 * its table and ends with one summary line `bench KIND: ...`. */
#ifndef GRAFT_CLI_BENCH_H
#define GRAFT_CLI_BENCH_H

#include "graft/backend.h"
#include "graft/config.h"

typedef struct gr_bench_env {
    gr_backend *backend;
    const char *backend_name;
    int threads;             /* as requested (0 = backend default) */
    const gr_config *config;
} gr_bench_env;

typedef struct gr_bench {
    const char *name;
    const char *summary;
    int (*run)(const gr_bench_env *env, int argc, char **argv);
} gr_bench;

int gr_bench_matmul(const gr_bench_env *env, int argc, char **argv);

#endif
