/* BLEU-1..4, ROUGE-L and CIDEr-D on tokenized captions, in pycocoevalcap's order of operations.
 *
 * Words are interned to integers and every n-gram (n = 1..4) to a global id, so per-image work is
 * array look-ups. Each sentence keeps its n-grams in the order precook() first meets them (all
 * unigrams, then bigrams, ...): CIDEr's sums run in that order, which is what makes the doubles match
 * the reference's. Means over images follow numpy's pairwise summation (np.mean). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "metrics/metrics.h"
#include "metrics/unicode.h"

/* ---- numpy's mean: 0.0 + pairwise sum (8 accumulators, blocks of 128), divided by n ---- */
static double np_pairwise_sum(const double *a, size_t n)
{
    if (n < 8) {
        double res = 0.;
        for (size_t i = 0; i < n; i++) res += a[i];
        return res;
    }
    if (n <= 128) {
        double r[8];
        for (int j = 0; j < 8; j++) r[j] = a[j];
        size_t i;
        for (i = 8; i < n - (n % 8); i += 8)
            for (int j = 0; j < 8; j++) r[j] += a[i + j];
        double res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for (; i < n; i++) res += a[i];
        return res;
    }
    size_t n2 = n / 2;
    n2 -= n2 % 8;
    return np_pairwise_sum(a, n2) + np_pairwise_sum(a + n2, n - n2);
}
static double np_mean(const double *a, size_t n) { return (0.0 + np_pairwise_sum(a, n)) / (double)n; }

/* ---- interning ---- */
typedef struct table {
    uint64_t *keys; /* 0 = empty */
    uint32_t *vals;
    size_t cap, used;
} table;

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33; x *= 0xff51afd7ed558ccdULL; x ^= x >> 33; x *= 0xc4ceb9fe1a85ec53ULL; x ^= x >> 33;
    return x;
}

/* Word table: keys are string hashes; collisions resolved by comparing the strings. */
typedef struct words {
    char **str;
    uint64_t *hash;
    size_t n, cap;
    uint32_t *slots; /* index+1, 0 = empty */
    size_t nslots;
} words;

static int words_grow(words *w)
{
    size_t ns = w->nslots ? w->nslots * 2 : 1024;
    uint32_t *s = calloc(ns, sizeof *s);
    if (!s) return -1;
    for (size_t i = 0; i < w->n; i++) {
        size_t h = w->hash[i] & (ns - 1);
        while (s[h]) h = (h + 1) & (ns - 1);
        s[h] = (uint32_t)i + 1;
    }
    free(w->slots);
    w->slots = s;
    w->nslots = ns;
    return 0;
}

static long words_id(words *w, const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    h = mix(h);
    if ((w->n + 1) * 2 > w->nslots && words_grow(w) < 0) return -1;
    size_t k = h & (w->nslots - 1);
    while (w->slots[k]) {
        size_t i = w->slots[k] - 1;
        if (w->hash[i] == h && strlen(w->str[i]) == len && memcmp(w->str[i], s, len) == 0) return (long)i;
        k = (k + 1) & (w->nslots - 1);
    }
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 256;
        char **ns = realloc(w->str, cap * sizeof *ns);
        if (!ns) return -1;
        w->str = ns;
        uint64_t *nh = realloc(w->hash, cap * sizeof *nh);
        if (!nh) return -1;
        w->hash = nh;
        w->cap = cap;
    }
    char *c = malloc(len + 1);
    if (!c) return -1;
    memcpy(c, s, len);
    c[len] = '\0';
    w->str[w->n] = c;
    w->hash[w->n] = h;
    w->slots[k] = (uint32_t)w->n + 1;
    return (long)w->n++;
}

/* n-gram table: key = the n word ids (up to 4 x 16 bits would not do; so ids are hashed and the
 * exact tuple is kept for comparison). */
typedef struct gram { uint32_t w[4]; uint8_t n; } gram;
typedef struct grams {
    gram *g;
    size_t n, cap;
    uint32_t *slots;
    size_t nslots;
} grams;

