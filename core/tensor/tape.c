/* The tape: nodes recorded in forward order, walked backwards by gr_backward.
 *
 * Creation order is a topological order, so the reverse walk sees every consumer of a tensor
 * before the tensor's own node: by the time a node runs, its output gradient is complete.
 * See docs/autodiff.md for the rules. */
#include <stdlib.h>
#include <string.h>

#include "tensor/internal.h"

gr_node **gr__tape(gr_ctx *ctx, size_t **n, size_t **cap);
void gr__tape_set(gr_ctx *ctx, gr_node **tape);
gr_node **gr__free_nodes(gr_ctx *ctx);
void gr__release_unkept(gr_ctx *ctx, const gr_tensor *except1, const gr_tensor *except2);
gr_tensor *gr__leaf_grad_alloc(gr_ctx *ctx, gr_tensor *x);

int gr__is_param(const gr_tensor *t) { return t && t->priv->persistent; }

static int is_leaf_needing_grad(const gr_tensor *t)
{
    return !t->priv->node && (t->priv->trainable || t->priv->requires_grad);
}

gr_node *gr__record(gr_ctx *ctx, const char *op, gr_backward_fn fn, gr_tensor *out,
                    gr_tensor *a, gr_tensor *b, gr_tensor *c)
{
    if (!out || !gr__grad_enabled(ctx)) return NULL;
    if (!gr_needs_grad(a) && !gr_needs_grad(b) && !gr_needs_grad(c)) return NULL;
    size_t *n, *cap;
    gr_node **tape = gr__tape(ctx, &n, &cap);
    if (*n == *cap) {
        size_t nc = *cap ? 2 * *cap : 256;
        gr_node **t2 = realloc(tape, nc * sizeof *t2);
        if (!t2) return (gr_node *)gr__fail(ctx, GR_ERR_NOMEM, "%s: out of host memory (tape)", op);
        gr__tape_set(ctx, t2);
        tape = t2;
        *cap = nc;
    }
    gr_node **fl = gr__free_nodes(ctx), *node = *fl;
    if (node) *fl = node->next_free;
    else if (!(node = malloc(sizeof *node)))
        return (gr_node *)gr__fail(ctx, GR_ERR_NOMEM, "%s: out of host memory (tape)", op);
    memset(node, 0, sizeof *node);
    node->op = op;
    node->backward = fn;
    node->out = out;
    node->in[0] = a;
    node->in[1] = b;
    node->in[2] = c;
    out->priv->node = node;
    tape[(*n)++] = node;
    return node;
}

void gr__save(gr_node *n, gr_tensor *t)
{
    if (!n || !t || n->nsaved == GR_NODE_SAVE) return;
    gr__storage_ref(t->priv->st);
    n->saved_st[n->nsaved] = t->priv->st;
    n->saved[n->nsaved++] = t;
}

static void node_free(gr_ctx *ctx, gr_node *n)
{
    for (int i = 0; i < n->nsaved; i++) gr__storage_unref(ctx, n->saved_st[i]);
    if (n->out && n->out->priv->node == n) n->out->priv->node = NULL;
    n->nsaved = 0;
    gr_node **fl = gr__free_nodes(ctx);
    n->next_free = *fl;
    *fl = n;
}

void gr__tape_clear(gr_ctx *ctx)
{
    size_t *n, *cap;
    gr_node **tape = gr__tape(ctx, &n, &cap);
    for (size_t i = *n; i-- > 0;) {
        gr_tensor *o = tape[i]->out;
        if (o->priv->gacc) {
            gr__drop(ctx, o->priv->gacc);
            o->priv->gacc = NULL;
        }
        node_free(ctx, tape[i]);
    }
    *n = 0;
}

/* ------------------------------------------------------------ gradient slots ---- */

