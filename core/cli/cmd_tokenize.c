/* graft tokenize: encode text with a tokenizer directory, or check it against a cases file. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fsutil.h"
#include "commands.h"
#include "text/tokenizer.h"

extern const gr_command gr_cmd_tokenize;

/* Prints s as a JSON string literal (escapes control characters and quotes). */
static void put_json_str(FILE *f, const char *s, size_t n, size_t max)
{
    fputc('"', f);
    for (size_t i = 0; i < n && i < max; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c == '\n') fputs("\\n", f);
        else if (c == '\t') fputs("\\t", f);
        else if (c == '\r') fputs("\\r", f);
        else if (c < 0x20 || c == 0x7F) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    if (n > max) fputs("...", f);
    fputc('"', f);
}

static void put_ids(FILE *f, const int32_t *ids, size_t n)
{
    fputc('[', f);
    for (size_t i = 0; i < n; i++) fprintf(f, "%s%d", i ? ", " : "", ids[i]);
    fputc(']', f);
}

static int encode_text(const char *dir, const char *text, int add_special)
{
    gr_tokenizer *tok;
    if (gr_tokenizer_load(dir, &tok)) return gr_cli_error();
    int32_t *ids;
    size_t n;
    if (gr_tokenizer_encode(tok, text, strlen(text), add_special ? GR_ENCODE_ADD_SPECIAL : 0, &ids, &n)) {
        gr_tokenizer_free(tok);
        return gr_cli_error();
    }
    printf("ids: ");
    put_ids(stdout, ids, n);
    printf("\n");
    for (size_t i = 0; i < n; i++) {
        size_t len = 0;
        const char *p = gr_tokenizer_piece(tok, ids[i], &len);
        printf("%8d  ", ids[i]);
        put_json_str(stdout, p ? p : "", len, 200);
        printf("\n");
    }
    char *dec;
    size_t dl;
    if (!gr_tokenizer_decode(tok, ids, n, 0, &dec, &dl)) {
        printf("decoded: ");
        put_json_str(stdout, dec, dl, 100000);
        printf("\n");
        free(dec);
    }
    free(ids);
    gr_tokenizer_free(tok);
    return 0;
}

/* Compares one decode flavour; returns 1 on mismatch (after printing it). */
static int check_decode(const gr_tokenizer *tok, const int32_t *ids, size_t n, unsigned flags, json_t *want,
                        const char *field, const char *path, size_t line)
{
    if (!json_is_string(want)) return 0;
    char *got;
    size_t gl;
    if (gr_tokenizer_decode(tok, ids, n, flags, &got, &gl)) {
        printf("%s:%zu: %s: decode failed: %s\n", path, line, field, gr_last_error());
        return 1;
    }
    int bad = gl != json_string_length(want) || memcmp(got, json_string_value(want), gl) != 0;
    if (bad) {
        printf("%s:%zu: %s differs: expected ", path, line, field);
        put_json_str(stdout, json_string_value(want), json_string_length(want), 200);
        printf(" got ");
        put_json_str(stdout, got, gl, 200);
        printf("\n");
    }
    free(got);
    return bad;
}