static uint64_t gram_hash(const gram *g)
{
    uint64_t h = g->n;
    for (int i = 0; i < g->n; i++) h = mix(h * 31 + g->w[i] + 1);
    return h;
}

static int grams_grow(grams *t)
{
    size_t ns = t->nslots ? t->nslots * 2 : 4096;
    uint32_t *s = calloc(ns, sizeof *s);
    if (!s) return -1;
    for (size_t i = 0; i < t->n; i++) {
        size_t h = gram_hash(&t->g[i]) & (ns - 1);
        while (s[h]) h = (h + 1) & (ns - 1);
        s[h] = (uint32_t)i + 1;
    }
    free(t->slots);
    t->slots = s;
    t->nslots = ns;
    return 0;
}

static long grams_id(grams *t, const gram *g)
{
    if ((t->n + 1) * 2 > t->nslots && grams_grow(t) < 0) return -1;
    size_t k = gram_hash(g) & (t->nslots - 1);
    while (t->slots[k]) {
        const gram *o = &t->g[t->slots[k] - 1];
        if (o->n == g->n && memcmp(o->w, g->w, g->n * sizeof g->w[0]) == 0) return (long)t->slots[k] - 1;
        k = (k + 1) & (t->nslots - 1);
    }
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 1024;
        gram *ng = realloc(t->g, cap * sizeof *ng);
        if (!ng) return -1;
        t->g = ng;
        t->cap = cap;
    }
    t->g[t->n] = *g;
    t->slots[k] = (uint32_t)t->n + 1;
    return (long)t->n++;
}

/* ---- one cooked sentence ---- */
typedef struct cooked {
    uint32_t *gid;     /* distinct n-grams in first-seen order */
    uint32_t *count;
    uint8_t *order;    /* n - 1 */
    size_t ngrams;
    size_t nwords;     /* len(s.split()) */
    uint32_t *rtok;    /* ids of s.split(" ") tokens, for ROUGE-L */
    size_t nrtok;
} cooked;

static void cooked_free(cooked *c) { free(c->gid); free(c->count); free(c->order); free(c->rtok); }

typedef struct ctx {
    words w;
    grams g;
    uint32_t *pos_of; /* scratch: gid -> position+1 within the sentence being cooked */
    size_t pos_cap;
} ctx;

static int ensure_pos(ctx *x)
{
    if (x->pos_cap >= x->g.n) return 0;
    size_t cap = x->pos_cap ? x->pos_cap : 4096;
    while (cap < x->g.n) cap *= 2;
    uint32_t *p = realloc(x->pos_of, cap * sizeof *p);
    if (!p) return -1;
    memset(p + x->pos_cap, 0, (cap - x->pos_cap) * sizeof *p);
    x->pos_of = p;
    x->pos_cap = cap;
    return 0;
}

/* Python's str.split() (runs of Unicode white space) into word ids. */
static int split_ws(ctx *x, const char *s, uint32_t **ids, size_t *n)
{
    size_t len = strlen(s), i = 0, cap = 16, k = 0;
    uint32_t *out = malloc(cap * sizeof *out);
    if (!out) return -1;
    while (i < len) {
        size_t at = i;
        uint32_t cp = gr_u_decode(s, len, &i);
        if (gr_u_is_space(cp)) continue;
        size_t start = at, end = i;
        while (i < len) {
            size_t b = i;
            cp = gr_u_decode(s, len, &i);
            if (gr_u_is_space(cp)) { i = b; break; }
            end = i;
        }
        long id = words_id(&x->w, s + start, end - start);
        if (id < 0) { free(out); return -1; }
        if (k == cap) {
            uint32_t *o = realloc(out, (cap *= 2) * sizeof *o);
            if (!o) { free(out); return -1; }
            out = o;
        }
        out[k++] = (uint32_t)id;
    }
    *ids = out;
    *n = k;
    return 0;
}

