/* `graft demo`: the whole method on the synthetic world, end to end, cached.
 *
 * Every step is an ordinary graft command run in the demo directory (a child process, its
 * output in DIR/logs/STEP.log) and skipped when its product exists, so a second run only
 * re-reports. Each step names the steps whose products it reads; a small scheduler runs up to
 * --jobs of them at once, starting a ready step as soon as a slot frees, in listing order (the
 * long steps are listed first). The configurations are configs/demo/ (copied to DIR/configs on
 * the first run; edit them there to experiment). --quick runs the same steps on a miniature
 * (its numbers mean nothing; it tests the plumbing). See docs/strategies.md, docs/results.md. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/fsutil.h"
#include "commands.h"
#include "run/plot.h"
#include "run/runlog.h"
#include "transfer/speedup.h"

#define MAX_SEEDS 4
#define MAX_JOBS 32
#define MAX_STEPS (11 + 6 * MAX_SEEDS) /* world, tokenizers, pretrainings, analyze, build, source; 6 runs a seed */
#define MAX_ARGS 40
#define MAX_DEPS (2 + MAX_SEEDS)

/* --quick: the miniature. Its own default directory, so it never mixes with the real cache. */
#define QUICK_DIR "graft-demo-quick"
#define QUICK_WORLD_SIZE "120"

typedef struct demo {
    const char *dir;
    char exe[PATH_MAX];
    int seeds;
    int jobs;        /* children at once */
    int quick;
    FILE *times;     /* DIR/logs/times.tsv: step, seconds (appended as steps succeed) */
    double total_s;  /* summed time of the steps run now */
    double wall_s;   /* wall time of the steps run now */
    int ran;         /* steps run (not cached) */
} demo;

/* What a step's command accepts beyond its own arguments. */
enum step_kind {
    K_PLAIN,    /* synth, tokenizer: no configuration, no -s */
    K_CONFIG,   /* surrogate analyze/build: -s KEY=VALUE */
    K_PRETRAIN, /* graft pretrain: --quick shortens it */
    K_TRAIN,    /* graft train: --quick shortens it */
    K_VISION    /* graft pretrain-vision: --quick shortens it */
};

enum step_state { S_WAIT, S_RUNNING, S_DONE, S_FAILED };

typedef struct demo_step {
    char name[40];
    char done[100];         /* its product: the step is cached when this exists */
    char clean[64];         /* removed before it runs ("" none): no half-written run is reused */
    char *argv[MAX_ARGS];   /* "graft", the command's arguments, NULL (owned) */
    int deps[MAX_DEPS];     /* indices of earlier steps whose products it reads */
    int n_deps;
    enum step_state state;
    pid_t pid;
    double t0;
    char why[300];          /* a failure, in one line */
} demo_step;

typedef struct demo_plan {
    demo_step s[MAX_STEPS];
    int n;
} demo_plan;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    (void)st; (void)flag; (void)f;
    return remove(p);
}

/* ---------------------------------------------------------------------- the plan ---- */

static void plan_free(demo_plan *p)
{
    for (int i = 0; i < p->n; i++)
        for (int k = 0; p->s[i].argv[k]; k++) free(p->s[i].argv[k]);
    p->n = 0;
}

static gr_status push_arg(demo_step *st, int *n, const char *a)
{
    if (*n >= MAX_ARGS - 1) return gr_fail(GR_ERR_INVALID, "demo: step %s: more than %d arguments", st->name, MAX_ARGS - 2);
    if (!(st->argv[*n] = strdup(a))) return gr_fail(GR_ERR_NOMEM, "demo: out of memory");
    st->argv[++*n] = NULL;
    return GR_OK;
}

/* deps: step names separated by spaces; "NAME*" is every step whose name starts with NAME. A
 * step may only need steps listed before it, so the listing is an order the dependencies allow
 * and the plan cannot have a cycle. */
static gr_status add_deps(demo_plan *p, demo_step *st, const char *deps)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", deps);
    char *save = NULL;
    for (char *t = strtok_r(buf, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
        size_t n = strlen(t);
        int prefix = t[n - 1] == '*';
        int found = 0;
        for (int i = 0; i < p->n; i++) {
            if (prefix ? strncmp(p->s[i].name, t, n - 1) != 0 : strcmp(p->s[i].name, t) != 0) continue;
            if (st->n_deps == MAX_DEPS) return gr_fail(GR_ERR_INVALID, "demo: step %s needs more than %d steps", st->name, MAX_DEPS);
            st->deps[st->n_deps++] = i;
            found = 1;
        }
        if (!found) return gr_fail(GR_ERR_INVALID, "demo: step %s needs '%s', which is not listed before it", st->name, t);
    }
    return GR_OK;
}

