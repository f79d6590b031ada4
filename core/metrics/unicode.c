/* UTF-8 and the few Unicode properties the metrics need (see unicode.h). */
#include <stdlib.h>
#include <string.h>

#include "metrics/unicode.h"

uint32_t gr_u_decode(const char *s, size_t len, size_t *i)
{
    const unsigned char *p = (const unsigned char *)s + *i;
    size_t left = len - *i;
    unsigned c = p[0];
    int n = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
    if (n == 0 || (size_t)n > left) { (*i)++; return c < 0x80 ? c : 0xFFFD; }
    uint32_t cp = n == 1 ? c : n == 2 ? (c & 0x1F) : n == 3 ? (c & 0x0F) : (c & 0x07);
    for (int k = 1; k < n; k++) {
        if ((p[k] & 0xC0) != 0x80) { (*i)++; return 0xFFFD; }
        cp = (cp << 6) | (p[k] & 0x3F);
    }
    *i += (size_t)n;
    return cp;
}

size_t gr_u_encode(uint32_t cp, char *out)
{
    unsigned char *o = (unsigned char *)out;
    if (cp < 0x80) { o[0] = (unsigned char)cp; return 1; }
    if (cp < 0x800) { o[0] = (unsigned char)(0xC0 | (cp >> 6)); o[1] = (unsigned char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

static int in_ranges(const gr_u_pair *r, unsigned n, uint32_t cp)
{
    unsigned lo = 0, hi = n;
    while (lo < hi) {
        unsigned mid = (lo + hi) / 2;
        if (cp < r[mid].a) hi = mid;
        else if (cp > r[mid].b) lo = mid + 1;
        else return 1;
    }
    return 0;
}

int gr_u_is_space(uint32_t cp) { return in_ranges(gr_u_space_ranges, gr_u_space_ranges_len, cp); }
int gr_u_is_digit(uint32_t cp) { return in_ranges(gr_u_digit_ranges, gr_u_digit_ranges_len, cp); }
static int is_cased(uint32_t cp) { return in_ranges(gr_u_cased_ranges, gr_u_cased_ranges_len, cp); }
static int is_case_ignorable(uint32_t cp)
{
    return in_ranges(gr_u_case_ignorable_ranges, gr_u_case_ignorable_ranges_len, cp);
}

static uint32_t simple_lower(uint32_t cp)
{
    if (cp < 0x80) return (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
    unsigned lo = 0, hi = gr_u_lower_map_len;
    while (lo < hi) {
        unsigned mid = (lo + hi) / 2;
        if (cp < gr_u_lower_map[mid].a) hi = mid;
        else if (cp > gr_u_lower_map[mid].a) lo = mid + 1;
        else return gr_u_lower_map[mid].b;
    }
    return cp;
}

/* Unicode's Final_Sigma condition: a cased letter before (skipping case-ignorable ones) and none after. */
static int final_sigma(const uint32_t *cps, size_t n, size_t at)
{
    int before = 0;
    for (size_t k = at; k-- > 0;) {
        if (is_case_ignorable(cps[k])) continue;
        before = is_cased(cps[k]);
        break;
    }
    if (!before) return 0;
    for (size_t k = at + 1; k < n; k++) {
        if (is_case_ignorable(cps[k])) continue;
        return !is_cased(cps[k]);
    }
    return 1;
}

/* Java's rule (ConditionalSpecialCasing, bounded by word breaks): a cased letter before it in the same
 * word and none after it in the same word. Word characters here: letters, digits, marks, case-ignorables. */
static int is_word_char(uint32_t cp)
{
    return is_cased(cp) || is_case_ignorable(cp) || gr_u_is_digit(cp) || cp == 0x5F || cp == 0x203F || cp == 0x2040 || cp > 0x2E80;
}
static int final_sigma_java(const uint32_t *cps, size_t n, size_t at)
{
    int before = 0;
    for (size_t k = at; k-- > 0 && is_word_char(cps[k]);)
        if (is_cased(cps[k])) { before = 1; break; }
    if (!before) return 0;
    for (size_t k = at + 1; k < n && is_word_char(cps[k]); k++)
        if (is_cased(cps[k])) return 0;
    return 1;
}

char *gr_u_lower(const char *s, size_t len, int java)
{
    uint32_t *cps = malloc((len + 1) * sizeof *cps);
    char *out = malloc(len * 3 + 1); /* worst case: an invalid byte becomes U+FFFD (3 bytes) */
    if (!cps || !out) { free(cps); free(out); return NULL; }
    size_t n = 0, i = 0;
    while (i < len) cps[n++] = gr_u_decode(s, len, &i);
    size_t o = 0;
    for (size_t k = 0; k < n; k++) {
        uint32_t cp = cps[k];
        if (cp == 0x130) { o += gr_u_encode('i', out + o); o += gr_u_encode(0x307, out + o); continue; }
        if (cp == 0x3A3) {
            int fin = java ? final_sigma_java(cps, n, k) : final_sigma(cps, n, k);
            o += gr_u_encode(fin ? 0x3C2 : 0x3C3, out + o);
            continue;
        }
        o += gr_u_encode(simple_lower(cp), out + o);
    }
    out[o] = '\0';
    free(cps);
    return out;
}
