/* Data-parallel process group and bucketed gradient all-reduce (see dist.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef GRAFT_HAVE_MPI
#include <mpi.h>
#endif

#include "base/log.h"
#include "dist/dist.h"

static int g_rank = 0, g_world = 1, g_inited = 0;
#ifdef GRAFT_HAVE_MPI
static int g_joined = 0; /* gr_dist_init called MPI_Init_thread */
#endif
static const char *g_launcher = "";

int gr_dist_rank(void) { return g_rank; }
int gr_dist_world(void) { return g_world; }
int gr_dist_is_root(void) { return g_rank == 0; }
const char *gr_dist_launcher(void) { return g_launcher; }

#ifdef GRAFT_HAVE_MPI
int gr_dist_compiled(void) { return 1; }
#else
int gr_dist_compiled(void) { return 0; }
#endif

/* World size announced by a launcher, 0 when none is in the environment. */
static long launcher_world(void)
{
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "SLURM_NTASKS"};
    static const char *const ranks[] = {"OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK", "SLURM_PROCID"};
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++) {
        /* A size without the matching rank variable is not a launched process (SLURM_NTASKS
         * is set in a batch script that itself was not started by srun). */
        const char *v = getenv(vars[i]);
        if (v && getenv(ranks[i])) return strtol(v, NULL, 10) > 0 ? strtol(v, NULL, 10) : 1;
    }
    return getenv("PMIX_RANK") ? 1 : 0;
}

#ifdef GRAFT_HAVE_MPI
/* One line for a failed MPI call: "rank R/W: OP: <MPI's error string>". */
static gr_status mpi_fail(int rc, const char *op)
{
    char msg[MPI_MAX_ERROR_STRING + 1];
    int len = 0;
    if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS) len = snprintf(msg, sizeof msg, "error %d", rc);
    msg[len < 0 ? 0 : len > MPI_MAX_ERROR_STRING ? MPI_MAX_ERROR_STRING : len] = '\0';
    for (char *p = msg; *p; p++)
        if (*p == '\n') *p = ' ';
    return gr_fail(GR_ERR_IO, "rank %d/%d: %s failed: %s (a peer rank died or the network failed)", g_rank,
                   g_world, op, msg);
}
#define MPI_TRY(call, op)                         \
    do {                                          \
        int rc_ = (call);                         \
        if (rc_ != MPI_SUCCESS) return mpi_fail(rc_, op); \
    } while (0)
#endif

gr_status gr_dist_init(void)
{
    if (g_inited) return GR_OK;
    long w = launcher_world();
#ifndef GRAFT_HAVE_MPI
    if (w > 1)
        return gr_fail(GR_ERR_UNSUPPORTED,
                       "started by a launcher with %ld ranks, but this graft was built without MPI "
                       "(install libopenmpi-dev and rebuild with -DGRAFT_MPI=ON)", w);
    g_inited = 1;
    return GR_OK;
#else
    g_inited = 1;
    if (w <= 0) return GR_OK; /* not launched: exactly the single-process program */
    int provided = 0;
    int rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
    if (rc != MPI_SUCCESS) return gr_fail(GR_ERR_IO, "MPI_Init_thread failed (error %d)", rc);
    g_joined = 1;
    g_launcher = "mpirun";
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_world);
    if (provided < MPI_THREAD_FUNNELED)
        gr_log(GR_LOG_WARN, "rank %d: MPI provides thread level %d < FUNNELED; continuing", g_rank, provided);
    /* Only rank 0 speaks at info level: N copies of every line help nobody. */
    if (g_rank != 0 && gr_log_level() > GR_LOG_WARN) gr_log_set_level(GR_LOG_WARN);
    gr_log(GR_LOG_INFO, "data parallel: %d ranks", g_world);
    return GR_OK;
#endif
}

