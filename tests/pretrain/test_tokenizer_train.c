/* BPE training (core/text/train_bpe.c): merges on a corpus small enough to work out by hand,
 * family special tokens, HF directory reload through graft's loader, round trips of held-out
 * and out-of-corpus text, determinism, golden ids, and error messages.
 * Usage: test_tokenizer_train DATA_DIR TMP_DIR */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fsutil.h"
#include "text/tokenizer.h"
#include "text/tokenizer_train.h"

static int failures;
#define CHECK(cond, ...) do { if (!(cond)) { failures++; printf("FAIL %s:%d: ", __FILE__, __LINE__); printf(__VA_ARGS__); printf("\n"); } } while (0)

static char data_dir[2048], tmp_dir[2048];

/* dir + "/" + name, kept until exit (the test builds a few dozen paths). */
static char *paths[256];
static int n_paths;
static char *path2(const char *a, const char *b)
{
    char *p = gr_path_join(a, b);
    if (!p || n_paths == 256) { printf("FAIL out of paths\n"); exit(1); }
    return paths[n_paths++] = p;
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    if (!f) { printf("FAIL cannot write %s\n", path); failures++; return; }
    fputs(text, f);
    fclose(f);
}

static gr_tokenizer *train_save_load(const char *corpus, int byte_level, gr_tok_family fam, int32_t vocab, const char *out,
                                     gr_bpe_train_stats *st)
{
    gr_bpe_train_options o;
    gr_bpe_train_defaults(&o);
    o.byte_level = byte_level;
    o.family = fam;
    o.vocab_size = vocab;
    gr_tokenizer *t = NULL, *back = NULL;
    const char *files[1] = {corpus};
    if (gr_bpe_train(&o, files, 1, &t, st)) { printf("FAIL train %s: %s\n", out, gr_last_error()); failures++; return NULL; }
    if (gr_tokenizer_save_hf_dir(t, fam, 64, out)) { printf("FAIL save %s: %s\n", out, gr_last_error()); failures++; }
    gr_tokenizer_free(t);
    if (gr_tokenizer_load(out, &back)) { printf("FAIL load %s: %s\n", out, gr_last_error()); failures++; return NULL; }
    return back;
}

/* The merges of tokenizer.json as "left right" strings. */
static json_t *merges_of(const char *dir)
{
    json_error_t err;
    json_t *root = json_load_file(path2(dir, "tokenizer.json"), 0, &err);
    if (!root) { printf("FAIL %s: %s\n", dir, err.text); failures++; return NULL; }
    json_t *m = json_incref(json_object_get(json_object_get(root, "model"), "merges"));
    json_decref(root);
    return m;
}

static int merge_is(json_t *m, size_t i, const char *a, const char *b)
{
    json_t *x = json_array_get(m, i);
    return x && json_is_array(x) && strcmp(json_string_value(json_array_get(x, 0)), a) == 0 &&
           strcmp(json_string_value(json_array_get(x, 1)), b) == 0;
}

/* "ab ab ab cd cd" by hand: pairs (a,b) 3, (Ġ,a) (Ġ,c) (c,d) 2. Merge a+b; then three pairs of
 * count 2 tie: (c,d) < (Ġ,ab) < (Ġ,c) by bytes ("c" < "Ġ" = C4 A0; "ab" < "c"); after c+d the
 * pairs are (Ġ,ab) and (Ġ,cd). "x y" pairs occur once: below min_frequency 2. */
