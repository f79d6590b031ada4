/* Hugging Face files: tokenizer.json, vocab.json + merges.txt, tokenizer_config.json and
 * special_tokens_map.json (jansson). Every error names the file and the key. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json_file.h"
#include "base/fsutil.h"
#include "text/tok_internal.h"

static gr_status load_json_flags(const char *path, size_t flags, json_t **out)
{
    return gr_json_load(path, JSON_ALLOW_NUL | flags, out);
}

static gr_status load_json(const char *path, json_t **out) { return load_json_flags(path, 0, out); }

static int jbool(json_t *o, const char *key, int def)
{
    json_t *v = json_object_get(o, key);
    return json_is_boolean(v) ? json_is_true(v) : def;
}

static const char *jstr(json_t *o, const char *key, size_t *len)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_string(v)) return NULL;
    if (len) *len = json_string_length(v);
    return json_string_value(v);
}

static char *dupn(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p) { memcpy(p, s, n); p[n] = '\0'; }
    return p;
}

static int b64val(int c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
}

static int b64decode(const char *s, size_t n, gr_buf *out)
{
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '=') break;
        int v = b64val((unsigned char)s[i]);
        if (v < 0) return 0;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) { bits -= 8; gr_buf_putc(out, (char)((acc >> bits) & 0xFF)); }
    }
    return !out->oom;
}

/* ---- pipeline sections ---- */

static gr_status parse_pattern(json_t *pat, const char *path, const char *where, char **s, size_t *n, int *is_regex)
{
    const char *v;
    if ((v = jstr(pat, "String", n))) *is_regex = 0;
    else if ((v = jstr(pat, "Regex", n))) *is_regex = 1;
    else return gr_fail(GR_ERR_FORMAT, "%s: %s.pattern needs String or Regex", path, where);
    *s = dupn(v, *n);
    return *s ? GR_OK : gr_fail(GR_ERR_NOMEM, "%s: out of memory", path);
}

static gr_status add_normalizer(gr_tokenizer *t, json_t *j, const char *path)
{
    if (json_is_null(j) || !j) return GR_OK;
    const char *type = jstr(j, "type", NULL);
    if (!type) return gr_fail(GR_ERR_FORMAT, "%s: normalizer without a type", path);
    if (strcmp(type, "Sequence") == 0) {
        json_t *list = json_object_get(j, "normalizers"), *x;
        size_t i;
        if (!json_is_array(list)) return gr_fail(GR_ERR_FORMAT, "%s: normalizer Sequence needs 'normalizers'", path);
        json_array_foreach(list, i, x) {
            gr_status st = add_normalizer(t, x, path);
            if (st) return st;
        }
        return GR_OK;
    }
    gr_norm nm = {0};
    gr_status st = GR_OK;
    if (strcmp(type, "Prepend") == 0) {
        const char *p = jstr(j, "prepend", &nm.alen);
        if (!p) return gr_fail(GR_ERR_FORMAT, "%s: normalizer Prepend needs 'prepend'", path);
        nm.kind = NORM_PREPEND;
        nm.a = dupn(p, nm.alen);
    } else if (strcmp(type, "Replace") == 0) {
        int is_re;
        nm.kind = NORM_REPLACE;
        st = parse_pattern(json_object_get(j, "pattern"), path, "normalizer Replace", &nm.a, &nm.alen, &is_re);
        const char *c = jstr(j, "content", &nm.blen);
        if (!st && !c) st = gr_fail(GR_ERR_FORMAT, "%s: normalizer Replace needs 'content'", path);
        if (!st) nm.b = dupn(c, nm.blen);
        if (!st && is_re) st = gr_regex_compile(nm.a, nm.alen, &nm.re);
    } else if (strcmp(type, "Strip") == 0) {
        nm.kind = NORM_STRIP;
        nm.left = jbool(j, "strip_left", 1);
        nm.right = jbool(j, "strip_right", 1);
    } else if (strcmp(type, "Precompiled") == 0) {
        size_t n;
        const char *b64 = jstr(j, "precompiled_charsmap", &n);
        if (!b64 || n == 0) return GR_OK; /* identity */
        gr_buf blob = {0};
        if (!b64decode(b64, n, &blob)) { gr_buf_free(&blob); return gr_fail(GR_ERR_FORMAT, "%s: normalizer Precompiled: bad base64", path); }
        nm.kind = NORM_PRECOMPILED;
        st = gr_charsmap_init(&nm.cm, blob.p, blob.len, path);
        nm.has_cm = !st;
        gr_buf_free(&blob);
    } else {
        return gr_fail(GR_ERR_UNSUPPORTED, "%s: normalizer type '%s' is not supported", path, type);
    }
    gr_norm *v = st ? NULL : realloc(t->norms, (size_t)(t->n_norms + 1) * sizeof *v);
    if (!st && !v) st = gr_fail(GR_ERR_NOMEM, "%s: out of memory", path);
    if (st) { gr_norm_free(&nm); return st; }
    t->norms = v;
    t->norms[t->n_norms++] = nm;
    return GR_OK;
}

