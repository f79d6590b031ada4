/* Unicode helpers for the metrics: UTF-8 decoding and the character properties the reference
 * evaluators use (Python's str.lower/isspace/\d, Java's toLowerCase(Locale.ENGLISH)).
 * Tables come from unicode_tables.c (generated from Python's unicodedata). Core-internal. */
#ifndef GRAFT_METRICS_UNICODE_H
#define GRAFT_METRICS_UNICODE_H

#include <stddef.h>
#include <stdint.h>

typedef struct gr_u_pair { uint32_t a, b; } gr_u_pair;
extern const gr_u_pair gr_u_lower_map[], gr_u_digit_ranges[], gr_u_space_ranges[], gr_u_cased_ranges[],
    gr_u_case_ignorable_ranges[];
extern const unsigned gr_u_lower_map_len, gr_u_digit_ranges_len, gr_u_space_ranges_len, gr_u_cased_ranges_len,
    gr_u_case_ignorable_ranges_len;

/* Decodes one code point at s[*i] (advancing *i); invalid bytes decode as U+FFFD, one byte each. */
uint32_t gr_u_decode(const char *s, size_t len, size_t *i);
/* Appends the UTF-8 form of cp to out (room for 4 bytes); returns the number of bytes written. */
size_t gr_u_encode(uint32_t cp, char *out);

int gr_u_is_space(uint32_t cp);  /* Python str.isspace() */
int gr_u_is_digit(uint32_t cp);  /* Unicode Nd (Python re's \d on str) */
/* Full lower-casing as Python's str.lower() (java = 0) or Java's toLowerCase(Locale.ENGLISH) (java = 1):
 * simple mappings, U+0130 -> "i\u0307", and a final sigma. The two differ only in when a capital sigma
 * is final: Python applies Unicode's Final_Sigma (case-ignorable characters skipped); Java looks for
 * cased letters anywhere within the same word (letters, digits, marks). Returns a malloc'd
 * NUL-terminated string, NULL when out of memory. */
char *gr_u_lower(const char *s, size_t len, int java);

#endif
