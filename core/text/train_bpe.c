/* BPE training (byte-level or metaspace) on text files; see tokenizer_train.h.
 *
 * The classic algorithm on unique words: count the pre-tokenized words, split each into
 * symbols, count adjacent symbol pairs weighted by word frequency, and repeatedly merge the
 * best pair. Each pair keeps the list of words it occurs in, so a merge touches only those
 * words; counts are updated by removing the word's old pairs and adding its new ones, and a
 * max-heap with lazy invalidation (an entry is live while its count equals the pair's count)
 * finds the next best pair. A merge only destroys adjacencies or creates ones that involve the
 * new symbol, so a word is appended to a pair's list only for pairs with the new symbol: the
 * invariant "every pair present in a word lists that word" holds throughout. */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "base/fsutil.h"
#include "text/tok_internal.h"
#include "text/tokenizer_train.h"

/* ---- interned strings: id -> bytes, bytes -> id ---- */

typedef struct strtab { gr_strlist s; int32_t *slot; size_t cap; } strtab;

static int32_t strtab_find(const strtab *t, const char *s, size_t n)
{
    if (!t->cap) return -1;
    size_t j = gr_hash_bytes(s, n) & (t->cap - 1);
    for (; t->slot[j] >= 0; j = (j + 1) & (t->cap - 1)) {
        size_t l;
        const char *p = gr_strlist_at(&t->s, (size_t)t->slot[j], &l);
        if (l == n && memcmp(p, s, n) == 0) return t->slot[j];
    }
    return -1;
}

/* Returns the id (new or existing), -1 when out of memory; *added says which. */
static int32_t strtab_add(strtab *t, const char *s, size_t n, int *added)
{
    *added = 0;
    int32_t id = strtab_find(t, s, n);
    if (id >= 0) return id;
    if ((t->s.n + 1) * 2 > t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 1024;
        int32_t *slot = malloc(cap * sizeof *slot);
        if (!slot) return -1;
        for (size_t i = 0; i < cap; i++) slot[i] = -1;
        for (size_t i = 0; i < t->s.n; i++) {
            size_t l;
            const char *p = gr_strlist_at(&t->s, i, &l);
            size_t j = gr_hash_bytes(p, l) & (cap - 1);
            while (slot[j] >= 0) j = (j + 1) & (cap - 1);
            slot[j] = (int32_t)i;
        }
        free(t->slot);
        t->slot = slot;
        t->cap = cap;
    }
    if (t->s.n >= INT32_MAX - 1) return -1;
    gr_strlist_push(&t->s, s, n);
    if (t->s.oom) return -1;
    id = (int32_t)(t->s.n - 1);
    size_t j = gr_hash_bytes(s, n) & (t->cap - 1);
    while (t->slot[j] >= 0) j = (j + 1) & (t->cap - 1);
    t->slot[j] = id;
    *added = 1;
    return id;
}

static void strtab_free(strtab *t) { gr_strlist_free(&t->s); free(t->slot); memset(t, 0, sizeof *t); }

static const char *str_of(const strtab *t, int32_t id, size_t *n) { return gr_strlist_at(&t->s, (size_t)id, n); }

static int bytes_cmp(const char *a, size_t na, const char *b, size_t nb)
{
    int c = memcmp(a, b, na < nb ? na : nb);
    return c ? c : (na < nb ? -1 : na > nb);
}

/* ---- the training state ---- */

typedef struct pair_rec {
    int32_t a, b;
    int64_t count, delta;   /* delta: change during the current merge */
    int32_t *w; uint32_t nw, cw; /* words holding the pair (may hold stale entries) */
    uint8_t touched, banned;
} pair_rec;

typedef struct heap_ent { int64_t count; int32_t pair; } heap_ent;

typedef struct trainer {
    strtab words;           /* unique pre-tokenized words */
    int64_t *wcount;
    size_t wcap;
    int32_t *sym;           /* the symbols of every word, back to back */
    size_t *woff;
    uint32_t *wlen;
    int64_t *wstamp;        /* last merge that processed the word */
    strtab syms;            /* symbol id -> string (alphabet first, then merge results) */
    strtab reserved;        /* strings a merge must not produce (special and byte pieces) */
    pair_rec *pairs; size_t npairs, cpairs;
    gr_pairmap pmap;        /* (a, b) -> index in pairs (stored as the map's "rank") */
    heap_ent *heap; size_t nheap, cheap;
    int32_t *touched; size_t ntouched, ctouched;
    int32_t (*merges)[2]; size_t nmerges, cmerges;
} trainer;