void gr_dist_finalize(void)
{
#ifdef GRAFT_HAVE_MPI
    if (g_joined) {
        MPI_Barrier(MPI_COMM_WORLD);
        MPI_Finalize();
        g_joined = 0;
    }
#endif
    g_rank = 0;
    g_world = 1;
    g_inited = 0;
}

int gr_dist_abort(int code)
{
    const char *m = gr_last_error();
    if (g_world > 1) {
        fprintf(stderr, "graft: rank %d of %d failed (%s); ending the job on every rank\n", g_rank, g_world,
                m && *m ? m : "see above");
        fflush(stderr);
#ifdef GRAFT_HAVE_MPI
        MPI_Abort(MPI_COMM_WORLD, code ? code : 1);
#endif
        exit(code ? code : 1); /* not reached with MPI */
    }
    fprintf(stderr, "graft: %s\n", m && *m ? m : "failed");
    return code;
}

gr_status gr_dist_barrier(void)
{
#ifdef GRAFT_HAVE_MPI
    if (g_joined) MPI_TRY(MPI_Barrier(MPI_COMM_WORLD), "barrier");
#endif
    return GR_OK;
}

gr_status gr_dist_sum_f64(double *v, int n)
{
#ifdef GRAFT_HAVE_MPI
    if (g_joined && g_world > 1) MPI_TRY(MPI_Allreduce(MPI_IN_PLACE, v, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD), "all-reduce (sum)");
#else
    (void)v; (void)n;
#endif
    return GR_OK;
}

gr_status gr_dist_max_f64(double *v, int n)
{
#ifdef GRAFT_HAVE_MPI
    if (g_joined && g_world > 1) MPI_TRY(MPI_Allreduce(MPI_IN_PLACE, v, n, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD), "all-reduce (max)");
#else
    (void)v; (void)n;
#endif
    return GR_OK;
}

static gr_status check_trainable(gr_tensor *const *ts, int n, const char *what)
{
    for (int i = 0; i < n; i++) {
        if (!ts[i]) return gr_fail(GR_ERR_INVALID, "%s: tensor %d is NULL", what, i);
        if (!gr_is_trainable(ts[i]))
            return gr_fail(GR_ERR_INVALID, "%s: %s is frozen; frozen tensors never cross the network", what,
                           ts[i]->name ? ts[i]->name : "?");
    }
    return GR_OK;
}

#ifdef GRAFT_HAVE_MPI
static size_t tensor_bytes(const gr_tensor *t) { return (size_t)gr_numel(t) * gr_dtype_size(t->dtype); }
#endif

gr_status gr_dist_broadcast(gr_ctx *ctx, gr_tensor *const *ts, int n)
{
    gr_status s = check_trainable(ts, n, "broadcast");
    if (s != GR_OK || g_world == 1) return s;
#ifdef GRAFT_HAVE_MPI
    size_t cap = 0;
    for (int i = 0; i < n; i++) cap = tensor_bytes(ts[i]) > cap ? tensor_bytes(ts[i]) : cap;
    unsigned char *buf = malloc(cap ? cap : 1);
    if (!buf) return gr_fail(GR_ERR_NOMEM, "broadcast: out of host memory (%zu bytes)", cap);
    for (int i = 0; i < n && s == GR_OK; i++) {
        size_t nb = tensor_bytes(ts[i]);
        if (g_rank == 0) s = gr_to_host(ctx, ts[i], buf);
        /* MPI counts are int: send in chunks of 1 GiB */
        for (size_t off = 0; s == GR_OK && off < nb; off += (size_t)1 << 30) {
            size_t len = nb - off < ((size_t)1 << 30) ? nb - off : (size_t)1 << 30;
            int rc = MPI_Bcast(buf + off, (int)len, MPI_BYTE, 0, MPI_COMM_WORLD);
            if (rc != MPI_SUCCESS) s = mpi_fail(rc, "broadcast");
        }
        if (s == GR_OK && g_rank != 0) s = gr_upload(ctx, ts[i], buf);
        if (s != GR_OK) s = gr_fail_context(s, "broadcast of %s", ts[i]->name ? ts[i]->name : "?");
    }
    free(buf);
    return s;
#else
    (void)ctx;
    return GR_OK;
#endif
}

