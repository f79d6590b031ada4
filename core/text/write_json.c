/* gr_tokenizer_save_json: the in-memory tokenizer as a Hugging Face tokenizer.json. Written
 * from the parsed structures (not copied from an input file), so a model a trainer filled and a
 * loaded one go through the same path; loading the output gives the same encoder. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "base/fsutil.h"
#include "text/tok_internal.h"

static json_t *strn(const char *s, size_t n) { return json_stringn(s, n); }

static json_t *pattern(const char *s, size_t n, int is_regex)
{
    json_t *p = json_object();
    json_object_set_new(p, is_regex ? "Regex" : "String", strn(s, n));
    return p;
}

static const char *scheme_name(int s) { return s == PREPEND_FIRST ? "first" : s == PREPEND_NEVER ? "never" : "always"; }

static json_t *b64(const char *data, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    gr_buf b = {0};
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)(unsigned char)data[i] << 16;
        if (i + 1 < n) v |= (uint32_t)(unsigned char)data[i + 1] << 8;
        if (i + 2 < n) v |= (unsigned char)data[i + 2];
        char q[4] = {tab[(v >> 18) & 63], tab[(v >> 12) & 63], i + 1 < n ? tab[(v >> 6) & 63] : '=', i + 2 < n ? tab[v & 63] : '='};
        gr_buf_put(&b, q, 4);
    }
    json_t *s = b.oom ? NULL : strn(b.p ? b.p : "", b.len);
    gr_buf_free(&b);
    return s;
}

static json_t *seq_or_one(json_t *list, const char *key)
{
    if (json_array_size(list) == 0) { json_decref(list); return json_null(); }
    if (json_array_size(list) == 1) { json_t *x = json_incref(json_array_get(list, 0)); json_decref(list); return x; }
    return json_pack("{s:s, s:o}", "type", "Sequence", key, list);
}

static json_t *normalizers(const gr_tokenizer *t)
{
    json_t *list = json_array();
    for (int i = 0; i < t->n_norms; i++) {
        const gr_norm *n = &t->norms[i];
        json_t *o = NULL;
        if (n->kind == NORM_PREPEND) o = json_pack("{s:s, s:o}", "type", "Prepend", "prepend", strn(n->a, n->alen));
        else if (n->kind == NORM_REPLACE) o = json_pack("{s:s, s:o, s:o}", "type", "Replace", "pattern", pattern(n->a, n->alen, n->re != NULL), "content", strn(n->b, n->blen));
        else if (n->kind == NORM_STRIP) o = json_pack("{s:s, s:b, s:b}", "type", "Strip", "strip_left", n->left, "strip_right", n->right);
        else if (n->kind == NORM_PRECOMPILED) o = json_pack("{s:s, s:o}", "type", "Precompiled", "precompiled_charsmap", b64(n->cm.blob, n->cm.blob_len));
        json_array_append_new(list, o);
    }
    return seq_or_one(list, "normalizers");
}

static json_t *pretokenizers(const gr_tokenizer *t)
{
    static const char *const beh[] = {"", "Removed", "Isolated", "MergedWithPrevious", "MergedWithNext", "Contiguous"};
    json_t *list = json_array();
    for (int i = 0; i < t->n_pres; i++) {
        const gr_pretok *p = &t->pres[i];
        json_t *o = NULL;
        if (p->kind == PRE_SPLIT)
            o = json_pack("{s:s, s:o, s:s, s:b}", "type", "Split", "pattern", pattern(p->pat, p->patlen, p->pat_is_regex),
                          "behavior", beh[p->behavior], "invert", p->invert);
        else if (p->kind == PRE_BYTELEVEL)
            o = json_pack("{s:s, s:b, s:b, s:b}", "type", "ByteLevel", "add_prefix_space", p->add_prefix_space,
                          "trim_offsets", p->trim_offsets, "use_regex", p->use_regex);
        else if (p->kind == PRE_METASPACE)
            o = json_pack("{s:s, s:o, s:s, s:b}", "type", "Metaspace", "replacement", strn(p->repl, p->repl_len),
                          "prepend_scheme", scheme_name(p->prepend_scheme), "split", p->split);
        else if (p->kind == PRE_WSPLIT) o = json_pack("{s:s}", "type", "WhitespaceSplit");
        else if (p->kind == PRE_DIGITS) o = json_pack("{s:s, s:b}", "type", "Digits", "individual_digits", p->individual);
        json_array_append_new(list, o);
    }
    return seq_or_one(list, "pretokenizers");
}

static json_t *decoders(const gr_tokenizer *t)
{
    json_t *list = json_array();
    for (int i = 0; i < t->n_decs; i++) {
        const gr_decoder *d = &t->decs[i];
        json_t *o = NULL;
        char c[4];
        if (d->kind == DEC_BYTELEVEL) o = json_pack("{s:s, s:b, s:b, s:b}", "type", "ByteLevel", "add_prefix_space", 1, "trim_offsets", 1, "use_regex", 1);
        else if (d->kind == DEC_BYTEFALLBACK) o = json_pack("{s:s}", "type", "ByteFallback");
        else if (d->kind == DEC_FUSE) o = json_pack("{s:s}", "type", "Fuse");
        else if (d->kind == DEC_REPLACE) o = json_pack("{s:s, s:o, s:o}", "type", "Replace", "pattern", pattern(d->a, d->alen, 0), "content", strn(d->b, d->blen));
        else if (d->kind == DEC_STRIP) o = json_pack("{s:s, s:o, s:i, s:i}", "type", "Strip", "content", strn(c, (size_t)gr_utf8_encode(d->content, c)), "start", d->start, "stop", d->stop);
        else if (d->kind == DEC_METASPACE)
            o = json_pack("{s:s, s:o, s:s, s:b}", "type", "Metaspace", "replacement", strn(d->a, d->alen),
                          "prepend_scheme", scheme_name(d->prepend_scheme), "split", d->split);
        json_array_append_new(list, o);
    }
    return seq_or_one(list, "decoders");
}

static json_t *template_item(const gr_tokenizer *t, int32_t id, int type_id)
{
    return json_pack("{s:{s:o, s:i}}", "SpecialToken", "id", strn(t->pieces[id].s, t->pieces[id].len), "type_id", type_id);
}

static json_t *post_processor(const gr_tokenizer *t)
{
    if (t->n_prefix == 0 && t->n_suffix == 0) return json_null();
    json_t *single = json_array(), *pair = json_array(), *specials = json_object();
    for (int seq = 0; seq < 2; seq++)
        for (int part = 0; part < 3; part++) {
            if (part == 1) {
                json_t *s = json_pack("{s:{s:s, s:i}}", "Sequence", "id", seq ? "B" : "A", "type_id", seq);
                if (!seq) json_array_append(single, s);
                json_array_append_new(pair, s);
                continue;
            }
            const int32_t *ids = part == 0 ? t->prefix : t->suffix;
            int n = part == 0 ? t->n_prefix : t->n_suffix;
            for (int i = 0; i < n; i++) {
                if (!seq) json_array_append_new(single, template_item(t, ids[i], 0));
                json_array_append_new(pair, template_item(t, ids[i], seq));
                const gr_piece *p = &t->pieces[ids[i]];
                json_object_setn_new(specials, p->s, p->len,
                                     json_pack("{s:o, s:[i], s:[o]}", "id", strn(p->s, p->len), "ids", ids[i], "tokens", strn(p->s, p->len)));
            }
        }
    return json_pack("{s:s, s:o, s:o, s:o}", "type", "TemplateProcessing", "single", single, "pair", pair, "special_tokens", specials);
}

static json_t *model(const gr_tokenizer *t)
{
    if (t->kind == GR_TOK_UNIGRAM) {
        json_t *vocab = json_array();
        for (int32_t i = 0; i < t->n_model; i++)
            json_array_append_new(vocab, json_pack("[o, f]", strn(t->pieces[i].s, t->pieces[i].len), (double)t->pieces[i].score));
        json_t *m = json_pack("{s:s, s:o, s:o, s:b}", "type", "Unigram", "unk_id", t->unk_id >= 0 ? json_integer(t->unk_id) : json_null(),
                              "vocab", vocab, "byte_fallback", t->byte_fallback);
        return m;
    }
    json_t *vocab = json_object(), *merges = json_array();
    for (int32_t i = 0; i < t->n_model; i++) json_object_setn_new(vocab, t->pieces[i].s, t->pieces[i].len, json_integer(i));
    for (int32_t i = 0; i < t->n_merges; i++) {
        const gr_piece *a = &t->pieces[t->merges[i][0]], *b = &t->pieces[t->merges[i][1]];
        json_array_append_new(merges, json_pack("[o, o]", strn(a->s, a->len), strn(b->s, b->len)));
    }
    return json_pack("{s:s, s:n, s:o, s:n, s:n, s:b, s:b, s:b, s:o, s:o}", "type", "BPE", "dropout",
                     "unk_token", t->unk_id >= 0 ? strn(t->pieces[t->unk_id].s, t->pieces[t->unk_id].len) : json_null(),
                     "continuing_subword_prefix", "end_of_word_suffix", "fuse_unk", t->fuse_unk, "byte_fallback", t->byte_fallback,
                     "ignore_merges", t->ignore_merges, "vocab", vocab, "merges", merges);
}

gr_status gr_tokenizer_save_json(const gr_tokenizer *t, const char *path)
{
    if (t->spm)
        return gr_fail(GR_ERR_UNSUPPORTED, "%s: SentencePiece .model tokenizers are not saved as tokenizer.json "
                       "(their normalizer and score-based BPE have no exact tokenizer.json form)", t->source);
    json_t *added = json_array();
    for (size_t i = 0; i < t->n_added; i++) {
        const gr_added *a = &t->added[i];
        json_array_append_new(added, json_pack("{s:i, s:o, s:b, s:b, s:b, s:b, s:b}", "id", a->id, "content", strn(a->s, a->len),
                                               "single_word", a->single_word, "lstrip", a->lstrip, "rstrip", a->rstrip,
                                               "normalized", a->normalized, "special", a->special));
    }
    json_t *root = json_pack("{s:s, s:n, s:n, s:o, s:o, s:o, s:o, s:o, s:o}", "version", "1.0", "truncation", "padding",
                             "added_tokens", added, "normalizer", normalizers(t), "pre_tokenizer", pretokenizers(t),
                             "post_processor", post_processor(t), "decoder", decoders(t), "model", model(t));
    if (!root) return gr_fail(GR_ERR_NOMEM, "%s: cannot build the JSON document", path);
    char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (!text) return gr_fail(GR_ERR_NOMEM, "%s: cannot serialise the JSON document", path);
    size_t n = strlen(text);
    gr_status st = gr_write_file_atomic(path, text, n);
    free(text);
    return st;
}
