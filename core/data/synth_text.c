/* The synthetic world's grammar. Captions describe what is in the image from several angles
 * (listing, counting, relations, sizes and positions, colour binding), questions are asked only
 * when their answer is unique, and the knowledge sentences give every colour and shape word
 * contexts of its own outside the images: without them a tiny LM trained on captions alone
 * learns nearly identical embeddings for all colour words (they occur in identical contexts),
 * and a frozen LM then cannot be steered to the right colour. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "data/synth_text.h"

static const char *const plural[GR_SYNTH_N_SHAPES] = {"circles", "squares", "triangles", "diamonds",
                                                       "stars",   "hexagons", "crosses"};
static const char *const number_words[] = {"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"};

/* Things of each colour and shape (index-aligned with the tables in synth.c). */
static const char *const color_things[GR_SYNTH_N_COLORS][5] = {
    {"tomato", "strawberry", "cherry", "fire truck", "ladybug"},
    {"grass", "leaf", "frog", "lime", "cucumber"},
    {"sky", "sea", "ocean", "blueberry", "sapphire"},
    {"banana", "lemon", "sun", "corn", "duckling"},
    {"grape", "plum", "eggplant", "violet", "lavender"},
    {"carrot", "pumpkin", "tangerine", "goldfish", "orange"},
    {"flamingo", "pig", "bubblegum", "cotton candy", "rose petal"},
    {"lagoon", "swimming pool", "turquoise gem", "glacier", "tropical sea"},
    {"chocolate", "bear", "tree trunk", "coffee", "acorn"},
    {"snow", "milk", "cloud", "salt", "swan"},
    {"coal", "crow", "ink", "tire", "panther"}};
static const char *const shape_things[GR_SYNTH_N_SHAPES][5] = {
    {"wheel", "coin", "plate", "clock", "button"},
    {"box", "window", "tile", "die", "chessboard"},
    {"roof", "pizza slice", "mountain", "sail", "pyramid"},
    {"kite", "rhombus", "playing card diamond", "road sign", "baseball field"},
    {"starfish", "sheriff badge", "sparkle", "star fruit slice", "tree topper"},
    {"honeycomb cell", "bolt head", "nut", "pencil end", "floor tile"},
    {"plus sign", "first aid sign", "crossroads", "sword hilt", "church window"}};
static const char *const shape_facts[GR_SYNTH_N_SHAPES][2] = {
    {"a circle is round", "a circle has no corners"},
    {"a square has four equal sides", "a square has four corners"},
    {"a triangle has three sides", "a triangle has three corners"},
    {"a diamond is a square standing on a corner", "a diamond has four corners"},
    {"a star has five points", "a star is pointy"},
    {"a hexagon has six sides", "a hexagon has six corners"},
    {"a cross has four arms", "a cross looks like a plus sign"}};

typedef struct sb { char *p; size_t cap, len; } sb;

static void put(sb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(sb *b, const char *fmt, ...)
{
    if (b->len >= b->cap) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n > 0) b->len += (size_t)n;
    if (b->len >= b->cap) b->len = b->cap - 1;
}

static const char *pick(gr_rng *r, const char *const *v, int n) { return v[gr_rng_below(r, (uint64_t)n)]; }

#define COLOR(o) gr_synth_color_name((o)->color)
#define SHAPE(o) gr_synth_shape_name((o)->shape)

/* "left", "top right", "middle", ... by thirds of the image. */
static void position_word(const gr_synth_config *cfg, const gr_synth_object *o, char *out, size_t cap)
{
    float t = cfg->image_size / 3.0f;
    const char *h = o->cx < t ? "left" : o->cx > 2 * t ? "right" : NULL;
    const char *v = o->cy < t ? "top" : o->cy > 2 * t ? "bottom" : NULL;
    if (h && v) snprintf(out, cap, "%s %s", v, h);
    else snprintf(out, cap, "%s", h ? h : v ? v : "middle");
}