#ifdef GRAFT_HAVE_MPI
/* FNV-1a, 64 bit: equal bytes give equal hashes on every machine. */
static uint64_t fnv1a(const unsigned char *p, size_t n, uint64_t h)
{
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}
#endif

gr_status gr_dist_check_equal(gr_ctx *ctx, gr_tensor *const *ts, int n, const char *what)
{
    if (g_world == 1 || n == 0) return GR_OK;
#ifdef GRAFT_HAVE_MPI
    size_t cap = 0;
    for (int i = 0; i < n; i++) cap = tensor_bytes(ts[i]) > cap ? tensor_bytes(ts[i]) : cap;
    unsigned char *buf = malloc(cap ? cap : 1);
    uint64_t *h = malloc(sizeof *h * 2 * (size_t)n);
    gr_status s = buf && h ? GR_OK : gr_fail(GR_ERR_NOMEM, "%s: out of host memory", what);
    for (int i = 0; i < n && s == GR_OK; i++) {
        s = gr_to_host(ctx, ts[i], buf);
        if (s == GR_OK) h[i] = h[n + i] = fnv1a(buf, tensor_bytes(ts[i]), 0xcbf29ce484222325ULL);
    }
    if (s == GR_OK) {
        int rc = MPI_Allreduce(MPI_IN_PLACE, h, n, MPI_UINT64_T, MPI_MIN, MPI_COMM_WORLD);
        if (rc == MPI_SUCCESS) rc = MPI_Allreduce(MPI_IN_PLACE, h + n, n, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS) s = mpi_fail(rc, "consistency check");
    }
    for (int i = 0; i < n && s == GR_OK; i++)
        if (h[i] != h[n + i])
            s = gr_fail(GR_ERR_NUMERIC, "%s: %s differs between ranks (replicas diverged)", what,
                        ts[i]->name ? ts[i]->name : "?");
    free(buf);
    free(h);
    return s;
#else
    (void)ctx; (void)ts; (void)what;
    return GR_OK;
#endif
}

/* ------------------------------------------------------------------ gradient buckets ---- */

typedef struct bucket {
    size_t off, len;         /* floats in the reducer's buffer */
    int pending;             /* tensors of the bucket not ready yet */
    int launched, done;
#ifdef GRAFT_HAVE_MPI
    MPI_Request req;
#endif
} bucket;

typedef struct slot {
    gr_tensor *t;
    size_t off;              /* gradient floats at buf[off..off+numel), then 1 presence float */
    int bucket;
    int ready;
    int seen_at;             /* position in this backward's ready order, -1: not reached */
} slot;

typedef struct ptr_index {
    const gr_tensor *t;
    int i;
} ptr_index;

struct gr_dist_reducer {
    gr_ctx *ctx;
    slot *slots;
    int n;
    ptr_index *lookup;       /* sorted by pointer, for the hook */
    bucket *b;
    int nb, next_launch;
    float *buf;
    size_t cap;              /* floats per bucket */
    int *order;              /* slot indices in bucket order */
    int seen;                /* tensors marked ready in this backward (the observed order) */
    int relaid;              /* buckets already follow rank 0's observed order */
    int armed;
    gr_status error;         /* first failure inside the hook (reported by finish) */
    char errmsg[512];
    gr_dist_reducer_stats st;
};

static int cmp_ptr(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)((const ptr_index *)a)->t, y = (uintptr_t)((const ptr_index *)b)->t;
    return x < y ? -1 : x > y;
}

/* Lays the tensors out in buckets in the order `order` (slot indices): consecutive tensors
 * share a bucket up to `cap` floats. Every rank must use the same order. */
