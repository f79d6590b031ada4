/* Test setup: a tiny BLIP-2-style model for the synthetic world.
 *   make_tiny WORLD_DIR OUT_DIR
 * writes OUT_DIR/vision/config.json (CLIP ViT, 32 px, patch 8), OUT_DIR/qformer/config.json
 * (8 queries), OUT_DIR/lm/{config.json, tokenizer.json} (a 2-layer OPT; its tokenizer is a
 * byte-level BPE whose merges spell every word of WORLD_DIR/corpus.txt, so each word is one
 * token). No weights: the engine initialises every part randomly from model.target.seed.
 * (When `graft tokenizer train` / `graft pretrain` land, they replace this helper.) */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fsutil.h"
#include "text/tokenizer.h"

static int die(const char *what)
{
    fprintf(stderr, "make_tiny: %s: %s\n", what, gr_last_error());
    return 1;
}

/* GPT-2's bytes_to_unicode: the UTF-8 text of byte b's stand-in character. */
static void byte_char(int b, char *out)
{
    int cp;
    if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)) {
        cp = b;
    } else {
        int n = 0;
        for (int x = 0; x < b; x++)
            if (!((x >= '!' && x <= '~') || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE && x <= 0xFF))) n++;
        cp = 256 + n;
    }
    if (cp < 0x80) { out[0] = (char)cp; out[1] = 0; }
    else { out[0] = (char)(0xC0 | (cp >> 6)); out[1] = (char)(0x80 | (cp & 0x3F)); out[2] = 0; }
}

static int write_text(const char *dir, const char *name, const char *text)
{
    gr_mkdirs(dir);
    char *p = gr_path_join(dir, name);
    gr_status s = gr_write_file_atomic(p, text, strlen(text));
    free(p);
    return s == GR_OK ? 0 : die(name);
}