static void trainer_free(trainer *t)
{
    strtab_free(&t->words);
    free(t->wcount);
    free(t->sym);
    free(t->woff);
    free(t->wlen);
    free(t->wstamp);
    strtab_free(&t->syms);
    strtab_free(&t->reserved);
    for (size_t i = 0; i < t->npairs; i++) free(t->pairs[i].w);
    free(t->pairs);
    gr_pairmap_free(&t->pmap);
    free(t->heap);
    free(t->touched);
    free(t->merges);
}

static int pair_less(const trainer *t, int32_t x, int32_t y)
{
    const pair_rec *p = &t->pairs[x], *q = &t->pairs[y];
    size_t n1, n2;
    const char *s1 = str_of(&t->syms, p->a, &n1), *s2 = str_of(&t->syms, q->a, &n2);
    int c = bytes_cmp(s1, n1, s2, n2);
    if (c) return c < 0;
    s1 = str_of(&t->syms, p->b, &n1);
    s2 = str_of(&t->syms, q->b, &n2);
    return bytes_cmp(s1, n1, s2, n2) < 0;
}

/* x goes above y: higher count, then the lexicographically smaller (left, right). */
static int heap_above(const trainer *t, const heap_ent *x, const heap_ent *y)
{
    if (x->count != y->count) return x->count > y->count;
    return pair_less(t, x->pair, y->pair);
}

static int heap_push(trainer *t, int64_t count, int32_t pair)
{
    heap_ent *h = gr_tok_grow(t->heap, sizeof *h, t->nheap + 1, &t->cheap);
    if (!h) return 0;
    t->heap = h;
    size_t i = t->nheap++;
    heap_ent e = {count, pair};
    while (i > 0 && heap_above(t, &e, &h[(i - 1) / 2])) { h[i] = h[(i - 1) / 2]; i = (i - 1) / 2; }
    h[i] = e;
    return 1;
}

static heap_ent heap_pop(trainer *t)
{
    heap_ent *h = t->heap, top = h[0], last = h[--t->nheap];
    size_t i = 0, n = t->nheap;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && heap_above(t, &h[c + 1], &h[c])) c++;
        if (!heap_above(t, &h[c], &last)) break;
        h[i] = h[c];
        i = c;
    }
    if (n) h[i] = last;
    return top;
}

/* The pair (a, b), created when absent; -1 when out of memory. */
static int32_t pair_get(trainer *t, int32_t a, int32_t b)
{
    int32_t idx, unused;
    if (gr_pairmap_get(&t->pmap, a, b, &idx, &unused)) return idx;
    pair_rec *p = gr_tok_grow(t->pairs, sizeof *p, t->npairs + 1, &t->cpairs);
    if (!p || t->npairs >= INT32_MAX) return -1;
    t->pairs = p;
    idx = (int32_t)t->npairs;
    if (gr_pairmap_put(&t->pmap, a, b, idx, 0) < 0) return -1;
    memset(&p[idx], 0, sizeof p[idx]);
    p[idx].a = a;
    p[idx].b = b;
    t->npairs++;
    return idx;
}

/* Adds d to the count of (a, b); with w >= 0 also lists word w under the pair. */
static int pair_add(trainer *t, int32_t a, int32_t b, int64_t d, int32_t w)
{
    int32_t idx = pair_get(t, a, b);
    if (idx < 0) return 0;
    pair_rec *p = &t->pairs[idx];
    p->count += d;
    p->delta += d;
    if (!p->touched) {
        int32_t *v = gr_tok_grow(t->touched, sizeof *v, t->ntouched + 1, &t->ctouched);
        if (!v) return 0;
        t->touched = v;
        v[t->ntouched++] = idx;
        p->touched = 1;
    }
    if (w >= 0 && (p->nw == 0 || p->w[p->nw - 1] != w)) {
        size_t cap = p->cw;
        int32_t *v = gr_tok_grow(p->w, sizeof *v, (size_t)p->nw + 1, &cap);
        if (!v || cap > UINT32_MAX) return 0;
        p->w = v;
        p->cw = (uint32_t)cap;
        p->w[p->nw++] = w;
    }
    return 1;
}