static int parse_behavior(const char *b)
{
    if (!b) return 0;
    if (strcmp(b, "Removed") == 0) return SPLIT_REMOVED;
    if (strcmp(b, "Isolated") == 0) return SPLIT_ISOLATED;
    if (strcmp(b, "MergedWithPrevious") == 0) return SPLIT_MERGED_PREV;
    if (strcmp(b, "MergedWithNext") == 0) return SPLIT_MERGED_NEXT;
    if (strcmp(b, "Contiguous") == 0) return SPLIT_CONTIGUOUS;
    return 0;
}

static int parse_prepend(json_t *j)
{
    const char *ps = jstr(j, "prepend_scheme", NULL);
    if (ps) return strcmp(ps, "first") == 0 ? PREPEND_FIRST : strcmp(ps, "never") == 0 ? PREPEND_NEVER : PREPEND_ALWAYS;
    return jbool(j, "add_prefix_space", 1) ? PREPEND_ALWAYS : PREPEND_NEVER;
}

static gr_status add_pretok(gr_tokenizer *t, json_t *j, const char *path)
{
    if (json_is_null(j) || !j) return GR_OK;
    const char *type = jstr(j, "type", NULL);
    if (!type) return gr_fail(GR_ERR_FORMAT, "%s: pre_tokenizer without a type", path);
    if (strcmp(type, "Sequence") == 0) {
        json_t *list = json_object_get(j, "pretokenizers"), *x;
        size_t i;
        if (!json_is_array(list)) return gr_fail(GR_ERR_FORMAT, "%s: pre_tokenizer Sequence needs 'pretokenizers'", path);
        json_array_foreach(list, i, x) {
            gr_status st = add_pretok(t, x, path);
            if (st) return st;
        }
        return GR_OK;
    }
    gr_pretok p = {0};
    gr_status st = GR_OK;
    if (strcmp(type, "Split") == 0) {
        p.kind = PRE_SPLIT;
        st = parse_pattern(json_object_get(j, "pattern"), path, "pre_tokenizer Split", &p.pat, &p.patlen, &p.pat_is_regex);
        p.behavior = parse_behavior(jstr(j, "behavior", NULL));
        p.invert = jbool(j, "invert", 0);
        if (!st && !p.behavior) st = gr_fail(GR_ERR_FORMAT, "%s: pre_tokenizer Split: unknown behavior", path);
        if (!st && p.pat_is_regex) st = gr_regex_compile(p.pat, p.patlen, &p.re);
    } else if (strcmp(type, "ByteLevel") == 0) {
        p.kind = PRE_BYTELEVEL;
        p.add_prefix_space = jbool(j, "add_prefix_space", 1);
        p.use_regex = jbool(j, "use_regex", 1);
        p.trim_offsets = jbool(j, "trim_offsets", 1);
        p.behavior = SPLIT_ISOLATED;
        if (p.use_regex) st = gr_regex_compile(gr_gpt2_regex, strlen(gr_gpt2_regex), &p.re);
        t->byte_level = 1;
    } else if (strcmp(type, "Metaspace") == 0) {
        size_t n;
        const char *r = jstr(j, "replacement", &n);
        if (!r) return gr_fail(GR_ERR_FORMAT, "%s: pre_tokenizer Metaspace needs 'replacement'", path);
        p.kind = PRE_METASPACE;
        p.repl = dupn(r, n);
        p.repl_len = n;
        p.prepend_scheme = parse_prepend(j);
        p.split = jbool(j, "split", 1);
    } else if (strcmp(type, "WhitespaceSplit") == 0) {
        p.kind = PRE_WSPLIT;
    } else if (strcmp(type, "Digits") == 0) {
        p.kind = PRE_DIGITS;
        p.individual = jbool(j, "individual_digits", 0);
        p.behavior = SPLIT_ISOLATED;
        const char *re = p.individual ? "\\p{N}" : "\\p{N}+";
        st = gr_regex_compile(re, strlen(re), &p.re);
    } else {
        return gr_fail(GR_ERR_UNSUPPORTED, "%s: pre_tokenizer type '%s' is not supported", path, type);
    }
    gr_pretok *v = st ? NULL : realloc(t->pres, (size_t)(t->n_pres + 1) * sizeof *v);
    if (!st && !v) st = gr_fail(GR_ERR_NOMEM, "%s: out of memory", path);
    if (st) { gr_pretok_free(&p); return st; }
    t->pres = v;
    t->pres[t->n_pres++] = p;
    return GR_OK;
}

