/* safetensors reader/writer: round trips (single file, sharded) and every malformation the
 * reader must refuse with one line naming the file and the tensor. Files are written into a
 * fresh temporary directory; nothing is read from outside it. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/fsutil.h"
#include "graft/weights.h"
#include "io/safetensors.h"

static int failures, checks;
static char dir[512];

#define CHECK(cond, ...)                                                                       \
    do {                                                                                       \
        checks++;                                                                              \
        if (!(cond)) {                                                                         \
            failures++;                                                                        \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                                        \
            printf(__VA_ARGS__);                                                               \
            printf("\n");                                                                      \
        }                                                                                      \
    } while (0)

static char *path_of(const char *name)
{
    static char buf[8][700];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

/* Writes a raw safetensors file: 8-byte length, header text, then `data_len` data bytes. */
static void write_raw(const char *path, uint64_t header_len, const char *header, size_t data_len)
{
    FILE *f = fopen(path, "wb");
    if (!f) { perror(path); exit(2); }
    uint8_t lb[8];
    for (int i = 0; i < 8; i++) lb[i] = (uint8_t)(header_len >> (8 * i));
    fwrite(lb, 1, 8, f);
    fwrite(header, 1, strlen(header), f);
    for (size_t i = 0; i < data_len; i++) fputc((int)(i & 0xff), f);
    fclose(f);
}

static void write_header(const char *name, const char *header, size_t data_len)
{
    write_raw(path_of(name), strlen(header), header, data_len);
}

/* Opening must fail, and the message must be one line holding every needle. */
static void expect_error(const char *what, const char *path, const char *needle1, const char *needle2)
{
    gr_weights *w = NULL;
    gr_clear_error();
    gr_status s = gr_weights_open(path, &w);
    const char *msg = gr_last_error();
    CHECK(s != GR_OK && w == NULL, "%s: opened a malformed file", what);
    CHECK(strchr(msg, '\n') == NULL && msg[0], "%s: message is not one line: '%s'", what, msg);
    CHECK(strstr(msg, needle1) != NULL, "%s: message '%s' lacks '%s'", what, msg, needle1);
    if (needle2) CHECK(strstr(msg, needle2) != NULL, "%s: message '%s' lacks '%s'", what, msg, needle2);
    printf("ok   %-28s graft: %s\n", what, msg);
    gr_weights_close(w);
}