static void hand_worked(void)
{
    char *corpus = path2(tmp_dir, "hand.txt");
    write_text(corpus, "ab ab ab cd cd\nx y\n");
    char *out = path2(tmp_dir, "hand_tok");
    gr_bpe_train_stats st;
    gr_tokenizer *t = train_save_load(corpus, 1, GR_TOK_FAMILY_OPT, 1000, out, &st);
    json_t *m = merges_of(out);
    CHECK(m && json_array_size(m) == 4, "hand: %zu merges, want 4", m ? json_array_size(m) : 0);
    CHECK(merge_is(m, 0, "a", "b") && merge_is(m, 1, "c", "d") && merge_is(m, 2, "\xC4\xA0", "ab") && merge_is(m, 3, "\xC4\xA0", "cd"),
          "hand: merges %s", m ? json_dumps(m, JSON_COMPACT) : "?");
    CHECK(st.vocab == 4 + 256 + 4 && st.merges == 4 && st.unique_words == 5, "hand: vocab %d merges %d words %lld", (int)st.vocab,
          (int)st.merges, (long long)st.unique_words);
    json_decref(m);
    if (t) {
        int32_t *ids;
        size_t n;
        CHECK(gr_tokenizer_encode(t, "ab cd", 5, GR_ENCODE_ADD_SPECIAL, &ids, &n) == GR_OK, "encode: %s", gr_last_error());
        /* </s>, "ab", "Ġcd": ids 2, 4+256+0, 4+256+3 */
        CHECK(n == 3 && ids[0] == 2 && ids[1] == 260 && ids[2] == 263, "hand: 'ab cd' -> %zu ids [%d %d %d]", n, n > 0 ? ids[0] : -1,
              n > 1 ? ids[1] : -1, n > 2 ? ids[2] : -1);
        free(ids);
        gr_tokenizer_free(t);
    }
    /* metaspace on the same text: (▁,a) and (a,b) both 3, "a" < "▁" (E2 96 81) so (a,b) first,
     * then (▁,ab) 3, then (c,d) before (▁,c) at 2, then (▁,cd) */
    out = path2(tmp_dir, "hand_ms");
    t = train_save_load(corpus, 0, GR_TOK_FAMILY_LLAMA, 1000, out, &st);
    m = merges_of(out);
    CHECK(m && json_array_size(m) == 4 && merge_is(m, 0, "a", "b") && merge_is(m, 1, "\xE2\x96\x81", "ab") && merge_is(m, 2, "c", "d") &&
              merge_is(m, 3, "\xE2\x96\x81", "cd"),
          "hand metaspace: merges %s", m ? json_dumps(m, JSON_COMPACT) : "?");
    /* ids: <unk> <s> </s>, 256 bytes, merged pieces (▁ab = 260, ▁cd = 262), then characters */
    CHECK(t && gr_tokenizer_piece_id(t, "\xE2\x96\x81" "ab", 5) == 260 && gr_tokenizer_piece_id(t, "<0x41>", 6) == 3 + 0x41,
          "hand metaspace: piece ids");
    json_decref(m);
    gr_tokenizer_free(t);
}

static int round_trip(const gr_tokenizer *t, const char *text, const char *want, size_t *n_ids)
{
    int32_t *ids;
    size_t n;
    char *dec;
    size_t dl;
    if (gr_tokenizer_encode(t, text, strlen(text), GR_ENCODE_ADD_SPECIAL, &ids, &n)) return 0;
    int ok = gr_tokenizer_decode(t, ids, n, GR_DECODE_SKIP_SPECIAL, &dec, &dl) == GR_OK;
    if (ok) {
        ok = dl == strlen(want) && memcmp(dec, want, dl) == 0;
        if (!ok) printf("     decoded '%s' for '%s'\n", dec, text);
        free(dec);
    }
    if (n_ids) *n_ids = n;
    free(ids);
    return ok;
}

