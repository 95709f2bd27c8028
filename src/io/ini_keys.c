/* src/io/ini_keys.c: typed INI keys as configs use them (see ini_keys.h). */
#include <stdio.h>
#include <string.h>

#include "fail.h"
#include "ini_keys.h"

/* Collapses "." segments, "name/.." pairs and repeated slashes in place, lexically (as realpath
 * -m, without following links): configs/../runs/x -> runs/x. Leading ".." segments stay. */
static void normalize_path(char *path) {
    char tmp[4096], buf[4096];
    if (!path[0] || strlen(path) >= sizeof tmp) return;
    strcpy(tmp, path);
    int absolute = tmp[0] == '/', n = 0;
    char *seg[2048], *save = NULL;
    for (char *tok = strtok_r(tmp, "/", &save); tok && n < 2048; tok = strtok_r(NULL, "/", &save)) {
        if (!strcmp(tok, ".")) continue;
        if (!strcmp(tok, "..") && n > 0 && strcmp(seg[n - 1], "..")) {
            n--;
            continue;
        }
        if (!strcmp(tok, "..") && absolute) continue; /* /.. is / */
        seg[n++] = tok;
    }
    size_t used = 0;
    if (absolute) buf[used++] = '/';
    for (int i = 0; i < n; i++) { /* never longer than the path it came from */
        size_t k = strlen(seg[i]);
        if (i) buf[used++] = '/';
        memcpy(buf + used, seg[i], k);
        used += k;
    }
    buf[used] = '\0';
    strcpy(path, used ? buf : ".");
}

ldm_status ldm_ini_path_key(ldm_ini *ini, const char *config, const char *section, const char *key,
                            char *out, size_t size) {
    const char *v = NULL;
    LDM_TRY(ldm_ini_string(ini, section, key, &v));
    if (!v) {
        ldm_ini_note(ini, section, key, out); /* the caller's default */
        return LDM_OK;
    }
    const char *slash = strrchr(config, '/');
    int relative = v[0] != '/' && slash && v[0];
    size_t folder = relative ? (size_t)(slash - config) + 1 : 0, len = folder + strlen(v);
    if (len >= size)
        return LDM_FAIL(LDM_ERR_FORMAT,
                        "%s:%d: [%s] %s: the path is %zu bytes%s, more than the %zu a path may "
                        "have: use a shorter one",
                        config, ldm_ini_line(ini, section, key), section, key, len,
                        relative ? " with the config's folder before it" : "", size - 1);
    if (relative)
        snprintf(out, size, "%.*s/%s", (int)(folder - 1), config, v);
    else
        snprintf(out, size, "%s", v);
    normalize_path(out);
    size_t kept = strlen(out); /* the bytes after it zeroed: what the longer form left there */
    memset(out + kept, 0, size - kept);
    ldm_ini_note(ini, section, key, out);
    return LDM_OK;
}

ldm_status ldm_ini_int_key(ldm_ini *ini, const char *section, const char *key, long lo, long hi,
                           int *out) {
    long v = *out;
    LDM_TRY(ldm_ini_int(ini, section, key, lo, hi, &v));
    *out = (int)v;
    return LDM_OK;
}

ldm_status ldm_ini_float_key(ldm_ini *ini, const char *section, const char *key, double lo,
                             double hi, float *out) {
    double v = *out;
    LDM_TRY(ldm_ini_double(ini, section, key, lo, hi, &v));
    *out = (float)v;
    char text[40];
    ldm_ini_format_number(*out, 1, text, sizeof text);
    ldm_ini_note(ini, section, key, text);
    return LDM_OK;
}

ldm_status ldm_ini_list_key(ldm_ini *ini, const char *section, const char *key, long lo, long hi,
                            int *out, int max, int *n) {
    long v[16];
    int count = -1;
    LDM_TRY(ldm_ini_int_list(ini, section, key, lo, hi, v, max < 16 ? max : 16, &count));
    if (count >= 0) {
        for (int i = 0; i < count; i++)
            out[i] = (int)v[i];
        if (n) *n = count;
    }
    ldm_ini_note_list(ini, section, key, out, n ? *n : max);
    return LDM_OK;
}

void ldm_ini_note_list(ldm_ini *ini, const char *section, const char *key, const int *v, int n) {
    char text[256] = "[";
    for (int i = 0; i < n && strlen(text) + 16 < sizeof text; i++)
        snprintf(text + strlen(text), sizeof text - strlen(text), "%s%d", i ? ", " : "", v[i]);
    strcat(text, "]");
    ldm_ini_note(ini, section, key, text);
}

ldm_status ldm_ini_enum_key(ldm_ini *ini, const char *config, const char *section, const char *key,
                            const char *const *names, int n_names, int *out) {
    const char *v = NULL;
    LDM_TRY(ldm_ini_string(ini, section, key, &v));
    for (int i = 0; v && i < n_names; i++)
        if (!strcmp(v, names[i])) *out = i, v = NULL;
    if (!v) {
        if (*out >= 0 && *out < n_names) ldm_ini_note(ini, section, key, names[*out]);
        return LDM_OK;
    }
    char list[256] = "";
    for (int i = 0; i < n_names; i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "", names[i]);
    return LDM_FAIL(LDM_ERR_FORMAT, "%s: [%s] %s = %s: one of %s", config, section, key, v, list);
}