/* Pushes the pairs whose count changed (and is still positive) and clears the marks. */
static int flush_touched(trainer *t)
{
    for (size_t i = 0; i < t->ntouched; i++) {
        pair_rec *p = &t->pairs[t->touched[i]];
        p->touched = 0;
        if (p->delta != 0 && p->count > 0 && !p->banned && !heap_push(t, p->count, t->touched[i])) return 0;
        p->delta = 0;
    }
    t->ntouched = 0;
    return 1;
}

/* ---- reading and pre-tokenizing the corpus ---- */

static gr_status count_words(trainer *t, const gr_tokenizer *tok, const char *path, gr_bpe_train_stats *st)
{
    char *data;
    size_t len;
    gr_status s = gr_read_file(path, &data, &len);
    if (s) return s;
    gr_strlist a = {0}, b = {0};
    gr_buf norm = {0}, tmp = {0};
    size_t pos = 0;
    int64_t line_no = 0;
    while (!s && pos < len) {
        const char *line = data + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - line) : len - pos;
        pos += n + (nl ? 1 : 0);
        line_no++;
        if (n && line[n - 1] == '\r') n--;
        if (n == 0) continue;
        if (!gr_utf8_valid(line, n)) { s = gr_fail(GR_ERR_FORMAT, "%s: line %lld is not valid UTF-8", path, (long long)line_no); break; }
        st->lines++;
        const char *cur = line;
        size_t cur_len = n;
        for (int i = 0; i < tok->n_norms && !s; i++) {
            tmp.len = 0;
            s = gr_norm_apply(tok, &tok->norms[i], cur, cur_len, &tmp);
            gr_buf x = norm; norm = tmp; tmp = x;
            cur = norm.p ? norm.p : "";
            cur_len = norm.len;
        }
        gr_strlist_clear(&a);
        gr_strlist_push(&a, cur, cur_len);
        for (int i = 0; i < tok->n_pres && !s; i++) {
            gr_strlist_clear(&b);
            s = gr_pretok_apply(&tok->pres[i], &a, &b, 1);
            gr_strlist x = a; a = b; b = x;
        }
        if (!s && (a.oom || norm.oom || tmp.oom)) s = gr_fail(GR_ERR_NOMEM, "%s: out of memory", path);
        for (size_t w = 0; w < a.n && !s; w++) {
            size_t wl;
            const char *ws = gr_strlist_at(&a, w, &wl);
            int added;
            int32_t id = strtab_add(&t->words, ws, wl, &added);
            int64_t *c = id < 0 ? NULL : gr_tok_grow(t->wcount, sizeof *c, (size_t)id + 1, &t->wcap);
            if (!c) { s = gr_fail(GR_ERR_NOMEM, "%s: out of memory", path); break; }
            t->wcount = c;
            if (added) c[id] = 0;
            c[id]++;
            st->words++;
        }
    }
    gr_strlist_free(&a);
    gr_strlist_free(&b);
    gr_buf_free(&norm);
    gr_buf_free(&tmp);
    free(data);
    return s;
}

/* ---- alphabet ---- */

typedef struct char_ent { uint32_t cp; int64_t count; } char_ent;

static int cmp_char_cp(const void *x, const void *y)
{
    const char_ent *a = x, *b = y;
    return a->cp < b->cp ? -1 : a->cp > b->cp;
}

static int cmp_char_freq(const void *x, const void *y)
{
    const char_ent *a = x, *b = y;
    if (a->count != b->count) return a->count > b->count ? -1 : 1;
    return a->cp < b->cp ? -1 : a->cp > b->cp;
}

/* Byte-level: the 256 mapped bytes in code-point order (GPT-2's vocabulary order).
 * Metaspace: the corpus's characters by frequency, as many as `budget` allows. */