/* Python's str.split(" "): every single space separates (empty tokens kept). */
static int split_space(ctx *x, const char *s, uint32_t **ids, size_t *n)
{
    size_t k = 1;
    for (const char *p = s; *p; p++) k += *p == ' ';
    uint32_t *out = malloc(k * sizeof *out);
    if (!out) return -1;
    size_t j = 0;
    const char *start = s;
    for (const char *p = s;; p++) {
        if (*p == ' ' || *p == '\0') {
            long id = words_id(&x->w, start, (size_t)(p - start));
            if (id < 0) { free(out); return -1; }
            out[j++] = (uint32_t)id;
            if (*p == '\0') break;
            start = p + 1;
        }
    }
    *ids = out;
    *n = j;
    return 0;
}

static int cook(ctx *x, const char *s, cooked *c)
{
    memset(c, 0, sizeof *c);
    uint32_t *w;
    size_t nw;
    if (split_ws(x, s, &w, &nw) < 0) return -1;
    c->nwords = nw;
    size_t maxg = nw * 4 + 1;
    c->gid = malloc(maxg * sizeof *c->gid);
    c->count = malloc(maxg * sizeof *c->count);
    c->order = malloc(maxg);
    if (!c->gid || !c->count || !c->order) { free(w); cooked_free(c); return -1; }
    for (int k = 1; k <= 4; k++) {
        for (size_t i = 0; i + (size_t)k <= nw; i++) {
            gram g = {{0, 0, 0, 0}, (uint8_t)k};
            memcpy(g.w, w + i, (size_t)k * sizeof *w);
            long id = grams_id(&x->g, &g);
            if (id < 0 || ensure_pos(x) < 0) { free(w); cooked_free(c); return -1; }
            if (x->pos_of[id]) { c->count[x->pos_of[id] - 1]++; continue; }
            c->gid[c->ngrams] = (uint32_t)id;
            c->count[c->ngrams] = 1;
            c->order[c->ngrams] = (uint8_t)(k - 1);
            x->pos_of[id] = (uint32_t)++c->ngrams;
        }
    }
    for (size_t i = 0; i < c->ngrams; i++) x->pos_of[c->gid[i]] = 0;
    free(w);
    if (split_space(x, s, &c->rtok, &c->nrtok) < 0) { cooked_free(c); return -1; }
    return 0;
}

/* ---- ROUGE-L ---- */
static size_t lcs(const uint32_t *a, size_t na, const uint32_t *b, size_t nb, size_t *row)
{
    /* my_lcs(string, sub): same result whichever is longer; one row of the DP table suffices. */
    memset(row, 0, (nb + 1) * sizeof *row);
    for (size_t i = 1; i <= na; i++) {
        size_t diag = 0;
        for (size_t j = 1; j <= nb; j++) {
            size_t up = row[j];
            row[j] = a[i - 1] == b[j - 1] ? diag + 1 : (up > row[j - 1] ? up : row[j - 1]);
            diag = up;
        }
    }
    return row[nb];
}

static double rouge_l(const cooked *pred, const cooked *refs, size_t nrefs, size_t *row)
{
    const double beta = 1.2;
    double prec_max = 0, rec_max = 0;
    for (size_t r = 0; r < nrefs; r++) {
        size_t l = lcs(refs[r].rtok, refs[r].nrtok, pred->rtok, pred->nrtok, row);
        double p = (double)l / (double)pred->nrtok, rc = (double)l / (double)refs[r].nrtok;
        if (r == 0 || p > prec_max) prec_max = p;
        if (r == 0 || rc > rec_max) rec_max = rc;
    }
    if (prec_max != 0 && rec_max != 0)
        return ((1 + beta * beta) * prec_max * rec_max) / (rec_max + beta * beta * prec_max);
    return 0.0;
}

/* ---- CIDEr-D ---- */
typedef struct vec { double *w; double norm[4]; double length; } vec;