static void test_round_trip(void)
{
    float a[6] = {1, -2, 3.5f, 1e-30f, -0.0f, 65504};
    uint16_t b[3] = {0x3c00, 0xc000, 0x7bff};
    int64_t c[2] = {-100, 1LL << 40};
    gr_st_entry e[4] = {
        {.name = "layer.weight", .dtype = GR_F32, .ndim = 2, .shape = {2, 3}, .data = a},
        {.name = "h\xc3\xa9.bias", .dtype = GR_F16, .ndim = 1, .shape = {3}, .data = b},
        {.name = "ids", .dtype = GR_I64, .ndim = 1, .shape = {2}, .data = c},
        {.name = "scalar", .dtype = GR_F32, .ndim = 0, .data = a},
    };
    const char *meta[] = {"format", "pt", "inputs", "ids", NULL};
    const char *p = path_of("good.safetensors");
    CHECK(gr_st_write_entries(p, e, 4, meta) == GR_OK, "write: %s", gr_last_error());
    gr_weights *w = NULL;
    CHECK(gr_weights_open(p, &w) == GR_OK, "open: %s", gr_last_error());
    if (!w) return;
    CHECK(gr_weights_count(w) == 4, "count %d", gr_weights_count(w));
    const gr_weight_info *i = gr_weights_find(w, "layer.weight");
    CHECK(i && i->dtype == GR_F32 && i->ndim == 2 && i->shape[0] == 2 && i->shape[1] == 3 &&
              i->nbytes == 24 && memcmp(i->data, a, 24) == 0 && ((uintptr_t)i->data % 8) == 0,
          "layer.weight read back wrong");
    i = gr_weights_find(w, "h\xc3\xa9.bias");
    CHECK(i && i->dtype == GR_F16 && memcmp(i->data, b, 6) == 0, "UTF-8 named F16 tensor wrong");
    i = gr_weights_find(w, "ids");
    CHECK(i && i->dtype == GR_I64 && memcmp(i->data, c, 16) == 0, "I64 tensor wrong");
    i = gr_weights_find(w, "scalar");
    CHECK(i && i->ndim == 0 && i->nbytes == 4 && *(const float *)i->data == 1.0f, "0-dim tensor wrong");
    CHECK(gr_weights_find(w, "nope") == NULL, "found a missing tensor");
    CHECK(gr_weights_metadata(w, "inputs") && strcmp(gr_weights_metadata(w, "inputs"), "ids") == 0,
          "metadata");
    CHECK(gr_weights_metadata(w, "absent") == NULL, "absent metadata");
    int64_t want[2] = {2, 3}, wrong[2] = {3, 2};
    CHECK(gr_weights_expect(w, "layer.weight", 2, want) != NULL, "expect: %s", gr_last_error());
    CHECK(gr_weights_expect(w, "layer.weight", 2, wrong) == NULL &&
              strstr(gr_last_error(), "layer.weight") && strstr(gr_last_error(), "good.safetensors") &&
              strstr(gr_last_error(), "[2, 3]") && strstr(gr_last_error(), "[3, 2]"),
          "wrong shape message: %s", gr_last_error());
    printf("ok   %-28s graft: %s\n", "wrong shape", gr_last_error());
    CHECK(gr_weights_expect(w, "model.decoder.layers.0.fc1.weight", -1, NULL) == NULL &&
              strstr(gr_last_error(), "model.decoder.layers.0.fc1.weight") &&
              strstr(gr_last_error(), "good.safetensors"),
          "missing tensor message: %s", gr_last_error());
    printf("ok   %-28s graft: %s\n", "missing key", gr_last_error());
    gr_weights_close(w);

    /* No temporary file left behind by the atomic write. */
    char tmp[700];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", p, (long)getpid());
    CHECK(!gr_path_exists(tmp), "temporary file left behind");
}

