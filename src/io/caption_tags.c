/* src/io/caption_tags.c: shuffle_caption, keep_tokens and caption_tag_dropout_rate (see
 * ldmcl/caption_tags.h). */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "ldmcl/caption_tags.h"

int ldm_caption_tags_active(const ldm_caption_tags *o) {
    return o && (o->shuffle || o->tag_dropout > 0);
}

/* splitmix64 of key and i: the draw number i. */
static uint64_t draw(uint64_t key, uint64_t i) {
    uint64_t z = key + 0x9e3779b97f4a7c15ull * (i + 1);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* A uniform number in [0, 1) from a draw. */
static double unit(uint64_t r) {
    return (double)(r >> 11) * (1.0 / 9007199254740992.0);
}

typedef struct tag {
    const char *s;
    size_t n;
} tag;

ldm_status ldm_caption_tags_apply(const char *caption, const ldm_caption_tags *o, uint64_t key,
                                  char **out) {
    *out = NULL;
    size_t len = strlen(caption), count = 1;
    for (const char *c = caption; *c; c++)
        count += *c == ',';
    tag *tags = malloc(count * sizeof *tags);
    char *text = malloc(2 * len + 1); /* ", " may replace each "," */
    if (!tags || !text) {
        free(tags);
        free(text);
        return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    }
    size_t n = 0;
    for (const char *c = caption;;) {
        const char *end = strchr(c, ',');
        if (!end) end = caption + len;
        const char *a = c, *b = end;
        while (a < b && (*a == ' ' || *a == '\t'))
            a++;
        while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
            b--;
        if (b > a) tags[n++] = (tag){a, (size_t)(b - a)};
        if (!*end) break;
        c = end + 1;
    }
    size_t keep = o->keep_tokens > 0 ? (size_t)o->keep_tokens : 0;
    if (keep > n) keep = n;
    uint64_t d = 0;
    if (o->shuffle) /* Fisher-Yates over the tags after the kept ones */
        for (size_t i = n; i > keep + 1; i--) {
            size_t j = keep + (size_t)(draw(key, d++) % (uint64_t)(i - keep));
            tag t = tags[i - 1];
            tags[i - 1] = tags[j];
            tags[j] = t;
        }
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        if (i >= keep && o->tag_dropout > 0 && unit(draw(key ^ 0xd40u, i)) < o->tag_dropout)
            continue;
        if (w) {
            text[w++] = ',';
            text[w++] = ' ';
        }
        memcpy(text + w, tags[i].s, tags[i].n);
        w += tags[i].n;
    }
    text[w] = '\0';
    free(tags);
    *out = text;
    return LDM_OK;
}
