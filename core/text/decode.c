/* Decoding: SentencePiece's rules for .model files, the tokenizer.json decoder chain otherwise,
 * then transformers' clean_up_tokenization when configured. */
#include <stdlib.h>
#include <string.h>

#include "text/tok_internal.h"

static const char SPACE_SYM[] = "\xE2\x96\x81";
static const char UNK_SURFACE[] = " \xE2\x81\x87 "; /* SentencePiece's default " ⁇ " */

static void put_replaced(gr_buf *out, const char *s, size_t n, const char *pat, size_t plen, const char *rep, size_t rlen)
{
    size_t run = 0;
    for (size_t i = 0; plen && i + plen <= n;) {
        if (memcmp(s + i, pat, plen) == 0) {
            gr_buf_put(out, s + run, i - run);
            gr_buf_put(out, rep, rlen);
            i += plen;
            run = i;
        } else i++;
    }
    gr_buf_put(out, s + run, n - run);
}

/* SentencePieceProcessor::Decode */
static void spm_decode(const gr_tokenizer *t, const int32_t *ids, size_t n, unsigned flags, gr_buf *out)
{
    gr_buf bytes = {0};
    /* SentencePiece 0.1.97 drops the leading "▁" (the dummy prefix) of the first piece that is
     * not a control symbol (Llama: <s> ▁ ▁. decodes to " ."); with remove_extra_whitespaces
     * (T5, ALBERT) it keeps dropping it while the decoded text is still empty (▁ ▁the -> "the").
     * Both checked against python3-sentencepiece 0.1.97 on random id sequences. */
    int bos_ws = 1;
    for (size_t i = 0; i <= n; i++) {
        const gr_piece *p = i < n ? &t->pieces[ids[i]] : NULL;
        if (p && p->type == GR_PIECE_BYTE && p->in_model) {
            int b = gr_byte_piece(p->s, p->len);
            char c = (char)(b < 0 ? 0 : b);
            gr_buf_put(&bytes, &c, 1);
            bos_ws = 0;
            continue;
        }
        if (bytes.len) { gr_utf8_append_lossy(out, bytes.p, bytes.len, 1); bytes.len = 0; }
        if (!p) break;
        if (p->type == GR_PIECE_CONTROL && p->in_model) continue; /* <s>, </s>: no surface */
        if (p->special && (flags & GR_DECODE_SKIP_SPECIAL)) continue;
        if (!p->in_model) { gr_buf_put(out, p->s, p->len); bos_ws = 0; continue; } /* added token */
        if (p->type == GR_PIECE_UNKNOWN) { gr_buf_puts(out, UNK_SURFACE); bos_ws = 0; continue; }
        const char *s = p->s;
        size_t len = p->len;
        if ((t->remove_extra_ws ? out->len == 0 : bos_ws) && t->add_dummy_prefix && len >= 3 && memcmp(s, SPACE_SYM, 3) == 0) { s += 3; len -= 3; }
        bos_ws = 0;
        put_replaced(out, s, len, SPACE_SYM, 3, " ", 1);
    }
    gr_buf_free(&bytes);
}

/* ---- tokenizer.json decoders over a list of token strings ---- */

static void dec_bytelevel(const gr_strlist *in, gr_strlist *out)
{
    gr_buf raw = {0}, txt = {0};
    for (size_t i = 0; i < in->n; i++) {
        size_t n;
        const char *s = gr_strlist_at(in, i, &n);
        size_t mark = raw.len;
        int ok = 1;
        for (size_t k = 0; k < n && ok;) {
            uint32_t cp;
            int l = gr_utf8_decode((const unsigned char *)s + k, n - k, &cp);
            int b = l ? gr_bytelevel_byte(cp) : -1;
            if (b < 0) { ok = 0; break; }
            char c = (char)b;
            gr_buf_put(&raw, &c, 1);
            k += (size_t)l;
        }
        if (!ok) { raw.len = mark; gr_buf_put(&raw, s, n); } /* not byte-level text: as is */
    }
    gr_utf8_append_lossy(&txt, raw.p ? raw.p : "", raw.len, 0);
    gr_strlist_push(out, txt.p ? txt.p : "", txt.len);
    gr_buf_free(&raw);
    gr_buf_free(&txt);
}

static void dec_bytefallback(const gr_strlist *in, gr_strlist *out)
{
    gr_buf bytes = {0};
    for (size_t i = 0; i <= in->n; i++) {
        size_t n = 0;
        const char *s = i < in->n ? gr_strlist_at(in, i, &n) : NULL;
        int b = s ? gr_byte_piece(s, n) : -1;
        if (b >= 0) { char c = (char)b; gr_buf_put(&bytes, &c, 1); continue; }
        if (bytes.len) {
            if (gr_utf8_valid(bytes.p, bytes.len)) gr_strlist_push(out, bytes.p, bytes.len);
            else for (size_t k = 0; k < bytes.len; k++) gr_strlist_push(out, "\xEF\xBF\xBD", 3);
            bytes.len = 0;
        }
        if (s) gr_strlist_push(out, s, n);
    }
    gr_buf_free(&bytes);
}

