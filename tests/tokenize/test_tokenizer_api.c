/* The tokenizer API beyond `graft tokenize --check`: special-token ids, vocabulary sizes, the
 * context-free bytes of single tokens (what TaT pairs), decode flags, and a BPE model built in
 * memory, saved as tokenizer.json and loaded back. Usage: test_tokenizer_api DATA_DIR TMP_DIR */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text/tokenizer.h"

static int failures;
#define CHECK(cond, ...) do { if (!(cond)) { failures++; printf("FAIL %s:%d: ", __FILE__, __LINE__); printf(__VA_ARGS__); printf("\n"); } } while (0)

static gr_tokenizer *load(const char *data, const char *name)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/%s", data, name);
    gr_tokenizer *t = NULL;
    if (gr_tokenizer_load(dir, &t)) { printf("FAIL load %s: %s\n", dir, gr_last_error()); failures++; }
    return t;
}

static void check_bytes(const gr_tokenizer *t, const char *piece, const char *want, size_t want_len)
{
    int32_t id = gr_tokenizer_piece_id(t, piece, strlen(piece));
    CHECK(id >= 0, "piece '%s' not found", piece);
    if (id < 0) return;
    char *b;
    size_t n;
    CHECK(gr_tokenizer_token_bytes(t, id, &b, &n) == GR_OK, "token_bytes(%d): %s", id, gr_last_error());
    CHECK(n == want_len && memcmp(b, want, n) == 0, "token_bytes('%s') = '%.*s'", piece, (int)n, b);
    free(b);
}

static void check_specials(const gr_tokenizer *t, const char *name, int32_t vocab, int32_t bos, int32_t eos, int32_t pad, int32_t unk)
{
    CHECK(gr_tokenizer_vocab_size(t) == vocab, "%s vocab_size %d != %d", name, gr_tokenizer_vocab_size(t), vocab);
    CHECK(gr_tokenizer_bos_id(t) == bos, "%s bos %d != %d", name, gr_tokenizer_bos_id(t), bos);
    CHECK(gr_tokenizer_eos_id(t) == eos, "%s eos %d != %d", name, gr_tokenizer_eos_id(t), eos);
    CHECK(gr_tokenizer_pad_id(t) == pad, "%s pad %d != %d", name, gr_tokenizer_pad_id(t), pad);
    CHECK(gr_tokenizer_unk_id(t) == unk, "%s unk %d != %d", name, gr_tokenizer_unk_id(t), unk);
    printf("ok   %s: %s\n", name, gr_tokenizer_describe(t));
}

static int same_ids(const gr_tokenizer *a, const gr_tokenizer *b, const char *text)
{
    int32_t *x, *y;
    size_t nx, ny;
    if (gr_tokenizer_encode(a, text, strlen(text), GR_ENCODE_ADD_SPECIAL, &x, &nx)) return 0;
    if (gr_tokenizer_encode(b, text, strlen(text), GR_ENCODE_ADD_SPECIAL, &y, &ny)) { free(x); return 0; }
    int same = nx == ny && (nx == 0 || memcmp(x, y, nx * sizeof *x) == 0) && nx > 0;
    free(x);
    free(y);
    return same;
}

/* A byte-level BPE built piece by piece (as a trainer would), saved and reloaded. */
static void built_model_round_trip(const char *tmp)
{
    gr_tokenizer *t;
    CHECK(gr_tokenizer_new(GR_TOK_BPE, 1, &t) == GR_OK, "new: %s", gr_last_error());
    for (int b = 0; b < 256; b++) { /* the 256 byte symbols in GPT-2's printable alphabet */
        unsigned cp = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174 ? (unsigned)b : 0;
        if (!cp) { unsigned k = 0; for (int i = 0; i < b; i++) k += !((i >= 33 && i <= 126) || (i >= 161 && i <= 172) || i >= 174); cp = 256 + k; }
        char u[4];
        int n = cp < 0x80 ? (u[0] = (char)cp, 1) : (u[0] = (char)(0xC0 | (cp >> 6)), u[1] = (char)(0x80 | (cp & 0x3F)), 2);
        CHECK(gr_tokenizer_add_piece(t, u, (size_t)n, 0, GR_PIECE_NORMAL, NULL) == GR_OK, "add byte %d: %s", b, gr_last_error());
    }
    const char *merges[][2] = {{"l", "o"}, {"lo", "w"}, {"\xC4\xA0", "low"}, {"e", "r"}, {"low", "er"}};
    for (size_t i = 0; i < sizeof merges / sizeof merges[0]; i++) {
        char cat[16];
        snprintf(cat, sizeof cat, "%s%s", merges[i][0], merges[i][1]);
        int32_t id;
        CHECK(gr_tokenizer_add_piece(t, cat, strlen(cat), 0, GR_PIECE_NORMAL, &id) == GR_OK, "add %s", cat);
        CHECK(gr_tokenizer_add_merge(t, gr_tokenizer_piece_id(t, merges[i][0], strlen(merges[i][0])),
                                     gr_tokenizer_piece_id(t, merges[i][1], strlen(merges[i][1]))) == GR_OK, "merge %s", cat);
    }
    int32_t eot;
    CHECK(gr_tokenizer_add_special(t, "<|end|>", &eot) == GR_OK && eot == 261, "special id %d", eot);
    CHECK(gr_tokenizer_set_specials(t, eot, eot, -1, -1, 1, 0) == GR_OK, "set_specials: %s", gr_last_error());
    CHECK(gr_tokenizer_add_merge(t, 0, 1) != GR_OK, "a merge whose result is not a piece must be refused");
    const char *text = "lower low lowest<|end|> slow";
    int32_t *ids;
    size_t n;
    CHECK(gr_tokenizer_encode(t, text, strlen(text), GR_ENCODE_ADD_SPECIAL, &ids, &n) == GR_OK, "encode");
    char *dec;
    size_t dl;
    CHECK(gr_tokenizer_decode(t, ids, n, GR_DECODE_SKIP_SPECIAL, &dec, &dl) == GR_OK && dl == strlen("lower low lowest slow") &&
          memcmp(dec, "lower low lowest slow", dl) == 0, "decode skip special: '%s'", dec);
    free(dec);
    CHECK(n >= 2 && ids[0] == eot && ids[1] == gr_tokenizer_piece_id(t, "lower", 5), "first ids %d %d", ids[0], ids[1]);
    free(ids);
    char dir[4096], path[4200];
    snprintf(dir, sizeof dir, "%s", tmp);
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    CHECK(gr_tokenizer_save_json(t, path) == GR_OK, "save: %s", gr_last_error());
    gr_tokenizer *back = NULL;
    CHECK(gr_tokenizer_load(dir, &back) == GR_OK, "reload: %s", gr_last_error());
    if (back) {
        CHECK(same_ids(t, back, text), "round trip changes the ids of '%s'", text);
        CHECK(same_ids(t, back, "  low\n\tlowerer  "), "round trip changes whitespace handling");
        CHECK(gr_tokenizer_bos_id(back) == eot || gr_tokenizer_piece_id(back, "<|end|>", 7) == eot, "special lost");
        CHECK(gr_tokenizer_is_special(back, eot), "<|end|> is not special after reload");
        printf("ok   built BPE: saved to %s and reloaded with the same ids\n", path);
    }
    gr_tokenizer_free(back);
    gr_tokenizer_free(t);
}

