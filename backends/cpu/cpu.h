/* The CPU backend's shared definitions: host buffers and the backend context. */
#ifndef GRAFT_CPU_H
#define GRAFT_CPU_H

#include "graft/backend.h"
#include "pool.h"

struct gr_buffer {
    void *ptr;
    size_t bytes;
    int wrapped;    /* caller-owned memory (buffer_wrap_host) */
};

typedef struct cpu_backend {
    cpu_pool *pool;
    int threads;
} cpu_backend;

static inline float *cpu_f32(const gr_tensor *t) { return (float *)((char *)t->buffer->ptr + t->offset); }
static inline void *cpu_ptr(const gr_tensor *t) { return (char *)t->buffer->ptr + t->offset; }

/* Vector helpers (cpu_exp.c): out[i] = scale * exp(x[i] - shift) (0 below e^-87.3; out may
 * be x); the maximum of x[0..n) (n >= 1); the sum of x in double. */
void cpu_exp_shift(float *out, const float *x, float shift, float scale, int64_t n);
float cpu_max(const float *x, int64_t n);
double cpu_sum_f64(const float *x, int64_t n);

/* Kernels (cpu_kernels.c, cpu_rows.c). */
gr_status cpu_fill(void *b, const gr_tensor *t, float value);
gr_status cpu_binary(void *b, gr_binary_op op, const gr_tensor *out, const gr_tensor *x, const gr_tensor *y);
gr_status cpu_scale(void *b, const gr_tensor *out, const gr_tensor *in, float alpha, int accumulate);
gr_status cpu_reduce_to(void *b, const gr_tensor *out, const gr_tensor *in);
gr_status cpu_sum_squares(void *b, const gr_tensor *out, const gr_tensor *in);
gr_status cpu_unary(void *b, gr_unary_op op, const gr_tensor *out, const gr_tensor *in);
gr_status cpu_unary_backward(void *b, gr_unary_op op, const gr_tensor *dx, const gr_tensor *x, const gr_tensor *dy);
gr_status cpu_copy_strided(void *b, const gr_copy_args *a);
gr_status cpu_convert(void *b, const gr_tensor *out, const gr_tensor *in);
gr_status cpu_adamw(void *b, const gr_adamw_args *a);
gr_status cpu_gather_rows(void *b, const gr_tensor *out, const gr_tensor *table, const gr_tensor *ids);
gr_status cpu_scatter_add_rows(void *b, const gr_tensor *dtable, const gr_tensor *ids, const gr_tensor *dout,
                               int32_t skip_id);
gr_status cpu_layernorm(void *b, const gr_tensor *out, const gr_tensor *mean, const gr_tensor *rstd,
                        const gr_tensor *x, const gr_tensor *w, const gr_tensor *bias, float eps);
gr_status cpu_layernorm_backward(void *b, const gr_tensor *dx, const gr_tensor *dw, const gr_tensor *db,
                                 const gr_tensor *dy, const gr_tensor *x, const gr_tensor *w,
                                 const gr_tensor *mean, const gr_tensor *rstd);
gr_status cpu_rmsnorm(void *b, const gr_tensor *out, const gr_tensor *rstd, const gr_tensor *x,
                      const gr_tensor *w, float eps);
gr_status cpu_rmsnorm_backward(void *b, const gr_tensor *dx, const gr_tensor *dw, const gr_tensor *dy,
                               const gr_tensor *x, const gr_tensor *w, const gr_tensor *rstd);
gr_status cpu_softmax(void *b, const gr_tensor *out, const gr_tensor *in);
gr_status cpu_softmax_backward(void *b, const gr_tensor *dx, const gr_tensor *y, const gr_tensor *dy);
gr_status cpu_rope(void *b, const gr_tensor *out, const gr_tensor *x, const gr_tensor *cos,
                   const gr_tensor *sin, int rot_dim, int inverse);
gr_status cpu_cross_entropy(void *b, const gr_tensor *loss, const gr_tensor *logits, const gr_tensor *labels,
                            int32_t ignore_index);
gr_status cpu_cross_entropy_backward(void *b, const gr_tensor *dlogits, const gr_tensor *logits,
                                     const gr_tensor *labels, int32_t ignore_index, float scale);

#endif
