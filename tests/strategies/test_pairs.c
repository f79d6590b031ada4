/* TaT token pairs: position pairing with the original's stripping, identical-string pairing,
 * the union, and the counts each source reports. Tokenizers: the real GPT-2 vocabulary (OPT's)
 * and the tiny Flan-T5-style Unigram model, both under tests/tokenize/data. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "transfer/pairs.h"

static int checks, failures;
static void check(int ok, const char *what)
{
    checks++;
    if (!ok) failures++;
    printf("%s %s%s%s\n", ok ? "ok  " : "FAIL", what, ok ? "" : " -- last error: ", ok ? "" : gr_last_error());
}

typedef struct entry { char *b; size_t n; int32_t id; } entry;
static int cmp_entry(const void *x, const void *y)
{
    const entry *a = x, *b = y;
    size_t n = a->n < b->n ? a->n : b->n;
    int c = memcmp(a->b, b->b, n);
    if (c) return c;
    if (a->n != b->n) return a->n < b->n ? -1 : 1;
    return a->id - b->id;
}

/* Independent count of identical-string pairs: sort both vocabularies by bytes and merge
 * (the first id of a duplicated string on the source side, as the builder keeps). */
static int64_t brute_string_pairs(const gr_tokenizer *s, const gr_tokenizer *t)
{
    const gr_tokenizer *tk[2] = {s, t};
    entry *e[2];
    int64_t n[2];
    for (int k = 0; k < 2; k++) {
        int32_t v = gr_tokenizer_vocab_size(tk[k]);
        e[k] = calloc((size_t)v, sizeof(entry));
        n[k] = 0;
        for (int32_t id = 0; id < v; id++) {
            if (!gr_tokenizer_piece(tk[k], id, NULL) || gr_tokenizer_is_special(tk[k], id)) continue;
            gr_piece_type ty = gr_tokenizer_piece_type(tk[k], id);
            if (ty == GR_PIECE_UNKNOWN || ty == GR_PIECE_CONTROL || ty == GR_PIECE_UNUSED) continue;
            entry x = {0};
            x.id = id;
            if (gr_tokenizer_token_bytes(tk[k], id, &x.b, &x.n) != GR_OK || x.n == 0) { free(x.b); continue; }
            e[k][n[k]++] = x;
        }
        qsort(e[k], (size_t)n[k], sizeof(entry), cmp_entry);
    }
    int64_t count = 0, i = 0;
    for (int64_t j = 0; j < n[1]; j++) {
        entry key = e[1][j];
        while (i < n[0]) {
            entry a = e[0][i];
            size_t m = a.n < key.n ? a.n : key.n;
            int c = memcmp(a.b, key.b, m);
            if (c < 0 || (c == 0 && a.n < key.n)) i++;
            else break;
        }
        if (i < n[0] && e[0][i].n == key.n && memcmp(e[0][i].b, key.b, key.n) == 0) count++;
    }
    for (int k = 0; k < 2; k++) {
        for (int64_t j = 0; j < n[k]; j++) free(e[k][j].b);
        free(e[k]);
    }
    return count;
}

