/* VQA accuracy as GT-Vision-Lab's vqaEval.py computes it, in its two versions (see metrics.h and
 * docs/metrics.md): the answer normalisation (processPunctuation, processDigitArticle) and the
 * leave-one-annotator-out accuracy min(1, matches / 3). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics/metrics.h"
#include "metrics/unicode.h"

/* vqaEval.py's contraction table, sorted (byte order) for bsearch. Keys with capitals can never match
 * (the words were lower-cased before), and "somebody'd" -> "somebodyd" is the table's own entry. */
static const struct { const char *from, *to; } CONTRACTIONS[] = {
    {"'ow'sat", "'ow's'at"}, {"'ows'at", "'ow's'at"}, {"I'dve", "I'd've"}, {"Id've", "I'd've"}, {"Im", "I'm"},
    {"Ive", "I've"}, {"aint", "ain't"}, {"arent", "aren't"}, {"cant", "can't"}, {"couldn'tve", "couldn't've"},
    {"couldnt", "couldn't"}, {"couldnt've", "couldn't've"}, {"couldve", "could've"}, {"didnt", "didn't"},
    {"doesnt", "doesn't"}, {"dont", "don't"}, {"hadn'tve", "hadn't've"}, {"hadnt", "hadn't"},
    {"hadnt've", "hadn't've"}, {"hasnt", "hasn't"}, {"havent", "haven't"}, {"he'dve", "he'd've"},
    {"hed", "he'd"}, {"hed've", "he'd've"}, {"hes", "he's"}, {"howd", "how'd"}, {"howll", "how'll"},
    {"hows", "how's"}, {"isnt", "isn't"}, {"it'dve", "it'd've"}, {"itd", "it'd"}, {"itd've", "it'd've"},
    {"itll", "it'll"}, {"let's", "let's"}, {"maam", "ma'am"}, {"mightn'tve", "mightn't've"},
    {"mightnt", "mightn't"}, {"mightnt've", "mightn't've"}, {"mightve", "might've"}, {"mustnt", "mustn't"},
    {"mustve", "must've"}, {"neednt", "needn't"}, {"notve", "not've"}, {"oclock", "o'clock"},
    {"oughtnt", "oughtn't"}, {"ow's'at", "'ow's'at"}, {"shant", "shan't"}, {"she'dve", "she'd've"},
    {"she's", "she's"}, {"shed've", "she'd've"}, {"shouldn'tve", "shouldn't've"}, {"shouldnt", "shouldn't"},
    {"shouldnt've", "shouldn't've"}, {"shouldve", "should've"}, {"somebody'd", "somebodyd"},
    {"somebody'dve", "somebody'd've"}, {"somebodyd've", "somebody'd've"}, {"somebodyll", "somebody'll"},
    {"somebodys", "somebody's"}, {"someone'dve", "someone'd've"}, {"someoned", "someone'd"},
    {"someoned've", "someone'd've"}, {"someonell", "someone'll"}, {"someones", "someone's"},
    {"something'dve", "something'd've"}, {"somethingd", "something'd"}, {"somethingd've", "something'd've"},
    {"somethingll", "something'll"}, {"thats", "that's"}, {"there'dve", "there'd've"}, {"thered", "there'd"},
    {"thered've", "there'd've"}, {"therere", "there're"}, {"theres", "there's"}, {"they'dve", "they'd've"},
    {"theyd", "they'd"}, {"theyd've", "they'd've"}, {"theyll", "they'll"}, {"theyre", "they're"},
    {"theyve", "they've"}, {"twas", "'twas"}, {"wasnt", "wasn't"}, {"we'dve", "we'd've"},
    {"wed've", "we'd've"}, {"werent", "weren't"}, {"weve", "we've"}, {"whatll", "what'll"},
    {"whatre", "what're"}, {"whats", "what's"}, {"whatve", "what've"}, {"whens", "when's"},
    {"whered", "where'd"}, {"wheres", "where's"}, {"whereve", "where've"}, {"who'dve", "who'd've"},
    {"whod", "who'd"}, {"whod've", "who'd've"}, {"wholl", "who'll"}, {"whos", "who's"}, {"whove", "who've"},
    {"whyll", "why'll"}, {"whyre", "why're"}, {"whys", "why's"}, {"wont", "won't"},
    {"wouldn'tve", "wouldn't've"}, {"wouldnt", "wouldn't"}, {"wouldnt've", "wouldn't've"},
    {"wouldve", "would've"}, {"y'all'dve", "y'all'd've"}, {"y'alld've", "y'all'd've"}, {"y'allll", "y'all'll"},
    {"yall", "y'all"}, {"yall'd've", "y'all'd've"}, {"yall'll", "y'all'll"}, {"you'dve", "you'd've"},
    {"youd", "you'd"}, {"youd've", "you'd've"}, {"youll", "you'll"}, {"youre", "you're"}, {"youve", "you've"},
};