static gr_status add_decoder(gr_tokenizer *t, json_t *j, const char *path)
{
    if (json_is_null(j) || !j) return GR_OK;
    const char *type = jstr(j, "type", NULL);
    if (!type) return gr_fail(GR_ERR_FORMAT, "%s: decoder without a type", path);
    if (strcmp(type, "Sequence") == 0) {
        json_t *list = json_object_get(j, "decoders"), *x;
        size_t i;
        if (!json_is_array(list)) return gr_fail(GR_ERR_FORMAT, "%s: decoder Sequence needs 'decoders'", path);
        json_array_foreach(list, i, x) {
            gr_status st = add_decoder(t, x, path);
            if (st) return st;
        }
        return GR_OK;
    }
    gr_decoder d = {0};
    gr_status st = GR_OK;
    if (strcmp(type, "ByteLevel") == 0) d.kind = DEC_BYTELEVEL;
    else if (strcmp(type, "ByteFallback") == 0) d.kind = DEC_BYTEFALLBACK;
    else if (strcmp(type, "Fuse") == 0) d.kind = DEC_FUSE;
    else if (strcmp(type, "Replace") == 0) {
        int is_re;
        d.kind = DEC_REPLACE;
        st = parse_pattern(json_object_get(j, "pattern"), path, "decoder Replace", &d.a, &d.alen, &is_re);
        const char *c = jstr(j, "content", &d.blen);
        if (!st && is_re) st = gr_fail(GR_ERR_UNSUPPORTED, "%s: decoder Replace with a Regex pattern is not supported", path);
        if (!st && !c) st = gr_fail(GR_ERR_FORMAT, "%s: decoder Replace needs 'content'", path);
        if (!st) d.b = dupn(c, d.blen);
    } else if (strcmp(type, "Strip") == 0) {
        size_t n;
        const char *c = jstr(j, "content", &n);
        uint32_t cp = ' ';
        if (c && !gr_utf8_decode((const unsigned char *)c, n, &cp)) st = gr_fail(GR_ERR_FORMAT, "%s: decoder Strip: bad content", path);
        d.kind = DEC_STRIP;
        d.content = cp;
        d.start = (int)json_integer_value(json_object_get(j, "start"));
        d.stop = (int)json_integer_value(json_object_get(j, "stop"));
    } else if (strcmp(type, "Metaspace") == 0) {
        size_t n;
        const char *r = jstr(j, "replacement", &n);
        if (!r) return gr_fail(GR_ERR_FORMAT, "%s: decoder Metaspace needs 'replacement'", path);
        d.kind = DEC_METASPACE;
        d.a = dupn(r, n);
        d.alen = n;
        d.prepend_scheme = parse_prepend(j);
        d.split = jbool(j, "split", 1);
    } else {
        return gr_fail(GR_ERR_UNSUPPORTED, "%s: decoder type '%s' is not supported", path, type);
    }
    gr_decoder *v = st ? NULL : realloc(t->decs, (size_t)(t->n_decs + 1) * sizeof *v);
    if (!st && !v) st = gr_fail(GR_ERR_NOMEM, "%s: out of memory", path);
    if (st) { free(d.a); free(d.b); return st; }
    t->decs = v;
    t->decs[t->n_decs++] = d;
    return GR_OK;
}

