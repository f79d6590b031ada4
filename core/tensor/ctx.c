/* The context: one backend, its tensors, the sticky error, a buffer cache and accounting.
 *
 * Buffers freed by tensors go into a size-bucketed cache (8 buckets per power of two, so at
 * most 12.5% slack) instead of back to the backend: a training step allocates the same sizes
 * every time, so after the first step no kernel launch allocates. The cache is capped
 * (GR_CACHE_LIMIT) and flushed when an allocation fails. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/internal.h"

#define GR_CACHE_LIMIT ((size_t)2 << 30)

typedef struct cache_entry { gr_buffer *buf; size_t bytes; } cache_entry;

typedef struct tensor_block { gr_tensor t; gr_tensor_priv p; } tensor_block;

struct gr_ctx {
    gr_backend *be;
    gr_status status;
    char msg[1024];
    int grad_enabled;
    gr_tensor *transient, *persistent;   /* doubly linked lists (priv->prev/next) */
    tensor_block **free_blocks;
    size_t nfree_blocks, cap_free_blocks;
    cache_entry *cache;
    size_t ncache, cap_cache, cache_bytes, cache_limit;
    size_t in_use, peak;
    gr_flops flops;
    /* tape (tape.c reaches it through the accessors below) */
    gr_node **tape;
    size_t ntape, cap_tape;
    gr_node *free_nodes;
    gr_grad_ready_fn grad_ready;         /* gr_ctx_set_grad_ready_hook */
    void *grad_ready_user;
};

/* ---------------------------------------------------------------- errors ---- */

gr_backend *gr__be(gr_ctx *ctx) { return ctx->be; }
int gr__ok(const gr_ctx *ctx) { return ctx && ctx->status == GR_OK; }
int gr__grad_enabled(const gr_ctx *ctx) { return ctx->grad_enabled; }

static void set_sticky(gr_ctx *ctx, gr_status code, const char *msg)
{
    if (ctx->status == GR_OK) {
        ctx->status = code;
        snprintf(ctx->msg, sizeof ctx->msg, "%s", msg);
    }
    gr_fail(ctx->status, "%s", ctx->msg);
}

gr_tensor *gr__fail(gr_ctx *ctx, gr_status code, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    set_sticky(ctx, code, buf);
    return NULL;
}

gr_status gr_ctx_fail(gr_ctx *ctx, gr_status code, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (!ctx) return gr_fail(code, "%s", buf);
    set_sticky(ctx, code, buf);
    return ctx->status;
}

int gr__k(gr_ctx *ctx, const char *op, gr_status st)
{
    if (st == GR_OK) return 1;
    const char *m = gr_last_error();
    gr__fail(ctx, st, "%s: %s", op, m[0] ? m : gr_status_name(st));
    return 0;
}

int gr__in(gr_ctx *ctx, const char *op, const gr_tensor *t)
{
    if (!t) {
        gr__fail(ctx, GR_ERR_INVALID, "%s: NULL operand", op);
        return 0;
    }
    if (!t->priv || t->priv->ctx != ctx) {
        gr__fail(ctx, GR_ERR_INVALID, "%s: operand %s is not a tensor of this context", op,
                 t->name ? t->name : "");
        return 0;
    }
    if (t->priv->released) {
        gr__fail(ctx, GR_ERR_INVALID,
                 "%s: operand %s %s was released by gr_backward (gr_keep it to read it later)",
                 op, t->name ? t->name : "tensor", GR_SHP(t));
        return 0;
    }
    return 1;
}

gr_status gr_ctx_status(const gr_ctx *ctx)
{
    if (!ctx) return gr_fail(GR_ERR_INVALID, "gr_ctx: NULL context");
    /* Re-publish the sticky message so `return gr_ctx_status(ctx)` reports the first failure
     * even when later calls overwrote the thread's message. */
    if (ctx->status != GR_OK) gr_fail(ctx->status, "%s", ctx->msg);
    return ctx->status;
}

const char *gr_ctx_error(const gr_ctx *ctx) { return ctx && ctx->status ? ctx->msg : ""; }