/* Appends a step: `graft ARGV...` plus what the demo's mode adds for its kind. */
static gr_status add_step(const demo *d, demo_plan *p, const char *name, const char *done, const char *clean,
                          enum step_kind kind, const char *deps, const char *const *argv)
{
    if (p->n == MAX_STEPS) return gr_fail(GR_ERR_INVALID, "demo: more than %d steps", MAX_STEPS);
    demo_step *st = &p->s[p->n];
    memset(st, 0, sizeof *st);
    snprintf(st->name, sizeof st->name, "%s", name);
    snprintf(st->done, sizeof st->done, "%s", done);
    snprintf(st->clean, sizeof st->clean, "%s", clean ? clean : "");
    int n = 0;
    gr_status s = add_deps(p, st, deps);
    if (s == GR_OK) s = push_arg(st, &n, "graft");
    for (int i = 0; s == GR_OK && argv[i]; i++) s = push_arg(st, &n, argv[i]);
    /* Side by side, one thread per child: at these model sizes one thread is as fast as two, so
     * two single-thread jobs halve the wall time where two 2-thread jobs would contend. */
    if (s == GR_OK && kind != K_PLAIN && d->jobs > 1) {
        s = push_arg(st, &n, "-s");
        if (s == GR_OK) s = push_arg(st, &n, "backend.threads=1");
    }
    static const char *const quick_pretrain[] = {"-s", "pretrain.steps=30", "-s", "pretrain.require_quality=false", NULL};
    /* two epochs: the staged strategies (TaS/TaT warm-up, surrogate stage 1) need one after it */
    static const char *const quick_train[] = {"-s", "train.epochs=2", "-s", "data.eval_limit=20", NULL};
    static const char *const quick_vision[] = {"-s", "pretrain_vision.steps=30", "-s", "pretrain_vision.require_quality=false", NULL};
    const char *const *extra = !d->quick                ? NULL
                               : kind == K_PRETRAIN ? quick_pretrain
                               : kind == K_TRAIN    ? quick_train
                               : kind == K_VISION   ? quick_vision
                                                    : NULL;
    for (int i = 0; s == GR_OK && extra && extra[i]; i++) s = push_arg(st, &n, extra[i]);
    p->n++; /* counted even on failure, so plan_free frees its arguments */
    return s;
}

/* The steps, in listing order = the order a free slot prefers among ready steps: the long
 * chains first (the deep OPT, then the large one; each target's scratch runs before the runs
 * that compare with them). */