static gr_status push_special_ids(gr_tokenizer *t, json_t *specials, const char *name, int32_t *dst, int *n, const char *path)
{
    json_t *ids = json_object_get(json_object_get(specials, name), "ids"), *x;
    size_t i;
    if (!json_is_array(ids)) return gr_fail(GR_ERR_FORMAT, "%s: post_processor special token '%s' has no ids", path, name);
    json_array_foreach(ids, i, x) {
        int32_t id = (int32_t)json_integer_value(x);
        if (!json_is_integer(x) || id < 0 || id >= t->n_ids) return gr_fail(GR_ERR_FORMAT, "%s: post_processor: bad id for '%s'", path, name);
        if (*n >= 4) return gr_fail(GR_ERR_UNSUPPORTED, "%s: post_processor adds more than 4 tokens", path);
        dst[(*n)++] = id;
    }
    return GR_OK;
}

static gr_status add_post(gr_tokenizer *t, json_t *j, const char *path)
{
    if (json_is_null(j) || !j) return GR_OK;
    const char *type = jstr(j, "type", NULL);
    if (!type) return gr_fail(GR_ERR_FORMAT, "%s: post_processor without a type", path);
    if (strcmp(type, "Sequence") == 0) {
        json_t *list = json_object_get(j, "processors"), *x;
        size_t i;
        json_array_foreach(list, i, x) {
            gr_status st = add_post(t, x, path);
            if (st) return st;
        }
        return GR_OK;
    }
    if (strcmp(type, "ByteLevel") == 0) return GR_OK; /* offsets only */
    if (strcmp(type, "TemplateProcessing") == 0) {
        json_t *single = json_object_get(j, "single"), *specials = json_object_get(j, "special_tokens"), *x;
        size_t i;
        int seen_a = 0;
        if (!json_is_array(single)) return gr_fail(GR_ERR_FORMAT, "%s: TemplateProcessing needs 'single'", path);
        t->n_prefix = t->n_suffix = 0;
        json_array_foreach(single, i, x) {
            json_t *sp = json_object_get(x, "SpecialToken");
            if (json_object_get(x, "Sequence")) { seen_a = 1; continue; }
            const char *name = jstr(sp, "id", NULL);
            if (!name) return gr_fail(GR_ERR_FORMAT, "%s: TemplateProcessing: bad item %zu in 'single'", path, i);
            gr_status st = seen_a ? push_special_ids(t, specials, name, t->suffix, &t->n_suffix, path)
                                  : push_special_ids(t, specials, name, t->prefix, &t->n_prefix, path);
            if (st) return st;
        }
        return GR_OK;
    }
    if (strcmp(type, "RobertaProcessing") == 0 || strcmp(type, "BertProcessing") == 0) {
        json_t *cls = json_object_get(j, "cls"), *sep = json_object_get(j, "sep");
        if (!json_is_array(cls) || !json_is_array(sep)) return gr_fail(GR_ERR_FORMAT, "%s: %s needs cls and sep", path, type);
        t->prefix[0] = (int32_t)json_integer_value(json_array_get(cls, 1));
        t->suffix[0] = (int32_t)json_integer_value(json_array_get(sep, 1));
        t->n_prefix = t->n_suffix = 1;
        return GR_OK;
    }
    return gr_fail(GR_ERR_UNSUPPORTED, "%s: post_processor type '%s' is not supported", path, type);
}

/* ---- models ---- */

typedef struct idtok { int32_t id; const char *s; size_t len; } idtok;
static int cmp_idtok(const void *a, const void *b)
{
    int32_t x = ((const idtok *)a)->id, y = ((const idtok *)b)->id;
    return x < y ? -1 : x > y;
}

/* {token: id} in id order; ids must be 0..n-1. */
static gr_status load_vocab_object(gr_tokenizer *t, json_t *vocab, const char *path, const char *key)
{
    if (!json_is_object(vocab)) return gr_fail(GR_ERR_FORMAT, "%s: '%s' must be an object of token -> id", path, key);
    size_t n = json_object_size(vocab), i = 0;
    if (n == 0) return gr_fail(GR_ERR_FORMAT, "%s: '%s' is empty", path, key);
    idtok *v = malloc(n * sizeof *v);
    if (!v) return gr_fail(GR_ERR_NOMEM, "%s: out of memory", path);
    const char *k;
    json_t *x;
    size_t klen;
    json_object_keylen_foreach(vocab, k, klen, x) {
        if (!json_is_integer(x)) { free(v); return gr_fail(GR_ERR_FORMAT, "%s: %s['%s'] is not an integer id", path, key, k); }
        v[i++] = (idtok){(int32_t)json_integer_value(x), k, klen};
    }
    qsort(v, n, sizeof *v, cmp_idtok);
    gr_status st = GR_OK;
    for (i = 0; i < n && !st; i++) {
        if (v[i].id != (int32_t)i) { st = gr_fail(GR_ERR_FORMAT, "%s: %s ids are not 0..%zu (id %zu is %s)", path, key, n - 1, i, v[i].id < (int32_t)i ? "repeated" : "missing"); break; }
        st = gr_tok_push_piece(t, v[i].s, v[i].len, 0.0f, GR_PIECE_NORMAL, NULL);
    }
    free(v);
    return st;
}