static gr_status build_alphabet(trainer *t, const gr_bpe_train_options *o, int32_t budget, gr_bpe_train_stats *st)
{
    char_ent *ch = NULL;
    size_t nch = 0;
    if (o->byte_level) {
        ch = malloc(256 * sizeof *ch);
        if (!ch) return gr_fail(GR_ERR_NOMEM, "tokenizer train: out of memory");
        for (int byte = 0; byte < 256; byte++) {
            char u[3];
            int ul;
            gr_bytelevel_char((unsigned char)byte, u, &ul);
            gr_utf8_decode((const unsigned char *)u, (size_t)ul, &ch[nch].cp);
            ch[nch++].count = 0;
        }
        qsort(ch, nch, sizeof *ch, cmp_char_cp);
    } else {
        strtab chars = {0};
        int64_t *cnt = NULL;
        size_t ccap = 0;
        for (size_t w = 0; w < t->words.s.n; w++) {
            size_t wl;
            const char *ws = gr_strlist_at(&t->words.s, w, &wl);
            for (size_t k = 0; k < wl;) {
                uint32_t cp;
                int l = gr_utf8_decode((const unsigned char *)ws + k, wl - k, &cp);
                int added;
                int32_t id = strtab_add(&chars, ws + k, (size_t)l, &added);
                int64_t *c = id < 0 ? NULL : gr_tok_grow(cnt, sizeof *c, (size_t)id + 1, &ccap);
                if (!c) { free(cnt); strtab_free(&chars); return gr_fail(GR_ERR_NOMEM, "tokenizer train: out of memory"); }
                cnt = c;
                if (added) cnt[id] = 0;
                cnt[id] += t->wcount[w];
                k += (size_t)l;
            }
        }
        nch = chars.s.n;
        ch = malloc((nch + 1) * sizeof *ch);
        if (!ch) { free(cnt); strtab_free(&chars); return gr_fail(GR_ERR_NOMEM, "tokenizer train: out of memory"); }
        for (size_t i = 0; i < nch; i++) {
            size_t l;
            const char *s = gr_strlist_at(&chars.s, i, &l);
            gr_utf8_decode((const unsigned char *)s, l, &ch[i].cp);
            ch[i].count = cnt[i];
        }
        free(cnt);
        strtab_free(&chars);
        qsort(ch, nch, sizeof *ch, cmp_char_freq);
        if (nch > (size_t)budget) {
            st->dropped_chars = (int32_t)(nch - (size_t)budget);
            nch = (size_t)budget;
        }
    }
    for (size_t i = 0; i < nch; i++) {
        char u[4];
        int ul = gr_utf8_encode(ch[i].cp, u), added;
        if (strtab_add(&t->syms, u, (size_t)ul, &added) < 0) { free(ch); return gr_fail(GR_ERR_NOMEM, "tokenizer train: out of memory"); }
    }
    st->alphabet = (int32_t)nch;
    free(ch);
    return GR_OK;
}

/* Splits every word into alphabet symbols (-1 for a character left to byte fallback, which
 * never pairs) and counts the pairs. */
static gr_status split_words(trainer *t)
{
    size_t nw = t->words.s.n, total = t->words.s.buf.len;
    t->sym = malloc((total + 1) * sizeof *t->sym);
    t->woff = malloc((nw + 1) * sizeof *t->woff);
    t->wlen = malloc((nw + 1) * sizeof *t->wlen);
    t->wstamp = malloc((nw + 1) * sizeof *t->wstamp);
    if (!t->sym || !t->woff || !t->wlen || !t->wstamp) return gr_fail(GR_ERR_NOMEM, "tokenizer train: out of memory");
    size_t at = 0;
    for (size_t w = 0; w < nw; w++) {
        size_t wl;
        const char *ws = gr_strlist_at(&t->words.s, w, &wl);
        t->woff[w] = at;
        t->wstamp[w] = -1;
        uint32_t n = 0;
        for (size_t k = 0; k < wl;) {
            uint32_t cp;
            int l = gr_utf8_decode((const unsigned char *)ws + k, wl - k, &cp);
            t->sym[at + n++] = strtab_find(&t->syms, ws + k, (size_t)l);
            k += (size_t)l;
        }
        t->wlen[w] = n;
        for (uint32_t i = 0; i + 1 < n; i++) {
            int32_t x = t->sym[at + i], y = t->sym[at + i + 1];
            if (x >= 0 && y >= 0 && !pair_add(t, x, y, t->wcount[w], (int32_t)w)) return gr_fail(GR_ERR_NOMEM, "tokenizer train: out of memory");
        }
        at += n;
    }
    if (!flush_touched(t)) return gr_fail(GR_ERR_NOMEM, "tokenizer train: out of memory");
    return GR_OK;
}