static void test_sharded(void)
{
    char sub[600];
    snprintf(sub, sizeof sub, "%s/sharded", dir);
    gr_mkdirs(sub);
    float x[4] = {1, 2, 3, 4}, y[2] = {5, 6};
    gr_st_entry e1[1] = {{.name = "a.weight", .dtype = GR_F32, .ndim = 1, .shape = {4}, .data = x}};
    gr_st_entry e2[2] = {{.name = "b.weight", .dtype = GR_F32, .ndim = 1, .shape = {2}, .data = y},
                         {.name = "c.weight", .dtype = GR_F32, .ndim = 2, .shape = {1, 2}, .data = y}};
    char p1[700], p2[700], idx[700];
    snprintf(p1, sizeof p1, "%s/model-00001-of-00002.safetensors", sub);
    snprintf(p2, sizeof p2, "%s/model-00002-of-00002.safetensors", sub);
    snprintf(idx, sizeof idx, "%s/model.safetensors.index.json", sub);
    CHECK(gr_st_write_entries(p1, e1, 1, NULL) == GR_OK, "%s", gr_last_error());
    CHECK(gr_st_write_entries(p2, e2, 2, NULL) == GR_OK, "%s", gr_last_error());
    const char *index = "{\"metadata\": {\"total_size\": 24}, \"weight_map\": {"
                        "\"a.weight\": \"model-00001-of-00002.safetensors\","
                        "\"b.weight\": \"model-00002-of-00002.safetensors\","
                        "\"c.weight\": \"model-00002-of-00002.safetensors\"}}";
    gr_write_file_atomic(idx, index, strlen(index));
    gr_weights *w = NULL;
    CHECK(gr_weights_open(sub, &w) == GR_OK, "sharded open: %s", gr_last_error());
    if (w) {
        CHECK(gr_weights_count(w) == 3, "sharded count");
        const gr_weight_info *i = gr_weights_find(w, "c.weight");
        CHECK(i && i->ndim == 2 && ((const float *)i->data)[1] == 6 && strstr(i->file, "00002"),
              "sharded c.weight");
        i = gr_weights_find(w, "a.weight");
        CHECK(i && ((const float *)i->data)[3] == 4 && strstr(i->file, "00001"), "sharded a.weight");
        gr_weights_close(w);
    }
    /* An index naming a tensor its shard lacks. */
    const char *bad = "{\"weight_map\": {\"a.weight\": \"model-00002-of-00002.safetensors\","
                      "\"b.weight\": \"model-00002-of-00002.safetensors\"}}";
    gr_write_file_atomic(idx, bad, strlen(bad));
    expect_error("index names wrong shard", sub, "a.weight", "model.safetensors.index.json");
    /* The same tensor in two shards. */
    gr_st_entry e3[1] = {{.name = "b.weight", .dtype = GR_F32, .ndim = 1, .shape = {2}, .data = y}};
    CHECK(gr_st_write_entries(p1, e3, 1, NULL) == GR_OK, "%s", gr_last_error());
    const char *dup = "{\"weight_map\": {\"b.weight\": \"model-00001-of-00002.safetensors\","
                      "\"c.weight\": \"model-00002-of-00002.safetensors\"}}";
    gr_write_file_atomic(idx, dup, strlen(dup));
    expect_error("tensor in two shards", sub, "b.weight", "model-0000");
    /* A shard that does not exist. */
    const char *gone = "{\"weight_map\": {\"z.weight\": \"model-00009-of-00009.safetensors\"}}";
    gr_write_file_atomic(idx, gone, strlen(gone));
    expect_error("missing shard", sub, "model-00009-of-00009.safetensors", NULL);
    /* An empty directory. */
    char empty[700];
    snprintf(empty, sizeof empty, "%s/empty", dir);
    gr_mkdirs(empty);
    expect_error("directory without weights", empty, "model.safetensors", NULL);
}

