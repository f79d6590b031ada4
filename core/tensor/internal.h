/* Core-private tensor bookkeeping shared by the context, the tape and the operations.
 *
 * Ownership: a gr_storage is one backend buffer with a reference count. Every tensor that views
 * it holds one reference (its "own" reference) and every tape node that saved it for the
 * backward pass holds one more. gr_backward drops the own references of transient tensors
 * first, so an activation lives exactly as long as the last node that needs it. */
#ifndef GRAFT_CORE_TENSOR_INTERNAL_H
#define GRAFT_CORE_TENSOR_INTERNAL_H

#include <stdint.h>

#include "graft/ops.h"

typedef struct gr_storage {
    gr_buffer *buf;
    size_t bytes;    /* size of the buffer (a cache bucket size) */
    int refs;
    int wrapped;     /* caller-owned host memory: never cached, not counted as in use */
} gr_storage;

typedef struct gr_node gr_node;
/* Computes the gradients of n->in[] from dout (the gradient of n->out), via gr_grad_* helpers. */
typedef void (*gr_backward_fn)(gr_ctx *ctx, gr_node *n, gr_tensor *dout);

#define GR_NODE_IN 3
#define GR_NODE_SAVE 5
struct gr_node {
    const char *op;
    gr_backward_fn backward;
    gr_tensor *out;
    gr_tensor *in[GR_NODE_IN];      /* graph edges (may be NULL or not need a gradient) */
    gr_tensor *saved[GR_NODE_SAVE]; /* tensors whose storage this node keeps alive */
    gr_storage *saved_st[GR_NODE_SAVE];
    int nsaved;
    float f[2];
    int64_t iv[2 * GR_MAX_DIMS + 2];
    gr_node *next_free;
};

struct gr_tensor_priv {
    gr_ctx *ctx;
    gr_storage *st;
    gr_tensor *prev, *next;   /* the context's transient or persistent list */
    uint8_t persistent, trainable, requires_grad, keep, released, grad_valid, is_grad;
    uint8_t ready_mark;       /* gr_backward with a grad-ready hook: already listed */
    gr_node *node;            /* the node that made this tensor (NULL: leaf or constant) */
    gr_tensor *grad;          /* leaves: the accumulated gradient */
    gr_tensor *gacc;          /* non-leaves: the gradient pending during gr_backward */
    char *name_copy;
};

/* ---- context internals (ctx.c) ---- */
gr_backend *gr__be(gr_ctx *ctx);
int gr__ok(const gr_ctx *ctx);
/* Sets the sticky error (first failure wins); returns NULL for `return gr__fail(...)`. */
gr_tensor *gr__fail(gr_ctx *ctx, gr_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* After a backend call: on failure makes the sticky error "op: <backend message>"; returns 1 if ok. */
int gr__k(gr_ctx *ctx, const char *op, gr_status st);
/* Validates an operand: not NULL, not released by gr_backward, on this context. */
int gr__in(gr_ctx *ctx, const char *op, const gr_tensor *t);
int gr__grad_enabled(const gr_ctx *ctx);

/* A transient tensor with fresh storage (uninitialised). */
gr_tensor *gr__new(gr_ctx *ctx, gr_dtype dt, int ndim, const int64_t *shape);
/* A transient tensor sharing base's storage at byte offset `offset` from base's offset. */
gr_tensor *gr__view(gr_ctx *ctx, gr_tensor *base, int ndim, const int64_t *shape, size_t offset);
/* Frees a temporary that nothing else references (storage reference and struct). */
void gr__drop(gr_ctx *ctx, gr_tensor *t);
/* Drops t's own storage reference; the struct stays valid (tape nodes may point at it). */
void gr__release(gr_ctx *ctx, gr_tensor *t);
/* F32 version of t: t itself, or a converted temporary (*tmp = 1; gr__drop it after use). */
gr_tensor *gr__f32(gr_ctx *ctx, const char *op, gr_tensor *t, int *tmp);

void gr__storage_ref(gr_storage *st);
void gr__storage_unref(gr_ctx *ctx, gr_storage *st);

/* Flop accounting. kind: 0 forward, 1 backward-input, 2 backward-param. */
void gr__count_matmul(gr_ctx *ctx, double flops, int kind, int trainable);

/* ---- tape (tape.c) ---- */
/* A node for `out` if grads are enabled and any input needs a gradient, else NULL. */
gr_node *gr__record(gr_ctx *ctx, const char *op, gr_backward_fn fn, gr_tensor *out,
                    gr_tensor *a, gr_tensor *b, gr_tensor *c);
void gr__save(gr_node *n, gr_tensor *t);
void gr__tape_clear(gr_ctx *ctx);
/* The gradient-ready hook (ctx.c; NULL when none). */
gr_grad_ready_fn gr__grad_ready_hook(gr_ctx *ctx, void **user);
/* Where the gradient of x goes: its pending or accumulated gradient (F32, x's shape).
 * *accumulate = 1 when it already holds a value to add to. NULL when x needs no gradient. */
gr_tensor *gr__grad_slot(gr_ctx *ctx, gr_tensor *x, int *accumulate);
/* Like gr__grad_slot, but a fresh slot is zero-filled (for scatter/strided accumulation). */
gr_tensor *gr__grad_slot_zeroed(gr_ctx *ctx, gr_tensor *x);
/* Marks the slot returned by gr__grad_slot as holding a value. */
void gr__grad_written(gr_tensor *x);
/* Adds g (F32, x's numel; a temporary the caller gives away) to x's gradient. */
void gr__grad_give(gr_ctx *ctx, gr_tensor *x, gr_tensor *g);
int gr__is_param(const gr_tensor *t);
/* For kernels that overwrite: the target to write x's gradient contribution into (x's empty
 * slot itself, or a temporary when the slot already holds a value); gr__gend then adds it. */
gr_tensor *gr__gbegin(gr_ctx *ctx, gr_tensor *x, int *is_temp);
void gr__gend(gr_ctx *ctx, gr_tensor *x, gr_tensor *g, int is_temp);

/* ---- shape helpers (ops_util.c) ---- */
const char *gr__shp(const gr_tensor *t, char *buf, size_t cap);
#define GR_SHP(t) gr__shp((t), (char[96]){0}, 96)
/* A descriptor of t's memory with another shape (no ownership; for kernel arguments). */
gr_tensor gr__desc(const gr_tensor *t, int ndim, const int64_t *shape);
int gr__same_shape(const gr_tensor *a, const gr_tensor *b);

#endif