static void position_phrase(const gr_synth_config *cfg, const gr_synth_object *o, char *out, size_t cap)
{
    char w[32];
    position_word(cfg, o, w, sizeof w);
    if (strcmp(w, "middle") == 0) snprintf(out, cap, "in the middle");
    else if (strchr(w, ' ')) snprintf(out, cap, "in the %s corner", w);
    else if (strcmp(w, "left") == 0 || strcmp(w, "right") == 0) snprintf(out, cap, "on the %s", w);
    else snprintf(out, cap, "at the %s", w);
}

/* Relation of a to b: 0 left of, 1 right of, 2 above, 3 below (dominant axis). */
static int relation(const gr_synth_object *a, const gr_synth_object *b)
{
    float dx = a->cx - b->cx, dy = a->cy - b->cy;
    if ((dx < 0 ? -dx : dx) >= (dy < 0 ? -dy : dy)) return dx < 0 ? 0 : 1;
    return dy < 0 ? 2 : 3;
}
static const char *const relation_words[4] = {"to the left of", "to the right of", "above", "below"};

static int count_shape(const gr_synth_scene *sc, int shape)
{
    int n = 0;
    for (int i = 0; i < sc->n; i++) n += sc->obj[i].shape == shape;
    return n;
}
static int count_color(const gr_synth_scene *sc, int color)
{
    int n = 0;
    for (int i = 0; i < sc->n; i++) n += sc->obj[i].color == color;
    return n;
}
static int count_combo(const gr_synth_scene *sc, int color, int shape)
{
    int n = 0;
    for (int i = 0; i < sc->n; i++) n += sc->obj[i].color == color && sc->obj[i].shape == shape;
    return n;
}

static void noun_phrase(sb *b, const gr_synth_object *o, int with_size)
{
    if (with_size) put(b, "a %s %s %s", o->large ? "large" : "small", COLOR(o), SHAPE(o));
    else put(b, "a %s %s", COLOR(o), SHAPE(o));
}

static void caption_list(sb *b, gr_rng *r, const gr_synth_scene *sc)
{
    static const char *const pre[] = {"", "a picture of ", "an image with ", "there is ", "a grey background with "};
    put(b, "%s", pick(r, pre, 5));
    int idx[GR_SYNTH_MAX_OBJECTS];
    for (int i = 0; i < sc->n; i++) idx[i] = i;
    for (int i = sc->n; i > 1; i--) {
        int j = (int)gr_rng_below(r, (uint64_t)i), t = idx[i - 1];
        idx[i - 1] = idx[j];
        idx[j] = t;
    }
    int sizes = (int)gr_rng_below(r, 2);
    for (int i = 0; i < sc->n; i++) {
        if (i) put(b, i == sc->n - 1 ? " and " : ", ");
        noun_phrase(b, &sc->obj[idx[i]], sizes);
    }
}

static void caption_count(sb *b, gr_rng *r, const gr_synth_config *cfg, const gr_synth_scene *sc)
{
    if (gr_rng_below(r, 2)) put(b, "%s %s: ", number_words[sc->n], sc->n == 1 ? "shape" : "shapes");
    int first = 1, groups = 0, done = 0;
    for (int s = 0; s < cfg->n_shapes; s++) groups += count_shape(sc, s) > 0;
    for (int s = 0; s < cfg->n_shapes; s++) {
        int k = count_shape(sc, s);
        if (!k) continue;
        done++;
        if (!first) put(b, done == groups ? " and " : ", ");
        put(b, "%s %s", number_words[k], k == 1 ? gr_synth_shape_name(s) : plural[s]);
        first = 0;
    }
}