static int check_cases(const char *cases, const char *dir)
{
    gr_tokenizer *tok;
    if (gr_tokenizer_load(dir, &tok)) return gr_cli_error();
    char *data;
    size_t size;
    if (gr_read_file(cases, &data, &size)) { gr_tokenizer_free(tok); return gr_cli_error(); }
    size_t passed = 0, failed = 0, line = 0;
    int fatal = 0;
    for (size_t pos = 0; pos < size && !fatal;) {
        char *s = data + pos;
        char *nl = memchr(s, '\n', size - pos);
        size_t n = nl ? (size_t)(nl - s) : size - pos;
        pos += n + (nl ? 1 : 0);
        line++;
        if (n == 0) continue;
        json_error_t je;
        json_t *c = json_loadb(s, n, JSON_ALLOW_NUL, &je);
        json_t *text = json_object_get(c, "text"), *want = json_object_get(c, "ids");
        json_t *special = json_object_get(c, "add_special_tokens");
        if (!c || !json_is_string(text) || !json_is_array(want) || (special && !json_is_boolean(special))) {
            fprintf(stderr, "graft: %s:%zu: %s\n", cases, line,
                    !c ? je.text : "a case needs \"text\" (string), \"ids\" (list) and \"add_special_tokens\" (bool)");
            json_decref(c);
            fatal = 1;
            break;
        }
        int32_t *ids;
        size_t nid;
        int bad = 0;
        if (gr_tokenizer_encode(tok, json_string_value(text), json_string_length(text),
                                json_is_true(special) ? GR_ENCODE_ADD_SPECIAL : 0, &ids, &nid)) {
            printf("%s:%zu: encode failed: %s\n", cases, line, gr_last_error());
            failed++;
            json_decref(c);
            continue;
        }
        size_t nw = json_array_size(want);
        int same = nw == nid;
        for (size_t i = 0; same && i < nw; i++) same = json_integer_value(json_array_get(want, i)) == ids[i];
        if (!same) {
            bad = 1;
            printf("%s:%zu: ids differ for ", cases, line);
            put_json_str(stdout, json_string_value(text), json_string_length(text), 120);
            printf(": expected ");
            int32_t *w = malloc((nw ? nw : 1) * sizeof *w);
            for (size_t i = 0; w && i < nw; i++) w[i] = (int32_t)json_integer_value(json_array_get(want, i));
            if (w) put_ids(stdout, w, nw);
            free(w);
            printf(" got ");
            put_ids(stdout, ids, nid);
            printf("\n");
        }
        /* decode the expected ids, so a decode check does not depend on the encode result */
        int32_t *w = malloc((nw ? nw : 1) * sizeof *w);
        if (!w) { fatal = 1; free(ids); json_decref(c); break; }
        for (size_t i = 0; i < nw; i++) w[i] = (int32_t)json_integer_value(json_array_get(want, i));
        bad |= check_decode(tok, w, nw, 0, json_object_get(c, "decoded"), "decoded", cases, line);
        bad |= check_decode(tok, w, nw, GR_DECODE_SKIP_SPECIAL, json_object_get(c, "decoded_skip_special"),
                            "decoded_skip_special", cases, line);
        bad |= check_decode(tok, w, nw, GR_DECODE_NO_CLEANUP, json_object_get(c, "decoded_raw"), "decoded_raw", cases, line);
        free(w);
        free(ids);
        json_decref(c);
        if (bad) failed++;
        else passed++;
    }
    free(data);
    gr_tokenizer_free(tok);
    if (fatal) return 1;
    printf("tokenize: %zu passed, %zu failed\n", passed, failed);
    return failed ? 1 : 0;
}

static int save_json(const char *dir, const char *out)
{
    gr_tokenizer *tok;
    if (gr_tokenizer_load(dir, &tok)) return gr_cli_error();
    gr_status st = gr_tokenizer_save_json(tok, out);
    gr_tokenizer_free(tok);
    if (st) return gr_cli_error();
    printf("wrote %s\n", out);
    return 0;
}

static int run_tokenize(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "--check") == 0) return check_cases(argv[2], argv[3]);
    if (argc == 4 && strcmp(argv[1], "--save-json") == 0) return save_json(argv[3], argv[2]);
    if (argc == 4 && strcmp(argv[1], "--no-special") == 0) return encode_text(argv[2], argv[3], 0);
    if (argc == 3 && argv[1][0] != '-') return encode_text(argv[1], argv[2], 1);
    return gr_cli_usage(&gr_cmd_tokenize, 2);
}

const gr_command gr_cmd_tokenize = {
    "tokenize", run_tokenize, "encode text with a tokenizer, or check one against reference ids",
    "usage: graft tokenize [--no-special] TOKENIZER_DIR TEXT\n"
    "       graft tokenize --check CASES.jsonl TOKENIZER_DIR\n"
    "       graft tokenize --save-json OUT.json TOKENIZER_DIR\n\n"
    "TOKENIZER_DIR holds tokenizer.json, or vocab.json + merges.txt, or tokenizer.model /\n"
    "spiece.model, with tokenizer_config.json / special_tokens_map.json when present.\n\n"
    "Without --check: prints the ids of TEXT (BOS/EOS added unless --no-special), one line per\n"
    "token with its vocabulary string, and the decoded text.\n\n"
    "--check: CASES.jsonl has one JSON object per line: {\"text\", \"ids\", \"add_special_tokens\",\n"
    "\"decoded\"?, \"decoded_skip_special\"?, \"decoded_raw\"?}. Prints a line per mismatch and last\n"
    "`tokenize: N passed, M failed`; exits 0 only when M is 0.\n\n"
    "--save-json: writes the tokenizer as a Hugging Face tokenizer.json.\n",
};