/* Replaces (a, b) by c in word w, updating pair counts and lists. */
static int merge_word(trainer *t, int32_t w, int32_t a, int32_t b, int32_t c)
{
    int32_t *s = t->sym + t->woff[w];
    uint32_t n = t->wlen[w], i, j;
    int64_t wc = t->wcount[w];
    for (i = 0; i + 1 < n; i++)
        if (s[i] == a && s[i + 1] == b) break;
    if (i + 1 >= n) return 1; /* stale entry */
    for (i = 0; i + 1 < n; i++)
        if (s[i] >= 0 && s[i + 1] >= 0 && !pair_add(t, s[i], s[i + 1], -wc, -1)) return 0;
    for (i = 0, j = 0; i < n;) {
        if (i + 1 < n && s[i] == a && s[i + 1] == b) { s[j++] = c; i += 2; }
        else s[j++] = s[i++];
    }
    t->wlen[w] = n = j;
    for (i = 0; i + 1 < n; i++)
        if (s[i] >= 0 && s[i + 1] >= 0 && !pair_add(t, s[i], s[i + 1], wc, (s[i] == c || s[i + 1] == c) ? w : -1)) return 0;
    return 1;
}

/* ---- families ---- */

typedef struct family_spec {
    const char *tokens[4]; int n;   /* in id order */
    int bos, eos, pad, unk;         /* indices into tokens, -1 none */
    int add_bos, add_eos;
} family_spec;

static const family_spec FAMILIES[3] = {
    /* OPT: GPT-2's vocabulary with <s> <pad> </s> <unk> first; "</s>" doubles as BOS */
    {{"<s>", "<pad>", "</s>", "<unk>"}, 4, 2, 2, 1, -1, 1, 0},
    {{"<unk>", "<s>", "</s>", NULL}, 3, 1, 2, -1, 0, 1, 0},
    {{"<pad>", "</s>", "<unk>", NULL}, 3, -1, 1, 0, 2, 0, 1},
};

gr_status gr_tok_family_parse(const char *name, gr_tok_family *out)
{
    static const char *const names[] = {"opt", "llama", "t5"};
    for (int i = 0; i < 3; i++)
        if (strcmp(name, names[i]) == 0) { *out = (gr_tok_family)i; return GR_OK; }
    return gr_fail(GR_ERR_INVALID, "tokenizer family '%s': expected opt, llama or t5", name);
}

const char *gr_tok_family_name(gr_tok_family f)
{
    return f == GR_TOK_FAMILY_OPT ? "opt" : f == GR_TOK_FAMILY_LLAMA ? "llama" : f == GR_TOK_FAMILY_T5 ? "t5" : "?";
}

void gr_bpe_train_defaults(gr_bpe_train_options *o)
{
    memset(o, 0, sizeof *o);
    o->byte_level = 1;
    o->family = GR_TOK_FAMILY_OPT;
    o->vocab_size = 1024;
    o->min_frequency = 2;
}

/* ---- assembling the tokenizer ---- */

