/* Fork-join pool. Workers sleep on a condition variable between jobs: on a 2-core machine
 * spinning would steal the core OpenBLAS's own threads need for the next sgemm. */
#include <pthread.h>
#include <stdlib.h>

#include "pool.h"

struct cpu_pool {
    int n;                 /* threads including the caller */
    pthread_t *th;
    pthread_mutex_t mu;
    pthread_cond_t go, done;
    uint64_t gen;
    int pending, stop;
    cpu_task_fn fn;
    void *arg;
    int64_t total;
    int chunks;
};

typedef struct { cpu_pool *p; int idx; } worker_arg;

static void run_chunk(cpu_task_fn fn, void *arg, int64_t total, int chunks, int i)
{
    int64_t b = total * i / chunks, e = total * (i + 1) / chunks;
    if (b < e) fn(arg, b, e);
}

static void *worker(void *varg)
{
    worker_arg *wa = varg;
    cpu_pool *p = wa->p;
    int idx = wa->idx;
    free(wa);
    uint64_t seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (p->gen == seen && !p->stop) pthread_cond_wait(&p->go, &p->mu);
        if (p->stop) break;
        seen = p->gen;
        cpu_task_fn fn = p->fn;
        void *arg = p->arg;
        int64_t total = p->total;
        int chunks = p->chunks;
        pthread_mutex_unlock(&p->mu);
        if (idx < chunks) run_chunk(fn, arg, total, chunks, idx);
        pthread_mutex_lock(&p->mu);
        if (--p->pending == 0) pthread_cond_signal(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

cpu_pool *cpu_pool_create(int threads)
{
    cpu_pool *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->n = threads < 1 ? 1 : threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->go, NULL);
    pthread_cond_init(&p->done, NULL);
    p->th = calloc((size_t)p->n, sizeof *p->th);
    if (!p->th) {
        free(p);
        return NULL;
    }
    for (int i = 1; i < p->n; i++) {
        worker_arg *wa = malloc(sizeof *wa);
        if (!wa || pthread_create(&p->th[i], NULL, worker, wa ? (wa->p = p, wa->idx = i, wa) : NULL) != 0) {
            free(wa);
            p->n = i; /* run with the workers we got */
            break;
        }
    }
    return p;
}

void cpu_pool_destroy(cpu_pool *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n; i++) pthread_join(p->th[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->go);
    pthread_cond_destroy(&p->done);
    free(p->th);
    free(p);
}

int cpu_pool_threads(const cpu_pool *p) { return p->n; }

void cpu_pool_run(cpu_pool *p, int64_t n, int64_t grain, cpu_task_fn fn, void *arg)
{
    if (n <= 0) return;
    int chunks = p->n;
    if (grain < 1) grain = 1;
    if (n / grain < chunks) chunks = (int)(n / grain);
    if (chunks <= 1) {
        fn(arg, 0, n);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->arg = arg;
    p->total = n;
    p->chunks = chunks;
    p->pending = p->n - 1;
    p->gen++;
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
    run_chunk(fn, arg, n, chunks, 0);
    pthread_mutex_lock(&p->mu);
    while (p->pending) pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}