static void dec_apply(const gr_decoder *d, const gr_strlist *in, gr_strlist *out)
{
    gr_buf tmp = {0};
    switch (d->kind) {
    case DEC_BYTELEVEL: dec_bytelevel(in, out); break;
    case DEC_BYTEFALLBACK: dec_bytefallback(in, out); break;
    case DEC_FUSE:
        gr_strlist_push(out, in->buf.p ? in->buf.p : "", in->n ? in->off[in->n] : 0);
        break;
    case DEC_REPLACE:
        for (size_t i = 0; i < in->n; i++) {
            size_t n;
            const char *s = gr_strlist_at(in, i, &n);
            tmp.len = 0;
            put_replaced(&tmp, s, n, d->a, d->alen, d->b, d->blen);
            gr_strlist_push(out, tmp.p ? tmp.p : "", tmp.len);
        }
        break;
    case DEC_STRIP: {
        char cs[4];
        int cl = gr_utf8_encode(d->content, cs);
        for (size_t i = 0; i < in->n; i++) {
            size_t n;
            const char *s = gr_strlist_at(in, i, &n);
            for (int k = 0; k < d->start && n >= (size_t)cl && memcmp(s, cs, (size_t)cl) == 0; k++) { s += cl; n -= (size_t)cl; }
            for (int k = 0; k < d->stop && n >= (size_t)cl && memcmp(s + n - cl, cs, (size_t)cl) == 0; k++) n -= (size_t)cl;
            gr_strlist_push(out, s, n);
        }
        break;
    }
    case DEC_METASPACE:
        for (size_t i = 0; i < in->n; i++) {
            size_t n;
            const char *s = gr_strlist_at(in, i, &n);
            tmp.len = 0;
            int drop = i == 0 && d->prepend_scheme != PREPEND_NEVER;
            put_replaced(&tmp, s, n, d->a, d->alen, drop ? "" : " ", drop ? 0 : 1);
            gr_strlist_push(out, tmp.p ? tmp.p : "", tmp.len);
        }
        break;
    }
    gr_buf_free(&tmp);
}

/* transformers' clean_up_tokenization: the replacements applied one after the other */
static void cleanup_spaces(gr_buf *b)
{
    static const char *const rules[][2] = {
        {" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"},
        {" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"},
    };
    gr_buf tmp = {0};
    for (size_t r = 0; r < sizeof rules / sizeof rules[0]; r++) {
        tmp.len = 0;
        put_replaced(&tmp, b->p ? b->p : "", b->len, rules[r][0], strlen(rules[r][0]), rules[r][1], strlen(rules[r][1]));
        b->len = 0;
        gr_buf_put(b, tmp.p ? tmp.p : "", tmp.len);
    }
    gr_buf_free(&tmp);
}

gr_status gr_tokenizer_decode(const gr_tokenizer *t, const int32_t *ids, size_t n, unsigned flags,
                              char **text, size_t *len)
{
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= t->n_ids || !t->pieces[ids[i]].s)
            return gr_fail(GR_ERR_INVALID, "%s: cannot decode id %d (vocabulary has %d ids)", t->source, ids[i], t->n_ids);
    gr_buf out = {0};
    if (t->spm) {
        spm_decode(t, ids, n, flags, &out);
    } else {
        gr_strlist a = {0}, b = {0};
        for (size_t i = 0; i < n; i++) {
            const gr_piece *p = &t->pieces[ids[i]];
            if (p->special && (flags & GR_DECODE_SKIP_SPECIAL)) continue;
            gr_strlist_push(&a, p->s, p->len);
        }
        for (int d = 0; d < t->n_decs; d++) {
            gr_strlist_clear(&b);
            dec_apply(&t->decs[d], &a, &b);
            gr_strlist tmp = a; a = b; b = tmp;
        }
        if (a.n) gr_buf_put(&out, a.buf.p ? a.buf.p : "", a.off[a.n]);
        int oom = a.oom || b.oom;
        gr_strlist_free(&a);
        gr_strlist_free(&b);
        if (oom) { gr_buf_free(&out); return gr_fail(GR_ERR_NOMEM, "out of memory"); }
    }
    if (t->cleanup_spaces && !(flags & GR_DECODE_NO_CLEANUP)) cleanup_spaces(&out);
    if (out.oom) { gr_buf_free(&out); return gr_fail(GR_ERR_NOMEM, "out of memory"); }
    if (!out.p) {
        out.p = calloc(1, 1);
        if (!out.p) return gr_fail(GR_ERR_NOMEM, "out of memory");
    }
    *text = out.p;
    if (len) *len = out.len;
    return GR_OK;
}

gr_status gr_tokenizer_token_bytes(const gr_tokenizer *t, int32_t id, char **bytes, size_t *len)
{
    if (id < 0 || id >= t->n_ids || !t->pieces[id].s)
        return gr_fail(GR_ERR_INVALID, "%s: id %d is not in the vocabulary", t->source, id);
    const gr_piece *p = &t->pieces[id];
    gr_buf out = {0};
    int b;
    if (p->special || !p->in_model) {
        gr_buf_put(&out, p->s, p->len);
    } else if (t->byte_level) {
        for (size_t k = 0; k < p->len;) {
            uint32_t cp;
            int l = gr_utf8_decode((const unsigned char *)p->s + k, p->len - k, &cp);
            int v = l ? gr_bytelevel_byte(cp) : -1;
            if (v < 0) { out.len = 0; gr_buf_put(&out, p->s, p->len); break; }
            char c = (char)v;
            gr_buf_put(&out, &c, 1);
            k += (size_t)l;
        }
    } else if ((b = gr_byte_piece(p->s, p->len)) >= 0 && t->byte_id[b] == id) {
        char c = (char)b;
        gr_buf_put(&out, &c, 1);
    } else {
        put_replaced(&out, p->s, p->len, SPACE_SYM, 3, " ", 1);
    }
    if (out.oom) { gr_buf_free(&out); return gr_fail(GR_ERR_NOMEM, "out of memory"); }
    if (!out.p && !(out.p = calloc(1, 1))) return gr_fail(GR_ERR_NOMEM, "out of memory");
    *bytes = out.p;
    *len = out.len;
    return GR_OK;
}