void gr_ctx_clear_error(gr_ctx *ctx)
{
    ctx->status = GR_OK;
    ctx->msg[0] = '\0';
}

int gr_ctx_set_grad_enabled(gr_ctx *ctx, int enabled)
{
    int old = ctx->grad_enabled;
    ctx->grad_enabled = enabled != 0;
    return old;
}

gr_backend *gr_ctx_backend(gr_ctx *ctx) { return ctx->be; }

/* ---------------------------------------------------------------- buffers ---- */

static size_t bucket_size(size_t bytes)
{
    if (bytes <= 256) return 256;
    size_t p = 1;
    while (p < bytes) p <<= 1;
    size_t step = p >> 3;  /* 8 buckets between p/2 and p */
    return (bytes + step - 1) / step * step;
}

static void cache_flush(gr_ctx *ctx)
{
    for (size_t i = 0; i < ctx->ncache; i++) ctx->be->iface->buffer_free(ctx->be->ctx, ctx->cache[i].buf);
    ctx->ncache = 0;
    ctx->cache_bytes = 0;
}

void gr_ctx_trim_cache(gr_ctx *ctx) { cache_flush(ctx); }

static gr_storage *storage_alloc(gr_ctx *ctx, size_t bytes)
{
    size_t want = bucket_size(bytes);
    gr_storage *st = malloc(sizeof *st);
    if (!st) return (gr_storage *)gr__fail(ctx, GR_ERR_NOMEM, "out of host memory");
    gr_buffer *buf = NULL;
    /* Most recently cached first: its pages are the warmest. */
    for (size_t i = ctx->ncache; i-- > 0;) {
        if (ctx->cache[i].bytes == want) {
            buf = ctx->cache[i].buf;
            ctx->cache[i] = ctx->cache[--ctx->ncache];
            ctx->cache_bytes -= want;
            break;
        }
    }
    if (!buf) {
        gr_status s = ctx->be->iface->buffer_alloc(ctx->be->ctx, want, &buf);
        if (s != GR_OK && ctx->ncache) {
            cache_flush(ctx);
            s = ctx->be->iface->buffer_alloc(ctx->be->ctx, want, &buf);
        }
        if (s != GR_OK) {
            free(st);
            gr__k(ctx, "buffer_alloc", s);
            return NULL;
        }
    }
    st->buf = buf;
    st->bytes = want;
    st->refs = 1;
    st->wrapped = 0;
    ctx->in_use += want;
    if (ctx->in_use > ctx->peak) ctx->peak = ctx->in_use;
    return st;
}

void gr__storage_ref(gr_storage *st) { st->refs++; }

void gr__storage_unref(gr_ctx *ctx, gr_storage *st)
{
    if (!st || --st->refs > 0) return;
    if (st->wrapped) {
        ctx->be->iface->buffer_free(ctx->be->ctx, st->buf);
    } else {
        ctx->in_use -= st->bytes;
        if (st->bytes > ctx->cache_limit) {
            ctx->be->iface->buffer_free(ctx->be->ctx, st->buf);
        } else {
            /* Evict the oldest entries until it fits. */
            size_t drop = 0, freed = 0;
            while (ctx->cache_bytes - freed + st->bytes > ctx->cache_limit && drop < ctx->ncache) {
                ctx->be->iface->buffer_free(ctx->be->ctx, ctx->cache[drop].buf);
                freed += ctx->cache[drop].bytes;
                drop++;
            }
            if (drop) {
                memmove(ctx->cache, ctx->cache + drop, (ctx->ncache - drop) * sizeof *ctx->cache);
                ctx->ncache -= drop;
                ctx->cache_bytes -= freed;
            }
            if (ctx->ncache == ctx->cap_cache) {
                size_t nc = ctx->cap_cache ? 2 * ctx->cap_cache : 64;
                cache_entry *c = realloc(ctx->cache, nc * sizeof *c);
                if (!c) {
                    ctx->be->iface->buffer_free(ctx->be->ctx, st->buf);
                    free(st);
                    return;
                }
                ctx->cache = c;
                ctx->cap_cache = nc;
            }
            ctx->cache[ctx->ncache++] = (cache_entry){st->buf, st->bytes};
            ctx->cache_bytes += st->bytes;
        }
    }
    free(st);
}