static gr_status merge_line(gr_tokenizer *t, const char *a, size_t alen, const char *b, size_t blen, const char *path, size_t line)
{
    int32_t ia = gr_tok_lookup(t, a, alen), ib = gr_tok_lookup(t, b, blen);
    if (ia < 0 || ib < 0)
        return gr_fail(GR_ERR_FORMAT, "%s: merge %zu: '%.*s' is not in the vocabulary", path, line,
                       ia < 0 ? (int)alen : (int)blen, ia < 0 ? a : b);
    gr_status st = gr_tok_push_merge(t, ia, ib);
    if (st) return gr_fail(GR_ERR_FORMAT, "%s: merge %zu: '%.*s%.*s' is not in the vocabulary", path, line, (int)alen, a, (int)blen, b);
    return GR_OK;
}

static gr_status load_merges_json(gr_tokenizer *t, json_t *merges, const char *path)
{
    if (!json_is_array(merges)) return gr_fail(GR_ERR_FORMAT, "%s: model.merges is missing or not a list", path);
    size_t i;
    json_t *x;
    json_array_foreach(merges, i, x) {
        gr_status st;
        if (json_is_string(x)) {
            const char *s = json_string_value(x);
            size_t n = json_string_length(x);
            const char *sp = memchr(s, ' ', n);
            if (!sp || memchr(sp + 1, ' ', n - (size_t)(sp + 1 - s)))
                return gr_fail(GR_ERR_FORMAT, "%s: model.merges[%zu] is not two tokens separated by one space", path, i);
            st = merge_line(t, s, (size_t)(sp - s), sp + 1, n - (size_t)(sp + 1 - s), path, i + 1);
        } else if (json_is_array(x) && json_array_size(x) == 2 && json_is_string(json_array_get(x, 0)) &&
                   json_is_string(json_array_get(x, 1))) {
            json_t *a = json_array_get(x, 0), *b = json_array_get(x, 1);
            st = merge_line(t, json_string_value(a), json_string_length(a), json_string_value(b), json_string_length(b), path, i + 1);
        } else {
            return gr_fail(GR_ERR_FORMAT, "%s: model.merges[%zu] is neither \"a b\" nor [a, b]", path, i);
        }
        if (st) return st;
    }
    return GR_OK;
}