static int cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int main(int argc, char **argv)
{
    if (argc != 3) { fprintf(stderr, "usage: make_tiny WORLD_DIR OUT_DIR\n"); return 2; }
    char *cpath = gr_path_join(argv[1], "corpus.txt"), *text = NULL;
    if (gr_read_file(cpath, &text, NULL) != GR_OK) return die(cpath);
    /* distinct words: runs of letters or of digits */
    size_t cap = 1024, n = 0;
    char **words = malloc(cap * sizeof *words);
    for (char *p = text; *p;) {
        if (isalpha((unsigned char)*p) || isdigit((unsigned char)*p)) {
            int digit = isdigit((unsigned char)*p) != 0;
            char *q = p;
            while (*q && (digit ? isdigit((unsigned char)*q) : isalpha((unsigned char)*q))) q++;
            if (n == cap) words = realloc(words, (cap *= 2) * sizeof *words);
            words[n++] = strndup(p, (size_t)(q - p));
            p = q;
        } else {
            p++;
        }
    }
    qsort(words, n, sizeof *words, cmp);
    size_t u = 0;
    for (size_t i = 0; i < n; i++) {
        if (u && strcmp(words[u - 1], words[i]) == 0) { free(words[i]); continue; }
        words[u++] = words[i];
    }
    gr_tokenizer *tok;
    if (gr_tokenizer_new(GR_TOK_BPE, 1, &tok) != GR_OK) return die("tokenizer");
    static const char *const special[] = {"<s>", "<pad>", "</s>", "<unk>"};
    int32_t id;
    for (int i = 0; i < 4; i++)
        if (gr_tokenizer_add_piece(tok, special[i], strlen(special[i]), 0, GR_PIECE_CONTROL, &id) != GR_OK) return die("special");
    int32_t byte_id[256];
    for (int b = 0; b < 256; b++) {
        char c[4];
        byte_char(b, c);
        if (gr_tokenizer_add_piece(tok, c, strlen(c), 0, GR_PIECE_NORMAL, &byte_id[b]) != GR_OK) return die("byte");
    }
    /* word chains: " word" ("Ġword") first, so they win over the bare words' merges */
    for (int pass = 0; pass < 2; pass++) {
        for (size_t w = 0; w < u; w++) {
            char piece[256] = "";
            int32_t left;
            size_t len = strlen(words[w]);
            if (len > 60) continue;
            if (pass == 0) { byte_char(' ', piece); left = byte_id[' ']; }
            else { byte_char((unsigned char)words[w][0], piece); left = byte_id[(unsigned char)words[w][0]]; }
            for (size_t k = pass == 0 ? 0 : 1; k < len; k++) {
                char c[4];
                byte_char((unsigned char)words[w][k], c);
                strcat(piece, c);
                int32_t have = gr_tokenizer_piece_id(tok, piece, strlen(piece));
                if (have < 0) {
                    if (gr_tokenizer_add_piece(tok, piece, strlen(piece), 0, GR_PIECE_NORMAL, &have) != GR_OK ||
                        gr_tokenizer_add_merge(tok, left, byte_id[(unsigned char)words[w][k]]) != GR_OK)
                        return die(piece);
                }
                left = have;
            }
        }
    }
    if (gr_tokenizer_set_specials(tok, 2, 2, 1, 3, 1, 0) != GR_OK) return die("specials");
    int32_t vocab = gr_tokenizer_vocab_size(tok);
    char *lm = gr_path_join(argv[2], "lm"), *vis = gr_path_join(argv[2], "vision"), *qf = gr_path_join(argv[2], "qformer");
    gr_mkdirs(lm);
    char *tj = gr_path_join(lm, "tokenizer.json");
    if (gr_tokenizer_save_json(tok, tj) != GR_OK) return die(tj);
    char buf[4096];
    snprintf(buf, sizeof buf,
             "{\"model_type\": \"opt\", \"vocab_size\": %d, \"hidden_size\": 64, \"num_hidden_layers\": 2,\n"
             " \"ffn_dim\": 128, \"num_attention_heads\": 4, \"max_position_embeddings\": 128,\n"
             " \"do_layer_norm_before\": true, \"word_embed_proj_dim\": 64, \"activation_function\": \"relu\",\n"
             " \"init_std\": 0.02, \"pad_token_id\": 1, \"bos_token_id\": 2, \"eos_token_id\": 2,\n"
             " \"enable_bias\": true, \"layer_norm_elementwise_affine\": true, \"tie_word_embeddings\": true}\n",
             (int)vocab);
    if (write_text(lm, "config.json", buf)) return 1;
    if (write_text(vis, "config.json",
                   "{\"model_type\": \"clip_vision_model\", \"hidden_size\": 48, \"intermediate_size\": 96,\n"
                   " \"num_hidden_layers\": 2, \"num_attention_heads\": 2, \"num_channels\": 3, \"image_size\": 32,\n"
                   " \"patch_size\": 8, \"hidden_act\": \"quick_gelu\", \"layer_norm_eps\": 1e-05,\n"
                   " \"initializer_range\": 0.02, \"initializer_factor\": 1.0}\n"))
        return 1;
    if (write_text(qf, "config.json",
                   "{\"model_type\": \"blip_2_qformer\", \"hidden_size\": 48, \"num_hidden_layers\": 2,\n"
                   " \"num_attention_heads\": 2, \"intermediate_size\": 96, \"hidden_act\": \"gelu\",\n"
                   " \"layer_norm_eps\": 1e-12, \"cross_attention_frequency\": 1, \"encoder_hidden_size\": 48,\n"
                   " \"num_query_tokens\": 8, \"initializer_range\": 0.02, \"max_position_embeddings\": 64,\n"
                   " \"vocab_size\": 100, \"pad_token_id\": 0, \"position_embedding_type\": \"absolute\"}\n"))
        return 1;
    printf("make_tiny: %zu words, vocabulary %d, wrote %s\n", u, (int)vocab, argv[2]);
    for (size_t i = 0; i < u; i++) free(words[i]);
    free(words);
    free(text); free(cpath); free(lm); free(vis); free(qf); free(tj);
    gr_tokenizer_free(tok);
    return 0;
}