size_t gr_ctx_bytes_in_use(const gr_ctx *ctx) { return ctx->in_use; }
size_t gr_ctx_peak_bytes(const gr_ctx *ctx) { return ctx->peak; }

/* ---------------------------------------------------------------- tensors ---- */

static void list_push(gr_tensor **head, gr_tensor *t)
{
    t->priv->prev = NULL;
    t->priv->next = *head;
    if (*head) (*head)->priv->prev = t;
    *head = t;
}

static void list_remove(gr_tensor **head, gr_tensor *t)
{
    if (t->priv->prev) t->priv->prev->priv->next = t->priv->next;
    else *head = t->priv->next;
    if (t->priv->next) t->priv->next->priv->prev = t->priv->prev;
    t->priv->prev = t->priv->next = NULL;
}

static gr_tensor *tensor_struct(gr_ctx *ctx, gr_dtype dt, int ndim, const int64_t *shape,
                                int persistent)
{
    tensor_block *b;
    if (ctx->nfree_blocks) b = ctx->free_blocks[--ctx->nfree_blocks];
    else if (!(b = malloc(sizeof *b))) return gr__fail(ctx, GR_ERR_NOMEM, "out of host memory");
    memset(b, 0, sizeof *b);
    b->t.dtype = dt;
    b->t.ndim = ndim;
    for (int i = 0; i < ndim; i++) b->t.shape[i] = shape[i];
    b->t.priv = &b->p;
    b->p.ctx = ctx;
    b->p.persistent = (uint8_t)persistent;
    list_push(persistent ? &ctx->persistent : &ctx->transient, &b->t);
    return &b->t;
}

static void tensor_struct_free(gr_ctx *ctx, gr_tensor *t)
{
    tensor_block *b = (tensor_block *)t;
    free(t->priv->name_copy);
    if (ctx->nfree_blocks == ctx->cap_free_blocks) {
        size_t nc = ctx->cap_free_blocks ? 2 * ctx->cap_free_blocks : 256;
        tensor_block **fb = realloc(ctx->free_blocks, nc * sizeof *fb);
        if (!fb) {
            free(b);
            return;
        }
        ctx->free_blocks = fb;
        ctx->cap_free_blocks = nc;
    }
    ctx->free_blocks[ctx->nfree_blocks++] = b;
}

static int check_shape(gr_ctx *ctx, const char *op, gr_dtype dt, int ndim, const int64_t *shape)
{
    if ((unsigned)dt >= GR_DTYPE_COUNT)
        return gr__fail(ctx, GR_ERR_INVALID, "%s: unknown dtype %d", op, (int)dt), 0;
    if (ndim < 0 || ndim > GR_MAX_DIMS)
        return gr__fail(ctx, GR_ERR_SHAPE, "%s: %d dims (at most %d)", op, ndim, GR_MAX_DIMS), 0;
    for (int i = 0; i < ndim; i++)
        if (shape[i] < 0)
            return gr__fail(ctx, GR_ERR_SHAPE, "%s: negative size %lld in dim %d", op,
                            (long long)shape[i], i), 0;
    return 1;
}

static gr_tensor *tensor_alloc(gr_ctx *ctx, const char *op, gr_dtype dt, int ndim,
                               const int64_t *shape, int persistent)
{
    if (!gr__ok(ctx) || !check_shape(ctx, op, dt, ndim, shape)) return NULL;
    gr_tensor *t = tensor_struct(ctx, dt, ndim, shape, persistent);
    if (!t) return NULL;
    t->priv->st = storage_alloc(ctx, gr_nbytes(t) ? gr_nbytes(t) : 1);
    if (!t->priv->st) {
        list_remove(persistent ? &ctx->persistent : &ctx->transient, t);
        tensor_struct_free(ctx, t);
        return NULL;
    }
    t->buffer = t->priv->st->buf;
    return t;
}