static gr_status layout(gr_dist_reducer *r, const int *order)
{
    size_t off = 0;
    r->nb = 0;
    for (int k = 0; k < r->n; k++) {
        slot *sl = &r->slots[order[k]];
        size_t len = (size_t)gr_numel(sl->t) + 1;
        if (r->nb == 0 || (r->b[r->nb - 1].len > 0 && r->b[r->nb - 1].len + len > r->cap)) {
            memset(&r->b[r->nb], 0, sizeof r->b[r->nb]);
            r->b[r->nb].off = off;
            r->nb++;
        }
        bucket *bk = &r->b[r->nb - 1];
        if (bk->len + len > (size_t)0x7fffffff)
            return gr_fail(GR_ERR_UNSUPPORTED, "gradient all-reduce: %s has more than 2^31 elements",
                           sl->t->name ? sl->t->name : "?");
        sl->off = off;
        sl->bucket = r->nb - 1;
        bk->len += len;
        off += len;
    }
    r->st.buckets = r->nb;
    r->st.floats = (int64_t)off;
    return GR_OK;
}

gr_status gr_dist_reducer_create(gr_ctx *ctx, gr_tensor *const *params, int n, size_t bucket_bytes,
                                 gr_dist_reducer **out)
{
    *out = NULL;
    gr_status s = check_trainable(params, n, "gradient all-reduce");
    for (int i = 0; s == GR_OK && i < n; i++)
        if (params[i]->dtype != GR_F32)
            s = gr_fail(GR_ERR_INVALID, "gradient all-reduce: %s is %s, trainable tensors are F32",
                        params[i]->name ? params[i]->name : "?", gr_dtype_name(params[i]->dtype));
    if (s != GR_OK) return s;
    if (bucket_bytes == 0) bucket_bytes = (size_t)25 << 20;
    gr_dist_reducer *r = calloc(1, sizeof *r);
    if (!r) return gr_fail(GR_ERR_NOMEM, "gradient all-reduce: out of memory");
    r->ctx = ctx;
    r->n = n;
    r->cap = bucket_bytes / sizeof(float) > 2 ? bucket_bytes / sizeof(float) : 2;
    size_t m = (size_t)(n ? n : 1);
    r->slots = calloc(m, sizeof *r->slots);
    r->lookup = calloc(m, sizeof *r->lookup);
    r->b = calloc(m, sizeof *r->b);
    r->order = calloc(m, sizeof *r->order);
    if (!r->slots || !r->lookup || !r->b || !r->order) {
        gr_dist_reducer_free(r);
        return gr_fail(GR_ERR_NOMEM, "gradient all-reduce: out of memory");
    }
    for (int i = 0; i < n; i++) {
        r->slots[i].t = params[i];
        r->lookup[i] = (ptr_index){params[i], i};
        r->order[i] = n - 1 - i; /* reverse registration: what a backward usually finishes first */
    }
    qsort(r->lookup, (size_t)n, sizeof *r->lookup, cmp_ptr);
    for (int i = 1; i < n; i++)
        if (r->lookup[i].t == r->lookup[i - 1].t) {
            const char *nm = r->lookup[i].t->name;
            gr_dist_reducer_free(r);
            return gr_fail(GR_ERR_INVALID, "gradient all-reduce: %s is listed twice", nm ? nm : "?");
        }
    s = layout(r, r->order);
    if (s == GR_OK && g_world > 1) {
        r->buf = malloc(sizeof(float) * (size_t)(r->st.floats ? r->st.floats : 1));
        if (!r->buf) s = gr_fail(GR_ERR_NOMEM, "gradient all-reduce: out of host memory (%lld floats)", (long long)r->st.floats);
    }
    if (s != GR_OK) {
        gr_dist_reducer_free(r);
        return s;
    }
    *out = r;
    return GR_OK;
}

void gr_dist_reducer_free(gr_dist_reducer *r)
{
    if (!r) return;
    if (r->armed) gr_ctx_set_grad_ready_hook(r->ctx, NULL, NULL);
#ifdef GRAFT_HAVE_MPI
    for (int i = 0; i < r->nb; i++)
        if (r->b[i].launched && !r->b[i].done) MPI_Wait(&r->b[i].req, MPI_STATUS_IGNORE);
#endif
    free(r->slots);
    free(r->order);
    free(r->lookup);
    free(r->b);
    free(r->buf);
    free(r);
}