static gr_status load_model(gr_tokenizer *t, json_t *m, const char *path)
{
    if (!json_is_object(m)) return gr_fail(GR_ERR_FORMAT, "%s: 'model' is missing", path);
    const char *type = jstr(m, "type", NULL);
    if (!type) type = json_object_get(m, "merges") ? "BPE" : json_is_array(json_object_get(m, "vocab")) ? "Unigram" : "?";
    if (strcmp(type, "BPE") == 0) {
        t->kind = GR_TOK_BPE;
        const char *p1 = jstr(m, "continuing_subword_prefix", NULL), *p2 = jstr(m, "end_of_word_suffix", NULL);
        if ((p1 && *p1) || (p2 && *p2))
            return gr_fail(GR_ERR_UNSUPPORTED, "%s: model.continuing_subword_prefix / end_of_word_suffix are not supported", path);
        json_t *dr = json_object_get(m, "dropout");
        if (json_is_number(dr) && json_number_value(dr) > 0)
            return gr_fail(GR_ERR_UNSUPPORTED, "%s: model.dropout is not supported (training-time only)", path);
        gr_status st = load_vocab_object(t, json_object_get(m, "vocab"), path, "model.vocab");
        if (!st) st = load_merges_json(t, json_object_get(m, "merges"), path);
        if (st) return st;
        t->fuse_unk = jbool(m, "fuse_unk", 0);
        t->byte_fallback = jbool(m, "byte_fallback", 0);
        t->ignore_merges = jbool(m, "ignore_merges", 0);
        size_t n;
        const char *unk = jstr(m, "unk_token", &n);
        if (unk) {
            t->unk_id = gr_tok_lookup(t, unk, n);
            if (t->unk_id < 0) return gr_fail(GR_ERR_FORMAT, "%s: model.unk_token '%s' is not in the vocabulary", path, unk);
        }
        return GR_OK;
    }
    if (strcmp(type, "Unigram") == 0) {
        t->kind = GR_TOK_UNIGRAM;
        t->fuse_unk = 1;
        json_t *vocab = json_object_get(m, "vocab"), *x;
        size_t i;
        if (!json_is_array(vocab) || json_array_size(vocab) == 0) return gr_fail(GR_ERR_FORMAT, "%s: model.vocab must be a list of [piece, score]", path);
        json_array_foreach(vocab, i, x) {
            json_t *p = json_array_get(x, 0), *s = json_array_get(x, 1);
            if (!json_is_string(p) || !json_is_number(s)) return gr_fail(GR_ERR_FORMAT, "%s: model.vocab[%zu] is not [piece, score]", path, i);
            gr_status st = gr_tok_push_piece(t, json_string_value(p), json_string_length(p), (float)json_number_value(s), GR_PIECE_NORMAL, NULL);
            if (st) return st;
        }
        json_t *u = json_object_get(m, "unk_id");
        if (json_is_integer(u)) {
            t->unk_id = (int32_t)json_integer_value(u);
            if (t->unk_id < 0 || t->unk_id >= t->n_model) return gr_fail(GR_ERR_FORMAT, "%s: model.unk_id out of range", path);
            t->pieces[t->unk_id].type = GR_PIECE_UNKNOWN;
        }
        t->byte_fallback = jbool(m, "byte_fallback", 0);
        return GR_OK;
    }
    return gr_fail(GR_ERR_UNSUPPORTED, "%s: model type '%s' is not supported (BPE and Unigram are)", path, type);
}

static gr_status load_added_json(gr_tokenizer *t, json_t *list, const char *path)
{
    size_t i;
    json_t *x;
    if (!list || json_is_null(list)) return GR_OK;
    if (!json_is_array(list)) return gr_fail(GR_ERR_FORMAT, "%s: 'added_tokens' must be a list", path);
    json_array_foreach(list, i, x) {
        size_t n;
        const char *c = jstr(x, "content", &n);
        json_t *id = json_object_get(x, "id");
        if (!c || !json_is_integer(id)) return gr_fail(GR_ERR_FORMAT, "%s: added_tokens[%zu] needs id and content", path, i);
        int special = jbool(x, "special", 0);
        gr_status st = gr_tok_add_added(t, c, n, (int32_t)json_integer_value(id), special, jbool(x, "lstrip", 0),
                                        jbool(x, "rstrip", 0), jbool(x, "single_word", 0), jbool(x, "normalized", !special));
        if (st) return st;
    }
    return GR_OK;
}

gr_status gr_tok_load_hf_json(const char *path, gr_tokenizer **out)
{
    json_t *j;
    gr_status st = load_json(path, &j);
    if (st) return st;
    gr_tokenizer *t = gr_tok_alloc(path);
    if (!t) { json_decref(j); return gr_fail(GR_ERR_NOMEM, "%s: out of memory", path); }
    if (!json_is_object(j)) st = gr_fail(GR_ERR_FORMAT, "%s: not a tokenizer.json (top level is not an object)", path);
    if (!st) st = load_model(t, json_object_get(j, "model"), path);
    if (!st) st = gr_tok_finish(t);
    if (!st) st = load_added_json(t, json_object_get(j, "added_tokens"), path);
    if (!st) st = add_normalizer(t, json_object_get(j, "normalizer"), path);
    if (!st) st = add_pretok(t, json_object_get(j, "pre_tokenizer"), path);
    if (!st) st = add_post(t, json_object_get(j, "post_processor"), path);
    if (!st) st = add_decoder(t, json_object_get(j, "decoder"), path);
    json_decref(j);
    if (st) { gr_tokenizer_free(t); return st; }
    if (t->byte_level) t->byte_fallback = 0;
    snprintf(t->desc, sizeof t->desc, "%s%s, %d ids (%s)", t->byte_level ? "byte-level " : "",
             t->kind == GR_TOK_BPE ? (t->byte_fallback ? "BPE with byte fallback" : "BPE") : "Unigram", t->n_ids, path);
    *out = t;
    return GR_OK;
}

