/* src/sample/lora_prompt.c: A1111's <lora:NAME:WEIGHT> tags taken out of a prompt (see
 * ldmcl/lora.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fail.h"
#include "ldmcl/lora.h"

/* Reads one tag's body ("NAME" or "NAME:WEIGHT", len bytes) into ref. */
static ldm_status parse_tag(const char *body, size_t len, ldm_lora_ref *ref) {
    char text[512];
    if (len >= sizeof text)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "prompt: a <lora:...> tag of %zu bytes", len);
    memcpy(text, body, len);
    text[len] = '\0';
    char *colon = strrchr(text, ':');
    ref->weight = 1.0f;
    if (colon) {
        char *end;
        double w = strtod(colon + 1, &end);
        while (*end == ' ')
            end++;
        if (end == colon + 1 || *end || !isfinite(w) || fabs(w) > 1e6)
            return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                            "prompt: <lora:%s>: the weight '%s' is not a number (<lora:NAME:0.8>)",
                            text, colon + 1);
        ref->weight = (float)w;
        *colon = '\0';
    }
    if (!text[0] || strlen(text) >= sizeof ref->name || strchr(text, '/') || strchr(text, '\\'))
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                        "prompt: <lora:%s>: give a LoRA's file name without folders (a file in "
                        "--lora-model-dir, with or without .safetensors)",
                        text);
    snprintf(ref->name, sizeof ref->name, "%s", text);
    return LDM_OK;
}

ldm_status ldm_lora_parse_prompt(const char *prompt, char *out, size_t size, ldm_lora_ref *refs,
                                 int max, int *n) {
    static const char open[] = "<lora:";
    *n = 0;
    size_t o = 0;
    if (size == 0) return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "prompt: no room for the prompt");
    for (const char *p = prompt; *p;) {
        if (!strncmp(p, open, sizeof open - 1)) {
            const char *body = p + sizeof open - 1, *end = strchr(body, '>');
            if (!end)
                return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "prompt: '%.40s' has no closing '>'", p);
            if (*n >= max)
                return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                                "prompt: more than %d <lora:...> tags (at '%.40s')", max, p);
            LDM_TRY(parse_tag(body, (size_t)(end - body), &refs[*n]));
            (*n)++;
            p = end + 1;
            continue;
        }
        if (o + 1 >= size)
            return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "prompt: longer than %zu bytes", size - 1);
        out[o++] = *p++;
    }
    /* the spaces a tag leaves at either end are not part of the prompt */
    while (o > 0 && out[o - 1] == ' ')
        o--;
    out[o] = '\0';
    size_t lead = strspn(out, " ");
    memmove(out, out + lead, o - lead + 1);
    return LDM_OK;
}