gr_tensor *gr__new(gr_ctx *ctx, gr_dtype dt, int ndim, const int64_t *shape)
{
    return tensor_alloc(ctx, "gr_new", dt, ndim, shape, 0);
}

gr_tensor *gr__view(gr_ctx *ctx, gr_tensor *base, int ndim, const int64_t *shape, size_t offset)
{
    gr_tensor *t = tensor_struct(ctx, base->dtype, ndim, shape, 0);
    if (!t) return NULL;
    t->priv->st = base->priv->st;
    gr__storage_ref(t->priv->st);
    t->buffer = base->buffer;
    t->offset = base->offset + offset;
    return t;
}

static void release_storage(gr_ctx *ctx, gr_tensor *t)
{
    if (t->priv->released) return;
    t->priv->released = 1;
    gr__storage_unref(ctx, t->priv->st);
    t->priv->st = NULL;
}

void gr__release(gr_ctx *ctx, gr_tensor *t) { release_storage(ctx, t); }

/* Copy-on-write for zero-copy weights: a tensor that wraps caller memory (a read-only mmap of
 * a safetensors file) gets a buffer of its own with the same bytes before anything writes it
 * (an upload, an optimizer step). Other views of the mapping keep reading the file. */
static int own_storage(gr_ctx *ctx, gr_tensor *t)
{
    if (!t->priv || !t->priv->st || !t->priv->st->wrapped) return 1;
    size_t n = gr_nbytes(t);
    gr_storage *st = storage_alloc(ctx, n ? n : 1);
    if (!st) return 0;
    if (n && !gr__k(ctx, "copy", ctx->be->iface->copy(ctx->be->ctx, st->buf, 0, t->buffer, t->offset, n))) {
        gr__storage_unref(ctx, st);
        return 0;
    }
    gr_storage *old = t->priv->st;
    t->priv->st = st;
    t->buffer = st->buf;
    t->offset = 0;
    gr__storage_unref(ctx, old);
    return 1;
}

void gr__drop(gr_ctx *ctx, gr_tensor *t)
{
    if (!t) return;
    release_storage(ctx, t);
    list_remove(t->priv->persistent ? &ctx->persistent : &ctx->transient, t);
    tensor_struct_free(ctx, t);
}

/* Releases the own storage references of transient tensors nobody asked to keep (the start of
 * gr_backward): from here on only the tape holds activations. */
void gr__release_unkept(gr_ctx *ctx, const gr_tensor *except1, const gr_tensor *except2)
{
    for (gr_tensor *t = ctx->transient; t; t = t->priv->next)
        if (!t->priv->keep && !t->priv->is_grad && t != except1 && t != except2)
            release_storage(ctx, t);
}

gr_tensor *gr__f32(gr_ctx *ctx, const char *op, gr_tensor *t, int *tmp)
{
    *tmp = 0;
    if (t->dtype == GR_F32) return t;
    if (t->dtype != GR_F16 && t->dtype != GR_BF16) {
        char b[96];
        return gr__fail(ctx, GR_ERR_SHAPE, "%s: %s %s is %s, expected a float tensor", op,
                        t->name ? t->name : "operand", gr__shp(t, b, sizeof b),
                        gr_dtype_name(t->dtype));
    }
    gr_tensor *c = gr__new(ctx, GR_F32, t->ndim, t->shape);
    if (!c) return NULL;
    if (!gr__k(ctx, op, ctx->be->iface->convert(ctx->be->ctx, c, t))) {
        gr__drop(ctx, c);
        return NULL;
    }
    *tmp = 1;
    return c;
}

/* ---------------------------------------------------------------- public ---- */

gr_ctx *gr_ctx_create(gr_backend *backend)
{
    if (!backend || !backend->iface) {
        gr_fail(GR_ERR_INVALID, "gr_ctx_create: no backend");
        return NULL;
    }
    gr_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx) {
        gr_fail(GR_ERR_NOMEM, "gr_ctx_create: out of memory");
        return NULL;
    }
    ctx->be = backend;
    ctx->grad_enabled = 1;
    ctx->cache_limit = GR_CACHE_LIMIT;
    return ctx;
}