static gr_status plan_demo(const demo *d, demo_plan *p)
{
    gr_status s = GR_OK;
#define STEP(NAME, DONE, CLEAN, KIND, DEPS, ...)                                    \
    do {                                                                            \
        const char *const a_[] = {__VA_ARGS__, NULL};                               \
        if (s == GR_OK) s = add_step(d, p, NAME, DONE, CLEAN, KIND, DEPS, a_);      \
    } while (0)
    /* The world: its arguments live on this one line (--quick changes only its size). */
    STEP("synth", "world/world.json", "world", K_PLAIN, "", "synth", "--out", "world", "--size", d->quick ? QUICK_WORLD_SIZE : "800", "--image-size", "32", "--val", "0.2", "--test", "0.2");
    STEP("tokenizer_opt", "tokenizers/opt/tokenizer.json", NULL, K_PLAIN, "synth", "tokenizer", "train", "--corpus",
         "world/corpus.txt", "--vocab-size", "1024", "--type", "bytelevel", "--family", "opt", "--out", "tokenizers/opt");
    /* byte-level, as Llama 3's (metaspace works too: gr_caption_newline_id) */
    STEP("tokenizer_llama", "tokenizers/llama/tokenizer.json", NULL, K_PLAIN, "synth", "tokenizer", "train", "--corpus",
         "world/corpus.txt", "--vocab-size", "768", "--type", "bytelevel", "--family", "llama", "--out",
         "tokenizers/llama");
    STEP("pretrain_vision", "towers/vision/model.safetensors", "towers/vision", K_VISION, "synth", "pretrain-vision",
         "-c", "configs/pretrain_vision.cfg");
    STEP("pretrain_opt_deep", "lms/opt_deep/model.safetensors", "lms/opt_deep", K_PRETRAIN, "tokenizer_opt", "pretrain",
         "-c", "configs/pretrain_opt_deep.cfg");
    STEP("pretrain_opt_large", "lms/opt_large/model.safetensors", "lms/opt_large", K_PRETRAIN, "tokenizer_opt",
         "pretrain", "-c", "configs/pretrain_opt_large.cfg");
    STEP("pretrain_opt_small", "lms/opt_small/model.safetensors", "lms/opt_small", K_PRETRAIN, "tokenizer_opt",
         "pretrain", "-c", "configs/pretrain_opt_small.cfg");
    STEP("pretrain_llama_small", "lms/llama_small/model.safetensors", "lms/llama_small", K_PRETRAIN, "tokenizer_llama",
         "pretrain", "-c", "configs/pretrain_llama_small.cfg");
    STEP("surrogate_analyze", "analysis/opt_deep/trajectory.json", NULL, K_CONFIG, "pretrain_opt_deep", "surrogate",
         "analyze", "lms/opt_deep", "--data", "world/corpus_val.txt", "--max-tokens", "20000", "--out", "analysis/opt_deep");
    STEP("surrogate_build", "lms/opt_deep_surrogate/surrogate.json", "lms/opt_deep_surrogate", K_CONFIG,
         "pretrain_opt_deep", "surrogate", "build", "lms/opt_deep", "--range", "2:7", "--out", "lms/opt_deep_surrogate");
    STEP("source", "runs/source/report.json", "runs/source", K_TRAIN, "pretrain_opt_small pretrain_vision", "train", "-c",
         "configs/source.cfg", "--run-dir", "runs/source");
    for (int i = 0; i < d->seeds && s == GR_OK; i++) {
        char name[40], seed[32], run[64], done[80];
        snprintf(name, sizeof name, "scratch_deep_s%d", i + 1);
        snprintf(seed, sizeof seed, "data.seed=%d", i + 1);
        snprintf(run, sizeof run, "runs/%s", name);
        snprintf(done, sizeof done, "runs/%s/report.json", name);
        STEP(name, done, run, K_TRAIN, "pretrain_opt_deep pretrain_vision", "train", "-c", "configs/scratch_deep.cfg", "-s", seed,
             "--run-dir", run);
    }
    /* scratch on each target, N seeds; then TaS / TaT, which read every scratch seed (compare) */
    static const struct { const char *name, *cfg, *deps, *compare; } kinds[4] = {
        {"scratch_large", "configs/scratch_large.cfg", "pretrain_opt_large pretrain_vision", NULL},
        {"scratch_llama", "configs/scratch_llama.cfg", "pretrain_llama_small pretrain_vision", NULL},
        {"tas", "configs/tas.cfg", "source scratch_large_s*", "scratch_large"},
        {"tat", "configs/tat.cfg", "source scratch_llama_s*", "scratch_llama"}};
    for (int k = 0; k < 4 && s == GR_OK; k++) {
        for (int i = 0; k == 2 && i < d->seeds && s == GR_OK; i++) {
            /* surrogate seed i reports against scratch seed i on the same data order */
            char name[40], seed[32], run[64], done[80], deps[80], cmp[96];
            snprintf(name, sizeof name, "surrogate_s%d", i + 1);
            snprintf(seed, sizeof seed, "data.seed=%d", i + 1);
            snprintf(run, sizeof run, "runs/%s", name);
            snprintf(done, sizeof done, "runs/%s/report.json", name);
            snprintf(deps, sizeof deps, "surrogate_build scratch_deep_s%d", i + 1);
            snprintf(cmp, sizeof cmp, "strategy.surrogate.compare=[\"runs/scratch_deep_s%d\"]", i + 1);
            STEP(name, done, run, K_TRAIN, deps, "train", "-c", "configs/surrogate.cfg", "-s", seed, "-s", cmp,
                 "--run-dir", run);
        }
        /* the scratch runs a transfer compares with are this demo's seeds (the config lists two) */
        char compare[64 + 40 * MAX_SEEDS] = "";
        if (kinds[k].compare) {
            int o = snprintf(compare, sizeof compare, "strategy.%s.compare=[", kinds[k].name);
            for (int i = 0; i < d->seeds; i++)
                o += snprintf(compare + o, sizeof compare - (size_t)o, "%s\"runs/%s_s%d\"", i ? ", " : "",
                              kinds[k].compare, i + 1);
            snprintf(compare + o, sizeof compare - (size_t)o, "]");
        }
        for (int i = 0; i < d->seeds && s == GR_OK; i++) {
            char name[40], seed[32], run[64], done[80];
            snprintf(name, sizeof name, "%s_s%d", kinds[k].name, i + 1);
            snprintf(seed, sizeof seed, "data.seed=%d", i + 1);
            snprintf(run, sizeof run, "runs/%s", name);
            snprintf(done, sizeof done, "runs/%s/report.json", name);
            if (kinds[k].compare)
                STEP(name, done, run, K_TRAIN, kinds[k].deps, "train", "-c", kinds[k].cfg, "-s", seed, "-s", compare,
                     "--run-dir", run);
            else
                STEP(name, done, run, K_TRAIN, kinds[k].deps, "train", "-c", kinds[k].cfg, "-s", seed, "--run-dir", run);
        }
    }
#undef STEP
    return s;
}

/* ----------------------------------------------------------------- the scheduler ---- */

/* A failed step's one-line error from its log: the last "graft: " line (stderr is unbuffered,
 * so the error may precede the command's buffered output), else the last line. */
static void log_error_line(const char *log, char *out, size_t cap)
{
    char *text = NULL;
    out[0] = 0;
    if (gr_read_file(log, &text, NULL) != GR_OK) { gr_clear_error(); return; }
    const char *line = NULL, *last = NULL;
    for (char *p = text; *p;) {
        char *nl = strchr(p, '\n');
        if (nl) *nl = 0;
        if (p[0]) last = p;
        if (strncmp(p, "graft: ", 7) == 0) line = p;
        if (!nl) break;
        p = nl + 1;
    }
    snprintf(out, cap, "%s", line ? line + 7 : last ? last : "");
    free(text);
}

static void log_path(const demo_step *st, char *out, size_t cap) { snprintf(out, cap, "logs/%s.log", st->name); }

/* Starts a step: its own process group (so the demo can stop it and anything it starts), stdin
 * from /dev/null, stdout and stderr to its log, the demo's original signal mask. */