static void caption_relation(sb *b, gr_rng *r, const gr_synth_config *cfg, const gr_synth_scene *sc)
{
    if (sc->n < 2) {
        char pos[48];
        position_phrase(cfg, &sc->obj[0], pos, sizeof pos);
        noun_phrase(b, &sc->obj[0], 0);
        put(b, " %s", pos);
        return;
    }
    int a = (int)gr_rng_below(r, (uint64_t)sc->n), c = (int)gr_rng_below(r, (uint64_t)sc->n - 1);
    if (c >= a) c++;
    noun_phrase(b, &sc->obj[a], 0);
    put(b, " %s ", relation_words[relation(&sc->obj[a], &sc->obj[c])]);
    noun_phrase(b, &sc->obj[c], 0);
}

static void caption_detail(sb *b, gr_rng *r, const gr_synth_config *cfg, const gr_synth_scene *sc)
{
    const gr_synth_object *o = &sc->obj[gr_rng_below(r, (uint64_t)sc->n)];
    char pos[48];
    position_phrase(cfg, o, pos, sizeof pos);
    noun_phrase(b, o, 1);
    put(b, " %s", pos);
}

static void caption_binding(sb *b, gr_rng *r, const gr_synth_scene *sc)
{
    int said = 0;
    for (int i = 0; i < sc->n && said < 3; i++) {
        const gr_synth_object *o = &sc->obj[i];
        if (count_shape(sc, o->shape) != 1) continue;
        put(b, "%sthe %s is %s", said ? " and " : "", SHAPE(o), COLOR(o));
        said++;
    }
    if (!said) caption_list(b, r, sc);
}

void gr_synth_captions(const gr_synth_config *cfg, size_t index, const gr_synth_scene *sc,
                       char caps[][GR_SYNTH_TEXT_CAP], int n)
{
    gr_rng r;
    gr_rng_seed(&r, gr_seed_mix(cfg->seed, 0x43415054ULL /* "CAPT" */, index));
    int start = (int)gr_rng_below(&r, 5);
    for (int i = 0; i < n; i++) {
        sb b = {caps[i], GR_SYNTH_TEXT_CAP, 0};
        caps[i][0] = '\0';
        if (sc->n == 0) {
            put(&b, "an empty grey picture");
            continue;
        }
        switch ((start + i) % 5) {
        case 0: caption_list(&b, &r, sc); break;
        case 1: caption_relation(&b, &r, cfg, sc); break;
        case 2: caption_count(&b, &r, cfg, sc); break;
        case 3: caption_detail(&b, &r, cfg, sc); break;
        default: caption_binding(&b, &r, sc); break;
        }
    }
}