static gr_status assemble(trainer *t, const gr_bpe_train_options *o, const family_spec *f, gr_tokenizer **out,
                          gr_bpe_train_stats *st)
{
    gr_tokenizer *tok;
    gr_status s = gr_tokenizer_new(GR_TOK_BPE, o->byte_level, &tok);
    if (s) return s;
    int32_t nsym = (int32_t)t->syms.s.n, nalpha = st->alphabet, nnew = nsym - nalpha;
    int32_t base = f->n + (o->byte_level ? 0 : 256);
    int32_t *final = malloc(((size_t)nsym + 1) * sizeof *final);
    if (!final) { gr_tokenizer_free(tok); return gr_fail(GR_ERR_NOMEM, "tokenizer train: out of memory"); }
    for (int32_t i = 0; i < nsym; i++)
        final[i] = o->byte_level ? base + i : i >= nalpha ? base + (i - nalpha) : base + nnew + i;
    for (int i = 0; i < f->n && !s; i++) s = gr_tokenizer_add_piece(tok, f->tokens[i], strlen(f->tokens[i]), 0.0f, GR_PIECE_NORMAL, NULL);
    for (int byte = 0; byte < 256 && !o->byte_level && !s; byte++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", byte);
        s = gr_tokenizer_add_piece(tok, name, 6, 0.0f, GR_PIECE_BYTE, NULL);
    }
    /* model pieces in final id order; SentencePiece-style scores (merge order, then characters) */
    for (int32_t k = 0; k < nsym && !s; k++) {
        int32_t i = o->byte_level ? k : k < nnew ? nalpha + k : k - nnew;
        size_t l;
        const char *p = str_of(&t->syms, i, &l);
        float score = o->byte_level ? 0.0f : -(float)k;
        int32_t id;
        s = gr_tokenizer_add_piece(tok, p, l, score, GR_PIECE_NORMAL, &id);
        if (!s && id != final[i]) s = gr_fail(GR_ERR_INVALID, "tokenizer train: internal id mismatch for piece %d", (int)i);
    }
    for (size_t m = 0; m < t->nmerges && !s; m++) s = gr_tokenizer_add_merge(tok, final[t->merges[m][0]], final[t->merges[m][1]]);
    free(final);
    /* every family token is an added special token (cut out of text whole), as in the real
     * tokenizer.json files */
    int32_t ids[4];
    for (int i = 0; i < f->n && !s; i++) s = gr_tokenizer_add_special(tok, f->tokens[i], &ids[i]);
    /* byte-level never meets an unknown symbol (GPT-2's tokenizer.json has no unk_token) */
    if (!s)
        s = gr_tokenizer_set_specials(tok, f->bos >= 0 ? ids[f->bos] : -1, f->eos >= 0 ? ids[f->eos] : -1,
                                      f->pad >= 0 ? ids[f->pad] : -1, f->unk >= 0 && !o->byte_level ? ids[f->unk] : -1,
                                      f->add_bos, f->add_eos);
    if (!s && !o->byte_level) tok->fuse_unk = 1; /* as Llama's tokenizer.json */
    if (s) { gr_tokenizer_free(tok); return s; }
    snprintf(tok->desc, sizeof tok->desc, "%s BPE, %d ids (trained, %s specials)", o->byte_level ? "byte-level" : "metaspace",
             (int)tok->n_ids, gr_tok_family_name(o->family));
    st->vocab = tok->n_ids;
    *out = tok;
    return GR_OK;
}

