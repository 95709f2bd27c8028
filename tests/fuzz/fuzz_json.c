/* tests/fuzz/fuzz_json.c: libFuzzer target for the JSON parser (src/io/json.c) that reads
 * safetensors headers, vocab.json, tokenizer configs and CLIP's config.json: parse, then walk
 * the tree, look keys up and check what the parser promises (objects have a key per value,
 * strings are NUL-terminated at their length). */
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "json.h"

static volatile size_t g_sink;

static void walk(const ldm_json *j, int depth) {
    if (depth > 100) abort(); /* the parser limits nesting to 64 */
    switch (j->type) {
    case LDM_JSON_STRING:
        if (!j->string || j->string[j->length] != '\0') abort();
        g_sink += j->length;
        break;
    case LDM_JSON_NUMBER:
        g_sink += (size_t)j->is_integer + (size_t)(j->number > 0);
        break;
    case LDM_JSON_ARRAY:
    case LDM_JSON_OBJECT:
        if (j->count && !j->items) abort();
        for (size_t i = 0; i < j->count; i++) {
            if (j->type == LDM_JSON_OBJECT) {
                if (!j->keys || !j->keys[i]) abort();
                /* the first member of that name is this one: keys are unique */
                const ldm_json *found = ldm_json_get(j, j->keys[i]);
                if (!found) abort();
                g_sink += (size_t)(found - j->items);
            }
            walk(&j->items[i], depth + 1);
        }
        break;
    default:
        g_sink += (size_t)j->boolean;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[128];
    ldm_json *j = ldm_json_parse((const char *)data, size, err, sizeof err);
    if (!j) {
        if (!memchr(err, '\0', sizeof err)) abort();
        g_sink += strlen(err);
        return 0;
    }
    walk(j, 0);
    g_sink += ldm_json_get(j, "__metadata__") != NULL;
    ldm_json_free(j);
    return 0;
}
