/* Normalizers and pre-tokenizers: SentencePiece's normalizer and the tokenizer.json stages
 * (Prepend, Replace, Precompiled, Strip; Split, ByteLevel, Metaspace, WhitespaceSplit, Digits). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "text/tok_internal.h"

static const char SPACE_SYM[] = "\xE2\x96\x81"; /* U+2581 */

void gr_norm_free(gr_norm *n)
{
    free(n->a);
    free(n->b);
    gr_regex_free(n->re);
    if (n->has_cm) gr_charsmap_free(&n->cm);
    memset(n, 0, sizeof *n);
}

void gr_pretok_free(gr_pretok *p)
{
    gr_regex_free(p->re);
    free(p->pat);
    free(p->repl);
    memset(p, 0, sizeof *p);
}

/* ---- SentencePiece normalizer (normalizer.cc, Normalize / NormalizePrefix) ---- */

/* Normalizes one prefix: the output goes to rep / rep_len, the return value is the input consumed. */
static size_t spm_prefix(const gr_tokenizer *t, const gr_norm *nm, const char *s, size_t n,
                         const char **rep, size_t *rep_len)
{
    /* user-defined pieces pass through unnormalized (longest match) */
    if (t->max_ud_len > 0) {
        size_t lim = (size_t)t->max_ud_len < n ? (size_t)t->max_ud_len : n;
        for (size_t l = lim; l > 0; l--) {
            int32_t id = gr_tok_lookup(t, s, l);
            if (id >= 0 && t->pieces[id].type == GR_PIECE_USER_DEFINED) { *rep = s; *rep_len = l; return l; }
        }
    }
    if (nm->has_cm) {
        const char *r;
        size_t l = gr_charsmap_match(&nm->cm, s, n, &r);
        if (l) { *rep = r; *rep_len = strlen(r); return l; }
    }
    uint32_t cp;
    int k = gr_utf8_decode((const unsigned char *)s, n, &cp);
    if (k == 0) { *rep = "\xEF\xBF\xBD"; *rep_len = 3; return 1; } /* one bad byte -> U+FFFD */
    *rep = s;
    *rep_len = (size_t)k;
    return (size_t)k;
}

gr_status gr_spm_normalize(const gr_tokenizer *t, const gr_norm *nm, const char *s, size_t n, gr_buf *out)
{
    const char *r;
    size_t rl;
    if (t->remove_extra_ws) {
        while (n > 0) {
            size_t c = spm_prefix(t, nm, s, n, &r, &rl);
            if (!(rl == 1 && r[0] == ' ')) break;
            s += c;
            n -= c;
        }
    }
    if (n == 0) return GR_OK;
    const char *space = t->escape_ws ? SPACE_SYM : " ";
    size_t space_len = t->escape_ws ? 3 : 1;
    size_t start = out->len;
    int prev_space = t->remove_extra_ws;
    if (t->add_dummy_prefix) gr_buf_put(out, space, space_len);
    while (n > 0) {
        size_t c = spm_prefix(t, nm, s, n, &r, &rl);
        while (prev_space && rl > 0 && r[0] == ' ') { r++; rl--; }
        if (rl > 0) {
            size_t run = 0;
            for (size_t i = 0; i < rl; i++)
                if (t->escape_ws && r[i] == ' ') {
                    gr_buf_put(out, r + run, i - run);
                    gr_buf_put(out, SPACE_SYM, 3);
                    run = i + 1;
                }
            gr_buf_put(out, r + run, rl - run);
            prev_space = r[rl - 1] == ' ';
        }
        s += c;
        n -= c;
        if (!t->remove_extra_ws) prev_space = 0;
    }
    if (t->remove_extra_ws)
        while (out->len - start >= space_len && memcmp(out->p + out->len - space_len, space, space_len) == 0)
            out->len -= space_len;
    return out->oom ? gr_fail(GR_ERR_NOMEM, "out of memory") : GR_OK;
}

/* ---- tokenizer.json normalizers ---- */