void gr_dist_reducer_get_stats(const gr_dist_reducer *r, gr_dist_reducer_stats *out) { *out = r->st; }

#ifdef GRAFT_HAVE_MPI
static void set_error(gr_dist_reducer *r, gr_status s)
{
    if (r->error == GR_OK) {
        r->error = s;
        snprintf(r->errmsg, sizeof r->errmsg, "%s", gr_last_error());
    }
}

/* Copies a final gradient into its bucket slot (zeros when none) and marks it ready. */
static void slot_ready(gr_dist_reducer *r, slot *sl)
{
    if (sl->ready) return;
    sl->ready = 1;
    size_t numel = (size_t)gr_numel(sl->t);
    float *dst = r->buf + sl->off;
    gr_tensor *g = gr_grad(sl->t);
    if (g) {
        gr_status s = gr_to_host_f32(r->ctx, g, dst);
        if (s != GR_OK) set_error(r, gr_fail_context(s, "gradient all-reduce: reading the gradient of %s", sl->t->name));
    } else {
        memset(dst, 0, numel * sizeof *dst);
    }
    dst[numel] = g ? 1.0f : 0.0f; /* presence: some rank had a gradient */
    r->b[sl->bucket].pending--;
}

/* Launches complete buckets in bucket order, then lets MPI progress the ones in flight. */
static void launch_ready(gr_dist_reducer *r, int early)
{
    while (r->next_launch < r->nb && r->b[r->next_launch].pending == 0 && r->error == GR_OK) {
        bucket *bk = &r->b[r->next_launch++];
        int rc = MPI_Iallreduce(MPI_IN_PLACE, r->buf + bk->off, (int)bk->len, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD,
                                &bk->req);
        if (rc != MPI_SUCCESS) {
            set_error(r, mpi_fail(rc, "gradient all-reduce"));
            return;
        }
        bk->launched = 1;
        r->st.launched++;
        r->st.early += early;
    }
    /* Non-blocking collectives advance only inside MPI calls: test the ones in flight. */
    for (int i = 0; i < r->next_launch && r->error == GR_OK; i++) {
        if (r->b[i].done) continue;
        int flag = 0;
        int rc = MPI_Test(&r->b[i].req, &flag, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS) set_error(r, mpi_fail(rc, "gradient all-reduce"));
        else if (flag) r->b[i].done = 1;
    }
}

/* After the first reduction: buckets in the order rank 0's backward finished the tensors
 * (tensors it never reached last), so every bucket can leave as early as the tape allows and
 * one tensor unused on rank 0 no longer holds back the bucket it sat in. Rank 0's order is
 * broadcast: the layout must be identical on every rank. */
static gr_status relayout(gr_dist_reducer *r)
{
    r->relaid = 1;
    int *pos = malloc(sizeof *pos * (size_t)(r->n ? r->n : 1));
    if (!pos) return gr_fail(GR_ERR_NOMEM, "gradient all-reduce: out of memory");
    for (int i = 0; i < r->n; i++) pos[i] = r->slots[i].seen_at;
    int rc = MPI_Bcast(pos, r->n, MPI_INT, 0, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) {
        free(pos);
        return mpi_fail(rc, "gradient all-reduce (bucket order)");
    }
    int k = 0;
    for (int p = 0; p < r->n; p++) /* n is small (tensors, not elements): quadratic is fine */
        for (int i = 0; i < r->n; i++)
            if (pos[i] == p) r->order[k++] = i;
    for (int j = r->n; j-- > 0;) /* never reached on rank 0: keep their reverse order, last */
        if (pos[j] < 0) r->order[k++] = j;
    free(pos);
    if (k != r->n) return gr_fail(GR_ERR_INVALID, "gradient all-reduce: inconsistent bucket order from rank 0");
    return layout(r, r->order);
}

