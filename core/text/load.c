/* gr_tokenizer_load: picks the files of a tokenizer directory. */
#include <stdlib.h>
#include <string.h>

#include "base/fsutil.h"
#include "text/tok_internal.h"

gr_status gr_tokenizer_load(const char *dir, gr_tokenizer **out)
{
    *out = NULL;
    if (!gr_is_dir(dir)) return gr_fail(GR_ERR_NOT_FOUND, "%s: not a tokenizer directory", dir);
    static const char *const names[] = {"tokenizer.json", "vocab.json", "tokenizer.model", "spiece.model"};
    char *path[4];
    for (int i = 0; i < 4; i++) {
        path[i] = gr_path_join(dir, names[i]);
        if (!path[i]) { for (int k = 0; k < i; k++) free(path[k]); return gr_fail(GR_ERR_NOMEM, "out of memory"); }
    }
    gr_tokenizer *t = NULL;
    gr_status st;
    if (gr_path_exists(path[0])) {
        st = gr_tok_load_hf_json(path[0], &t);
    } else if (gr_path_exists(path[1])) {
        char *merges = gr_path_join(dir, "merges.txt");
        st = merges ? gr_tok_load_vocab_merges(path[1], merges, &t) : gr_fail(GR_ERR_NOMEM, "out of memory");
        free(merges);
    } else if (gr_path_exists(path[2])) {
        st = gr_tok_load_spm(path[2], &t);
    } else if (gr_path_exists(path[3])) {
        st = gr_tok_load_spm(path[3], &t);
    } else {
        st = gr_fail(GR_ERR_NOT_FOUND, "%s: no tokenizer.json, vocab.json + merges.txt, tokenizer.model or spiece.model", dir);
    }
    for (int i = 0; i < 4; i++) free(path[i]);
    if (st) return st;
    /* GPT-2 files alone: HF's GPT2Tokenizer defaults (<|endoftext|> is BOS = EOS = UNK and is
     * matched as a special token in text). A config file overrides them. */
    if (t->byte_level && !strstr(t->source, "tokenizer.json")) {
        int32_t id = gr_tok_lookup(t, "<|endoftext|>", 13);
        if (id >= 0) {
            t->bos_id = t->eos_id = t->unk_id = id;
            st = gr_tok_add_added(t, "<|endoftext|>", 13, id, 1, 0, 0, 0, 0);
        }
    }
    if (!st) st = gr_tok_apply_config(t, dir);
    if (st) { gr_tokenizer_free(t); return st; }
    *out = t;
    return GR_OK;
}