static void counts2vec(const cooked *c, const double *df, double ref_len, double *w, double norm[4], double *length)
{
    for (int n = 0; n < 4; n++) norm[n] = 0.0;
    double len = 0;
    for (size_t i = 0; i < c->ngrams; i++) {
        double d = log(fmax(1.0, df[c->gid[i]]));
        int n = c->order[i];
        w[i] = (double)c->count[i] * (ref_len - d);
        norm[n] += pow(w[i], 2);
        if (n == 1) len += c->count[i];
    }
    for (int n = 0; n < 4; n++) norm[n] = sqrt(norm[n]);
    *length = len;
}

gr_status gr_caption_score_tokenized(const gr_caption_image *images, size_t n, gr_caption_scores *corpus,
                                     gr_caption_scores *per_image, gr_bleu_totals *totals)
{
    if (n == 0) return gr_fail(GR_ERR_INVALID, "caption scores: no images to evaluate");
    for (size_t i = 0; i < n; i++)
        if (images[i].n_refs == 0) return gr_fail(GR_ERR_INVALID, "caption scores: image %zu has no reference", i);

    gr_status st = GR_OK;
    ctx x = {0};
    cooked *pred = calloc(n, sizeof *pred);
    cooked **refs = calloc(n, sizeof *refs);
    double *rouge = malloc(n * sizeof *rouge), *cider = malloc(n * sizeof *cider);
    double *df = NULL, *wref = NULL, *whyp = NULL;
    uint32_t *stamp = NULL;
    size_t *row = NULL;
    if (!pred || !refs || !rouge || !cider) goto oom;
    size_t maxtok = 1, maxgrams = 1;
    for (size_t i = 0; i < n; i++) {
        if (cook(&x, images[i].pred, &pred[i]) < 0) goto oom;
        refs[i] = calloc(images[i].n_refs, sizeof *refs[i]);
        if (!refs[i]) goto oom;
        for (size_t r = 0; r < images[i].n_refs; r++) {
            if (cook(&x, images[i].refs[r], &refs[i][r]) < 0) goto oom;
            if (refs[i][r].nrtok > maxtok) maxtok = refs[i][r].nrtok;
            if (refs[i][r].ngrams > maxgrams) maxgrams = refs[i][r].ngrams;
        }
        if (pred[i].nrtok > maxtok) maxtok = pred[i].nrtok;
        if (pred[i].ngrams > maxgrams) maxgrams = pred[i].ngrams;
    }
    size_t G = x.g.n ? x.g.n : 1;
    df = calloc(G, sizeof *df);
    wref = calloc(G, sizeof *wref); /* reference weights scattered by n-gram id (0 = absent) */
    whyp = malloc(maxgrams * sizeof *whyp);
    double *wtmp = malloc(maxgrams * sizeof *wtmp);
    stamp = calloc(G, sizeof *stamp);
    row = malloc((maxtok + 1) * sizeof *row);
    if (!df || !wref || !whyp || !wtmp || !stamp || !row) { free(wtmp); goto oom; }

    /* BLEU (option "closest") */
    long long tot_test = 0, tot_ref = 0, tot_guess[4] = {0}, tot_correct[4] = {0};
    const double small = 1e-9, tiny = 1e-15;
    uint32_t *maxc = (uint32_t *)calloc(G, sizeof *maxc);
    if (!maxc) { free(wtmp); goto oom; }
    for (size_t i = 0; i < n; i++) {
        long long testlen = (long long)pred[i].nwords, reflen = 0, best_diff = -1;
        for (size_t r = 0; r < images[i].n_refs; r++) {
            const cooked *c = &refs[i][r];
            long long l = (long long)c->nwords, d = llabs(l - testlen);
            if (best_diff < 0 || d < best_diff || (d == best_diff && l < reflen)) { best_diff = d; reflen = l; }
            for (size_t k = 0; k < c->ngrams; k++)
                if (c->count[k] > maxc[c->gid[k]]) maxc[c->gid[k]] = c->count[k];
        }
        long long guess[4], correct[4] = {0};
        for (int k = 0; k < 4; k++) guess[k] = testlen - k > 0 ? testlen - k : 0;
        for (size_t k = 0; k < pred[i].ngrams; k++) {
            uint32_t m = maxc[pred[i].gid[k]], c = pred[i].count[k];
            correct[pred[i].order[k]] += m < c ? m : c;
        }
        for (size_t r = 0; r < images[i].n_refs; r++)
            for (size_t k = 0; k < refs[i][r].ngrams; k++) maxc[refs[i][r].gid[k]] = 0;
        tot_test += testlen;
        tot_ref += reflen;
        for (int k = 0; k < 4; k++) { tot_guess[k] += guess[k]; tot_correct[k] += correct[k]; }
        if (per_image) {
            double bleu = 1.;
            for (int k = 0; k < 4; k++) {
                bleu *= ((double)correct[k] + tiny) / ((double)guess[k] + small);
                per_image[i].bleu[k] = pow(bleu, 1. / (k + 1));
            }
            double ratio = ((double)testlen + tiny) / ((double)reflen + small);
            if (ratio < 1)
                for (int k = 0; k < 4; k++) per_image[i].bleu[k] *= exp(1 - 1 / ratio);
        }
    }
    free(maxc);
    {
        double bleu = 1.;
        for (int k = 0; k < 4; k++) {
            bleu *= ((double)tot_correct[k] + tiny) / ((double)tot_guess[k] + small);
            corpus->bleu[k] = pow(bleu, 1. / (k + 1));
        }
        double ratio = ((double)tot_test + tiny) / ((double)tot_ref + small);
        if (ratio < 1)
            for (int k = 0; k < 4; k++) corpus->bleu[k] *= exp(1 - 1 / ratio);
        if (totals) {
            totals->testlen = tot_test;
            totals->reflen = tot_ref;
            for (int k = 0; k < 4; k++) { totals->guess[k] = tot_guess[k]; totals->correct[k] = tot_correct[k]; }
            totals->ratio = ratio;
        }
    }

    /* ROUGE-L */
    for (size_t i = 0; i < n; i++) {
        rouge[i] = rouge_l(&pred[i], refs[i], images[i].n_refs, row);
        if (per_image) per_image[i].rouge_l = rouge[i];
    }
    corpus->rouge_l = np_mean(rouge, n);

    /* CIDEr-D: document frequency = number of images whose references hold the n-gram */
    for (size_t i = 0; i < n; i++)
        for (size_t r = 0; r < images[i].n_refs; r++)
            for (size_t k = 0; k < refs[i][r].ngrams; k++) {
                uint32_t g = refs[i][r].gid[k];
                if (stamp[g] != i + 1) { stamp[g] = (uint32_t)(i + 1); df[g] += 1; }
            }
    const double ref_len = log((double)n), sigma = 6.0;
    for (size_t i = 0; i < n; i++) {
        double norm_h[4], len_h, score[4] = {0, 0, 0, 0};
        counts2vec(&pred[i], df, ref_len, whyp, norm_h, &len_h);
        for (size_t r = 0; r < images[i].n_refs; r++) {
            const cooked *c = &refs[i][r];
            double norm_r[4], len_r, val[4] = {0, 0, 0, 0};
            counts2vec(c, df, ref_len, wtmp, norm_r, &len_r);
            for (size_t k = 0; k < c->ngrams; k++) wref[c->gid[k]] = wtmp[k];
            double delta = len_h - len_r;
            for (int nn = 0; nn < 4; nn++) { /* vec_hyp[n] in first-seen order, n by n */
                for (size_t k = 0; k < pred[i].ngrams; k++) {
                    if (pred[i].order[k] != nn) continue;
                    double vh = whyp[k], vr = wref[pred[i].gid[k]];
                    val[nn] += fmin(vh, vr) * vr;
                }
                if (norm_h[nn] != 0 && norm_r[nn] != 0) val[nn] /= (norm_h[nn] * norm_r[nn]);
                val[nn] *= pow(M_E, -(delta * delta) / (2 * (sigma * sigma)));
            }
            for (size_t k = 0; k < c->ngrams; k++) wref[c->gid[k]] = 0;
            for (int nn = 0; nn < 4; nn++) score[nn] += val[nn];
        }
        double avg = np_mean(score, 4);
        avg /= (double)images[i].n_refs;
        avg *= 10.0;
        cider[i] = avg;
        if (per_image) per_image[i].cider = avg;
    }
    corpus->cider = np_mean(cider, n);
    free(wtmp);
    goto done;
oom:
    st = gr_fail(GR_ERR_NOMEM, "caption scores: out of memory");
done:
    if (pred)
        for (size_t i = 0; i < n; i++) cooked_free(&pred[i]);
    if (refs)
        for (size_t i = 0; i < n; i++) {
            if (!refs[i]) continue;
            for (size_t r = 0; r < images[i].n_refs; r++) cooked_free(&refs[i][r]);
            free(refs[i]);
        }
    free(pred);
    free(refs);
    free(rouge);
    free(cider);
    free(df);
    free(wref);
    free(whyp);
    free(stamp);
    free(row);
    for (size_t i = 0; i < x.w.n; i++) free(x.w.str[i]);
    free(x.w.str);
    free(x.w.hash);
    free(x.w.slots);
    free(x.g.g);
    free(x.g.slots);
    free(x.pos_of);
    return st;
}

