/* The demo LMs' data: `graft synth`'s knowledge.txt (every colour and shape fact once) and
 * `pretrain.corpus_weights` (per-file line copies per epoch): exact weighted token counts,
 * fractional weights, determinism, held-out lines, and one-line errors naming the file or key.
 * Usage: test_corpus_mix GRAFT_BIN DATA_DIR TMP_DIR */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "base/fsutil.h"

static int failures;
#define CHECK(cond, ...) do { if (!(cond)) { failures++; printf("FAIL %s:%d: ", __FILE__, __LINE__); printf(__VA_ARGS__); printf("\n"); } } while (0)

static const char *graft, *data, *tmp;
static char logp[4096];

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(cmd, sizeof cmd - 4200, fmt, ap);
    va_end(ap);
    snprintf(cmd + n, sizeof cmd - (size_t)n, " > '%s' 2>&1", logp);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char *slurp(const char *path)
{
    char *t = NULL;
    if (gr_read_file(path, &t, NULL)) return NULL;
    return t;
}

static int log_has(const char *needle)
{
    char *t = slurp(logp);
    int r = t && strstr(t, needle);
    if (!r) printf("---- log:\n%s----\n", t ? t : "(none)");
    free(t);
    return r;
}

static int count_lines(const char *text)
{
    int n = 0;
    for (const char *p = text; *p; p++) n += *p == '\n' && p > text && p[-1] != '\n'; /* non-empty lines */
    return n;
}

/* knowledge.txt: the fact count for the vocabulary, each line once, the probes' facts present */
static void check_knowledge(void)
{
    char dir[4096], path[4200];
    snprintf(dir, sizeof dir, "%s/world", tmp);
    int rc = sh("'%s' synth --out '%s' --size 12 --image-size 16 --seed 3", graft, dir);
    CHECK(rc == 0, "synth exit %d", rc);
    snprintf(path, sizeof path, "%s/knowledge.txt", dir);
    char *k = slurp(path);
    CHECK(k != NULL, "%s missing", path);
    if (!k) return;
    /* 8 colours x 5 things x 4 templates + 6 shapes x (5 things x 3 templates + 2 definitions) */
    CHECK(count_lines(k) == 8 * 5 * 4 + 6 * 17, "knowledge.txt: %d lines, expected 262", count_lines(k));
    static const char *const must[] = {"\nthe sky is blue\n", "\na lemon is yellow\n", "\ncyan is the color of the lagoon\n",
                                       "\na wheel looks like a circle\n", "\nthe shape of a bolt head is a hexagon\n",
                                       "\na honeycomb cell is shaped like a hexagon\n", "\na triangle has three sides\n"};
    for (size_t i = 0; i < sizeof must / sizeof must[0]; i++) CHECK(strstr(k, must[i]) != NULL, "knowledge.txt lacks '%s'", must[i] + 1);
    CHECK(strchr(k, ',') == NULL, "knowledge.txt has a comma (a metaspace tokenizer would split the colour's probability)");
    CHECK(strstr(k, "pink") && !strstr(k, "brown") && !strstr(k, "cross"), "knowledge.txt: not the default 8 colours / 6 shapes");
    /* every line once */
    int dup = 0, n = 0;
    char **lines = calloc((size_t)count_lines(k) + 1, sizeof *lines);
    for (char *p = k, *nl; lines && (nl = strchr(p, '\n')); p = nl + 1) {
        *nl = '\0';
        if (!*p) continue; /* the blank line after each fact (a paragraph each) */
        for (int j = 0; j < n && !dup; j++) dup = strcmp(lines[j], p) == 0;
        lines[n++] = p;
    }
    CHECK(lines && !dup, "knowledge.txt repeats a line");
    free(lines);
    free(k);
    snprintf(path, sizeof path, "%s/world.json", dir);
    json_error_t e;
    json_t *w = json_load_file(path, 0, &e);
    CHECK(w && json_integer_value(json_object_get(w, "knowledge_facts")) == 262, "world.json knowledge_facts");
    json_decref(w);
    /* a smaller vocabulary: 3 colours, 2 shapes */
    snprintf(dir, sizeof dir, "%s/world_small", tmp);
    rc = sh("'%s' synth --out '%s' --size 12 --image-size 16 --colors 3 --shapes 2", graft, dir);
    snprintf(path, sizeof path, "%s/knowledge.txt", dir);
    k = slurp(path);
    CHECK(rc == 0 && k && count_lines(k) == 3 * 20 + 2 * 17 && !strstr(k, "yellow") && !strstr(k, "triangle"),
          "--colors 3 --shapes 2: exit %d, %d lines, expected 94", rc, k ? count_lines(k) : -1);
    free(k);
    if (!failures) printf("ok   knowledge.txt: every fact of the vocabulary once (262 / 94 lines), no comma\n");
}