static gr_status replace_all(const gr_norm *nm, const char *s, size_t n, gr_buf *out)
{
    if (nm->re) {
        size_t *sp = NULL, cnt = 0;
        gr_status st = gr_regex_find_all(nm->re, s, n, &sp, &cnt);
        if (st) return st;
        size_t pos = 0;
        for (size_t i = 0; i < cnt; i++) {
            gr_buf_put(out, s + pos, sp[2 * i] - pos);
            gr_buf_put(out, nm->b, nm->blen);
            pos = sp[2 * i + 1];
        }
        gr_buf_put(out, s + pos, n - pos);
        free(sp);
        return GR_OK;
    }
    size_t pos = 0, run = 0;
    while (nm->alen > 0 && pos + nm->alen <= n) {
        if (memcmp(s + pos, nm->a, nm->alen) == 0) {
            gr_buf_put(out, s + run, pos - run);
            gr_buf_put(out, nm->b, nm->blen);
            pos += nm->alen;
            run = pos;
        } else pos++;
    }
    gr_buf_put(out, s + run, n - run);
    return GR_OK;
}

static size_t space_prefix(const char *s, size_t n)
{
    size_t i = 0;
    uint32_t cp;
    while (i < n) {
        int k = gr_utf8_decode((const unsigned char *)s + i, n - i, &cp);
        if (!k || !gr_unicode_is_space(cp)) break;
        i += (size_t)k;
    }
    return i;
}

static size_t space_suffix(const char *s, size_t n)
{
    size_t end = n;
    while (end > 0) {
        size_t st = end - 1;
        while (st > 0 && ((unsigned char)s[st] & 0xC0) == 0x80) st--;
        uint32_t cp;
        int k = gr_utf8_decode((const unsigned char *)s + st, end - st, &cp);
        if (!k || (size_t)k != end - st || !gr_unicode_is_space(cp)) break;
        end = st;
    }
    return n - end;
}

gr_status gr_norm_apply(const gr_tokenizer *t, const gr_norm *nm, const char *s, size_t n, gr_buf *out)
{
    switch (nm->kind) {
    case NORM_SPM: return gr_spm_normalize(t, nm, s, n, out);
    case NORM_PREPEND:
        if (n > 0) gr_buf_put(out, nm->a, nm->alen);
        gr_buf_put(out, s, n);
        return GR_OK;
    case NORM_REPLACE: return replace_all(nm, s, n, out);
    case NORM_STRIP: {
        size_t a = nm->left ? space_prefix(s, n) : 0;
        size_t b = nm->right && a < n ? space_suffix(s + a, n - a) : 0;
        gr_buf_put(out, s + a, n - a - b);
        return GR_OK;
    }
    case NORM_PRECOMPILED: {
        /* SentencePiece's longest-prefix rule at each position (HF applies the same map per
         * grapheme cluster; the two agree except on rules spanning cluster boundaries). */
        while (n > 0) {
            const char *r;
            size_t l = gr_charsmap_match(&nm->cm, s, n, &r);
            if (l) { gr_buf_puts(out, r); s += l; n -= l; continue; }
            int k = gr_utf8_lead_len((unsigned char)*s);
            if ((size_t)k > n) k = (int)n;
            gr_buf_put(out, s, (size_t)k);
            s += k;
            n -= (size_t)k;
        }
        return GR_OK;
    }
    }
    return gr_fail(GR_ERR_INVALID, "unknown normalizer %d", nm->kind);
}

/* ---- GPT-2 byte <-> printable character table ---- */

static int byte_is_printable(int b) { return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174); }

static uint32_t bytelevel_cp(unsigned char b)
{
    if (byte_is_printable(b)) return b;
    uint32_t k = 0;
    for (int i = 0; i < b; i++) k += !byte_is_printable(i);
    return 256 + k;
}

static char bl_utf8[256][3];
static int bl_len[256];
static int16_t bl_inverse[256 + 68]; /* code point -> byte */
static pthread_once_t bl_once = PTHREAD_ONCE_INIT;

static void bl_init(void)
{
    for (int i = 0; i < 256 + 68; i++) bl_inverse[i] = -1;
    for (int b = 0; b < 256; b++) {
        uint32_t cp = bytelevel_cp((unsigned char)b);
        char u[4];
        bl_len[b] = gr_utf8_encode(cp, u);
        memcpy(bl_utf8[b], u, (size_t)bl_len[b]);
        bl_inverse[cp] = (int16_t)b;
    }
}

void gr_bytelevel_char(unsigned char byte, char out[3], int *len)
{
    pthread_once(&bl_once, bl_init);
    memcpy(out, bl_utf8[byte], 3);
    *len = bl_len[byte];
}

int gr_bytelevel_byte(uint32_t cp)
{
    pthread_once(&bl_once, bl_init);
    return cp < 256 + 68 ? bl_inverse[cp] : -1;
}