static const char *const NUMBER_WORDS[][2] = {
    {"none", "0"}, {"zero", "0"}, {"one", "1"}, {"two", "2"}, {"three", "3"}, {"four", "4"},
    {"five", "5"}, {"six", "6"}, {"seven", "7"}, {"eight", "8"}, {"nine", "9"}, {"ten", "10"},
};

/* The punctuation list, in the evaluator's order (the order matters: each step sees the previous one's output). */
static const char PUNCT[] = {';', '/', '[', ']', '"', '{', '}', '(', ')', '=', '+', '\\', '_', '-', '>', '<', '@', '`', ',', '?', '!'};

static int cmp_contraction(const void *key, const void *elem)
{
    return strcmp((const char *)key, *(const char *const *)elem);
}

/* re.search("(\d)(\,)(\d)", s) with Python's Unicode \d. */
static int has_digit_comma_digit(const char *s)
{
    size_t len = strlen(s), i = 0;
    uint32_t prev2 = 0, prev1 = 0;
    int n = 0;
    while (i < len) {
        uint32_t cp = gr_u_decode(s, len, &i);
        if (n >= 2 && prev1 == ',' && gr_u_is_digit(prev2) && gr_u_is_digit(cp)) return 1;
        prev2 = prev1;
        prev1 = cp;
        n++;
    }
    return 0;
}

char *gr_vqa_process_punctuation(const char *in)
{
    size_t len = strlen(in);
    char *out = malloc(len + 1);
    if (!out) return NULL;
    memcpy(out, in, len + 1);
    int comma = has_digit_comma_digit(in);
    for (size_t k = 0; k < sizeof PUNCT; k++) {
        char p = PUNCT[k], ps[3] = {p, ' ', 0}, sp[3] = {' ', p, 0};
        int remove = strstr(in, ps) || strstr(in, sp) || comma; /* tested on the ORIGINAL text */
        char *w = out;
        for (char *r = out; *r; r++) {
            if (*r != p) *w++ = *r;
            else if (!remove) *w++ = ' ';
        }
        *w = '\0';
    }
    /* periodStrip.sub("", s, re.UNICODE): '.' not followed by a digit is deleted, but re.UNICODE (32)
     * lands in sub()'s count argument, so only the first 32 such periods go. */
    size_t n = strlen(out), i = 0, o = 0;
    int removed = 0;
    char *res = malloc(n + 1);
    if (!res) { free(out); return NULL; }
    while (i < n) {
        if (out[i] == '.' && removed < 32) {
            size_t j = i + 1;
            uint32_t next = j < n ? gr_u_decode(out, n, &j) : 0;
            if (!(i + 1 < n && gr_u_is_digit(next))) { removed++; i++; continue; }
        }
        res[o++] = out[i++];
    }
    res[o] = '\0';
    free(out);
    return res;
}