/* "... on L lines (or paragraphs) / N tokens (W weighted, K batches an epoch), held out V lines ..." */
typedef struct header { long long lines, tokens, weighted, batches, val_lines; } header;

static int read_header(header *h)
{
    char *t = slurp(logp);
    const char *p = t ? strstr(t, " on ") : NULL;
    int ok = p && sscanf(p, " on %lld %*s / %lld tokens (%lld weighted, %lld batches an epoch), held out %lld", &h->lines,
                         &h->tokens, &h->weighted, &h->batches, &h->val_lines) == 5;
    if (!ok) printf("---- no header in log:\n%s----\n", t ? t : "(none)");
    free(t);
    return ok;
}

static void write_cfg(const char *path, const char *tok, const char *corpus, const char *weights, const char *out)
{
    FILE *c = fopen(path, "w");
    if (!c) { printf("FAIL cannot write %s\n", path); failures++; return; }
    fprintf(c, "pretrain: {\n  family = \"opt\"; tokenizer = \"%s\"; corpus = %s; %s out = \"%s\";\n"
               "  hidden_size = 16; layers = 1; heads = 2; ffn_dim = 32; max_positions = 16;\n"
               "  seq_len = 8; batch_size = 2; steps = 3; warmup_steps = 1; val_fraction = 0.0; probes = [\"the sky is|blue\"];\n};\n"
               "backend: { threads = 1; };\n",
            tok, corpus, weights, out);
    fclose(c);
}

static int run_mix(const char *tok, const char *corpus, const char *weights, const char *name, const char *extra, header *h)
{
    char cfg[4200], out[4200];
    snprintf(cfg, sizeof cfg, "%s/%s.cfg", tmp, name);
    snprintf(out, sizeof out, "%s/%s", tmp, name);
    write_cfg(cfg, tok, corpus, weights, out);
    int rc = sh("'%s' pretrain -c '%s' %s", graft, cfg, extra ? extra : "");
    if (h) memset(h, 0, sizeof *h);
    if (h && rc == 0 && !read_header(h)) return -1;
    return rc;
}

static int same_file(const char *a, const char *b)
{
    char *x = NULL, *y = NULL;
    size_t nx = 0, ny = 0;
    int same = gr_read_file(a, &x, &nx) == GR_OK && gr_read_file(b, &y, &ny) == GR_OK && nx == ny && memcmp(x, y, nx) == 0;
    free(x);
    free(y);
    return same;
}