gr_status gr_bpe_train(const gr_bpe_train_options *o, const char *const *corpus, int n_corpus, gr_tokenizer **out,
                       gr_bpe_train_stats *stats)
{
    *out = NULL;
    gr_bpe_train_stats st_local, *st = stats ? stats : &st_local;
    memset(st, 0, sizeof *st);
    if ((int)o->family < 0 || (int)o->family > 2) return gr_fail(GR_ERR_INVALID, "tokenizer train: unknown family %d", (int)o->family);
    if (n_corpus < 1) return gr_fail(GR_ERR_INVALID, "tokenizer train: no corpus file");
    const family_spec *f = &FAMILIES[o->family];
    int32_t fixed = f->n + 256; /* specials + bytes (byte-level alphabet or byte-fallback pieces) */
    if (o->vocab_size < fixed + 1 || o->vocab_size > (1 << 24))
        return gr_fail(GR_ERR_INVALID, "tokenizer train: vocab size %d out of range (%d..%d for %s %s)", (int)o->vocab_size,
                       (int)fixed + 1, 1 << 24, o->byte_level ? "byte-level" : "metaspace", gr_tok_family_name(o->family));
    if (o->min_frequency < 1) return gr_fail(GR_ERR_INVALID, "tokenizer train: min frequency %lld must be >= 1", (long long)o->min_frequency);

    gr_tokenizer *proto; /* the pipeline the trained tokenizer will run: pre-tokenize with it */
    gr_status s = gr_tokenizer_new(GR_TOK_BPE, o->byte_level, &proto);
    if (s) return s;
    trainer t;
    memset(&t, 0, sizeof t);
    for (int i = 0; i < n_corpus && !s; i++) s = count_words(&t, proto, corpus[i], st);
    gr_tokenizer_free(proto);
    if (!s && st->words == 0) s = gr_fail(GR_ERR_INVALID, "%s: the corpus has no text", corpus[0]);
    st->unique_words = (int64_t)t.words.s.n;
    if (!s) s = build_alphabet(&t, o, o->vocab_size - fixed, st);
    if (!s) s = split_words(&t);
    /* strings no merge may produce: they name special or byte pieces */
    for (int i = 0; i < f->n && !s; i++) {
        int added;
        if (strtab_add(&t.reserved, f->tokens[i], strlen(f->tokens[i]), &added) < 0) s = gr_fail(GR_ERR_NOMEM, "tokenizer train: out of memory");
    }
    for (int byte = 0; byte < 256 && !o->byte_level && !s; byte++) {
        char name[8];
        int added;
        snprintf(name, sizeof name, "<0x%02X>", byte);
        if (strtab_add(&t.reserved, name, 6, &added) < 0) s = gr_fail(GR_ERR_NOMEM, "tokenizer train: out of memory");
    }
    int64_t target = o->vocab_size - fixed - (o->byte_level ? 0 : st->alphabet); /* new pieces wanted */
    int64_t made = 0;
    gr_buf cat = {0};
    while (!s && made < target && t.nheap > 0) {
        heap_ent e = heap_pop(&t);
        pair_rec *p = &t.pairs[e.pair];
        if (p->banned || e.count != p->count) continue; /* stale */
        if (p->count < o->min_frequency) break;
        size_t la, lb;
        const char *sa = str_of(&t.syms, p->a, &la), *sb = str_of(&t.syms, p->b, &lb);
        cat.len = 0;
        gr_buf_put(&cat, sa, la);
        gr_buf_put(&cat, sb, lb);
        if (cat.oom) { s = gr_fail(GR_ERR_NOMEM, "tokenizer train: out of memory"); break; }
        if (strtab_find(&t.reserved, cat.p, cat.len) >= 0) { p->banned = 1; continue; }
        int added;
        int32_t a = p->a, b = p->b, c = strtab_add(&t.syms, cat.p, cat.len, &added);
        int32_t (*mv)[2] = c < 0 ? NULL : gr_tok_grow(t.merges, sizeof *mv, t.nmerges + 1, &t.cmerges);
        if (!mv) { s = gr_fail(GR_ERR_NOMEM, "tokenizer train: out of memory"); break; }
        t.merges = mv;
        mv[t.nmerges][0] = a;
        mv[t.nmerges][1] = b;
        int64_t stamp = (int64_t)t.nmerges++;
        made += added;
        /* detach the word list: the pair vanishes from every word it lists */
        int32_t *wl = p->w;
        uint32_t nw = p->nw;
        p->w = NULL;
        p->nw = p->cw = 0;
        for (uint32_t k = 0; k < nw; k++) {
            int32_t w = wl[k];
            if (t.wstamp[w] == stamp) continue;
            t.wstamp[w] = stamp;
            if (!merge_word(&t, w, a, b, c)) { s = gr_fail(GR_ERR_NOMEM, "tokenizer train: out of memory"); break; }
        }
        free(wl);
        if (!s && !flush_touched(&t)) s = gr_fail(GR_ERR_NOMEM, "tokenizer train: out of memory");
    }
    gr_buf_free(&cat);
    st->merges = (int32_t)t.nmerges;
    if (!s) s = assemble(&t, o, f, out, st);
    trainer_free(&t);
    return s;
}

/* ---- saving as a Hugging Face tokenizer directory ---- */

static json_t *token_obj(const char *content)
{
    return json_pack("{s:s, s:b, s:b, s:b, s:b}", "content", content, "lstrip", 0, "normalized", 0, "rstrip", 0, "single_word", 0);
}

static gr_status write_json(const char *dir, const char *name, json_t *root)
{
    char *path = gr_path_join(dir, name);
    char *text = root ? json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    json_decref(root);
    gr_status s;
    if (!path || !text) s = gr_fail(GR_ERR_NOMEM, "%s/%s: out of memory", dir, name);
    else {
        size_t n = strlen(text);
        char *t2 = realloc(text, n + 2); /* a final newline, as transformers writes */
        if (!t2) s = gr_fail(GR_ERR_NOMEM, "%s: out of memory", path);
        else {
            text = t2;
            text[n] = '\n';
            s = gr_write_file_atomic(path, text, n + 1);
        }
    }
    free(path);
    free(text);
    return s;
}