/* ---- vocab.json + merges.txt (GPT-2, OPT) ---- */

gr_status gr_tok_load_vocab_merges(const char *vocab_path, const char *merges_path, gr_tokenizer **out)
{
    json_t *j;
    gr_status st = load_json(vocab_path, &j);
    if (st) return st;
    gr_tokenizer *t = gr_tok_alloc(vocab_path);
    if (!t) { json_decref(j); return gr_fail(GR_ERR_NOMEM, "%s: out of memory", vocab_path); }
    t->kind = GR_TOK_BPE;
    st = load_vocab_object(t, j, vocab_path, "vocabulary");
    json_decref(j);
    char *m = NULL;
    size_t mlen = 0;
    if (!st && !gr_path_exists(merges_path)) st = gr_fail(GR_ERR_NOT_FOUND, "%s: file not found (vocab.json needs its merges)", merges_path);
    if (!st) st = gr_read_file(merges_path, &m, &mlen);
    size_t line = 0;
    for (size_t pos = 0; !st && pos < mlen;) {
        const char *s = m + pos;
        const char *nl = memchr(s, '\n', mlen - pos);
        size_t n = nl ? (size_t)(nl - s) : mlen - pos;
        pos += n + (nl ? 1 : 0);
        line++;
        if (n && s[n - 1] == '\r') n--;
        if (n == 0 || (line == 1 && n >= 8 && memcmp(s, "#version", 8) == 0)) continue;
        const char *sp = memchr(s, ' ', n);
        if (!sp || memchr(sp + 1, ' ', n - (size_t)(sp + 1 - s)))
            st = gr_fail(GR_ERR_FORMAT, "%s: line %zu is not two tokens separated by one space", merges_path, line);
        else
            st = merge_line(t, s, (size_t)(sp - s), sp + 1, n - (size_t)(sp + 1 - s), merges_path, line);
    }
    free(m);
    if (!st && t->n_merges == 0) st = gr_fail(GR_ERR_FORMAT, "%s: no merges", merges_path);
    if (!st) st = gr_tok_finish(t);
    if (!st) st = gr_tok_setup_gpt2_pipeline(t);
    if (st) { gr_tokenizer_free(t); return st; }
    snprintf(t->desc, sizeof t->desc, "byte-level BPE, %d ids (vocab.json + merges.txt)", t->n_ids);
    *out = t;
    return GR_OK;
}

/* ---- tokenizer_config.json / special_tokens_map.json ---- */

static const char *token_text(json_t *v, size_t *n)
{
    if (json_is_string(v)) { *n = json_string_length(v); return json_string_value(v); }
    if (json_is_object(v)) return jstr(v, "content", n);
    return NULL;
}

/* Sets a role from a config key; the token becomes a special added token (matched in text). */
static gr_status set_role(gr_tokenizer *t, json_t *cfg, const char *key, int32_t *role, const char *path)
{
    json_t *v = json_object_get(cfg, key);
    if (!v) return GR_OK;
    if (json_is_null(v)) { if (strcmp(key, "pad_token") == 0) *role = -1; return GR_OK; }
    size_t n;
    const char *s = token_text(v, &n);
    if (!s) return gr_fail(GR_ERR_FORMAT, "%s: '%s' must be a string or {\"content\": ...}", path, key);
    int32_t id = gr_tokenizer_piece_id(t, s, n);
    if (id < 0) return GR_OK; /* a name the vocabulary lacks: HF would add a new id; we keep none */
    *role = id;
    return gr_tok_add_added(t, s, n, id, 1, 0, 0, 0, 0);
}