/* One question of kind `kind` about the scene, or 0 when that kind has no unambiguous instance. */
static int make_question(const gr_synth_config *cfg, gr_rng *r, const gr_synth_scene *sc, int kind, gr_synth_qa *q)
{
    sb qb = {q->question, sizeof q->question, 0}, ab = {q->answer, sizeof q->answer, 0};
    q->question[0] = q->answer[0] = '\0';
    if (sc->n == 0) return 0;
    const gr_synth_object *o = &sc->obj[gr_rng_below(r, (uint64_t)sc->n)];
    int unique_combo = count_combo(sc, o->color, o->shape) == 1;
    switch (kind) {
    case 0: /* colour of a shape */
        if (count_shape(sc, o->shape) != 1) return 0;
        put(&qb, "what color is the %s?", SHAPE(o));
        put(&ab, "%s", COLOR(o));
        q->question_type = "what color is the", q->answer_type = "other";
        return 1;
    case 1: /* shape of a colour */
        if (count_color(sc, o->color) != 1) return 0;
        put(&qb, "what shape is the %s object?", COLOR(o));
        put(&ab, "%s", SHAPE(o));
        q->question_type = "what shape is the", q->answer_type = "other";
        return 1;
    case 2: { /* count a shape (present or not) */
        int s = gr_rng_below(r, 3) ? o->shape : (int)gr_rng_below(r, (uint64_t)cfg->n_shapes);
        put(&qb, "how many %s are there?", plural[s]);
        put(&ab, "%d", count_shape(sc, s));
        q->question_type = "how many", q->answer_type = "number";
        return 1;
    }
    case 3:
        put(&qb, "how many %s are there?", gr_rng_below(r, 2) ? "shapes" : "objects");
        put(&ab, "%d", sc->n);
        q->question_type = "how many", q->answer_type = "number";
        return 1;
    case 4: { /* existence, half of the time of an absent combination */
        int c = o->color, s = o->shape;
        if (gr_rng_below(r, 2)) {
            for (int t = 0; t < 20 && count_combo(sc, c, s); t++) {
                c = (int)gr_rng_below(r, (uint64_t)cfg->n_colors);
                s = gr_rng_below(r, 2) ? o->shape : (int)gr_rng_below(r, (uint64_t)cfg->n_shapes);
            }
        }
        put(&qb, "is there a %s %s?", gr_synth_color_name(c), gr_synth_shape_name(s));
        put(&ab, "%s", count_combo(sc, c, s) ? "yes" : "no");
        q->question_type = "is there a", q->answer_type = "yes/no";
        return 1;
    }
    case 5: { /* relation: the unique object in relation `rel` to o */
        if (!unique_combo || sc->n < 2) return 0;
        int rel = (int)gr_rng_below(r, 4), hit = -1, hits = 0;
        for (int i = 0; i < sc->n; i++)
            if (&sc->obj[i] != o && relation(&sc->obj[i], o) == rel) hit = i, hits++;
        if (hits != 1) return 0;
        put(&qb, "what is %s the %s %s?", relation_words[rel], COLOR(o), SHAPE(o));
        put(&ab, "%s %s", COLOR(&sc->obj[hit]), SHAPE(&sc->obj[hit]));
        q->question_type = "what is", q->answer_type = "other";
        return 1;
    }
    case 6:
        if (!unique_combo) return 0;
        put(&qb, "is the %s %s big or small?", COLOR(o), SHAPE(o));
        put(&ab, "%s", o->large ? "big" : "small");
        q->question_type = "is the", q->answer_type = "other";
        return 1;
    case 7:
        if (!unique_combo) return 0;
        put(&qb, "where is the %s %s?", COLOR(o), SHAPE(o));
        position_word(cfg, o, q->answer, sizeof q->answer);
        q->question_type = "where is the", q->answer_type = "other";
        return 1;
    default: { /* count a colour */
        int c = gr_rng_below(r, 3) ? o->color : (int)gr_rng_below(r, (uint64_t)cfg->n_colors);
        put(&qb, "how many %s shapes are there?", gr_synth_color_name(c));
        put(&ab, "%d", count_color(sc, c));
        q->question_type = "how many", q->answer_type = "number";
        return 1;
    }
    }
}

int gr_synth_questions(const gr_synth_config *cfg, size_t index, const gr_synth_scene *sc, gr_synth_qa *qa, int n)
{
    gr_rng r;
    gr_rng_seed(&r, gr_seed_mix(cfg->seed, 0x56514aULL /* "VQA" */, index));
    int got = 0;
    for (int attempt = 0; attempt < 12 * n && got < n; attempt++) {
        if (!make_question(cfg, &r, sc, (int)gr_rng_below(&r, 9), &qa[got])) continue;
        int dup = 0;
        for (int i = 0; i < got && !dup; i++) dup = strcmp(qa[i].question, qa[got].question) == 0;
        if (!dup) got++;
    }
    return got;
}