static void check_weights(void)
{
    char tok[4200], a[4200], b[4200], lists[3][9000];
    snprintf(tok, sizeof tok, "%s/tok", tmp);
    int rc = sh("'%s' tokenizer train --corpus '%s/corpus.txt' --vocab-size 300 --type bytelevel --family opt --out '%s'", graft, data, tok);
    CHECK(rc == 0, "tokenizer train exit %d", rc);
    /* A: 300 corpus lines; B: the knowledge facts of the world above */
    snprintf(a, sizeof a, "%s/a.txt", tmp);
    snprintf(b, sizeof b, "%s/world/knowledge.txt", tmp);
    rc = sh("head -300 '%s/corpus.txt' | tee '%s' | wc -l", data, a);
    CHECK(rc == 0 && log_has("300"), "cannot write %s", a);
    snprintf(lists[0], sizeof lists[0], "[\"%s\"]", a);
    snprintf(lists[1], sizeof lists[1], "[\"%s\"]", b);
    snprintf(lists[2], sizeof lists[2], "[\"%s\", \"%s\"]", a, b);
    header ha, hb, h;
    CHECK(run_mix(tok, lists[0], "", "only_a", NULL, &ha) == 0 && ha.lines == 300 && ha.weighted == ha.tokens, "A alone: %lld lines", ha.lines);
    CHECK(run_mix(tok, lists[1], "", "only_b", NULL, &hb) == 0 && hb.lines == 262 && hb.weighted == hb.tokens, "B alone: %lld lines", hb.lines);
    /* integer weights: exact token counts */
    CHECK(run_mix(tok, lists[2], "", "w_none", NULL, &h) == 0 && h.weighted == ha.tokens + hb.tokens, "no weights: %lld", h.weighted);
    CHECK(run_mix(tok, lists[2], "corpus_weights = [1.0, 3.0];", "w13", NULL, &h) == 0 && h.tokens == ha.tokens + hb.tokens &&
              h.weighted == ha.tokens + 3 * hb.tokens && h.batches == h.weighted / 16,
          "[1, 3]: %lld weighted tokens, expected %lld; %lld batches", h.weighted, ha.tokens + 3 * hb.tokens, h.batches);
    CHECK(run_mix(tok, lists[2], "corpus_weights = [0.0, 2.0];", "w02", NULL, &h) == 0 && h.weighted == 2 * hb.tokens,
          "[0, 2]: %lld weighted tokens, expected %lld", h.weighted, 2 * hb.tokens);
    /* fractional: 1.5 x A = every line once and half of them again (150 lines, other ones each epoch) */
    CHECK(run_mix(tok, lists[2], "corpus_weights = [1.5, 0.0];", "w15", NULL, &h) == 0 && h.weighted > ha.tokens + ha.tokens / 3 &&
              h.weighted < ha.tokens + 2 * ha.tokens / 3,
          "[1.5, 0]: %lld weighted tokens for %lld of A", h.weighted, ha.tokens);
    /* several epochs of a fractional weight: deterministic, bit for bit */
    const char *ep = "-s pretrain.epochs=3 -s pretrain.steps=0";
    char m1[4300], m2[4300];
    rc = run_mix(tok, lists[2], "corpus_weights = [0.5, 1.0];", "frac1", ep, NULL);
    int rc2 = run_mix(tok, lists[2], "corpus_weights = [0.5, 1.0];", "frac2", ep, NULL);
    snprintf(m1, sizeof m1, "%s/frac1/model.safetensors", tmp);
    snprintf(m2, sizeof m2, "%s/frac2/model.safetensors", tmp);
    CHECK(rc == 0 && rc2 == 0 && same_file(m1, m2), "fractional weights over 3 epochs: exit %d/%d, models %s", rc, rc2,
          same_file(m1, m2) ? "same" : "differ");
    /* the weights change the data: [1, 3] and [1, 1] train different models */
    rc = run_mix(tok, lists[2], "corpus_weights = [1.0, 1.0];", "w11", NULL, NULL);
    snprintf(m1, sizeof m1, "%s/w11/model.safetensors", tmp);
    snprintf(m2, sizeof m2, "%s/w13/model.safetensors", tmp);
    CHECK(rc == 0 && !same_file(m1, m2), "weights [1, 1] and [1, 3] trained the same model");
    snprintf(m2, sizeof m2, "%s/w_none/model.safetensors", tmp);
    CHECK(same_file(m1, m2), "weights [1, 1] differ from no weights");
    /* held-out lines are taken before weighting: a weight does not move them */
    CHECK(run_mix(tok, lists[2], "corpus_weights = [1.0, 4.0];", "held", "-s pretrain.val_fraction=0.1", &h) == 0 && h.val_lines == 56 &&
              h.lines == 562 - 56,
          "val_fraction 0.1 with weights: %lld train / %lld held-out lines", h.lines, h.val_lines);
    if (!failures) printf("ok   corpus_weights: exact weighted token counts, fractional weights deterministic, held-out unchanged\n");

    /* errors: one line naming the key or the file */
    rc = run_mix(tok, lists[2], "corpus_weights = [1.0];", "e1", NULL, NULL);
    CHECK(rc == 1 && log_has("pretrain.corpus_weights has 1 values for 2 corpus files"), "weight count: exit %d", rc);
    rc = run_mix(tok, lists[2], "corpus_weights = [1.0, -2.0];", "e2", NULL, NULL);
    CHECK(rc == 1 && log_has("knowledge.txt: corpus weight -2 is outside 0..1000"), "negative weight: exit %d", rc);
    rc = run_mix(tok, lists[2], "corpus_weights = [0.0, 0.0];", "e3", NULL, NULL);
    CHECK(rc == 1 && log_has("fewer than one batch"), "all weights 0: exit %d", rc);
    char *t = slurp(logp);
    CHECK(t && count_lines(t) == 1, "all weights 0: not one error line:\n%s", t ? t : "");
    free(t);
    rc = run_mix(tok, lists[2], "corpus_weights = [1.0, \"x\"];", "e4", NULL, NULL);
    t = slurp(logp);
    CHECK(rc == 1 && t && count_lines(t) == 1 && strstr(t, "e4.cfg:2"), "a string weight: exit %d, log '%s'", rc, t ? t : "");
    free(t);
    if (!failures) printf("ok   weight errors name the key or the file\n");
}