static void test_malformed(void)
{
    /* A valid file cut short: its last tensor's bytes run past the end. */
    float v[8] = {0};
    gr_st_entry e[2] = {{.name = "first", .dtype = GR_F32, .ndim = 1, .shape = {4}, .data = v},
                        {.name = "second.weight", .dtype = GR_F32, .ndim = 1, .shape = {4}, .data = v}};
    const char *p = path_of("truncated.safetensors");
    gr_st_write_entries(p, e, 2, NULL);
    FILE *f = fopen(p, "rb");
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fclose(f);
    CHECK(truncate(p, size - 5) == 0, "truncate");
    expect_error("truncated file", p, "truncated.safetensors", "second.weight");

    write_raw(path_of("tiny.safetensors"), 0, "", 0);
    CHECK(truncate(path_of("tiny.safetensors"), 5) == 0, "truncate");
    expect_error("shorter than 8 bytes", path_of("tiny.safetensors"), "tiny.safetensors", "too short");

    write_raw(path_of("pasteof.safetensors"), 4096, "{\"a\": {}}", 10);
    expect_error("header past EOF", path_of("pasteof.safetensors"), "pasteof.safetensors",
                 "past the end of the file");

    /* A 150 MB header claim in a sparse file of that size: refused before reading it. */
    const char *big = path_of("bighdr.safetensors");
    write_raw(big, 150000000ULL, "{", 0);
    CHECK(truncate(big, 150000100) == 0, "truncate");
    expect_error("header > 100 MB", big, "bighdr.safetensors", "100 MB");
    unlink(big);

    write_header("overlap.safetensors",
                 "{\"x.weight\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                 "\"y.weight\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                 16);
    expect_error("overlapping offsets", path_of("overlap.safetensors"), "x.weight", "y.weight");

    write_header("dtypelen.safetensors",
                 "{\"z.bias\":{\"dtype\":\"BF16\",\"shape\":[3,2],\"data_offsets\":[0,24]}}", 24);
    expect_error("wrong dtype length", path_of("dtypelen.safetensors"), "z.bias", "12 bytes");

    write_header("offrange.safetensors",
                 "{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8);
    expect_error("offsets out of range", path_of("offrange.safetensors"), "offrange.safetensors",
                 "'w'");

    write_header("utf8.safetensors",
                 "{\"enc\xff\xfe.w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4);
    expect_error("bad UTF-8 name", path_of("utf8.safetensors"), "utf8.safetensors", "enc");

    write_header("overlong.safetensors",
                 "{\"a\xc0\xaf\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4);
    expect_error("overlong UTF-8 name", path_of("overlong.safetensors"), "overlong.safetensors",
                 "UTF-8");

    write_header("json.safetensors", "{\"a\": {\"dtype\": \"F32\",", 4);
    expect_error("invalid JSON", path_of("json.safetensors"), "json.safetensors", "JSON");

    write_header("dupkey.safetensors",
                 "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                 "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8);
    expect_error("duplicate name", path_of("dupkey.safetensors"), "dupkey.safetensors", "a");

    write_header("baddtype.safetensors",
                 "{\"q.weight\":{\"dtype\":\"F12\",\"shape\":[4],\"data_offsets\":[0,4]}}", 4);
    expect_error("unknown dtype", path_of("baddtype.safetensors"), "q.weight", "F12");

    write_header("f8len.safetensors",
                 "{\"q.weight\":{\"dtype\":\"F8_E4M3\",\"shape\":[4],\"data_offsets\":[0,8]}}", 8);
    expect_error("F8 length", path_of("f8len.safetensors"), "q.weight", "4 bytes");

    write_header("negshape.safetensors",
                 "{\"n\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4);
    expect_error("negative dim", path_of("negshape.safetensors"), "'n'", "shape");

    write_header("hugeshape.safetensors",
                 "{\"h\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],"
                 "\"data_offsets\":[0,4]}}", 4);
    expect_error("numel overflow", path_of("hugeshape.safetensors"), "'h'", "too many");

    write_header("meta.safetensors", "{\"__metadata__\":{\"k\":1}}", 0);
    expect_error("non-string metadata", path_of("meta.safetensors"), "meta.safetensors", "'k'");

    expect_error("missing file", path_of("absent.safetensors"), "absent.safetensors", "cannot open");

    /* Empty tensors own no bytes and may sit anywhere; a header padded with spaces is valid. */
    write_header("empty_ok.safetensors",
                 "{\"e\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[4,4]},"
                 "\"f\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}    ", 8);
    gr_weights *w = NULL;
    CHECK(gr_weights_open(path_of("empty_ok.safetensors"), &w) == GR_OK, "empty tensor: %s",
          gr_last_error());
    gr_weights_close(w);

    /* A BOOL buffer the model does not use opens; asking for it names its dtype problem. */
    write_header("bool.safetensors",
                 "{\"attn.mask\":{\"dtype\":\"BOOL\",\"shape\":[2,2],\"data_offsets\":[0,4]},"
                 "\"f\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8);
    w = NULL;
    CHECK(gr_weights_open(path_of("bool.safetensors"), &w) == GR_OK, "bool buffer: %s", gr_last_error());
    if (w) {
        CHECK(gr_weights_expect(w, "f", 1, (int64_t[]){1}) != NULL, "f: %s", gr_last_error());
        CHECK(gr_weights_expect(w, "attn.mask", -1, NULL) == NULL && strstr(gr_last_error(), "attn.mask"),
              "bool tensor must be refused on use: %s", gr_last_error());
        gr_weights_close(w);
    }
}

int main(void)
{
    const char *base = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/graft-st-XXXXXX", base && base[0] ? base : "/tmp");
    if (!mkdtemp(dir)) { perror("mkdtemp"); return 2; }
    test_round_trip();
    test_sharded();
    test_malformed();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) printf("note: could not remove %s\n", dir);
    printf("safetensors: %d checks, %d failed\n", checks, failures);
    return failures ? 1 : 0;
}