/* ---- tokenization of both sides ---- */
void gr_caption_tokens_free(gr_caption_tokens *t)
{
    if (!t) return;
    if (t->strings)
        for (size_t i = 0; i < t->n_strings; i++) free(t->strings[i]);
    free(t->strings);
    if (t->images)
        for (size_t i = 0; i < t->n; i++) free((void *)t->images[i].refs);
    free(t->images);
    memset(t, 0, sizeof *t);
}

gr_status gr_caption_tokenize(const gr_caption_image *raw, size_t n, gr_caption_tokens *out)
{
    memset(out, 0, sizeof *out);
    size_t nrefs = 0;
    for (size_t i = 0; i < n; i++) nrefs += raw[i].n_refs;
    const char **texts = malloc((nrefs + n + 1) * sizeof *texts);
    out->strings = calloc(nrefs + n + 1, sizeof *out->strings);
    out->images = calloc(n + 1, sizeof *out->images);
    if (!texts || !out->strings || !out->images) {
        free(texts);
        gr_caption_tokens_free(out);
        return gr_fail(GR_ERR_NOMEM, "caption tokenization: out of memory");
    }
    out->n = n;
    out->n_strings = nrefs + n;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t r = 0; r < raw[i].n_refs; r++) texts[k++] = raw[i].refs[r];
    for (size_t i = 0; i < n; i++) texts[k++] = raw[i].pred;
    /* two tokenizer calls, as COCOEvalCap makes: all references, then all predictions */
    gr_status st = gr_ptb_tokenize(texts, nrefs, out->strings);
    if (st == GR_OK) st = gr_ptb_tokenize(texts + nrefs, n, out->strings + nrefs);
    free(texts);
    if (st != GR_OK) { gr_caption_tokens_free(out); return st; }
    k = 0;
    for (size_t i = 0; i < n; i++) {
        const char **refs = malloc((raw[i].n_refs + 1) * sizeof *refs);
        if (!refs) { gr_caption_tokens_free(out); return gr_fail(GR_ERR_NOMEM, "caption tokenization: out of memory"); }
        for (size_t r = 0; r < raw[i].n_refs; r++) refs[r] = out->strings[k++];
        out->images[i].refs = refs;
        out->images[i].n_refs = raw[i].n_refs;
        out->images[i].pred = out->strings[nrefs + i];
    }
    return GR_OK;
}

gr_status gr_caption_score(const gr_caption_image *raw, size_t n, gr_caption_scores *corpus,
                           gr_caption_scores *per_image, gr_bleu_totals *totals)
{
    gr_caption_tokens t;
    gr_status st = gr_caption_tokenize(raw, n, &t);
    if (st != GR_OK) return st;
    st = gr_caption_score_tokenized(t.images, n, corpus, per_image, totals);
    gr_caption_tokens_free(&t);
    return st;
}