static void held_out(const gr_tokenizer *t, const char *name, int metaspace)
{
    char *text;
    size_t len;
    if (gr_read_file(path2(data_dir, "corpus_val.txt"), &text, &len)) { printf("FAIL %s\n", gr_last_error()); failures++; return; }
    int lines = 0, bad = 0;
    size_t ids = 0, words = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        size_t n;
        if (!round_trip(t, line, line, &n)) bad++;
        lines++;
        ids += n - 1; /* minus BOS / EOS */
        words++;
        for (char *c = line; *c; c++) words += *c == ' ';
    }
    free(text);
    CHECK(lines == 300 && bad == 0, "%s: %d of %d held-out lines do not round-trip", name, bad, lines);
    /* frequent words are single tokens (characters alone would give ~5 per word) */
    CHECK((double)ids / (double)words < 1.4, "%s: %.3f tokens per word on held-out text", name, (double)ids / (double)words);
    static const char *const odd[] = {"H\xC3\xA9llo w\xC3\xB6rld \xE6\x97\xA5\xE6\x9C\xAC \xF0\x9F\x99\x82", "two  spaces\tand a tab\nnewline",
                                      "UPPER case 123 456 7890 ~!@#$%^&*()", "the sky is purple</s> x"};
    for (int i = 0; i < 4; i++) {
        /* special tokens are dropped by GR_DECODE_SKIP_SPECIAL */
        const char *want = i == 3 ? "the sky is purple x" : odd[i];
        CHECK(round_trip(t, odd[i], want, NULL), "%s: '%s' does not round-trip", name, odd[i]);
    }
    if (metaspace) /* as Llama: a leading space is the word boundary the prefix stands for */
        CHECK(round_trip(t, " the sky", "the sky", NULL), "%s: leading space", name);
    else
        CHECK(round_trip(t, " the sky", " the sky", NULL), "%s: leading space", name);
    printf("ok   %s: %d held-out lines round-trip, %.3f tokens per word\n", name, lines, (double)ids / (double)words);
}

static void check_ids(const gr_tokenizer *t, const char *name, const char *text, const int32_t *want, size_t nwant)
{
    int32_t *ids;
    size_t n;
    if (gr_tokenizer_encode(t, text, strlen(text), GR_ENCODE_ADD_SPECIAL, &ids, &n)) { printf("FAIL %s\n", gr_last_error()); failures++; return; }
    int same = n == nwant && memcmp(ids, want, n * sizeof *ids) == 0;
    CHECK(same, "%s: ids of '%s' changed", name, text);
    if (!same) {
        printf("     got [");
        for (size_t i = 0; i < n; i++) printf("%s%d", i ? ", " : "", ids[i]);
        printf("]\n");
    }
    free(ids);
}

static int same_file(const char *a, const char *b)
{
    char *x, *y;
    size_t nx, ny;
    if (gr_read_file(a, &x, &nx)) return 0;
    if (gr_read_file(b, &y, &ny)) { free(x); return 0; }
    int same = nx == ny && memcmp(x, y, nx) == 0;
    free(x);
    free(y);
    return same;
}