static gr_status start_step(demo_step *st, const char *exe, const sigset_t *child_mask)
{
    if (st->clean[0] && gr_path_exists(st->clean)) nftw(st->clean, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    char log[sizeof st->name + 16];
    log_path(st, log, sizeof log);
    int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return gr_fail(GR_ERR_IO, "demo: %s: cannot create: %s", log, strerror(errno));
    fflush(stdout);
    fflush(stderr);
    pid_t parent = getpid();
    st->t0 = now_s();
    pid_t pid = fork();
    if (pid < 0) {
        close(fd);
        return gr_fail(GR_ERR_IO, "demo: step %s: cannot fork: %s", st->name, strerror(errno));
    }
    if (pid == 0) {
        setpgid(0, 0);
        /* the demo killed outright (SIGKILL) must not leave the step running either */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent) _exit(1);
        int in = open("/dev/null", O_RDONLY);
        if (in >= 0) { dup2(in, 0); close(in); }
        dup2(fd, 1);
        dup2(fd, 2);
        sigprocmask(SIG_SETMASK, child_mask, NULL);
        execv(exe, st->argv);
        dprintf(2, "graft: demo: cannot run %s: %s\n", exe, strerror(errno));
        _exit(127);
    }
    setpgid(pid, pid); /* also here: a signal sent before the child ran must reach its group */
    close(fd);
    st->pid = pid;
    st->state = S_RUNNING;
    return GR_OK;
}

/* A step's child ended: reports it (one line), returns 1 when it succeeded. */
static int finish_step(demo *d, demo_step *st, int status, int stopping)
{
    double dt = now_s() - st->t0;
    d->total_s += dt;
    d->ran++;
    st->pid = 0;
    char log[sizeof st->name + 16], *why = st->why;
    size_t cap = sizeof st->why;
    log_path(st, log, sizeof log);
    int ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (ok && !gr_path_exists(st->done)) {
        ok = 0;
        snprintf(why, cap, "it ended without writing %s", st->done);
    } else if (!ok && WIFSIGNALED(status)) {
        snprintf(why, cap, "killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
    } else if (!ok) {
        log_error_line(log, why, cap);
        if (!why[0]) snprintf(why, cap, "exit status %d, empty log", WEXITSTATUS(status));
    }
    if (ok) {
        st->state = S_DONE;
        printf("  %-22s %6.1f s\n", st->name, dt);
        if (d->times) { fprintf(d->times, "%s\t%.1f\n", st->name, dt); fflush(d->times); }
    } else {
        st->state = S_FAILED;
        /* a product written before the failure (a pretrained LM below the quality bar) must not
         * make the next run take the step as done */
        if (gr_path_exists(st->done)) remove(st->done);
        printf("  %-22s %s after %.1f s (%s/%s): %s\n", st->name, stopping ? "stopped" : "failed", dt, d->dir, log, why);
    }
    fflush(stdout);
    return ok;
}

static int step_ready(const demo_plan *p, const demo_step *st)
{
    if (st->state != S_WAIT) return 0;
    for (int k = 0; k < st->n_deps; k++)
        if (p->s[st->deps[k]].state != S_DONE) return 0;
    return 1;
}

static const char *sig_name(int sig)
{
    return sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : sig == SIGHUP ? "SIGHUP" : "a signal";
}

static void signal_running(demo_plan *p, int sig)
{
    for (int i = 0; i < p->n; i++)
        if (p->s[i].state == S_RUNNING && p->s[i].pid > 0) kill(-p->s[i].pid, sig);
}

/* Runs the plan. A failure starts nothing new and waits for the running steps; SIGINT/SIGTERM
 * are forwarded to every running step's process group (a second one kills them), then the
 * demo waits for them too, so no child outlives it. Signals and child exits are taken
 * synchronously (blocked, then sigwaitinfo), so none is lost between two checks. */
static gr_status run_steps(demo *d, demo_plan *p, int *interrupted)
{
    *interrupted = 0;
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    /* a signal the demo was started ignoring stays ignored (nohup graft demo) */
    static const int stops[] = {SIGINT, SIGTERM, SIGHUP};
    for (int i = 0; i < 3; i++) {
        struct sigaction sa;
        if (sigaction(stops[i], NULL, &sa) == 0 && sa.sa_handler != SIG_IGN) sigaddset(&set, stops[i]);
    }
    sigprocmask(SIG_BLOCK, &set, &old);
    /* inherited SIG_IGN for SIGCHLD would reap the steps unseen: their statuses are needed */
    struct sigaction dfl, old_chld;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(SIGCHLD, &dfl, &old_chld);
    gr_status s = gr_mkdirs("logs");
    d->times = s == GR_OK ? fopen("logs/times.tsv", "a") : NULL;
    int running = 0, failed = -1, n_failed = 0, stop_sig = 0;
    double t0 = now_s();
    for (int i = 0; i < p->n; i++)
        if (gr_path_exists(p->s[i].done)) {
            p->s[i].state = S_DONE;
            printf("  %-22s cached\n", p->s[i].name);
        }
    fflush(stdout);
    while (s == GR_OK || running > 0) {
        while (s == GR_OK && failed < 0 && !stop_sig && running < d->jobs) {
            int k = 0;
            while (k < p->n && !step_ready(p, &p->s[k])) k++;
            if (k == p->n) break;
            s = start_step(&p->s[k], d->exe, &old);
            if (s == GR_OK) running++;
        }
        if (running == 0) break;
        siginfo_t si;
        int sig = sigwaitinfo(&set, &si);
        if (sig < 0) continue; /* EINTR (a stopped-and-continued demo) */
        if (sig != SIGCHLD) {
            if (!stop_sig) {
                stop_sig = sig;
                printf("demo: %s: stopping %d running step(s)\n", sig_name(sig), running);
                fflush(stdout);
                signal_running(p, sig == SIGHUP ? SIGTERM : sig);
            } else {
                signal_running(p, SIGKILL);
            }
            continue;
        }
        int status;
        pid_t pid;
        while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
            for (int i = 0; i < p->n; i++) {
                if (p->s[i].state != S_RUNNING || p->s[i].pid != pid) continue;
                running--;
                if (!finish_step(d, &p->s[i], status, stop_sig != 0)) {
                    n_failed++;
                    if (failed < 0 && !stop_sig) {
                        failed = i;
                        if (running) printf("  waiting for the %d running step(s) to end\n", running);
                        fflush(stdout);
                    }
                }
            }
        }
    }
    d->wall_s = now_s() - t0;
    if (d->times) fclose(d->times);
    d->times = NULL;
    sigaction(SIGCHLD, &old_chld, NULL);
    sigprocmask(SIG_SETMASK, &old, NULL);
    if (s != GR_OK) return s;
    if (stop_sig) {
        *interrupted = stop_sig;
        return gr_fail(GR_ERR_INTERRUPTED, "demo: stopped by %s; the interrupted steps rerun next time (logs in %s/logs)",
                       sig_name(stop_sig), d->dir);
    }
    if (failed >= 0) {
        char log[64];
        log_path(&p->s[failed], log, sizeof log);
        return gr_fail(GR_ERR_INVALID, "demo: step %s failed (%s/%s): %s%s", p->s[failed].name, d->dir, log,
                       p->s[failed].why, n_failed > 1 ? " (other steps failed too: see above)" : "");
    }
    for (int i = 0; i < p->n; i++)
        if (p->s[i].state != S_DONE)
            return gr_fail(GR_ERR_INVALID, "demo: step %s never became ready (a step it needs is missing)", p->s[i].name);
    return GR_OK;
}

