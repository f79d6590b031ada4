/* SentencePiece .model files (tokenizer.model, spiece.model): a protobuf ModelProto read with a
 * small wire-format reader. Fields used (sentencepiece_model.proto):
 *   ModelProto      1 pieces (repeated SentencePiece), 2 trainer_spec, 3 normalizer_spec
 *   SentencePiece   1 piece (string), 2 score (float), 3 type (enum, default NORMAL)
 *   TrainerSpec     3 model_type (1 unigram, 2 BPE, 3 word, 4 char), 24 treat_whitespace_as_suffix,
 *                   35 byte_fallback, 40-43 unk/bos/eos/pad ids, 45-48 their pieces
 *   NormalizerSpec  1 name, 2 precompiled_charsmap, 3 add_dummy_prefix, 4 remove_extra_whitespaces,
 *                   5 escape_whitespaces
 * Unknown fields are skipped, as protobuf requires; every length is checked against the file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fsutil.h"
#include "text/tok_internal.h"

typedef struct pb { const unsigned char *p, *end; const char *path; const char *where; } pb;

static gr_status pb_err(const pb *r, const char *what)
{
    return gr_fail(GR_ERR_FORMAT, "%s: malformed SentencePiece model: %s in %s", r->path, what, r->where);
}

static gr_status pb_varint(pb *r, uint64_t *v)
{
    uint64_t x = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (r->p >= r->end) return pb_err(r, "truncated varint");
        unsigned char b = *r->p++;
        x |= (uint64_t)(b & 0x7F) << shift;
        if (!(b & 0x80)) { *v = x; return GR_OK; }
    }
    return pb_err(r, "varint longer than 10 bytes");
}

/* Reads one field header and, for length-delimited fields, the payload bounds. */
typedef struct pb_field { uint32_t num; int wt; uint64_t v; const unsigned char *data; size_t len; } pb_field;

static gr_status pb_next(pb *r, pb_field *f)
{
    uint64_t tag;
    gr_status st = pb_varint(r, &tag);
    if (st) return st;
    f->num = (uint32_t)(tag >> 3);
    f->wt = (int)(tag & 7);
    if (f->num == 0) return pb_err(r, "field number 0");
    switch (f->wt) {
    case 0: return pb_varint(r, &f->v);
    case 1:
        if (r->end - r->p < 8) return pb_err(r, "truncated fixed64");
        r->p += 8;
        return GR_OK;
    case 5:
        if (r->end - r->p < 4) return pb_err(r, "truncated fixed32");
        f->v = (uint64_t)r->p[0] | ((uint64_t)r->p[1] << 8) | ((uint64_t)r->p[2] << 16) | ((uint64_t)r->p[3] << 24);
        r->p += 4;
        return GR_OK;
    case 2: {
        uint64_t n;
        if ((st = pb_varint(r, &n))) return st;
        if (n > (uint64_t)(r->end - r->p)) return pb_err(r, "length-delimited field runs past the end");
        f->data = r->p;
        f->len = (size_t)n;
        r->p += n;
        return GR_OK;
    }
    default: return pb_err(r, "unsupported wire type (group)");
    }
}

static float pb_float(uint64_t v)
{
    uint32_t u = (uint32_t)v;
    float x;
    memcpy(&x, &u, 4);
    return x;
}

typedef struct spm_spec {
    int model_type, byte_fallback, ws_suffix;
    int32_t unk_id, bos_id, eos_id, pad_id;
    char piece_name[4][64]; /* unk, bos, eos, pad */
    const unsigned char *cm; size_t cm_len;
    int add_dummy_prefix, remove_extra_ws, escape_ws;
    char name[64];
} spm_spec;

static void copy_str(char *dst, size_t cap, const unsigned char *s, size_t n)
{
    if (n >= cap) n = cap - 1;
    memcpy(dst, s, n);
    dst[n] = '\0';
}