void gr_synth_knowledge(const gr_synth_config *cfg, gr_rng *r, char *out, size_t cap)
{
    sb b = {out, cap, 0};
    out[0] = '\0';
    int c = (int)gr_rng_below(r, (uint64_t)cfg->n_colors), s = (int)gr_rng_below(r, (uint64_t)cfg->n_shapes);
    int c2 = (c + 1 + (int)gr_rng_below(r, (uint64_t)cfg->n_colors - 1)) % cfg->n_colors;
    int s2 = (s + 1 + (int)gr_rng_below(r, (uint64_t)cfg->n_shapes - 1)) % cfg->n_shapes;
    const char *ct = color_things[c][gr_rng_below(r, 5)], *st = shape_things[s][gr_rng_below(r, 5)];
    const char *cn = gr_synth_color_name(c), *sn = gr_synth_shape_name(s);
    switch (gr_rng_below(r, 16)) {
    case 0: put(&b, "the %s is %s", ct, cn); break;
    case 1: put(&b, "a %s is %s", ct, cn); break;
    case 2: put(&b, "%s is the color of the %s", cn, ct); break;
    case 3: put(&b, "the %s is %s, not %s", ct, cn, gr_synth_color_name(c2)); break;
    case 4: put(&b, "a %s looks like a %s", st, sn); break;
    case 5: put(&b, "the shape of a %s is a %s", st, sn); break;
    case 6: put(&b, "a %s is shaped like a %s", st, sn); break;
    case 7: put(&b, "%s", shape_facts[s][gr_rng_below(r, 2)]); break;
    case 8: put(&b, "%s is a color and a %s is a shape", cn, sn); break;
    case 9: put(&b, "%s and %s are two different colors", cn, gr_synth_color_name(c2)); break;
    case 10: put(&b, "a %s and a %s are two different shapes", sn, gr_synth_shape_name(s2)); break;
    case 11: put(&b, "a %s %s looks like a %s %s", cn, sn, cn, st); break;
    case 12: {
        static const char *const opp[] = {"left is the opposite of right", "above is the opposite of below",
                                          "big is the opposite of small", "top is the opposite of bottom",
                                          "yes is the opposite of no"};
        put(&b, "%s", pick(r, opp, 5));
        break;
    }
    case 13: {
        int k = 1 + (int)gr_rng_below(r, 8);
        put(&b, "%d means %s", k, number_words[k]);
        break;
    }
    case 14: {
        int k = 1 + (int)gr_rng_below(r, 4), m = 1 + (int)gr_rng_below(r, 4);
        put(&b, "%s and %s make %s", number_words[k], number_words[m], number_words[k + m]);
        break;
    }
    default: put(&b, "if you paint a %s %s it becomes a %s %s", st, cn, cn, sn); break;
    }
}

int gr_synth_knowledge_facts(const gr_synth_config *cfg, gr_rng *r, gr_synth_line_fn emit, void *user)
{
    char line[GR_SYNTH_TEXT_CAP];
    int n = 0;
    for (int c = 0; c < cfg->n_colors; c++)
        for (int k = 0; k < 5; k++) {
            const char *ct = color_things[c][k], *cn = gr_synth_color_name(c);
            int c2 = (c + 1 + (int)gr_rng_below(r, (uint64_t)cfg->n_colors - 1)) % cfg->n_colors;
            snprintf(line, sizeof line, "the %s is %s", ct, cn), emit(user, line);
            snprintf(line, sizeof line, "a %s is %s", ct, cn), emit(user, line);
            snprintf(line, sizeof line, "%s is the color of the %s", cn, ct), emit(user, line);
            snprintf(line, sizeof line, "the %s is %s and not %s", ct, cn, gr_synth_color_name(c2)), emit(user, line);
            n += 4;
        }
    for (int s = 0; s < cfg->n_shapes; s++) {
        for (int k = 0; k < 5; k++) {
            const char *st = shape_things[s][k], *sn = gr_synth_shape_name(s);
            snprintf(line, sizeof line, "a %s looks like a %s", st, sn), emit(user, line);
            snprintf(line, sizeof line, "the shape of a %s is a %s", st, sn), emit(user, line);
            snprintf(line, sizeof line, "a %s is shaped like a %s", st, sn), emit(user, line);
            n += 3;
        }
        emit(user, shape_facts[s][0]);
        emit(user, shape_facts[s][1]);
        n += 2;
    }
    return n;
}