/* pretrain.documents: "paragraphs" keeps a blank-line separated paragraph together (one unit
 * of the shuffle), "lines" shuffles lines; decoder-only lines keep their "\n" (as the VLM task
 * frames captions), so each line is its ids with BOS plus one "\n" token. */
static void check_documents(void)
{
    char tok[4200], c[4200], list[4300];
    snprintf(tok, sizeof tok, "%s/tok", tmp);
    snprintf(c, sizeof c, "%s/docs.txt", tmp);
    FILE *f = fopen(c, "w");
    if (!f) { failures++; printf("FAIL cannot write %s\n", c); return; }
    for (int d = 0; d < 20; d++) { /* 20 paragraphs of 1..3 lines: 39 lines */
        for (int l = 0; l < 1 + d % 3; l++) fprintf(f, "a red circle\n");
        fprintf(f, "\n");
    }
    fclose(f);
    int rc = sh("'%s' tokenize '%s' 'a red circle'", graft, tok);
    char *t = slurp(logp), *ids = t ? strstr(t, "ids: [") : NULL;
    int k = 0;
    for (char *p = ids; p && *p && *p != ']'; p++) k += *p == ',';
    k += ids != NULL;
    free(t);
    CHECK(rc == 0 && k >= 2, "tokenize: exit %d, %d ids", rc, k);
    snprintf(list, sizeof list, "[\"%s\"]", c);
    header hl, hp;
    CHECK(run_mix(tok, list, "", "doc_lines", NULL, &hl) == 0 && hl.lines == 39 && hl.tokens == 39 * (k + 1),
          "documents = lines: %lld lines / %lld tokens, expected 39 / %d", hl.lines, hl.tokens, 39 * (k + 1));
    CHECK(run_mix(tok, list, "documents = \"paragraphs\";", "doc_par", NULL, &hp) == 0 && hp.lines == 20 && hp.tokens == hl.tokens &&
              log_has(" on 20 paragraphs /"),
          "documents = paragraphs: %lld units / %lld tokens, expected 20 / %lld", hp.lines, hp.tokens, hl.tokens);
    rc = run_mix(tok, list, "documents = \"pages\";", "doc_bad", NULL, NULL);
    t = slurp(logp);
    CHECK(rc == 1 && t && count_lines(t) == 1 && strstr(t, "doc_bad.cfg: pretrain.documents is \"pages\""), "bad documents: exit %d, '%s'", rc,
          t ? t : "");
    free(t);
    if (!failures) printf("ok   documents: paragraphs stay together, lines keep their newline, a bad value is one line\n");
}

int main(int argc, char **argv)
{
    if (argc != 4) { fprintf(stderr, "usage: test_corpus_mix GRAFT_BIN DATA_DIR TMP_DIR\n"); return 2; }
    graft = argv[1];
    data = argv[2];
    tmp = argv[3];
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd) != 0 || gr_mkdirs(tmp)) { printf("FAIL cannot reset %s\n", tmp); return 1; }
    snprintf(logp, sizeof logp, "%s/log.txt", tmp);
    check_knowledge();
    check_weights();
    check_documents();
    printf("%s: %d failure(s)\n", failures ? "FAILED" : "passed", failures);
    return failures ? 1 : 0;
}
