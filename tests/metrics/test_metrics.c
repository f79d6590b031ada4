/* Checks the metrics against what the reference evaluators computed (tests/metrics/data, see SOURCE.md).
 *
 *   test_metrics tokenizer DATA          PTB tokenization of every reference and prediction caption
 *   test_metrics captions DATA CASE      corpus + per-image scores, BLEU totals, printed lines, image order
 *   test_metrics vqa DATA CASE           both evaluators: unrounded and rounded accuracies, printed lines
 *   test_metrics json OUT EXPECTED KIND  `graft score ... --json` output (KIND: captions, official, lavis)
 *
 * Numbers must agree to 1e-6 absolute (the bar); the largest difference seen is printed so a
 * drift from bit-exactness shows up long before it matters. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics/metrics.h"

static int failures;
static double worst;

#define CHECK(cond, ...)                                                                                  \
    do {                                                                                                  \
        if (!(cond)) {                                                                                    \
            failures++;                                                                                   \
            if (failures <= 20) { printf("FAIL: "); printf(__VA_ARGS__); printf("\n"); }                   \
        }                                                                                                 \
    } while (0)

static void near(double got, double want, const char *what, const char *key)
{
    double d = fabs(got - want);
    if (d > worst) worst = d;
    CHECK(d <= 1e-6, "%s %s: got %.17g, want %.17g", what, key, got, want);
}

static json_t *load(const char *dir, const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    json_error_t e;
    json_t *j = json_load_file(path, 0, &e);
    if (!j) { printf("FAIL: cannot read %s: %s\n", path, e.text); exit(1); }
    return j;
}

static void tokenize_and_compare(const char **raw, const char **want, size_t n, const char *what)
{
    char **out = calloc(n, sizeof *out);
    gr_status st = gr_ptb_tokenize(raw, n, out);
    CHECK(st == GR_OK, "%s: tokenizer failed: %s", what, gr_last_error());
    if (st != GR_OK) { free(out); return; }
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(out[i], want[i]) != 0) {
            bad++;
            CHECK(0, "%s: caption %zu \"%s\"\n      got  \"%s\"\n      want \"%s\"", what, i, raw[i], out[i], want[i]);
        }
        free(out[i]);
    }
    free(out);
    printf("%s: %zu captions, %zu differ\n", what, n, bad);
}

static int run_tokenizer(const char *dir)
{
    /* references: one tokenizer call over every reference caption, image by image, as COCOEvalCap makes */
    json_t *r = load(dir, "captions_refs_tokenized.json"), *imgs = json_object_get(r, "images");
    size_t n = 0, k = 0;
    const char *key;
    json_t *v;
    json_object_foreach(imgs, key, v) n += json_array_size(json_object_get(v, "captions"));
    const char **raw = malloc(n * sizeof *raw), **want = malloc(n * sizeof *want);
    json_object_foreach(imgs, key, v) {
        json_t *c = json_object_get(v, "captions"), *t = json_object_get(v, "ptb_tokenized");
        for (size_t i = 0; i < json_array_size(c); i++) {
            raw[k] = json_string_value(json_array_get(c, i));
            want[k++] = json_string_value(json_array_get(t, i));
        }
    }
    tokenize_and_compare(raw, want, n, "references");
    free(raw);
    free(want);
    json_decref(r);

    /* predictions: one call per prediction file, in evaluation order */
    static const char *const CASES[] = {"bad", "casing_punct", "empty", "good", "long", "numbers", "refcopy",
                                        "short", "subset", "unicode"};
    for (size_t c = 0; c < sizeof CASES / sizeof CASES[0]; c++) {
        char name[256];
        snprintf(name, sizeof name, "expected_captions_%s.json", CASES[c]);
        json_t *e = load(dir, name), *ids = json_object_get(e, "evaluated_image_ids"), *preds = json_object_get(e, "predictions");
        n = json_array_size(ids);
        raw = malloc(n * sizeof *raw);
        want = malloc(n * sizeof *want);
        for (size_t i = 0; i < n; i++) {
            char id[32];
            snprintf(id, sizeof id, "%lld", (long long)json_integer_value(json_array_get(ids, i)));
            json_t *p = json_object_get(preds, id);
            raw[i] = json_string_value(json_object_get(p, "caption"));
            want[i] = json_string_value(json_object_get(p, "ptb_tokenized"));
        }
        snprintf(name, sizeof name, "predictions %s", CASES[c]);
        tokenize_and_compare(raw, want, n, name);
        free(raw);
        free(want);
        json_decref(e);
    }
    return 0;
}