gr_tensor *gr__grad_slot(gr_ctx *ctx, gr_tensor *x, int *accumulate)
{
    *accumulate = 0;
    if (!x || !gr_needs_grad(x) || !gr__ok(ctx)) return NULL;
    gr_tensor_priv *p = x->priv;
    if (is_leaf_needing_grad(x)) {
        if (!p->grad && !(p->grad = gr__leaf_grad_alloc(ctx, x))) return NULL;
        *accumulate = p->grad_valid;
        return p->grad;
    }
    if (!p->node) return NULL; /* a constant */
    if (p->gacc) {
        *accumulate = 1;
        return p->gacc;
    }
    p->gacc = gr__new(ctx, GR_F32, x->ndim, x->shape);
    if (p->gacc) p->gacc->priv->is_grad = 1;
    return p->gacc;
}

void gr__grad_written(gr_tensor *x)
{
    if (x && is_leaf_needing_grad(x)) x->priv->grad_valid = 1;
}

gr_tensor *gr__grad_slot_zeroed(gr_ctx *ctx, gr_tensor *x)
{
    int acc;
    gr_tensor *g = gr__grad_slot(ctx, x, &acc);
    if (g && !acc) {
        gr_backend *be = gr__be(ctx);
        if (!gr__k(ctx, "gradient", be->iface->fill(be->ctx, g, 0.0f))) return NULL;
        gr__grad_written(x);
    }
    return g;
}

void gr__grad_give(gr_ctx *ctx, gr_tensor *x, gr_tensor *g)
{
    if (!g) return;
    if (!x || !gr_needs_grad(x) || !gr__ok(ctx)) {
        gr__drop(ctx, g);
        return;
    }
    gr_tensor_priv *p = x->priv;
    if (!is_leaf_needing_grad(x) && p->node && !p->gacc) {
        /* First gradient of an activation: adopt g's storage, no copy. */
        g->ndim = x->ndim;
        memcpy(g->shape, x->shape, sizeof g->shape);
        g->priv->is_grad = 1;
        p->gacc = g;
        return;
    }
    int acc;
    gr_tensor *slot = gr__grad_slot(ctx, x, &acc);
    if (slot) {
        gr_backend *be = gr__be(ctx);
        if (gr__k(ctx, "gradient", be->iface->scale(be->ctx, slot, g, 1.0f, acc)))
            gr__grad_written(x);
    }
    gr__drop(ctx, g);
}

/* ------------------------------------------------------------------ backward ---- */

/* For the gradient-ready hook: each trainable parameter on the tape with the index of the
 * FIRST node (in forward order) that uses it, which is the last one the reverse walk runs.
 * Sorted by that index because the scan goes forward. */
typedef struct ready_list {
    size_t *at;
    gr_tensor **param;
    size_t count;
} ready_list;

static int ready_list_build(gr_ctx *ctx, gr_node **tape, size_t n, ready_list *rl)
{
    size_t cap = 0;
    int ok = 1;
    for (size_t i = 0; i < n && ok; i++) {
        for (int j = 0; j < GR_NODE_IN; j++) {
            gr_tensor *x = tape[i]->in[j];
            if (!x || x->priv->node || !x->priv->trainable || x->priv->ready_mark) continue;
            if (rl->count == cap) {
                cap = cap ? 2 * cap : 64;
                size_t *a = realloc(rl->at, cap * sizeof *a);
                if (a) rl->at = a;
                gr_tensor **p = a ? realloc(rl->param, cap * sizeof *p) : NULL;
                if (p) rl->param = p;
                if (!a || !p) {
                    gr__fail(ctx, GR_ERR_NOMEM, "gr_backward: out of host memory (grad-ready list)");
                    ok = 0;
                    break;
                }
            }
            x->priv->ready_mark = 1;
            rl->at[rl->count] = i;
            rl->param[rl->count++] = x;
        }
    }
    for (size_t k = 0; k < rl->count; k++) rl->param[k]->priv->ready_mark = 0;
    if (!ok) {
        free(rl->at);
        free(rl->param);
        memset(rl, 0, sizeof *rl);
    }
    return ok;
}