static void on_grad_ready(void *user, gr_tensor *t)
{
    gr_dist_reducer *r = user;
    ptr_index key = {t, 0};
    ptr_index *hit = bsearch(&key, r->lookup, (size_t)r->n, sizeof *r->lookup, cmp_ptr);
    if (!hit || r->error != GR_OK) return; /* a trainable tensor the trainer does not optimise */
    if (!r->slots[hit->i].ready) r->slots[hit->i].seen_at = r->seen++;
    slot_ready(r, &r->slots[hit->i]);
    launch_ready(r, 1);
}
#endif

void gr_dist_reducer_begin(gr_dist_reducer *r)
{
    if (g_world == 1) return;
#ifndef GRAFT_HAVE_MPI
    (void)r;
#else
    for (int i = 0; i < r->n; i++) {
        r->slots[i].ready = 0;
        r->slots[i].seen_at = -1;
    }
    r->seen = 0;
    for (int i = 0; i < r->nb; i++) {
        r->b[i].pending = 0;
        r->b[i].launched = r->b[i].done = 0;
    }
    for (int i = 0; i < r->n; i++) r->b[r->slots[i].bucket].pending++;
    r->next_launch = 0;
    r->error = GR_OK;
    r->armed = 1;
    gr_ctx_set_grad_ready_hook(r->ctx, on_grad_ready, r);
#endif
}

gr_status gr_dist_reducer_finish(gr_dist_reducer *r)
{
    if (r->armed) gr_ctx_set_grad_ready_hook(r->ctx, NULL, NULL);
    int was_armed = r->armed;
    r->armed = 0;
    if (g_world == 1) return GR_OK;
#ifdef GRAFT_HAVE_MPI
    if (!was_armed) return gr_fail(GR_ERR_INVALID, "gradient all-reduce: finish without begin");
    for (int i = 0; i < r->n && r->error == GR_OK; i++) slot_ready(r, &r->slots[i]);
    launch_ready(r, 0);
    /* Every rank must take part in every bucket even after a local failure, or the others
     * would wait forever: launch what is left regardless, then report. */
    for (int i = r->next_launch; i < r->nb; i++) {
        int rc = MPI_Iallreduce(MPI_IN_PLACE, r->buf + r->b[i].off, (int)r->b[i].len, MPI_FLOAT, MPI_SUM,
                                MPI_COMM_WORLD, &r->b[i].req);
        if (rc != MPI_SUCCESS) return mpi_fail(rc, "gradient all-reduce");
        r->b[i].launched = 1;
        r->st.launched++;
    }
    r->next_launch = r->nb;
    for (int i = 0; i < r->nb; i++) {
        if (r->b[i].done) continue;
        int rc = MPI_Wait(&r->b[i].req, MPI_STATUS_IGNORE);
        r->b[i].done = 1;
        if (rc != MPI_SUCCESS) return mpi_fail(rc, "gradient all-reduce");
    }
    if (r->error != GR_OK) return gr_fail(r->error, "%s", r->errmsg);
    r->st.reductions++;
    for (int i = 0; i < r->n; i++) {
        slot *sl = &r->slots[i];
        size_t numel = (size_t)gr_numel(sl->t);
        if (r->buf[sl->off + numel] == 0.0f) continue; /* no rank had a gradient */
        gr_tensor *g = gr_grad_buffer(r->ctx, sl->t);
        gr_status s = g ? gr_upload(r->ctx, g, r->buf + sl->off) : gr_ctx_status(r->ctx);
        if (s == GR_OK && !g) s = gr_fail(GR_ERR_BACKEND, "no gradient buffer");
        if (s != GR_OK) return gr_fail_context(s, "gradient all-reduce: writing the gradient of %s", sl->t->name);
    }
    return r->relaid ? GR_OK : relayout(r);
#else
    (void)was_armed;
    return GR_OK;
#endif
}