int main(int argc, char **argv)
{
    if (argc != 3) { fprintf(stderr, "usage: %s DATA_DIR TMP_DIR\n", argv[0]); return 2; }
    const char *data = argv[1];
    gr_tokenizer *t;

    if ((t = load(data, "gpt2"))) {
        check_specials(t, "gpt2", 50257, 50256, 50256, -1, 50256);
        check_bytes(t, "\xC4\xA0world", " world", 6);
        check_bytes(t, "\xC4\x8A", "\n", 1);
        check_bytes(t, "\xC3\xA2", "\xE2", 1); /* a partial UTF-8 byte token is that raw byte */
        CHECK(gr_tokenizer_is_special(t, 50256) && !gr_tokenizer_is_special(t, 995), "gpt2 specials");
        int32_t bad = 50257;
        char *s;
        size_t n;
        CHECK(gr_tokenizer_decode(t, &bad, 1, 0, &s, &n) == GR_ERR_INVALID, "decoding id 50257 must fail");
        CHECK(strstr(gr_last_error(), "50257") != NULL, "error names the id: %s", gr_last_error());
        CHECK(gr_tokenizer_encode(t, "\xFF", 1, 0, (int32_t **)&s, &n) == GR_ERR_INVALID, "invalid UTF-8 must be refused");
        gr_tokenizer_free(t);
    }
    if ((t = load(data, "llama2"))) {
        check_specials(t, "llama2", 32000, 1, 2, -1, 0);
        check_bytes(t, "\xE2\x96\x81Hello", " Hello", 6);
        check_bytes(t, "<0x0A>", "\n", 1);
        CHECK(gr_tokenizer_piece_type(t, 13) == GR_PIECE_BYTE && gr_tokenizer_piece_type(t, 1) == GR_PIECE_CONTROL, "types");
        int32_t *ids;
        size_t n;
        CHECK(gr_tokenizer_encode(t, "", 0, GR_ENCODE_ADD_SPECIAL, &ids, &n) == GR_OK && n == 1 && ids[0] == 1, "empty text + BOS");
        free(ids);
        gr_tokenizer_free(t);
    }
    if ((t = load(data, "sp_unigram"))) {
        check_specials(t, "sp_unigram", 4000, -1, 1, 0, 2);
        int32_t *ids;
        size_t n;
        CHECK(gr_tokenizer_encode(t, "Hello", 5, GR_ENCODE_ADD_SPECIAL, &ids, &n) == GR_OK && n >= 2 && ids[n - 1] == 1, "T5: EOS appended");
        free(ids);
        gr_tokenizer_free(t);
    }
    if ((t = load(data, "llama3"))) {
        check_specials(t, "llama3", 128256, 128000, 128009, -1, -1);
        check_bytes(t, "\xC4\xA0the", " the", 4);
        const int32_t ids[] = {128000, 9906, 1174, 1917, 0};
        char *s;
        size_t n;
        CHECK(gr_tokenizer_decode(t, ids, 5, 0, &s, &n) == GR_OK, "decode");
        printf("     llama3 decode: '%s'\n", s);
        free(s);
        CHECK(gr_tokenizer_decode(t, ids, 5, GR_DECODE_SKIP_SPECIAL, &s, &n) == GR_OK && strncmp(s, "<|", 2) != 0, "skip special: '%s'", s);
        free(s);
        gr_tokenizer_free(t);
    }
    if ((t = load(data, "mistral7b"))) {
        check_specials(t, "mistral7b", 32000, 1, 2, -1, 0);
        check_bytes(t, "\xE2\x96\x81world", " world", 6);
        gr_tokenizer_free(t);
    }
    built_model_round_trip(argv[2]);
    if (failures) { printf("test_tokenizer_api: %d failures\n", failures); return 1; }
    printf("test_tokenizer_api: all checks passed\n");
    return 0;
}
