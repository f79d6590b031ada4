/* Pre-tokenizer regexes through PCRE2 (UTF + Unicode properties, JIT when available).
 *
 * tokenizer.json patterns are written for Oniguruma / Rust's regex crate. PCRE2 agrees with
 * them on the constructs these files use (\p{L}, \p{N}, (?i:...), (?!...), {1,3}) except \s:
 * with PCRE2_UCP it also matches U+180E, which is not White_Space since Unicode 6.3. We rewrite
 * \s / \S to the explicit White_Space set so that splits follow Oniguruma exactly. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

#include "text/tok_internal.h"

struct gr_regex {
    pcre2_code *code;
    char *source;
};

static const char WS_SET[] =
    "\\t\\n\\x0B\\f\\r\\x20\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}"
    "\\x{205F}\\x{3000}";

static gr_status translate(const char *p, size_t n, gr_buf *out)
{
    int in_class = 0;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (c == '\\' && i + 1 < n) {
            char d = p[i + 1];
            i++;
            if (d == 's') {
                if (!in_class) gr_buf_putc(out, '[');
                gr_buf_puts(out, WS_SET);
                if (!in_class) gr_buf_putc(out, ']');
            } else if (d == 'S') {
                if (in_class) return gr_fail(GR_ERR_UNSUPPORTED, "\\S inside a character class");
                gr_buf_puts(out, "[^");
                gr_buf_puts(out, WS_SET);
                gr_buf_putc(out, ']');
            } else {
                gr_buf_putc(out, c);
                gr_buf_putc(out, d);
            }
            continue;
        }
        if (!in_class && c == '[') {
            in_class = 1;
            gr_buf_putc(out, c);
            if (i + 1 < n && p[i + 1] == '^') gr_buf_putc(out, p[++i]);
            if (i + 1 < n && p[i + 1] == ']') gr_buf_putc(out, p[++i]); /* literal ] first */
            continue;
        }
        if (in_class && c == ']') in_class = 0;
        gr_buf_putc(out, c);
    }
    return out->oom ? gr_fail(GR_ERR_NOMEM, "out of memory") : GR_OK;
}

gr_status gr_regex_compile(const char *pattern, size_t len, gr_regex **out)
{
    gr_buf t = {0};
    gr_status s = translate(pattern, len, &t);
    if (s) { gr_buf_free(&t); return s; }
    int err;
    PCRE2_SIZE off;
    pcre2_code *code = pcre2_compile((PCRE2_SPTR)t.p, t.len, PCRE2_UTF | PCRE2_UCP, &err, &off, NULL);
    gr_buf_free(&t);
    if (!code) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(err, msg, sizeof msg);
        return gr_fail(GR_ERR_FORMAT, "regex '%.*s': %s", (int)len, pattern, (const char *)msg);
    }
    (void)pcre2_jit_compile(code, PCRE2_JIT_COMPLETE); /* falls back to the interpreter */
    gr_regex *re = calloc(1, sizeof *re);
    char *src = malloc(len + 1);
    if (!re || !src) { free(re); free(src); pcre2_code_free(code); return gr_fail(GR_ERR_NOMEM, "out of memory"); }
    memcpy(src, pattern, len);
    src[len] = '\0';
    re->code = code;
    re->source = src;
    *out = re;
    return GR_OK;
}

const char *gr_regex_source(const gr_regex *re) { return re->source; }

void gr_regex_free(gr_regex *re)
{
    if (!re) return;
    pcre2_code_free(re->code);
    free(re->source);
    free(re);
}

/* All non-empty, non-overlapping matches as (start, end) pairs, left to right. */
gr_status gr_regex_find_all(const gr_regex *re, const char *s, size_t n, size_t **spans, size_t *n_spans)
{
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    if (!md) return gr_fail(GR_ERR_NOMEM, "out of memory");
    size_t *sp = NULL, cnt = 0, cap = 0;
    size_t pos = 0;
    gr_status st = GR_OK;
    while (pos <= n) {
        int rc = pcre2_match(re->code, (PCRE2_SPTR)s, n, pos, pos ? PCRE2_NO_UTF_CHECK : 0, md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0 && rc != 0) {
            PCRE2_UCHAR msg[160];
            pcre2_get_error_message(rc, msg, sizeof msg);
            st = gr_fail(GR_ERR_INVALID, "regex '%s': %s", re->source, (const char *)msg);
            break;
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t ms = ov[0], me = ov[1];
        if (me == ms) { /* empty match: step one character */
            pos = ms + 1;
            while (pos < n && ((unsigned char)s[pos] & 0xC0) == 0x80) pos++;
            continue;
        }
        size_t *q = gr_tok_grow(sp, sizeof *sp, 2 * (cnt + 1), &cap);
        if (!q) { st = gr_fail(GR_ERR_NOMEM, "out of memory"); break; }
        sp = q;
        sp[2 * cnt] = ms;
        sp[2 * cnt + 1] = me;
        cnt++;
        pos = me;
    }
    pcre2_match_data_free(md);
    if (st) { free(sp); return st; }
    *spans = sp;
    *n_spans = cnt;
    return GR_OK;
}
