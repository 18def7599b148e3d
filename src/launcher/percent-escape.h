/*
 * %XX-escaping for the text the helpers hand to the daemon in lines (src/exec/run-files.ts and
 * supervisor-launcher.ts decode it): every byte below 0x20, from 0x7f on, '%', and each byte of
 * `also`. Shared by hpcq-supervisor (exit-record fields) and hpcq-launcher (the record it reports).
 */
#ifndef HPCQ_PERCENT_ESCAPE_H
#define HPCQ_PERCENT_ESCAPE_H
#include <stddef.h>
#include <string.h>

/* Copies s[0..len) into out from `at`, escaped, as far as it fits in `size` with its NUL; returns
 * the new end. */
static size_t percent_escape(char *out, size_t at, size_t size, const char *s, size_t len, const char *also) {
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < len && at + 4 < size; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c >= 0x7f || c == '%' || (c != 0 && strchr(also, c))) {
            out[at++] = '%';
            out[at++] = hex[c >> 4];
            out[at++] = hex[c & 15];
        } else {
            out[at++] = (char)c;
        }
    }
    if (at < size) out[at] = '\0';
    return at;
}

#endif