gr_status gr_tokenizer_save_hf_dir(const gr_tokenizer *tok, gr_tok_family family, int64_t model_max_length, const char *dir)
{
    if ((int)family < 0 || (int)family > 2) return gr_fail(GR_ERR_INVALID, "%s: unknown tokenizer family %d", dir, (int)family);
    gr_status s = gr_mkdirs(dir);
    if (s) return s;
    char *path = gr_path_join(dir, "tokenizer.json");
    if (!path) return gr_fail(GR_ERR_NOMEM, "%s: out of memory", dir);
    s = gr_tokenizer_save_json(tok, path);
    free(path);
    if (s) return s;

    /* role -> token text, as the family's checkpoints name them */
    const char *bos = NULL, *eos = "</s>", *unk = NULL, *pad = NULL, *cls = NULL;
    if (family == GR_TOK_FAMILY_OPT) { bos = "</s>"; unk = "</s>"; pad = "<pad>"; cls = "GPT2Tokenizer"; }
    else if (family == GR_TOK_FAMILY_LLAMA) { bos = "<s>"; unk = "<unk>"; cls = "LlamaTokenizer"; }
    else { unk = "<unk>"; pad = "<pad>"; cls = "T5Tokenizer"; }

    json_t *cfg = json_object(), *decoder = json_object();
    if (!cfg || !decoder) { json_decref(cfg); json_decref(decoder); return gr_fail(GR_ERR_NOMEM, "%s: out of memory", dir); }
    if (family == GR_TOK_FAMILY_OPT) {
        json_object_set_new(cfg, "add_bos_token", json_true());
        json_object_set_new(cfg, "add_prefix_space", json_false());
    } else if (family == GR_TOK_FAMILY_LLAMA) {
        json_object_set_new(cfg, "add_bos_token", json_true());
        json_object_set_new(cfg, "add_eos_token", json_false());
    }
    for (int32_t id = 0; id < gr_tokenizer_vocab_size(tok); id++) {
        if (!gr_tokenizer_is_special(tok, id)) continue;
        size_t l;
        const char *p = gr_tokenizer_piece(tok, id, &l);
        char key[16];
        snprintf(key, sizeof key, "%d", (int)id);
        json_t *o = json_pack("{s:s%, s:b, s:b, s:b, s:b, s:b}", "content", p, l, "lstrip", 0, "normalized", 0, "rstrip", 0,
                              "single_word", 0, "special", 1);
        json_object_set_new(decoder, key, o);
    }
    json_object_set_new(cfg, "added_tokens_decoder", decoder);
    if (family == GR_TOK_FAMILY_T5) json_object_set_new(cfg, "additional_special_tokens", json_array());
    if (bos) json_object_set_new(cfg, "bos_token", json_string(bos));
    json_object_set_new(cfg, "clean_up_tokenization_spaces", json_false());
    json_object_set_new(cfg, "eos_token", json_string(eos));
    if (family == GR_TOK_FAMILY_OPT) json_object_set_new(cfg, "errors", json_string("replace"));
    if (family == GR_TOK_FAMILY_T5) json_object_set_new(cfg, "extra_ids", json_integer(0));
    if (family == GR_TOK_FAMILY_LLAMA) json_object_set_new(cfg, "legacy", json_false());
    if (model_max_length > 0) json_object_set_new(cfg, "model_max_length", json_integer(model_max_length));
    json_object_set_new(cfg, "pad_token", pad ? json_string(pad) : json_null());
    json_object_set_new(cfg, "tokenizer_class", json_string(cls));
    json_object_set_new(cfg, "unk_token", json_string(unk));
    s = write_json(dir, "tokenizer_config.json", cfg);
    if (s) return s;

    json_t *map = json_object();
    if (!map) return gr_fail(GR_ERR_NOMEM, "%s: out of memory", dir);
    if (bos) json_object_set_new(map, "bos_token", token_obj(bos));
    json_object_set_new(map, "eos_token", token_obj(eos));
    if (pad) json_object_set_new(map, "pad_token", token_obj(pad));
    json_object_set_new(map, "unk_token", token_obj(unk));
    return write_json(dir, "special_tokens_map.json", map);
}