static void families(void)
{
    const char *corpus = path2(data_dir, "corpus.txt");
    gr_bpe_train_stats st;
    struct { const char *name; int byte_level; gr_tok_family fam; int32_t bos, eos, pad, unk; } cases[] = {
        {"opt_bytelevel", 1, GR_TOK_FAMILY_OPT, 2, 2, 1, -1},
        {"llama_metaspace", 0, GR_TOK_FAMILY_LLAMA, 1, 2, -1, 0},
        {"t5_metaspace", 0, GR_TOK_FAMILY_T5, -1, 1, 0, 2},
    };
    for (int c = 0; c < 3; c++) {
        char *out = path2(tmp_dir, cases[c].name);
        gr_tokenizer *t = train_save_load(corpus, cases[c].byte_level, cases[c].fam, 500, out, &st);
        if (!t) continue;
        CHECK(gr_tokenizer_vocab_size(t) == 500 && st.vocab == 500, "%s: vocab %d", cases[c].name, gr_tokenizer_vocab_size(t));
        CHECK(gr_tokenizer_bos_id(t) == cases[c].bos && gr_tokenizer_eos_id(t) == cases[c].eos, "%s: bos %d eos %d", cases[c].name,
              gr_tokenizer_bos_id(t), gr_tokenizer_eos_id(t));
        CHECK(gr_tokenizer_pad_id(t) == cases[c].pad, "%s: pad %d", cases[c].name, gr_tokenizer_pad_id(t));
        if (cases[c].unk >= 0) CHECK(gr_tokenizer_unk_id(t) == cases[c].unk, "%s: unk %d", cases[c].name, gr_tokenizer_unk_id(t));
        held_out(t, cases[c].name, !cases[c].byte_level);
        /* determinism: a second training writes the same bytes */
        char *again = path2(tmp_dir, "again");
        gr_tokenizer *t2 = train_save_load(corpus, cases[c].byte_level, cases[c].fam, 500, again, NULL);
        gr_tokenizer_free(t2);
        static const char *const files[] = {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"};
        for (int f = 0; f < 3; f++)
            CHECK(same_file(path2(out, files[f]), path2(again, files[f])), "%s: %s differs between two trainings", cases[c].name, files[f]);
        /* golden ids: the trained vocabulary must not drift silently */
        if (c == 0) {
            static const int32_t want[] = {2, 302, 264, 78, 92, 270, 346, 15, 442, 341};
            check_ids(t, cases[c].name, "the sky is blue, not purple", want, sizeof want / sizeof *want);
        } else if (c == 1) {
            static const int32_t want[] = {1, 264, 263, 482, 479, 269, 345, 486, 444, 338};
            check_ids(t, cases[c].name, "the sky is blue, not purple", want, sizeof want / sizeof *want);
        } else {
            static const int32_t want[] = {264, 263, 482, 479, 269, 345, 486, 444, 338, 1};
            check_ids(t, cases[c].name, "the sky is blue, not purple", want, sizeof want / sizeof *want);
        }
        gr_tokenizer_free(t);
    }
}

static void errors(void)
{
    gr_bpe_train_options o;
    gr_bpe_train_defaults(&o);
    gr_tokenizer *t = NULL;
    const char *missing[1] = {path2(tmp_dir, "no_such_corpus.txt")};
    CHECK(gr_bpe_train(&o, missing, 1, &t, NULL) != GR_OK && strstr(gr_last_error(), "no_such_corpus.txt"), "missing file: '%s'",
          gr_last_error());
    char *bad = path2(tmp_dir, "bad_utf8.txt");
    write_text(bad, "fine line\nbad \xC3\x28 line\n");
    const char *badf[1] = {bad};
    CHECK(gr_bpe_train(&o, badf, 1, &t, NULL) != GR_OK && strstr(gr_last_error(), "bad_utf8.txt: line 2"), "bad utf-8: '%s'",
          gr_last_error());
    const char *good[1] = {path2(data_dir, "corpus.txt")};
    o.vocab_size = 100;
    CHECK(gr_bpe_train(&o, good, 1, &t, NULL) != GR_OK && strstr(gr_last_error(), "vocab size 100"), "small vocab: '%s'", gr_last_error());
    char *empty = path2(tmp_dir, "empty.txt");
    write_text(empty, "\n\n");
    const char *emptyf[1] = {empty};
    o.vocab_size = 1000;
    CHECK(gr_bpe_train(&o, emptyf, 1, &t, NULL) != GR_OK && strstr(gr_last_error(), "empty.txt"), "empty: '%s'", gr_last_error());
    CHECK(t == NULL, "no tokenizer after errors");
    printf("ok   errors name the file / line / value\n");
}

int main(int argc, char **argv)
{
    if (argc != 3) { fprintf(stderr, "usage: test_tokenizer_train DATA_DIR TMP_DIR\n"); return 2; }
    snprintf(data_dir, sizeof data_dir, "%s", argv[1]);
    snprintf(tmp_dir, sizeof tmp_dir, "%s", argv[2]);
    if (gr_mkdirs(tmp_dir)) { printf("FAIL %s\n", gr_last_error()); return 1; }
    hand_worked();
    if (!failures) printf("ok   hand-worked merges (byte-level and metaspace), tie-break and min frequency\n");
    families();
    errors();
    printf("%s: %d failure(s)\n", failures ? "FAILED" : "passed", failures);
    for (int i = 0; i < n_paths; i++) free(paths[i]);
    return failures ? 1 : 0;
}