char *gr_vqa_process_digit_article(const char *in)
{
    char *low = gr_u_lower(in, strlen(in), 0);
    if (!low) return NULL;
    size_t len = strlen(low);
    char *out = malloc(len * 2 + 16); /* a contraction adds at most a few bytes per word */
    if (!out) { free(low); return NULL; }
    size_t o = 0, i = 0;
    while (i < len) {
        /* Python's str.split(): runs of Unicode white space separate words */
        size_t at = i;
        uint32_t cp = gr_u_decode(low, len, &i);
        if (gr_u_is_space(cp)) continue;
        size_t start = at, end = i;
        while (i < len) {
            size_t b = i;
            cp = gr_u_decode(low, len, &i);
            if (gr_u_is_space(cp)) { i = b; break; }
            end = i;
        }
        char saved = low[end];
        low[end] = '\0';
        const char *word = low + start;
        for (size_t k = 0; k < sizeof NUMBER_WORDS / sizeof NUMBER_WORDS[0]; k++)
            if (strcmp(word, NUMBER_WORDS[k][0]) == 0) { word = NUMBER_WORDS[k][1]; break; }
        if (strcmp(word, "a") != 0 && strcmp(word, "an") != 0 && strcmp(word, "the") != 0) {
            const void *hit = bsearch(word, CONTRACTIONS, sizeof CONTRACTIONS / sizeof CONTRACTIONS[0],
                                      sizeof CONTRACTIONS[0], cmp_contraction);
            if (hit) word = ((const char *const *)hit)[1];
            size_t wl = strlen(word);
            if (o + wl + 2 > len * 2 + 16) { /* cannot happen with the table above; guard anyway */
                free(low);
                free(out);
                return NULL;
            }
            if (o) out[o++] = ' ';
            memcpy(out + o, word, wl);
            o += wl;
        }
        low[end] = saved;
    }
    out[o] = '\0';
    free(low);
    return out;
}

/* '\n' and '\t' become spaces, then Python's strip(). */
static char *clean(const char *s)
{
    size_t len = strlen(s), i = 0, start = 0, end = 0;
    int seen = 0;
    while (i < len) {
        size_t at = i;
        uint32_t cp = gr_u_decode(s, len, &i);
        if (cp == '\n' || cp == '\t' || gr_u_is_space(cp)) continue;
        if (!seen) { start = at; seen = 1; }
        end = i;
    }
    size_t n = seen ? end - start : 0;
    char *out = malloc(n + 1);
    if (!out) return NULL;
    for (size_t k = 0; k < n; k++) out[k] = (s[start + k] == '\n' || s[start + k] == '\t') ? ' ' : s[start + k];
    out[n] = '\0';
    return out;
}

static char *normalize(const char *s)
{
    char *p = gr_vqa_process_punctuation(s);
    if (!p) return NULL;
    char *d = gr_vqa_process_digit_article(p);
    free(p);
    return d;
}

gr_status gr_vqa_question_accuracy(const gr_vqa_item *q, gr_vqa_evaluator ev, double *acc)
{
    size_t n = q->n_answers;
    if (n == 0) return gr_fail(GR_ERR_INVALID, "question %lld: no ground-truth answers", q->question_id);
    char **gt = calloc(n, sizeof *gt);
    char *res = NULL;
    gr_status st = GR_OK;
    if (!gt) return gr_fail(GR_ERR_NOMEM, "VQA: out of memory");
    /* the ground truth, as the evaluator leaves it before comparing */
    for (size_t i = 0; i < n; i++) {
        gt[i] = ev == GR_VQA_OFFICIAL ? clean(q->answers[i].answer) : strdup(q->answers[i].answer);
        if (!gt[i]) goto oom;
    }
    int distinct = 0;
    for (size_t i = 1; i < n && !distinct; i++) distinct = strcmp(gt[i], gt[0]) != 0;
    res = clean(q->prediction);
    if (!res) goto oom;
    if (ev == GR_VQA_OFFICIAL) {
        if (distinct) {
            for (size_t i = 0; i < n; i++) {
                char *t = normalize(gt[i]);
                if (!t) goto oom;
                free(gt[i]);
                gt[i] = t;
            }
            char *t = normalize(res);
            if (!t) goto oom;
            free(res);
            res = t;
        }
    } else {
        char *t = normalize(res);
        if (!t) goto oom;
        free(res);
        res = t;
        if (distinct)
            for (size_t i = 0; i < n; i++) {
                char *u = gr_vqa_process_punctuation(gt[i]);
                if (!u) goto oom;
                free(gt[i]);
                gt[i] = u;
            }
    }
    /* leave one annotator out: the others' answers equal to the prediction, capped at 3 */
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        size_t matches = 0;
        for (size_t j = 0; j < n; j++) {
            int same_record = strcmp(gt[j], gt[i]) == 0 && q->answers[j].id == q->answers[i].id &&
                              ((!q->answers[j].confidence && !q->answers[i].confidence) ||
                               (q->answers[j].confidence && q->answers[i].confidence &&
                                strcmp(q->answers[j].confidence, q->answers[i].confidence) == 0));
            if (!same_record && strcmp(gt[j], res) == 0) matches++;
        }
        double a = (double)matches / 3;
        sum += a < 1 ? a : 1;
    }
    *acc = sum / (double)n;
    goto done;