static const char *const METHODS[6] = {"Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "ROUGE_L", "CIDEr"};
static double method_value(const gr_caption_scores *s, int m) { return m < 4 ? s->bleu[m] : m == 4 ? s->rouge_l : s->cider; }

static int run_captions(const char *dir, const char *cas)
{
    char name[256], refs[4096], pred[4096];
    snprintf(name, sizeof name, "expected_captions_%s.json", cas);
    json_t *e = load(dir, name);
    snprintf(refs, sizeof refs, "%s/captions_refs.json", dir);
    snprintf(pred, sizeof pred, "%s/captions_pred_%s.json", dir, cas);
    int subset = json_object_get(e, "default_selection_error") != NULL;
    gr_caption_eval ev;
    if (subset) { /* the reference refuses it by default: so must we */
        CHECK(gr_caption_eval_load(refs, pred, 0, &ev) != GR_OK, "%s: partial predictions accepted without --subset", cas);
        CHECK(strstr(gr_last_error(), "no prediction for image") != NULL, "%s: message: %s", cas, gr_last_error());
    }
    if (gr_caption_eval_load(refs, pred, subset, &ev) != GR_OK) { printf("FAIL: %s\n", gr_last_error()); return 1; }
    json_t *ids = json_object_get(e, "evaluated_image_ids");
    CHECK(ev.n == json_array_size(ids), "%s: %zu images evaluated, want %zu", cas, ev.n, json_array_size(ids));
    for (size_t i = 0; i < ev.n && i < json_array_size(ids); i++)
        CHECK(ev.image_ids[i] == json_integer_value(json_array_get(ids, i)), "%s: image order differs at %zu", cas, i);

    gr_caption_scores corpus, *per = malloc(ev.n * sizeof *per);
    gr_bleu_totals tot;
    if (gr_caption_score(ev.images, ev.n, &corpus, per, &tot) != GR_OK) { printf("FAIL: %s\n", gr_last_error()); return 1; }
    json_t *c = json_object_get(e, "corpus"), *printed = json_object_get(e, "corpus_printed");
    for (int m = 0; m < 6; m++) {
        near(method_value(&corpus, m), json_real_value(json_object_get(c, METHODS[m])), cas, METHODS[m]);
        char s[64];
        snprintf(s, sizeof s, "%0.3f", method_value(&corpus, m));
        CHECK(strcmp(s, json_string_value(json_object_get(printed, METHODS[m]))) == 0, "%s: printed %s %s", cas, METHODS[m], s);
    }
    json_t *b = json_object_get(e, "bleu_corpus_stats");
    CHECK(tot.testlen == json_integer_value(json_object_get(b, "testlen")), "%s: testlen %lld", cas, tot.testlen);
    CHECK(tot.reflen == json_integer_value(json_object_get(b, "reflen")), "%s: reflen %lld", cas, tot.reflen);
    for (int k = 0; k < 4; k++) {
        CHECK(tot.guess[k] == json_integer_value(json_array_get(json_object_get(b, "guess"), (size_t)k)), "%s: guess[%d]", cas, k);
        CHECK(tot.correct[k] == json_integer_value(json_array_get(json_object_get(b, "correct"), (size_t)k)), "%s: correct[%d]", cas, k);
    }
    near(tot.ratio, json_real_value(json_object_get(b, "ratio")), cas, "ratio");
    json_t *pi = json_object_get(e, "per_image");
    for (size_t i = 0; i < ev.n; i++) {
        char id[32], what[128];
        snprintf(id, sizeof id, "%lld", ev.image_ids[i]);
        snprintf(what, sizeof what, "%s image %s", cas, id);
        json_t *row = json_object_get(pi, id);
        for (int m = 0; m < 6; m++) near(method_value(&per[i], m), json_number_value(json_object_get(row, METHODS[m])), what, METHODS[m]);
    }
    printf("captions %s: %zu images, 6 corpus + %zu per-image values, largest difference %.3g\n", cas, ev.n, 6 * ev.n, worst);
    free(per);
    gr_caption_eval_free(&ev);
    json_decref(e);
    return 0;
}

static void check_groups(const gr_vqa_group *g, size_t n, json_t *want, const char *what)
{
    CHECK(n == json_object_size(want), "%s: %zu groups, want %zu", what, n, json_object_size(want));
    for (size_t i = 0; i < n; i++) {
        json_t *w = json_object_get(want, g[i].name);
        CHECK(w != NULL, "%s: unexpected group '%s'", what, g[i].name);
        if (w) near(g[i].percent, json_number_value(w), what, g[i].name);
    }
}

static int run_vqa(const char *dir, const char *cas)
{
    char name[256], q[4096], a[4096], r[4096];
    snprintf(name, sizeof name, "expected_vqa_%s.json", cas);
    json_t *e = load(dir, name);
    snprintf(q, sizeof q, "%s/vqa_questions.json", dir);
    snprintf(a, sizeof a, "%s/vqa_annotations.json", dir);
    snprintf(r, sizeof r, "%s/vqa_results_%s.json", dir, cas);
    gr_vqa_eval ev;
    if (gr_vqa_eval_load(q, a, r, &ev) != GR_OK) { printf("FAIL: %s\n", gr_last_error()); return 1; }
    const struct { gr_vqa_evaluator ev; const char *block; } V[] = {{GR_VQA_OFFICIAL, "official_head"}, {GR_VQA_LAVIS, "official_2017"}};
    for (int v = 0; v < 2; v++) {
        json_t *blk = json_object_get(e, V[v].block), *u = json_object_get(blk, "unrounded");
        gr_vqa_scores s;
        if (gr_vqa_score(ev.items, ev.n, V[v].ev, &s) != GR_OK) { printf("FAIL: %s\n", gr_last_error()); return 1; }
        char what[128];
        snprintf(what, sizeof what, "%s %s", cas, V[v].block);
        near(s.overall, json_number_value(json_object_get(u, "overall_percent")), what, "overall");
        check_groups(s.answer_types, s.n_answer_types, json_object_get(u, "perAnswerType_percent"), what);
        check_groups(s.question_types, s.n_question_types, json_object_get(u, "perQuestionType_percent"), what);
        json_t *pq = json_object_get(u, "per_question_fraction"), *qa = json_object_get(blk, "evalQA");
        for (size_t i = 0; i < s.n; i++) {
            char id[32];
            snprintf(id, sizeof id, "%lld", ev.items[i].question_id);
            near(s.per_question[i], json_number_value(json_object_get(pq, id)), what, id);
            double rounded = gr_round_py(100 * s.per_question[i], 2);
            CHECK(rounded == json_number_value(json_object_get(qa, id)), "%s: evalQA %s = %.17g", what, id, rounded);
        }
        /* the printed lines of vqaEvalDemo.py */
        json_t *pr = json_object_get(blk, "printed");
        char line[512];
        snprintf(line, sizeof line, "Overall Accuracy is: %.02f", gr_round_py(s.overall, 2));
        CHECK(strcmp(line, json_string_value(json_array_get(pr, 0))) == 0, "%s: printed '%s'", what, line);
        size_t k = 2;
        for (size_t i = 0; i < s.n_question_types; i++, k++) {
            snprintf(line, sizeof line, "%s : %.02f", s.question_types[i].name, gr_round_py(s.question_types[i].percent, 2));
            CHECK(strcmp(line, json_string_value(json_array_get(pr, k))) == 0, "%s: printed '%s'", what, line);
        }
        k++;
        for (size_t i = 0; i < s.n_answer_types; i++, k++) {
            snprintf(line, sizeof line, "%s : %.02f", s.answer_types[i].name, gr_round_py(s.answer_types[i].percent, 2));
            CHECK(strcmp(line, json_string_value(json_array_get(pr, k))) == 0, "%s: printed '%s'", what, line);
        }
        CHECK(k == json_array_size(pr), "%s: %zu printed lines, want %zu", what, k, json_array_size(pr));
        printf("vqa %s: %zu questions, largest difference %.3g\n", what, s.n, worst);
        gr_vqa_scores_free(&s);
    }
    gr_vqa_eval_free(&ev);
    json_decref(e);
    return 0;
}

static int run_json(const char *out_path, const char *exp_path, const char *kind)
{
    json_error_t err;
    json_t *o = json_load_file(out_path, 0, &err), *e = json_load_file(exp_path, 0, &err);
    if (!o || !e) { printf("FAIL: cannot read %s or %s: %s\n", out_path, exp_path, err.text); return 1; }
    if (strcmp(kind, "captions") == 0) {
        json_t *c = json_object_get(e, "corpus");
        CHECK(json_object_size(o) == 6, "captions: %zu keys, want 6", json_object_size(o));
        for (int m = 0; m < 6; m++) {
            json_t *x = json_object_get(o, METHODS[m]);
            CHECK(json_is_number(x), "captions: key %s missing", METHODS[m]);
            near(json_number_value(x), json_number_value(json_object_get(c, METHODS[m])), "captions", METHODS[m]);
        }
    } else {
        json_t *u = json_object_get(json_object_get(e, strcmp(kind, "lavis") == 0 ? "official_2017" : "official_head"), "unrounded");
        CHECK(json_object_size(o) == 3, "vqa: %zu keys, want 3", json_object_size(o));
        near(json_number_value(json_object_get(o, "overall")), json_number_value(json_object_get(u, "overall_percent")), kind, "overall");
        const char *k2[2][2] = {{"perAnswerType", "perAnswerType_percent"}, {"perQuestionType", "perQuestionType_percent"}};
        for (int g = 0; g < 2; g++) {
            json_t *got = json_object_get(o, k2[g][0]), *want = json_object_get(u, k2[g][1]);
            CHECK(json_object_size(got) == json_object_size(want), "%s: %s has %zu entries", kind, k2[g][0], json_object_size(got));
            const char *key;
            json_t *v;
            json_object_foreach(want, key, v) near(json_number_value(json_object_get(got, key)), json_number_value(v), k2[g][0], key);
        }
    }
    printf("%s: %s matches %s, largest difference %.3g\n", kind, out_path, exp_path, worst);
    json_decref(o);
    json_decref(e);
    return 0;
}

int main(int argc, char **argv)
{
    int rc = 2;
    if (argc == 3 && strcmp(argv[1], "tokenizer") == 0) rc = run_tokenizer(argv[2]);
    else if (argc == 4 && strcmp(argv[1], "captions") == 0) rc = run_captions(argv[2], argv[3]);
    else if (argc == 4 && strcmp(argv[1], "vqa") == 0) rc = run_vqa(argv[2], argv[3]);
    else if (argc == 5 && strcmp(argv[1], "json") == 0) rc = run_json(argv[2], argv[3], argv[4]);
    else fprintf(stderr, "usage: see the comment at the top of test_metrics.c\n");
    if (failures) printf("%d check(s) failed\n", failures);
    return rc ? rc : failures ? 1 : 0;
}
