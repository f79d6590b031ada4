/* A small fork-join thread pool: the calling thread plus n-1 workers split an index range. */
#ifndef GRAFT_CPU_POOL_H
#define GRAFT_CPU_POOL_H

#include <stdint.h>

typedef struct cpu_pool cpu_pool;
/* Runs fn(arg, begin, end) over [0, n) in contiguous chunks. */
typedef void (*cpu_task_fn)(void *arg, int64_t begin, int64_t end);

cpu_pool *cpu_pool_create(int threads);
void cpu_pool_destroy(cpu_pool *p);
int cpu_pool_threads(const cpu_pool *p);
/* Splits [0, n) over the threads when there is at least `grain` work per thread (n counts
 * work units, e.g. rows; grain the least units worth a thread), else runs inline. */
void cpu_pool_run(cpu_pool *p, int64_t n, int64_t grain, cpu_task_fn fn, void *arg);

#endif