/* configs/demo next to the source tree: ./configs/demo, else beside the executable's tree. */
static int find_configs(const char *exe, char *out, size_t cap)
{
    if (gr_is_dir("configs/demo")) {
        if (realpath("configs/demo", out)) return 1;
    }
    char buf[PATH_MAX];
    snprintf(buf, sizeof buf, "%s", exe);
    char *dir = dirname(buf); /* .../build/bin */
    const char *rel[] = {"/../../configs/demo", "/../share/graft/configs/demo", "/../configs/demo"};
    for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++) {
        char p[PATH_MAX + 64];
        snprintf(p, sizeof p, "%s%s", dir, rel[i]);
        if (gr_is_dir(p) && realpath(p, out)) return 1;
    }
    (void)cap;
    return 0;
}

static gr_status copy_tree(const char *from, const char *to)
{
    gr_status s = gr_mkdirs(to);
    if (s != GR_OK) return s;
    /* the demo's configuration files (a few KB) */
    static const char *const files[] = {
        "common.inc", "source.cfg", "scratch_large.cfg", "scratch_llama.cfg", "scratch_deep.cfg", "tas.cfg",
        "tat.cfg", "surrogate.cfg", "pretrain_opt_small.cfg", "pretrain_opt_large.cfg",
        "pretrain_llama_small.cfg", "pretrain_opt_deep.cfg", "pretrain_vision.cfg", "parts/vision/config.json",
        "parts/vision_4px/config.json",
        "parts/qformer/config.json", NULL};
    for (int i = 0; files[i] && s == GR_OK; i++) {
        char src[PATH_MAX + 64], dst[PATH_MAX + 64];
        snprintf(src, sizeof src, "%s/%s", from, files[i]);
        snprintf(dst, sizeof dst, "%s/%s", to, files[i]);
        char *text = NULL;
        size_t len = 0;
        s = gr_read_file(src, &text, &len);
        char *slash = strrchr(dst, '/');
        if (s == GR_OK && slash) { *slash = 0; s = gr_mkdirs(dst); *slash = '/'; }
        if (s == GR_OK) s = gr_write_file_atomic(dst, text, len);
        free(text);
    }
    return s;
}

/* ------------------------------------------------------------------------ tables ---- */

static const char *const table_metrics[] = {"CIDEr", "Bleu_4", "ROUGE_L"};
#define N_TABLE_METRICS 3