const char gr_gpt2_regex[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/* ---- pre-tokenizers ---- */

static void push_nonempty(gr_strlist *out, const char *s, size_t n)
{
    if (n) gr_strlist_push(out, s, n);
}

/* Splits `s` at matches of the Split pattern with HF's SplitDelimiterBehavior. */
static gr_status split_piece(const gr_pretok *p, const char *s, size_t n, gr_strlist *out)
{
    size_t *sp = NULL, cnt = 0;
    if (p->re) {
        gr_status st = gr_regex_find_all(p->re, s, n, &sp, &cnt);
        if (st) return st;
    } else if (p->patlen > 0) {
        size_t cap = 0;
        for (size_t i = 0; i + p->patlen <= n;) {
            if (memcmp(s + i, p->pat, p->patlen) == 0) {
                size_t *q = gr_tok_grow(sp, sizeof *sp, 2 * (cnt + 1), &cap);
                if (!q) { free(sp); return gr_fail(GR_ERR_NOMEM, "out of memory"); }
                sp = q;
                sp[2 * cnt] = i;
                sp[2 * cnt + 1] = i + p->patlen;
                cnt++;
                i += p->patlen;
            } else i++;
        }
    }
    /* Non-empty spans covering the string, flagged as match or not, then folded exactly as
     * HF's NormalizedString::split does for each behavior. */
    size_t (*span)[3] = malloc((2 * cnt + 1) * sizeof *span);
    if (!span) { free(sp); return gr_fail(GR_ERR_NOMEM, "out of memory"); }
    size_t ns = 0, pos = 0;
    for (size_t i = 0; i <= cnt; i++) {
        size_t ge = i < cnt ? sp[2 * i] : n;
        if (ge > pos) { span[ns][0] = pos; span[ns][1] = ge; span[ns][2] = (size_t)p->invert; ns++; }
        if (i < cnt) { span[ns][0] = sp[2 * i]; span[ns][1] = sp[2 * i + 1]; span[ns][2] = (size_t)!p->invert; ns++; pos = sp[2 * i + 1]; }
    }
    size_t k = 0; /* folded spans are written back into span[0..k) */
    int prev = 0;
    switch (p->behavior) {
    case SPLIT_REMOVED:
        for (size_t i = 0; i < ns; i++) if (!span[i][2]) { span[k][0] = span[i][0]; span[k][1] = span[i][1]; k++; }
        break;
    case SPLIT_ISOLATED: k = ns; break;
    case SPLIT_MERGED_PREV:
        for (size_t i = 0; i < ns; i++) {
            int m = (int)span[i][2];
            if (m && !prev && k > 0) span[k - 1][1] = span[i][1];
            else { span[k][0] = span[i][0]; span[k][1] = span[i][1]; k++; }
            prev = m;
        }
        break;
    case SPLIT_CONTIGUOUS:
        for (size_t i = 0; i < ns; i++) {
            int m = (int)span[i][2];
            if (m == prev && k > 0) span[k - 1][1] = span[i][1];
            else { span[k][0] = span[i][0]; span[k][1] = span[i][1]; k++; }
            prev = m;
        }
        break;
    case SPLIT_MERGED_NEXT: {
        /* right to left: a match joins the piece after it unless that piece was a match */
        size_t w = ns; /* build from the end of the array */
        for (size_t i = ns; i-- > 0;) {
            int m = (int)span[i][2];
            if (m && !prev && w < ns) span[w][0] = span[i][0];
            else { w--; span[w][0] = span[i][0]; span[w][1] = span[i][1]; }
            prev = m;
        }
        for (size_t i = w; i < ns; i++) { span[k][0] = span[i][0]; span[k][1] = span[i][1]; k++; }
        break;
    }
    }
    for (size_t i = 0; i < k; i++) push_nonempty(out, s + span[i][0], span[i][1] - span[i][0]);
    free(span);
    free(sp);
    return out->oom ? gr_fail(GR_ERR_NOMEM, "out of memory") : GR_OK;
}

static void bytelevel_map(const char *s, size_t n, gr_buf *out)
{
    for (size_t i = 0; i < n; i++) {
        char c[3];
        int l;
        gr_bytelevel_char((unsigned char)s[i], c, &l);
        gr_buf_put(out, c, (size_t)l);
    }
}

gr_status gr_pretok_apply(const gr_pretok *p, const gr_strlist *in, gr_strlist *out, int first_segment)
{
    gr_buf tmp = {0};
    gr_status st = GR_OK;
    for (size_t i = 0; i < in->n && !st; i++) {
        size_t n;
        const char *s = gr_strlist_at(in, i, &n);
        tmp.len = 0;
        switch (p->kind) {
        case PRE_SPLIT: st = split_piece(p, s, n, out); break;
        case PRE_DIGITS: st = split_piece(p, s, n, out); break;
        case PRE_BYTELEVEL: {
            gr_buf pre = {0};
            if (p->add_prefix_space && (n == 0 || s[0] != ' ')) gr_buf_putc(&pre, ' ');
            gr_buf_put(&pre, s, n);
            if (pre.oom) { gr_buf_free(&pre); st = gr_fail(GR_ERR_NOMEM, "out of memory"); break; }
            gr_strlist words = {0};
            if (p->use_regex) st = split_piece(p, pre.p ? pre.p : "", pre.len, &words);
            else push_nonempty(&words, pre.p, pre.len);
            for (size_t w = 0; !st && w < words.n; w++) {
                size_t wl;
                const char *ws = gr_strlist_at(&words, w, &wl);
                tmp.len = 0;
                bytelevel_map(ws, wl, &tmp);
                push_nonempty(out, tmp.p, tmp.len);
            }
            gr_strlist_free(&words);
            gr_buf_free(&pre);
            break;
        }
        case PRE_METASPACE: {
            /* as HF: spaces are replaced first, then the prefix is added unless the replaced
             * text already starts with it (so " x" gives "▁x", not "▁▁x") */
            int prepend = p->prepend_scheme == PREPEND_ALWAYS || (p->prepend_scheme == PREPEND_FIRST && first_segment && i == 0);
            int starts = (n >= 1 && s[0] == ' ') || (n >= p->repl_len && memcmp(s, p->repl, p->repl_len) == 0);
            if (prepend && !starts) gr_buf_put(&tmp, p->repl, p->repl_len);
            size_t run = 0;
            for (size_t k = 0; k < n; k++)
                if (s[k] == ' ') { gr_buf_put(&tmp, s + run, k - run); gr_buf_put(&tmp, p->repl, p->repl_len); run = k + 1; }
            gr_buf_put(&tmp, s + run, n - run);
            if (!p->split) { push_nonempty(out, tmp.p, tmp.len); break; }
            /* split before every replacement char (MergedWithNext) */
            size_t startp = 0;
            for (size_t k = 1; k + p->repl_len <= tmp.len; k++)
                if (memcmp(tmp.p + k, p->repl, p->repl_len) == 0) { push_nonempty(out, tmp.p + startp, k - startp); startp = k; }
            if (tmp.len) push_nonempty(out, tmp.p + startp, tmp.len - startp);
            break;
        }
        case PRE_WSPLIT: {
            size_t k = 0;
            while (k < n) {
                k += space_prefix(s + k, n - k);
                size_t w = k;
                while (w < n) {
                    uint32_t cp;
                    int l = gr_utf8_decode((const unsigned char *)s + w, n - w, &cp);
                    if (l && gr_unicode_is_space(cp)) break;
                    w += l ? (size_t)l : 1;
                }
                push_nonempty(out, s + k, w - k);
                k = w;
            }
            break;
        }
        default: st = gr_fail(GR_ERR_INVALID, "unknown pre-tokenizer %d", p->kind);
        }
        if (!st && (tmp.oom || out->oom)) st = gr_fail(GR_ERR_NOMEM, "out of memory");
    }
    gr_buf_free(&tmp);
    return st;
}

gr_status gr_tok_setup_gpt2_pipeline(gr_tokenizer *t)
{
    t->byte_level = 1;
    t->pres = calloc(1, sizeof *t->pres);
    t->decs = calloc(1, sizeof *t->decs);
    if (!t->pres || !t->decs) return gr_fail(GR_ERR_NOMEM, "%s: out of memory", t->source);
    t->pres[0].kind = PRE_BYTELEVEL;
    t->pres[0].use_regex = 1;
    t->pres[0].behavior = SPLIT_ISOLATED;
    t->n_pres = 1;
    gr_status st = gr_regex_compile(gr_gpt2_regex, strlen(gr_gpt2_regex), &t->pres[0].re);
    if (st) return st;
    t->decs[0].kind = DEC_BYTELEVEL;
    t->n_decs = 1;
    return GR_OK;
}