oom:
    st = gr_fail(GR_ERR_NOMEM, "VQA: out of memory");
done:
    for (size_t i = 0; i < n; i++) free(gt[i]);
    free(gt);
    free(res);
    return st;
}

double gr_round_py(double x, int ndigits)
{
    char buf[512];
    snprintf(buf, sizeof buf, "%.*f", ndigits, x);
    return strtod(buf, NULL);
}

void gr_vqa_scores_free(gr_vqa_scores *s)
{
    if (!s) return;
    for (size_t i = 0; i < s->n_answer_types; i++) free(s->answer_types[i].name);
    for (size_t i = 0; i < s->n_question_types; i++) free(s->question_types[i].name);
    free(s->answer_types);
    free(s->question_types);
    free(s->per_question);
    memset(s, 0, sizeof *s);
}

/* Adds acc to the group `name` (created on first sight); sums accumulate in item order. */
static int group_add(gr_vqa_group **g, size_t *n, const char *name, double acc, double *sums)
{
    for (size_t i = 0; i < *n; i++)
        if (strcmp((*g)[i].name, name) == 0) { sums[i] += acc; (*g)[i].count++; return 0; }
    char *nm = strdup(name);
    if (!nm) return -1;
    (*g)[*n].name = nm;
    (*g)[*n].count = 1;
    sums[*n] = acc;
    (*n)++;
    return 0;
}

gr_status gr_vqa_score(const gr_vqa_item *items, size_t n, gr_vqa_evaluator ev, gr_vqa_scores *out)
{
    memset(out, 0, sizeof *out);
    if (n == 0) return gr_fail(GR_ERR_INVALID, "VQA: no questions to evaluate");
    out->per_question = malloc(n * sizeof *out->per_question);
    out->answer_types = calloc(n, sizeof *out->answer_types);
    out->question_types = calloc(n, sizeof *out->question_types);
    double *asum = calloc(n, sizeof *asum), *qsum = calloc(n, sizeof *qsum);
    gr_status st = GR_OK;
    if (!out->per_question || !out->answer_types || !out->question_types || !asum || !qsum) {
        st = gr_fail(GR_ERR_NOMEM, "VQA: out of memory");
        goto done;
    }
    out->n = n;
    double total = 0;
    for (size_t i = 0; i < n; i++) {
        double acc;
        if ((st = gr_vqa_question_accuracy(&items[i], ev, &acc)) != GR_OK) goto done;
        out->per_question[i] = acc;
        total += acc;
        if (group_add(&out->question_types, &out->n_question_types, items[i].question_type, acc, qsum) < 0 ||
            group_add(&out->answer_types, &out->n_answer_types, items[i].answer_type, acc, asum) < 0) {
            st = gr_fail(GR_ERR_NOMEM, "VQA: out of memory");
            goto done;
        }
    }
    /* 100*float(sum(acc))/len(acc), as setAccuracy computes before round() */
    out->overall = 100 * total / (double)n;
    for (size_t i = 0; i < out->n_question_types; i++)
        out->question_types[i].percent = 100 * qsum[i] / (double)out->question_types[i].count;
    for (size_t i = 0; i < out->n_answer_types; i++)
        out->answer_types[i].percent = 100 * asum[i] / (double)out->answer_types[i].count;
done:
    free(asum);
    free(qsum);
    if (st != GR_OK) gr_vqa_scores_free(out);
    return st;
}