void gr_ctx_set_cache_limit(gr_ctx *ctx, size_t bytes)
{
    ctx->cache_limit = bytes;
    cache_flush(ctx);
}

static void free_all(gr_ctx *ctx, gr_tensor **head)
{
    while (*head) {
        gr_tensor *t = *head;
        release_storage(ctx, t);
        t->priv->grad = NULL; /* grads are on a list themselves */
        list_remove(head, t);
        tensor_struct_free(ctx, t);
    }
}

void gr_ctx_reset(gr_ctx *ctx)
{
    if (!ctx) return;
    gr__tape_clear(ctx);
    /* Transient leaves lose their gradients with them; persistent ones keep theirs. */
    for (gr_tensor *t = ctx->persistent; t; t = t->priv->next)
        if (t->priv->grad && !t->priv->grad->priv->persistent) {
            t->priv->grad = NULL;
            t->priv->grad_valid = 0;
        }
    free_all(ctx, &ctx->transient);
    gr_ctx_clear_error(ctx);
}

void gr_ctx_destroy(gr_ctx *ctx)
{
    if (!ctx) return;
    gr__tape_clear(ctx);
    free_all(ctx, &ctx->transient);
    free_all(ctx, &ctx->persistent);
    cache_flush(ctx);
    for (size_t i = 0; i < ctx->nfree_blocks; i++) free(ctx->free_blocks[i]);
    free(ctx->free_blocks);
    free(ctx->cache);
    while (ctx->free_nodes) {
        gr_node *n = ctx->free_nodes;
        ctx->free_nodes = n->next_free;
        free(n);
    }
    free(ctx->tape);
    free(ctx);
}

/* Tape storage lives in the context struct; tape.c uses these. */
void gr_ctx_set_grad_ready_hook(gr_ctx *ctx, gr_grad_ready_fn fn, void *user)
{
    ctx->grad_ready = fn;
    ctx->grad_ready_user = fn ? user : NULL;
}
gr_grad_ready_fn gr__grad_ready_hook(gr_ctx *ctx, void **user)
{
    *user = ctx->grad_ready_user;
    return ctx->grad_ready;
}
gr_node **gr__tape(gr_ctx *ctx, size_t **n, size_t **cap) { *n = &ctx->ntape; *cap = &ctx->cap_tape; return ctx->tape; }
void gr__tape_set(gr_ctx *ctx, gr_node **tape) { ctx->tape = tape; }
gr_node **gr__free_nodes(gr_ctx *ctx) { return &ctx->free_nodes; }

gr_tensor *gr_new(gr_ctx *ctx, gr_dtype dtype, int ndim, const int64_t *shape)
{
    return tensor_alloc(ctx, "gr_new", dtype, ndim, shape, 0);
}

gr_tensor *gr_full(gr_ctx *ctx, gr_dtype dtype, int ndim, const int64_t *shape, float value)
{
    if (gr__ok(ctx) && dtype != GR_F32 && dtype != GR_I32)
        return gr__fail(ctx, GR_ERR_INVALID, "gr_full: dtype %s (F32 or I32 only)", gr_dtype_name(dtype));
    gr_tensor *t = tensor_alloc(ctx, "gr_full", dtype, ndim, shape, 0);
    if (!t) return NULL;
    if (gr_numel(t) && !gr__k(ctx, "gr_full", ctx->be->iface->fill(ctx->be->ctx, t, value))) return NULL;
    return t;
}

gr_tensor *gr_zeros(gr_ctx *ctx, gr_dtype dtype, int ndim, const int64_t *shape)
{
    if (!gr__ok(ctx)) return NULL;
    if (dtype == GR_F32 || dtype == GR_I32) return gr_full(ctx, dtype, ndim, shape, 0.0f);
    gr_tensor *t = tensor_alloc(ctx, "gr_zeros", dtype, ndim, shape, 0);
    if (!t) return NULL;
    size_t n = gr_nbytes(t);
    void *z = calloc(1, n ? n : 1);
    if (!z) return gr__fail(ctx, GR_ERR_NOMEM, "gr_zeros: out of host memory");
    gr_status s = ctx->be->iface->upload(ctx->be->ctx, t->buffer, t->offset, z, n);
    free(z);
    return gr__k(ctx, "gr_zeros", s) ? t : NULL;
}

