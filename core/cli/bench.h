/* `graft bench KIND`: each benchmark is one function in its own bench_KIND.c, listed in the
 * table of cmd_bench.c. A benchmark gets the opened backend and the remaining arguments, prints
 * its table and ends with one summary line `bench KIND: ...`. */
#ifndef GRAFT_CLI_BENCH_H
#define GRAFT_CLI_BENCH_H

#include "graft/backend.h"
#include "graft/config.h"
#include "graft/model.h"

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
int gr_bench_step(const gr_bench_env *env, int argc, char **argv);
int gr_bench_memory(const gr_bench_env *env, int argc, char **argv);

/* bench_matmul.c: the matmul table of `bench matmul` (printed when `print`), each product
 * timed for at least min_time seconds on `threads` OpenBLAS threads. *backend and *sgemm get
 * the total GFLOP/s of the backend's matmul and of plain cblas_sgemm over all shapes: the
 * latter is the "sgemm ceiling" the other benchmarks compare against. */
gr_status gr_bench_matmul_measure(const gr_backend *be, int threads, double min_time, int print,
                                  double *backend, double *sgemm);

/* bench_model.c: synthetic Hugging Face checkpoints with random weights. */
typedef struct gr_bench_lm {
    int llama;                     /* 0: OPT (OPTForCausalLM), 1: Llama (LlamaForCausalLM) */
    int layers;
    int64_t hidden, heads, ffn, vocab, max_pos;
    gr_dtype dtype;                /* stored dtype: F32, F16 or BF16 */
    uint64_t seed;
} gr_bench_lm;
/* Bytes of model.safetensors' tensor data. */
int64_t gr_bench_lm_bytes(const gr_bench_lm *m);
/* Writes DIR/config.json and DIR/model.safetensors (DIR exists). */
gr_status gr_bench_write_lm(const char *dir, const gr_bench_lm *m);
/* mkdtemp PARENT/graft-bench-XXXXXX (PARENT NULL: $TMPDIR or /tmp); rmdir removes the files
 * the benchmarks write and the directory. */
gr_status gr_bench_tmpdir(const char *parent, char *out, size_t cap);
void gr_bench_rmdir(const char *dir);
/* Free bytes for unprivileged users on the file system holding dir (-1: unknown). */
int64_t gr_bench_free_bytes(const char *dir);

/* A language model opened from a HF directory through its plugin (config model_type). */
struct json_t;
typedef struct gr_bench_model {
    struct json_t *config;
    gr_weights *weights;
    const gr_lm_iface *iface;
    gr_lm *lm;
} gr_bench_model;
gr_status gr_bench_open_lm(gr_ctx *ctx, const char *dir, gr_bench_model *out);
void gr_bench_close_lm(gr_ctx *ctx, gr_bench_model *m);

/* Shared helpers: monotonic seconds; median of n values (sorts them). */
double gr_bench_now(void);
double gr_bench_median(double *v, int n);

#endif