gr_status gr_backward(gr_ctx *ctx, gr_tensor *out, gr_tensor *seed)
{
    if (!gr__ok(ctx)) return gr_ctx_status(ctx);
    if (!gr__in(ctx, "gr_backward", out)) return gr_ctx_status(ctx);
    if (seed && !gr__in(ctx, "gr_backward", seed)) return gr_ctx_status(ctx);
    if (!gr_needs_grad(out))
        return gr_ctx_fail(ctx, GR_ERR_INVALID,
                           "gr_backward: output %s does not depend on any trainable tensor "
                           "(or gradients were disabled)", GR_SHP(out));
    if (!seed && gr_numel(out) != 1)
        return gr_ctx_fail(ctx, GR_ERR_SHAPE,
                           "gr_backward: output %s is not a scalar; pass a seed of its shape",
                           GR_SHP(out));
    if (seed && (gr_numel(seed) != gr_numel(out) || seed->dtype != GR_F32))
        return gr_ctx_fail(ctx, GR_ERR_SHAPE, "gr_backward: seed %s %s does not match output %s",
                           gr_dtype_name(seed->dtype), GR_SHP(seed), GR_SHP(out));
    gr_backend *be = gr__be(ctx);
    int acc;
    gr_tensor *g = gr__grad_slot(ctx, out, &acc);
    if (!g) return gr_ctx_status(ctx);
    gr_status s = seed ? be->iface->scale(be->ctx, g, seed, 1.0f, acc)
                       : (acc ? GR_OK : be->iface->fill(be->ctx, g, 1.0f));
    if (acc && !seed) {
        /* out is a leaf that already holds a gradient: add 1. */
        gr_tensor *one = gr__new(ctx, GR_F32, out->ndim, out->shape);
        if (!one) return gr_ctx_status(ctx);
        s = be->iface->fill(be->ctx, one, 1.0f);
        if (s == GR_OK) s = be->iface->scale(be->ctx, g, one, 1.0f, 1);
        gr__drop(ctx, one);
    }
    if (!gr__k(ctx, "gr_backward", s)) return gr_ctx_status(ctx);
    gr__grad_written(out);

    /* From here on the tape alone holds activations. */
    gr__release_unkept(ctx, out, seed);

    size_t *n, *cap;
    gr_node **tape = gr__tape(ctx, &n, &cap);
    void *huser;
    gr_grad_ready_fn hook = gr__grad_ready_hook(ctx, &huser);
    ready_list rl = {0};
    if (hook && !ready_list_build(ctx, tape, *n, &rl)) return gr_ctx_status(ctx);
    size_t next_ready = rl.count; /* rl is in increasing node index; the walk goes down */
    for (size_t i = *n; i-- > 0;) {
        gr_node *node = tape[i];
        gr_tensor *o = node->out;
        gr_tensor *dout = o->priv->gacc;
        if (dout && gr__ok(ctx)) node->backward(ctx, node, dout);
        if (o->priv->gacc) {
            gr__drop(ctx, o->priv->gacc);
            o->priv->gacc = NULL;
        }
        node_free(ctx, node);
        tape = gr__tape(ctx, &n, &cap);
        for (; next_ready > 0 && rl.at[next_ready - 1] == i; next_ready--)
            if (gr__ok(ctx)) hook(huser, rl.param[next_ready - 1]);
    }
    *n = 0;
    free(rl.at);
    free(rl.param);
    return gr_ctx_status(ctx);
}

gr_tensor *gr_grad_buffer(gr_ctx *ctx, gr_tensor *t)
{
    if (!t || !t->priv || !t->priv->trainable || t->priv->node) return NULL;
    int acc;
    gr_tensor *g = gr__grad_slot(ctx, t, &acc);
    if (g) gr__grad_written(t);
    return g;
}

gr_tensor *gr__gbegin(gr_ctx *ctx, gr_tensor *x, int *is_temp)
{
    int acc;
    *is_temp = 0;
    gr_tensor *slot = gr__grad_slot(ctx, x, &acc);
    if (!slot || !acc) return slot;
    *is_temp = 1;
    return gr__new(ctx, GR_F32, x->ndim, x->shape);
}

void gr__gend(gr_ctx *ctx, gr_tensor *x, gr_tensor *g, int is_temp)
{
    if (!g) return;
    if (is_temp) gr__grad_give(ctx, x, g);
    else gr__grad_written(x);
}