gr_tensor *gr_from_host(gr_ctx *ctx, gr_dtype dtype, int ndim, const int64_t *shape,
                        const void *data)
{
    gr_tensor *t = tensor_alloc(ctx, "gr_from_host", dtype, ndim, shape, 0);
    if (!t) return NULL;
    if (gr_nbytes(t) &&
        !gr__k(ctx, "gr_from_host",
               ctx->be->iface->upload(ctx->be->ctx, t->buffer, t->offset, data, gr_nbytes(t))))
        return NULL;
    return t;
}

static gr_tensor *name_param(gr_ctx *ctx, gr_tensor *t, const char *name)
{
    if (!t) return NULL;
    if (name) {
        t->priv->name_copy = strdup(name);
        if (!t->priv->name_copy) return gr__fail(ctx, GR_ERR_NOMEM, "out of host memory");
        t->name = t->priv->name_copy;
    }
    return t;
}

gr_tensor *gr_param_new(gr_ctx *ctx, const char *name, gr_dtype dtype, int ndim,
                        const int64_t *shape)
{
    return name_param(ctx, tensor_alloc(ctx, name ? name : "gr_param_new", dtype, ndim, shape, 1), name);
}

gr_tensor *gr_param_from_host(gr_ctx *ctx, const char *name, gr_dtype dtype, int ndim,
                              const int64_t *shape, const void *data)
{
    const char *op = name ? name : "gr_param_from_host";
    if (!gr__ok(ctx) || !check_shape(ctx, op, dtype, ndim, shape)) return NULL;
    const gr_backend_iface *bi = ctx->be->iface;
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    size_t bytes = (size_t)n * gr_dtype_size(dtype);
    if (bi->struct_size >= offsetof(gr_backend_iface, buffer_wrap_host) + sizeof bi->buffer_wrap_host &&
        bi->buffer_wrap_host && bytes) {
        gr_buffer *buf = NULL;
        if (bi->buffer_wrap_host(ctx->be->ctx, (void *)data, bytes, &buf) == GR_OK) {
            gr_storage *st = malloc(sizeof *st);
            gr_tensor *t = st ? tensor_struct(ctx, dtype, ndim, shape, 1) : NULL;
            if (!t) {
                free(st);
                bi->buffer_free(ctx->be->ctx, buf);
                return gr__fail(ctx, GR_ERR_NOMEM, "%s: out of host memory", op);
            }
            *st = (gr_storage){buf, bytes, 1, 1};
            t->priv->st = st;
            t->buffer = buf;
            return name_param(ctx, t, name);
        }
        /* A backend may refuse some memory (alignment); fall back to a copy. */
    }
    gr_tensor *t = name_param(ctx, tensor_alloc(ctx, op, dtype, ndim, shape, 1), name);
    if (t && bytes && !gr__k(ctx, op, bi->upload(ctx->be->ctx, t->buffer, t->offset, data, bytes)))
        return NULL;
    return t;
}

void gr_tensor_free(gr_ctx *ctx, gr_tensor *t)
{
    if (!ctx || !t || !t->priv) return;
    if (!t->priv->persistent) {
        /* Transient structs stay until gr_ctx_reset (the tape may point at them). */
        release_storage(ctx, t);
        return;
    }
    /* A tape that points at this parameter would dangle: drop it. */
    gr__tape_clear(ctx);
    if (t->priv->grad) gr_tensor_free(ctx, t->priv->grad);
    release_storage(ctx, t);
    list_remove(&ctx->persistent, t);
    tensor_struct_free(ctx, t);
}

gr_status gr_upload(gr_ctx *ctx, gr_tensor *t, const void *data)
{
    if (!gr__ok(ctx)) return gr_ctx_status(ctx);
    if (!gr__in(ctx, "gr_upload", t)) return gr_ctx_status(ctx);
    if (!gr_nbytes(t)) return GR_OK;
    if (!own_storage(ctx, t)) return gr_ctx_status(ctx);
    if (!gr__k(ctx, "gr_upload", ctx->be->iface->upload(ctx->be->ctx, t->buffer, t->offset, data, gr_nbytes(t))))
        return gr_ctx_status(ctx);
    return GR_OK;
}