int main(int argc, char **argv)
{
    if (argc != 2) { fprintf(stderr, "usage: test_pairs TOKENIZE_DATA_DIR\n"); return 2; }
    char p1[512], p2[512];
    snprintf(p1, sizeof p1, "%s/gpt2", argv[1]);
    snprintf(p2, sizeof p2, "%s/sp_unigram", argv[1]);
    gr_tokenizer *opt = NULL, *t5 = NULL;
    if (gr_tokenizer_load(p1, &opt) != GR_OK || gr_tokenizer_load(p2, &t5) != GR_OK) {
        printf("FAIL cannot load tokenizers: %s\n", gr_last_error());
        return 1;
    }
    gr_pair_set ps;
    char line[256];

    /* Position pairing across families. "a dog (2) runs." is 7 GPT-2 tokens and 9 Unigram
     * tokens: "▁a ▁do g ▁ (2) ▁run s ." plus </s>; stripping the lone "▁" (id 3) and </s> leaves
     * 7, so it pairs. "a red ball" (3 vs 4 after stripping) and "the 3 cats" (3 vs 4) do not. */
    const char *caps[] = {"a dog (2) runs.", "a red ball", "the 3 cats"};
    gr_status s = gr_pairs_build(opt, t5, caps, 3, GR_PAIRS_POSITION, &ps);
    check(s == GR_OK, "position pairs build");
    const int32_t want_s[] = {64, 3290, 357, 17, 8, 4539, 13}, want_t[] = {21, 80, 32, 1136, 1231, 4, 5};
    int same = s == GR_OK && ps.n_groups == 1 && ps.offsets[0] == 0 && ps.offsets[1] == 7;
    for (int i = 0; same && i < 7; i++) same = ps.src[i] == want_s[i] && ps.tgt[i] == want_t[i];
    check(same, "one caption pairs, by position, with BOS/</s> and the lone \"▁\" stripped");
    check(ps.stats.captions == 3 && ps.stats.captions_matched == 1 && ps.stats.position_pairs == 7 &&
              ps.stats.position_distinct == 7 && ps.stats.string_pairs == 0,
          "counts: 1 of 3 captions, 7 pairs, no string pairs asked");
    gr_pair_stats_format(&ps.stats, GR_PAIRS_POSITION, line, sizeof line);
    printf("  %s\n", line);
    check(strcmp(line, "position 1/3 captions, 7 pairs (7 distinct)") == 0, "the stats line");
    gr_pair_set_free(&ps);

    /* Identical-string pairing: every pair decodes to the same bytes, and the count equals an
     * independent sort-and-merge over both vocabularies. */
    s = gr_pairs_build(opt, t5, NULL, 0, GR_PAIRS_STRING, &ps);
    check(s == GR_OK && ps.n_groups == ps.stats.string_pairs && ps.stats.string_pairs > 100,
          "string pairs build, one group each");
    int all_equal = s == GR_OK;
    for (int64_t i = 0; all_equal && i < ps.offsets[ps.n_groups]; i++) {
        char *a = NULL, *b = NULL;
        size_t na = 0, nb = 0;
        all_equal = gr_tokenizer_token_bytes(opt, ps.src[i], &a, &na) == GR_OK &&
                    gr_tokenizer_token_bytes(t5, ps.tgt[i], &b, &nb) == GR_OK && na == nb && na > 0 &&
                    memcmp(a, b, na) == 0 && !gr_tokenizer_is_special(opt, ps.src[i]) &&
                    !gr_tokenizer_is_special(t5, ps.tgt[i]);
        free(a);
        free(b);
    }
    check(all_equal, "every string pair has identical decoded bytes, no special token");
    int64_t brute = brute_string_pairs(opt, t5);
    printf("  string pairs: %lld (independent count %lld)\n", (long long)ps.stats.string_pairs, (long long)brute);
    check(brute == ps.stats.string_pairs, "string pair count equals the sort-and-merge count");
    int32_t dog_t5 = gr_tokenizer_piece_id(t5, "\xe2\x96\x81" "a", 4), a_opt = gr_tokenizer_piece_id(opt, "\xc4\xa0" "a", 3);
    int found = 0;
    for (int64_t i = 0; i < ps.offsets[ps.n_groups]; i++) found |= ps.src[i] == a_opt && ps.tgt[i] == dog_t5;
    check(a_opt >= 0 && dog_t5 >= 0 && found, "\"Ġa\" (GPT-2) pairs with \"▁a\" (Unigram)");
    int64_t n_string = ps.stats.string_pairs;
    gr_pair_set_free(&ps);

    /* The union: position groups first, then string groups; overlap counted. */
    s = gr_pairs_build(opt, t5, caps, 3, GR_PAIRS_UNION, &ps);
    check(s == GR_OK && ps.n_groups == 1 + n_string && ps.offsets[1] == 7 && ps.src[0] == 64 &&
              ps.stats.position_pairs == 7 && ps.stats.string_pairs == n_string,
          "union = the position caption group followed by every string pair");
    /* (64 "a", 21 "▁a"): "a" vs " a" differ, so that pair is not a string pair; the overlap
     * count is whatever pairs are in both, checked against a direct search. */
    int64_t overlap = 0;
    for (int64_t g = 1; s == GR_OK && g < ps.n_groups; g++) {
        int64_t k = ps.offsets[g];
        for (int i = 0; i < 7; i++) if (ps.src[k] == want_s[i] && ps.tgt[k] == want_t[i]) { overlap++; break; }
    }
    check(s == GR_OK && ps.stats.string_in_position == overlap, "overlap between the sources counted");
    gr_pair_stats_format(&ps.stats, GR_PAIRS_UNION, line, sizeof line);
    printf("  %s\n", line);
    gr_pair_set_free(&ps);

    /* One vocabulary on both sides (TaS): every caption pairs, every pair is (id, id). */
    const char *caps2[] = {"a dog runs on the grass", "two red circles", "hello world"};
    s = gr_pairs_build(opt, opt, caps2, 3, GR_PAIRS_POSITION, &ps);
    int ident = s == GR_OK && ps.stats.captions_matched == 3;
    for (int64_t i = 0; ident && i < ps.offsets[ps.n_groups]; i++) ident = ps.src[i] == ps.tgt[i];
    check(ident, "one tokenizer: identical token ids, every caption kept");
    gr_pair_set_free(&ps);

    /* Errors. */
    unsigned src = 0;
    check(gr_pairs_parse_sources("union", "strategy.tat.pairs", &src) == GR_OK && src == GR_PAIRS_UNION,
          "\"union\" parses");
    check(gr_pairs_parse_sources("both", "strategy.tat.pairs", &src) == GR_ERR_INVALID &&
              strstr(gr_last_error(), "strategy.tat.pairs") && strstr(gr_last_error(), "both"),
          "an unknown source is refused, naming the key and the value");
    const char *bad[] = {"a red ball"};
    s = gr_pairs_build(opt, t5, bad, 1, GR_PAIRS_POSITION, &ps);
    check(s == GR_ERR_INVALID && strstr(gr_last_error(), "no pairs") && ps.src == NULL,
          "no caption with matching counts: one-line error, nothing allocated");
    check(gr_pairs_build(opt, t5, caps, 3, 0, &ps) == GR_ERR_INVALID, "no source chosen: error");

    gr_tokenizer_free(opt);
    gr_tokenizer_free(t5);
    printf("%d passed, %d failed\n", checks - failures, failures);
    return failures ? 1 : 0;
}
