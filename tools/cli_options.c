/* tools/cli_options.c: the closest known option to a mistyped one, and messages without source
 * positions (cli_options.h). */
#include "cli_options.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

/* Levenshtein distance of a and b (options are short: at most 63 characters compared). */
static size_t distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b), row[64];
    if (la > 63) la = 63;
    if (lb > 63) lb = 63;
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j], best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            diag = up;
            row[j] = best;
        }
    }
    return row[lb];
}

const char *cli_closest_option(const char *word, const char *const *known, size_t n) {
    const char *best = NULL;
    size_t best_d = (size_t)-1, limit = strlen(word) / 3;
    if (limit < 2) limit = 2;
    for (size_t i = 0; i < n; i++) {
        size_t d = distance(word, known[i]);
        if (d < best_d) best_d = d, best = known[i];
    }
    return best_d <= limit ? best : NULL;
}

void cli_unknown_option(const char *program, const char *word, const char *const *known, size_t n) {
    const char *near = cli_closest_option(word, known, n);
    if (near)
        fprintf(stderr, "%s: unknown option '%s' (did you mean '%s'?; see --help)\n", program, word,
                near);
    else
        fprintf(stderr, "%s: unknown option '%s' (see --help)\n", program, word);
}

/* The length of a source position "src/<path>.c:<digits>: " at p, or 0. */
static size_t position_at(const char *p) {
    if (strncmp(p, "src/", 4)) return 0;
    size_t n = 4;
    while (p[n] && (isalnum((unsigned char)p[n]) || strchr("_/.-", p[n])))
        n++;
    if (n < 6 || strncmp(p + n - 2, ".c", 2) || p[n] != ':' || !isdigit((unsigned char)p[n + 1]))
        return 0;
    n++;
    while (isdigit((unsigned char)p[n]))
        n++;
    return p[n] == ':' && p[n + 1] == ' ' ? n + 2 : 0;
}

const char *cli_user_text(const char *msg, int verbose, char *buf, size_t size) {
    size_t used = 0;
    for (const char *p = msg; *p && used + 1 < size;) {
        size_t skip = verbose ? 0 : position_at(p);
        if (skip)
            p += skip;
        else
            buf[used++] = *p++;
    }
    buf[used] = '\0';
    return buf;
}