static gr_status apply_one(gr_tokenizer *t, const char *path, int has_tokenizer_json)
{
    json_t *cfg;
    /* configs carry numbers like model_max_length = 1e30 written as integers */
    gr_status st = load_json_flags(path, JSON_DECODE_INT_AS_REAL, &cfg);
    if (st) return st;
    if (!json_is_object(cfg)) { json_decref(cfg); return gr_fail(GR_ERR_FORMAT, "%s: top level is not an object", path); }
    json_t *dec = json_object_get(cfg, "added_tokens_decoder"), *x;
    const char *k;
    if (json_is_object(dec))
        json_object_foreach(dec, k, x) {
            char *end;
            long id = strtol(k, &end, 10);
            size_t n;
            const char *c = jstr(x, "content", &n);
            if (*end || id < 0 || !c) { st = gr_fail(GR_ERR_FORMAT, "%s: added_tokens_decoder['%s'] is malformed", path, k); break; }
            int special = jbool(x, "special", 0);
            st = gr_tok_add_added(t, c, n, (int32_t)id, special, jbool(x, "lstrip", 0), jbool(x, "rstrip", 0),
                                  jbool(x, "single_word", 0), jbool(x, "normalized", !special));
            if (st) break;
        }
    json_t *extra = json_object_get(cfg, "extra_ids");
    if (!st && t->spm && json_is_number(extra) && json_number_value(extra) >= 1 && json_number_value(extra) < 100000) {
        /* T5: <extra_id_i> = vocab + extra_ids - 1 - i */
        int32_t ne = (int32_t)json_number_value(extra), base = t->n_model;
        for (int32_t i = 0; i < ne && !st; i++) {
            char name[32];
            int n = snprintf(name, sizeof name, "<extra_id_%d>", i);
            if (gr_tokenizer_piece_id(t, name, (size_t)n) < 0) st = gr_tok_add_added(t, name, (size_t)n, base + ne - 1 - i, 1, 0, 0, 0, 0);
        }
    }
    if (!st) st = set_role(t, cfg, "bos_token", &t->bos_id, path);
    if (!st) st = set_role(t, cfg, "eos_token", &t->eos_id, path);
    if (!st) st = set_role(t, cfg, "unk_token", &t->unk_id, path);
    if (!st) st = set_role(t, cfg, "pad_token", &t->pad_id, path);
    json_t *more = json_object_get(cfg, "additional_special_tokens");
    size_t i;
    if (!st && json_is_array(more))
        json_array_foreach(more, i, x) {
            size_t n;
            const char *s = token_text(x, &n);
            int32_t id = s ? gr_tokenizer_piece_id(t, s, n) : -1;
            if (id >= 0 && (st = gr_tok_add_added(t, s, n, id, 1, 0, 0, 0, 0))) break;
        }
    if (!st && json_is_boolean(json_object_get(cfg, "clean_up_tokenization_spaces")))
        t->cleanup_spaces = jbool(cfg, "clean_up_tokenization_spaces", 0);
    /* add_bos_token / add_eos_token: the slow tokenizers' rule (GPT2Tokenizer for OPT,
     * LlamaTokenizer); with a tokenizer.json only Llama-style classes rebuild their template. */
    const char *cls = jstr(cfg, "tokenizer_class", NULL);
    int rule = !has_tokenizer_json || (cls && (strstr(cls, "Llama") || strstr(cls, "Gemma")));
    json_t *ab = json_object_get(cfg, "add_bos_token"), *ae = json_object_get(cfg, "add_eos_token");
    if (!st && rule && (json_is_boolean(ab) || json_is_boolean(ae))) {
        int add_bos = json_is_boolean(ab) ? json_is_true(ab) : (t->n_prefix > 0);
        int add_eos = json_is_boolean(ae) ? json_is_true(ae) : (t->n_suffix > 0);
        if ((add_bos && t->bos_id < 0) || (add_eos && t->eos_id < 0))
            st = gr_fail(GR_ERR_FORMAT, "%s: add_%s_token is true but there is no %s token", path, add_bos && t->bos_id < 0 ? "bos" : "eos",
                         add_bos && t->bos_id < 0 ? "bos" : "eos");
        else {
            t->n_prefix = t->n_suffix = 0;
            if (add_bos) t->prefix[t->n_prefix++] = t->bos_id;
            if (add_eos) t->suffix[t->n_suffix++] = t->eos_id;
        }
    }
    json_decref(cfg);
    return st;
}

gr_status gr_tok_apply_config(gr_tokenizer *t, const char *dir)
{
    static const char *const names[] = {"tokenizer_config.json", "special_tokens_map.json"};
    char *tj = gr_path_join(dir, "tokenizer.json");
    if (!tj) return gr_fail(GR_ERR_NOMEM, "out of memory");
    int has_tj = gr_path_exists(tj) && !t->spm;
    free(tj);
    for (int i = 0; i < 2; i++) {
        char *p = gr_path_join(dir, names[i]);
        if (!p) return gr_fail(GR_ERR_NOMEM, "out of memory");
        gr_status st = gr_path_exists(p) ? apply_one(t, p, has_tj) : GR_OK;
        free(p);
        if (st) return st;
    }
    return gr_tok_index_added(t);
}