static gr_status speedup_rows(const char *label, const char *scratch, const char *transfer, int seeds,
                              gr_speedup *rows, const char **labels, int *n)
{
    char sbuf[MAX_SEEDS][64], tbuf[MAX_SEEDS][64];
    const char *sr[MAX_SEEDS], *tr[MAX_SEEDS];
    for (int i = 0; i < seeds; i++) {
        snprintf(sbuf[i], sizeof sbuf[i], "runs/%s_s%d", scratch, i + 1);
        snprintf(tbuf[i], sizeof tbuf[i], "runs/%s_s%d", transfer, i + 1);
        sr[i] = sbuf[i];
        tr[i] = tbuf[i];
    }
    gr_speedup_input in = {0};
    in.scratch = sr;
    in.n_scratch = seeds;
    in.transfer = tr;
    in.n_transfer = seeds;
    in.split = "val";
    in.extra_flops = -1;  /* the converter, from each run's report.json */
    in.source_flops = -1; /* the source VPG's training */
    for (int m = 0; m < N_TABLE_METRICS; m++) {
        gr_status s = gr_speedup_compute(&in, table_metrics[m], &rows[*n]);
        if (s != GR_OK) return s;
        labels[*n] = label;
        (*n)++;
    }
    return GR_OK;
}

static double report_num(const char *run, const char *path)
{
    char *rp = gr_path_join(run, GR_RUN_REPORT);
    gr_report *r = NULL;
    double v = NAN;
    if (rp && gr_report_load(rp, &r) == GR_OK && gr_report_get_number(r, path, &v) != GR_OK) v = NAN;
    gr_report_free(r);
    free(rp);
    gr_clear_error();
    return v;
}

static gr_status tables(demo *d, FILE *out)
{
    gr_speedup rows[16];
    const char *labels[16];
    int n = 0;
    gr_status s = speedup_rows("TaS OPT-2x64 -> OPT-4x128", "scratch_large", "tas", d->seeds, rows, labels, &n);
    if (s == GR_OK) s = speedup_rows("TaT OPT-2x64 -> Llama-2x64", "scratch_llama", "tat", d->seeds, rows, labels, &n);
    if (s != GR_OK) return s;
    char title[200];
    snprintf(title, sizeof title,
             "Speed-up (val, mean of %d seed(s); x epochs = e_scratch / e_transfer; x FLOPs with the converter and "
             "every stage; x +src also counts the source VPG's training):", d->seeds);
    gr_speedup_print_table(out, title, labels, rows, n);
    fprintf(out, "per-seed x epochs:");
    for (int i = 0; i < n; i++) {
        fprintf(out, "%s %s/%s", i ? ";" : "", labels[i][2] == 'S' ? "TaS" : "TaT", rows[i].metric);
        for (int k = 0; k < rows[i].n_seeds; k++) fprintf(out, " %.2f", rows[i].seed_speedup_epochs[k]);
    }
    fprintf(out, "\n\n");

    /* surrogate vs grafted vs scratch (test split): the mean over seeds, then each seed's CIDEr */
    fprintf(out, "Surrogate grafting on OPT-8x96 (test split, mean of %d seed(s); surrogate = layers 0-1 + translator 2 + "
                 "layer 7):\n", d->seeds);
    fprintf(out, "%-10s %15s %15s %17s %15s\n", "metric", "surrogate pair", "grafted 0-shot", "scratch on target",
            "source on small");
    double fs = 0, ft = 0;
    for (int m = 0; m < N_TABLE_METRICS; m++) {
        char k1[100], k2[100], k3[100], su[40], sc[40];
        snprintf(k1, sizeof k1, "surrogate.pair.%s", table_metrics[m]);
        snprintf(k2, sizeof k2, "surrogate.grafted.%s", table_metrics[m]);
        snprintf(k3, sizeof k3, "final.test.%s.value", table_metrics[m]);
        double v[3] = {0, 0, 0};
        for (int i = 0; i < d->seeds; i++) {
            snprintf(su, sizeof su, "runs/surrogate_s%d", i + 1);
            snprintf(sc, sizeof sc, "runs/scratch_deep_s%d", i + 1);
            v[0] += report_num(su, k1) / d->seeds;
            v[1] += report_num(su, k2) / d->seeds;
            v[2] += report_num(sc, k3) / d->seeds;
            if (m == 0) {
                fs += report_num(su, "surrogate.flops_surrogate") / d->seeds;
                ft += report_num(sc, "totals.flops") / d->seeds;
            }
        }
        fprintf(out, "%-10s %15.4f %15.4f %17.4f %15.4f\n", table_metrics[m], v[0], v[1], v[2],
                report_num("runs/source", k3));
    }
    fprintf(out, "per-seed CIDEr (surrogate pair / grafted / scratch):");
    for (int i = 0; i < d->seeds; i++) {
        char su[40], sc[40];
        snprintf(su, sizeof su, "runs/surrogate_s%d", i + 1);
        snprintf(sc, sizeof sc, "runs/scratch_deep_s%d", i + 1);
        fprintf(out, "%s %.3f / %.3f / %.3f", i ? ";" : "", report_num(su, "surrogate.pair.CIDEr"),
                report_num(su, "surrogate.grafted.CIDEr"), report_num(sc, "final.test.CIDEr.value"));
    }
    fprintf(out, "\ntraining FLOPs: surrogate %.3g, scratch on the target %.3g (ratio %.2f)\n\n", fs, ft, fs / ft);
    return GR_OK;
}

