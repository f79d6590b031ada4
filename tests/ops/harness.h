/* Shared test harness for the op tests: opens a backend by name, random data, and the generic
 * check of one operation: forward against a float64 host reference, backward (a vector-Jacobian
 * product with a random cotangent) against central finite differences of that reference.
 *
 * Backend selection: argv[1], else $GRAFT_TEST_BACKEND, else "cpu". */
#ifndef GRAFT_TEST_OPS_HARNESS_H
#define GRAFT_TEST_OPS_HARNESS_H

#include <stdint.h>

#include "graft/ops.h"

#define MAXIN 4

typedef struct op_case op_case;
typedef gr_tensor *(*case_fwd)(gr_ctx *ctx, gr_tensor **in, const op_case *c);
/* out has room for the graft output's numel; shapes of inputs are in c. */
typedef void (*case_ref)(const op_case *c, double *const *in, double *out);

struct op_case {
    const char *name;
    int nin;
    gr_dtype dt[MAXIN];             /* F32 unless set; I32 inputs take idata */
    int ndim[MAXIN];
    int64_t shape[MAXIN][GR_MAX_DIMS];
    int diff[MAXIN];                /* check the gradient of this input */
    int param[MAXIN];               /* make it a trainable persistent parameter */
    const int32_t *idata[MAXIN];
    float lo[MAXIN], hi[MAXIN];     /* uniform range (default [-1, 1]) */
    case_fwd fwd;
    case_ref ref;
    /* op parameters */
    int ta, tb, axis, times, perm[GR_MAX_DIMS], rot;
    int64_t start, len;
    float f;
    int32_t pad;
    const double *aux;              /* extra reference data (e.g. rope tables) */
    gr_tensor *aux_t[2];
    /* filled by the harness */
    int out_ndim;
    int64_t out_shape[GR_MAX_DIMS];
    double fwd_tol;                 /* default 2e-5 (relative, whole tensor) */
};

extern int g_failures;
extern gr_backend *g_backend;

gr_ctx *harness_open(int argc, char **argv, const char *prog);
void harness_close(gr_ctx *ctx);
uint64_t rng_next(void);
double rng_uniform(double lo, double hi);
int64_t rng_int(int64_t lo, int64_t hi); /* [lo, hi] */
int64_t numel_of(int ndim, const int64_t *shape);

/* Runs the forward and gradient checks; prints one line; counts failures. */
void check_case(gr_ctx *ctx, op_case *c);
void expect(int cond, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Relative error ||a - b|| / max(||b||, tiny). */
double rel_err_fd(const float *a, const double *b, int64_t n);

#endif