static gr_status read_trainer(pb *r, spm_spec *sp)
{
    pb_field f;
    while (r->p < r->end) {
        gr_status st = pb_next(r, &f);
        if (st) return st;
        switch (f.num) {
        case 3: if (f.wt == 0) sp->model_type = (int)f.v; break;
        case 24: if (f.wt == 0) sp->ws_suffix = f.v != 0; break;
        case 35: if (f.wt == 0) sp->byte_fallback = f.v != 0; break;
        case 40: if (f.wt == 0) sp->unk_id = (int32_t)f.v; break;
        case 41: if (f.wt == 0) sp->bos_id = (int32_t)f.v; break;
        case 42: if (f.wt == 0) sp->eos_id = (int32_t)f.v; break;
        case 43: if (f.wt == 0) sp->pad_id = (int32_t)f.v; break;
        case 45: case 46: case 47: case 48:
            if (f.wt == 2) copy_str(sp->piece_name[f.num - 45], sizeof sp->piece_name[0], f.data, f.len);
            break;
        default: break;
        }
    }
    return GR_OK;
}

static gr_status read_normalizer(pb *r, spm_spec *sp)
{
    pb_field f;
    while (r->p < r->end) {
        gr_status st = pb_next(r, &f);
        if (st) return st;
        switch (f.num) {
        case 1: if (f.wt == 2) copy_str(sp->name, sizeof sp->name, f.data, f.len); break;
        case 2: if (f.wt == 2) { sp->cm = f.data; sp->cm_len = f.len; } break;
        case 3: if (f.wt == 0) sp->add_dummy_prefix = f.v != 0; break;
        case 4: if (f.wt == 0) sp->remove_extra_ws = f.v != 0; break;
        case 5: if (f.wt == 0) sp->escape_ws = f.v != 0; break;
        default: break;
        }
    }
    return GR_OK;
}

static gr_status read_piece(gr_tokenizer *t, pb *r, int index)
{
    const unsigned char *s = NULL;
    size_t len = 0;
    float score = 0;
    int type = GR_PIECE_NORMAL, has_piece = 0;
    pb_field f;
    while (r->p < r->end) {
        gr_status st = pb_next(r, &f);
        if (st) return st;
        if (f.num == 1 && f.wt == 2) { s = f.data; len = f.len; has_piece = 1; }
        else if (f.num == 2 && f.wt == 5) score = pb_float(f.v);
        else if (f.num == 3 && f.wt == 0) type = (int)f.v;
    }
    if (!has_piece || len == 0) return gr_fail(GR_ERR_FORMAT, "%s: piece %d has no text", t->source, index);
    if (type < 1 || type > 6) return gr_fail(GR_ERR_FORMAT, "%s: piece %d has unknown type %d", t->source, index, type);
    if (!gr_utf8_valid((const char *)s, len))
        return gr_fail(GR_ERR_FORMAT, "%s: piece %d is not valid UTF-8", t->source, index);
    return gr_tok_push_piece(t, (const char *)s, len, score, type, NULL);
}

static int32_t role_id(const gr_tokenizer *t, const char *piece, int32_t fallback_id)
{
    /* SentencePiece resolves bos/eos/pad through their piece names and accepts only control
     * pieces; the numeric ids in the trainer spec say the same thing for a well-formed model. */
    int32_t id = gr_tok_lookup(t, piece, strlen(piece));
    if (id < 0 && fallback_id >= 0 && fallback_id < t->n_model) id = fallback_id;
    if (id >= 0 && t->pieces[id].type != GR_PIECE_CONTROL) return -1;
    return id;
}