static gr_status plots(demo *d)
{
    gr_status s = gr_mkdirs("plots");
    struct { const char *file, *title, *a, *b; } sets[] = {
        {"plots/tas.png", "TaS: OPT-2x64 -> OPT-4x128 vs scratch", "scratch_large", "tas"},
        {"plots/tat.png", "TaT: OPT-2x64 -> Llama-2x64 vs scratch", "scratch_llama", "tat"},
    };
    for (size_t k = 0; s == GR_OK && k < sizeof sets / sizeof sets[0]; k++) {
        char names[2 * MAX_SEEDS][64];
        const char *runs[2 * MAX_SEEDS];
        int n = 0;
        for (int i = 0; i < d->seeds; i++) {
            snprintf(names[n], sizeof names[n], "runs/%s_s%d", sets[k].a, i + 1); runs[n] = names[n]; n++;
            snprintf(names[n], sizeof names[n], "runs/%s_s%d", sets[k].b, i + 1); runs[n] = names[n]; n++;
        }
        static const char *const metrics[] = {"loss", "val/CIDEr", "val/Bleu_4"};
        gr_plot_opts o = {0};
        o.runs = runs;
        o.run_count = n;
        o.metrics = metrics;
        o.metric_count = 3;
        o.x = GR_PLOT_X_BOTH;
        o.title = sets[k].title;
        o.out = sets[k].file;
        s = gr_plot_runs(&o);
    }
    if (s == GR_OK) {
        const char *runs[] = {"runs/scratch_deep_s1", "runs/surrogate_s1"};
        const char *labels[] = {"scratch on OPT-8x96", "surrogate (stages 1-2), then the graft"};
        static const char *const metrics[] = {"loss", "CIDEr"};
        gr_plot_opts o = {0};
        o.runs = runs;
        o.labels = labels;
        o.run_count = 2;
        o.metrics = metrics;
        o.metric_count = 2;
        o.title = "Surrogate grafting on OPT-8x96 (seed 1)";
        o.out = "plots/surrogate.png";
        s = gr_plot_runs(&o);
    }
    return s;
}

/* ---------------------------------------------------------------------- command ---- */

/* DIR/demo_mode says which demo made DIR ("full" or "quick"): the miniature's products must
 * never be taken as the real demo's, nor the other way round. A directory made before the
 * file existed (its configs copied) is a full demo's. */
static gr_status check_mode(const demo *d)
{
    const char *want = d->quick ? "quick" : "full";
    char *text = NULL;
    if (gr_path_exists("demo_mode")) {
        gr_status s = gr_read_file("demo_mode", &text, NULL);
        if (s != GR_OK) return s;
        size_t n = strlen(text);
        while (n && (text[n - 1] == '\n' || text[n - 1] == ' ')) text[--n] = 0;
        int same = strcmp(text, want) == 0;
        free(text);
        if (same) return GR_OK;
    } else if (!gr_path_exists("configs/common.inc") || !d->quick) {
        char line[16];
        snprintf(line, sizeof line, "%s\n", want);
        return gr_write_file_atomic("demo_mode", line, strlen(line));
    }
    return gr_fail(GR_ERR_INVALID, "%s: holds a %s demo's products; `graft demo%s` needs another --dir", d->dir,
                   d->quick ? "full" : "quick (--quick)", d->quick ? " --quick" : "");
}

static gr_status run_demo(demo *d, int *interrupted)
{
    demo_plan *p = calloc(1, sizeof *p);
    if (!p) return gr_fail(GR_ERR_NOMEM, "demo: out of memory");
    gr_status s = plan_demo(d, p);
    if (s == GR_OK) {
        printf("steps (%d at once; logs in %s/logs):\n", d->jobs, d->dir);
        s = run_steps(d, p, interrupted);
    }
    plan_free(p);
    free(p);
    if (s != GR_OK) return s;
    if (d->ran)
        printf("steps run now: %d, %.1f s of step time in %.1f s wall (%d at once)\n", d->ran, d->total_s, d->wall_s,
               d->jobs);
    else
        printf("every step was cached (times of the first run: %s/logs/times.tsv)\n", d->dir);
    printf("\n");
    s = plots(d);
    if (s != GR_OK) return s;
    s = tables(d, stdout);
    if (s != GR_OK) return s;
    FILE *f = fopen("results.txt", "w");
    if (!f) return gr_fail(GR_ERR_IO, "%s/results.txt: cannot write: %s", d->dir, strerror(errno));
    s = tables(d, f);
    if (fclose(f) != 0 && s == GR_OK) s = gr_fail(GR_ERR_IO, "%s/results.txt: cannot write: %s", d->dir, strerror(errno));
    if (s != GR_OK) return s;
    printf("curves: %s/plots/{tas,tat,surrogate}.png; tables: %s/results.txt; trajectory: "
           "%s/analysis/opt_deep/trajectory.png\n", d->dir, d->dir, d->dir);
    return GR_OK;
}

/* A positive count no larger than max, or a one-line error naming the option. */
static int parse_count(const char *opt, const char *text, int max, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (!text[0] || *end || errno || v < 1 || v > max) {
        gr_fail(GR_ERR_INVALID, "%s: '%s' is not 1..%d", opt, text, max);
        return 0;
    }
    *out = (int)v;
    return 1;
}

