/* Malformed images: each must fail with one line that names the file, never crash.
 * usage: test_image_errors IMAGE_DIR  (the corrupt files are derived at run time from the
 * real ones there, plus scikit-image's own truncated.jpg). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/fsutil.h"
#include "image/image.h"

static int failures, checks;

static uint32_t crc32_of(const uint8_t *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1)));
    }
    return ~c;
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

/* Decodes `bytes` under the name `name`; expects failure with `name` and `needle` in the message. */
static void expect_fail(const char *name, const void *bytes, size_t len, const char *needle)
{
    gr_image img;
    gr_clear_error();
    gr_status st = gr_image_decode(name, bytes, len, &img);
    const char *msg = gr_last_error();
    int ok = st != GR_OK && strstr(msg, name) && strstr(msg, needle) && !strchr(msg, '\n') && img.rgb == NULL;
    printf("%s %s -> %s\n", ok ? "ok  " : "FAIL", name, st ? msg : "(decoded!)");
    checks++;
    if (!ok) failures++;
    if (st == GR_OK) gr_image_free(&img);
}

int main(int argc, char **argv)
{
    if (argc != 2) return 2;
    char *png, *jpg;
    size_t png_len, jpg_len;
    char *p1 = gr_path_join(argv[1], "chelsea.png"), *p2 = gr_path_join(argv[1], "rocket.jpg");
    if (gr_read_file(p1, &png, &png_len) || gr_read_file(p2, &jpg, &jpg_len)) {
        printf("FAIL %s\n", gr_last_error());
        return 1;
    }
    expect_fail("empty.png", png, 0, "empty");
    expect_fail("text.jpg", "hello world", 11, "not a PNG or JPEG");
    expect_fail("half.png", png, png_len / 2, "corrupt PNG");
    expect_fail("header_only.png", png, 40, "corrupt PNG");
    expect_fail("half.jpg", jpg, jpg_len / 2, "truncated");
    expect_fail("soi_only.jpg", jpg, 3, "corrupt JPEG");

    /* A flipped byte inside the first IDAT's compressed data: CRC mismatch on a critical chunk. */
    uint8_t *bad = malloc(png_len);
    memcpy(bad, png, png_len);
    uint8_t *idat = memmem(bad, png_len, "IDAT", 4);
    idat[40] ^= 0x55;
    expect_fail("crc.png", bad, png_len, "corrupt PNG");
    /* Same flip with a recomputed CRC: now zlib sees the damage. */
    uint32_t idat_len = (uint32_t)idat[-4] << 24 | (uint32_t)idat[-3] << 16 | (uint32_t)idat[-2] << 8 | idat[-1];
    put32(idat + 4 + idat_len, crc32_of(idat, idat_len + 4));
    expect_fail("zlib.png", bad, png_len, "corrupt PNG");
    free(bad);

    /* A valid IHDR declaring 100000 x 100000 pixels (decompression bomb guard). */
    uint8_t big[8 + 25];
    memcpy(big, png, 8 + 25);
    put32(big + 16, 100000);
    put32(big + 20, 100000);
    put32(big + 29, crc32_of(big + 12, 17));
    expect_fail("bomb.png", big, sizeof big, "corrupt PNG");
    /* A JPEG whose SOF declares 60000 x 60000 pixels. */
    uint8_t *jb = malloc(jpg_len);
    memcpy(jb, jpg, jpg_len);
    for (size_t i = 2; i + 9 < jpg_len; i++)
        if (jb[i] == 0xff && (jb[i + 1] == 0xc0 || jb[i + 1] == 0xc2)) {
            jb[i + 5] = 0xea, jb[i + 6] = 0x60, jb[i + 7] = 0xea, jb[i + 8] = 0x60;
            break;
        }
    expect_fail("bomb.jpg", jb, jpg_len, "larger than graft accepts");
    free(jb);

    /* scikit-image ships a truncated JPEG for exactly this purpose. */
    char *tpath = gr_path_join(argv[1], "truncated.jpg");
    char *t;
    size_t tlen;
    if (gr_read_file(tpath, &t, &tlen) == GR_OK) {
        expect_fail(tpath, t, tlen, "corrupt JPEG");
        free(t);
    } else {
        printf("FAIL %s\n", gr_last_error());
        failures++;
    }
    /* A missing file names its path. */
    gr_image img;
    char *missing = gr_path_join(argv[1], "no_such_image.png");
    gr_status st = gr_image_load(missing, &img);
    checks++;
    if (st == GR_OK || !strstr(gr_last_error(), missing)) failures++;
    printf("%s missing file -> %s\n", st && strstr(gr_last_error(), missing) ? "ok  " : "FAIL", gr_last_error());
    free(missing);
    free(tpath);
    free(p1);
    free(p2);
    free(png);
    free(jpg);
    printf("image errors: %d passed, %d failed\n", checks - failures, failures);
    return failures ? 1 : 0;
}