gr_status gr_tok_load_spm(const char *path, gr_tokenizer **out)
{
    char *data;
    size_t size;
    gr_status st = gr_read_file(path, &data, &size);
    if (st) return st;
    gr_tokenizer *t = gr_tok_alloc(path);
    if (!t) { free(data); return gr_fail(GR_ERR_NOMEM, "%s: out of memory", path); }
    spm_spec sp = {.model_type = 1, .unk_id = 0, .bos_id = 1, .eos_id = 2, .pad_id = -1,
                   .add_dummy_prefix = 1, .remove_extra_ws = 1, .escape_ws = 1};
    strcpy(sp.piece_name[0], "<unk>");
    strcpy(sp.piece_name[1], "<s>");
    strcpy(sp.piece_name[2], "</s>");
    strcpy(sp.piece_name[3], "<pad>");
    pb r = {(const unsigned char *)data, (const unsigned char *)data + size, path, "ModelProto"};
    pb_field f;
    int n_pieces = 0, has_normalizer = 0;
    while (!st && r.p < r.end) {
        if ((st = pb_next(&r, &f))) break;
        if (f.wt != 2) continue;
        pb sub = {f.data, f.data + f.len, path, "ModelProto"};
        if (f.num == 1) { sub.where = "pieces"; st = read_piece(t, &sub, n_pieces++); }
        else if (f.num == 2) { sub.where = "trainer_spec"; st = read_trainer(&sub, &sp); }
        else if (f.num == 3) { sub.where = "normalizer_spec"; st = read_normalizer(&sub, &sp); has_normalizer = 1; }
    }
    if (!st && n_pieces == 0) st = gr_fail(GR_ERR_FORMAT, "%s: not a SentencePiece model (no pieces)", path);
    if (!st && !has_normalizer) st = gr_fail(GR_ERR_FORMAT, "%s: SentencePiece model has no normalizer_spec", path);
    if (!st && sp.model_type != 1 && sp.model_type != 2)
        st = gr_fail(GR_ERR_UNSUPPORTED, "%s: SentencePiece model_type %d (only unigram and BPE are supported)", path, sp.model_type);
    if (!st && sp.ws_suffix)
        st = gr_fail(GR_ERR_UNSUPPORTED, "%s: treat_whitespace_as_suffix is not supported", path);
    if (st) { free(data); gr_tokenizer_free(t); return st; }

    t->spm = 1;
    t->kind = sp.model_type == 2 ? GR_TOK_BPE : GR_TOK_UNIGRAM;
    t->byte_fallback = sp.byte_fallback;
    t->add_dummy_prefix = sp.add_dummy_prefix;
    t->remove_extra_ws = sp.remove_extra_ws;
    t->escape_ws = sp.escape_ws;
    t->spm_name = strdup(sp.name);
    /* exactly one UNKNOWN piece, as SentencePiece requires */
    for (int32_t i = 0; i < t->n_model; i++)
        if (t->pieces[i].type == GR_PIECE_UNKNOWN) {
            if (t->unk_id >= 0) { st = gr_fail(GR_ERR_FORMAT, "%s: more than one unknown piece", path); break; }
            t->unk_id = i;
        }
    if (!st && t->unk_id < 0) st = gr_fail(GR_ERR_FORMAT, "%s: the model has no unknown piece", path);
    if (!st) st = gr_tok_finish(t);
    if (!st && t->byte_fallback)
        for (int b = 0; b < 256; b++)
            if (t->byte_id[b] < 0) { st = gr_fail(GR_ERR_FORMAT, "%s: byte_fallback is set but piece <0x%02X> is missing", path, b); break; }
    if (st) { free(data); gr_tokenizer_free(t); return st; }
    t->bos_id = role_id(t, sp.piece_name[1], sp.bos_id);
    t->eos_id = role_id(t, sp.piece_name[2], sp.eos_id);
    t->pad_id = role_id(t, sp.piece_name[3], sp.pad_id);
    /* Without a tokenizer_config.json: Llama's rule (BOS) when the model has a BOS, else T5's
     * (EOS appended) when it has an EOS, else nothing (ALBERT's model has neither). */
    if (t->bos_id >= 0) t->prefix[t->n_prefix++] = t->bos_id;
    else if (t->eos_id >= 0) t->suffix[t->n_suffix++] = t->eos_id;

    t->norms = calloc(1, sizeof *t->norms);
    if (!t->norms) { free(data); gr_tokenizer_free(t); return gr_fail(GR_ERR_NOMEM, "%s: out of memory", path); }
    t->n_norms = 1;
    t->norms[0].kind = NORM_SPM;
    if (sp.cm_len) {
        st = gr_charsmap_init(&t->norms[0].cm, (const char *)sp.cm, sp.cm_len, path);
        if (st) { free(data); gr_tokenizer_free(t); return st; }
        t->norms[0].has_cm = 1;
    }
    free(data); /* sp.cm pointed into it */
    snprintf(t->desc, sizeof t->desc, "SentencePiece %s, %d pieces%s, normalizer %s (%s)",
             t->kind == GR_TOK_BPE ? "BPE" : "Unigram", t->n_model, t->byte_fallback ? ", byte fallback" : "",
             sp.name[0] ? sp.name : "identity", path);
    *out = t;
    return GR_OK;
}