static int cmd_demo(int argc, char **argv)
{
    if (gr_cli_wants_help(argc, argv)) return gr_cli_usage(gr_find_command("demo"), 0);
    demo d = {0};
    const char *configs = NULL;
    int seeds = 0;
    d.jobs = 2;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc) d.dir = argv[++i];
        else if (strcmp(argv[i], "--configs") == 0 && i + 1 < argc) configs = argv[++i];
        else if (strcmp(argv[i], "--quick") == 0) d.quick = 1;
        else if (strcmp(argv[i], "--seeds") == 0 && i + 1 < argc) {
            if (!parse_count("--seeds", argv[++i], MAX_SEEDS, &seeds)) return gr_cli_error();
        } else if (strcmp(argv[i], "--jobs") == 0 && i + 1 < argc) {
            if (!parse_count("--jobs", argv[++i], MAX_JOBS, &d.jobs)) return gr_cli_error();
        } else {
            return gr_cli_usage(gr_find_command("demo"), 2);
        }
    }
    if (!d.dir) d.dir = d.quick ? QUICK_DIR : "graft-demo";
    d.seeds = seeds ? seeds : d.quick ? 1 : 2;
    ssize_t n = readlink("/proc/self/exe", d.exe, sizeof d.exe - 1);
    if (n <= 0) { gr_fail(GR_ERR_IO, "demo: cannot find the graft executable"); return gr_cli_error(); }
    d.exe[n] = 0;
    char cfgdir[PATH_MAX];
    if (configs) {
        if (!realpath(configs, cfgdir)) { gr_fail(GR_ERR_NOT_FOUND, "%s: no such directory", configs); return gr_cli_error(); }
    } else if (!find_configs(d.exe, cfgdir, sizeof cfgdir)) {
        gr_fail(GR_ERR_NOT_FOUND, "configs/demo: not found here or beside %s (use --configs DIR)", d.exe);
        return gr_cli_error();
    }
    gr_status s = gr_mkdirs(d.dir);
    if (s != GR_OK) return gr_cli_error();
    if (chdir(d.dir) != 0) { gr_fail(GR_ERR_IO, "%s: cannot enter: %s", d.dir, strerror(errno)); return gr_cli_error(); }
    if ((s = check_mode(&d)) != GR_OK) return gr_cli_error();
    if (!gr_path_exists("configs/common.inc") && (s = copy_tree(cfgdir, "configs")) != GR_OK) return gr_cli_error();
    printf("graft demo%s in %s (configs: %s/configs, %d seed(s), %d job(s))\n", d.quick ? " --quick (a miniature: its "
           "numbers mean nothing)" : "", d.dir, d.dir, d.seeds, d.jobs);
    double t0 = now_s();
    int interrupted = 0;
    s = run_demo(&d, &interrupted);
    if (s != GR_OK) {
        gr_cli_error();
        return interrupted ? 128 + interrupted : 1;
    }
    printf("demo: %.1f s wall\n", now_s() - t0);
    return 0;
}

const gr_command gr_cmd_demo = {
    "demo", cmd_demo, "the whole method on the synthetic world: tiny LMs, TaS, TaT, surrogate grafting, tables",
    "usage: graft demo [--dir DIR] [--seeds N] [--jobs N] [--quick] [--configs DIR]\n"
    "\n"
    "On the synthetic world (graft synth), pretrains a tiny CLIP tower on per-patch attributes\n"
    "(graft pretrain-vision) and four tiny LMs (OPT 2x64 and 4x128 sharing a tokenizer, a Llama\n"
    "2x64 with its own, a deeper OPT 8x96), trains a VPG on the small OPT, then\n"
    "runs VPGTrans TaS (-> OPT 4x128) and TaT (-> Llama) against training from scratch on each\n"
    "target (N seeds, default 2), and surrogate grafting on the deep OPT (N seeds; its prediction\n"
    "trajectory analysed, a surrogate built with range 2:7). Prints the speed-up table (epochs and\n"
    "FLOPs to reach scratch's best, per metric) and the surrogate table (surrogate pair vs grafted\n"
    "vs scratch), writes curves to DIR/plots and the tables to DIR/results.txt.\n"
    "\n"
    "Every step runs as a graft command in DIR (default graft-demo), its output in DIR/logs, and\n"
    "is skipped when its product exists: a second run only re-reports; delete a run directory\n"
    "to redo it. Steps whose inputs are ready run side by side, up to --jobs at once (default 2),\n"
    "each then with one thread (-s backend.threads=1; --jobs 1 adds nothing). A failed step\n"
    "stops the demo once the running steps end (its log is named; the next run redoes it);\n"
    "SIGINT/SIGTERM stop the running steps too. DIR/logs/times.tsv: each step's seconds.\n"
    "Configurations: configs/demo (copied to DIR/configs on the first run).\n"
    "\n"
    "--quick runs the same steps on a miniature (a 120-image world, 30 pretraining steps, two\n"
    "epochs, one seed) in DIR (default graft-demo-quick): a test of the plumbing, not results.\n"};