gr_status gr_to_host(gr_ctx *ctx, const gr_tensor *t, void *dst)
{
    if (!gr__ok(ctx)) return gr_ctx_status(ctx);
    if (!gr__in(ctx, "gr_to_host", t)) return gr_ctx_status(ctx);
    if (!gr_nbytes(t)) return GR_OK;
    if (!gr__k(ctx, "gr_to_host",
               ctx->be->iface->download(ctx->be->ctx, t->buffer, t->offset, dst, gr_nbytes(t))))
        return gr_ctx_status(ctx);
    return GR_OK;
}

gr_status gr_to_host_f32(gr_ctx *ctx, const gr_tensor *t, float *dst)
{
    if (!gr__ok(ctx)) return gr_ctx_status(ctx);
    if (!gr__in(ctx, "gr_to_host_f32", t)) return gr_ctx_status(ctx);
    if (t->dtype == GR_F32) return gr_to_host(ctx, t, dst);
    size_t n = (size_t)gr_numel(t);
    void *tmp = malloc(gr_nbytes(t) ? gr_nbytes(t) : 1);
    if (!tmp) return gr_ctx_fail(ctx, GR_ERR_NOMEM, "gr_to_host_f32: out of host memory");
    gr_status s = gr_to_host(ctx, t, tmp);
    if (s == GR_OK) gr_convert_to_f32(dst, tmp, t->dtype, n);
    free(tmp);
    return s;
}

void gr_set_trainable(gr_tensor *t, int trainable)
{
    if (!t || !t->priv) return;
    /* A trainable tensor is written by the optimizer: it must not be a read-only mapping. */
    if (trainable && t->priv->ctx && !own_storage(t->priv->ctx, t)) return;
    t->priv->trainable = trainable != 0;
}
int gr_is_trainable(const gr_tensor *t) { return t && t->priv && t->priv->trainable; }
void gr_requires_grad(gr_tensor *t)
{
    if (t && t->priv) t->priv->requires_grad = 1;
}
int gr_needs_grad(const gr_tensor *t)
{
    return t && t->priv && (t->priv->trainable || t->priv->requires_grad || t->priv->node);
}
gr_tensor *gr_grad(const gr_tensor *t)
{
    return t && t->priv && t->priv->grad_valid ? t->priv->grad : NULL;
}
void gr_zero_grad(gr_ctx *ctx, gr_tensor *t)
{
    (void)ctx;
    /* The buffer stays; the next backward overwrites instead of accumulating. */
    if (t && t->priv) t->priv->grad_valid = 0;
}
void gr_keep(gr_tensor *t)
{
    if (t && t->priv) t->priv->keep = 1;
}

/* Persistent gradient tensor for a persistent leaf, transient (kept) for a transient one. */
gr_tensor *gr__leaf_grad_alloc(gr_ctx *ctx, gr_tensor *x)
{
    gr_tensor *g = tensor_alloc(ctx, "gradient", GR_F32, x->ndim, x->shape, x->priv->persistent);
    if (g) g->priv->is_grad = 1;
    return g;
}

/* ---------------------------------------------------------------- flops ---- */

void gr__count_matmul(gr_ctx *ctx, double flops, int kind, int trainable)
{
    ctx->flops.matmuls++;
    if (kind == 0) {
        if (trainable) ctx->flops.forward_trainable += flops;
        else ctx->flops.forward_frozen += flops;
    } else if (kind == 1) {
        ctx->flops.backward_input += flops;
    } else {
        ctx->flops.backward_param += flops;
        ctx->flops.param_grad_matmuls++;
    }
}

void gr_ctx_flops(const gr_ctx *ctx, gr_flops *out) { *out = ctx->flops; }
void gr_ctx_reset_flops(gr_ctx *ctx) { memset(&ctx->flops, 0, sizeof ctx->flops); }
