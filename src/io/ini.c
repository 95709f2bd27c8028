/* src/io/ini.c: the strict INI reader (see ldmcl/ini.h). */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fail.h"
#include "ldmcl/ini.h"

typedef struct entry {
    char *section, *key, *value;
    int line, used;
} entry;

typedef struct lookup {
    char *section, *key, *value;
} lookup;

struct ldm_ini {
    char *name;
    entry *e;
    size_t n, cap;
    char **sections;
    size_t n_sections;
    lookup *asked; /* every key a getter asked for, with the value it resolved to */
    size_t n_asked, cap_asked;
};

void ldm_ini_free(ldm_ini *ini) {
    if (!ini) return;
    for (size_t i = 0; i < ini->n; i++) {
        free(ini->e[i].key);
        free(ini->e[i].value);
    }
    for (size_t i = 0; i < ini->n_sections; i++)
        free(ini->sections[i]);
    free(ini->sections);
    free(ini->e);
    free(ini->name);
    for (size_t i = 0; i < ini->n_asked; i++) {
        free(ini->asked[i].section);
        free(ini->asked[i].key);
        free(ini->asked[i].value);
    }
    free(ini->asked);
    free(ini);
}

void ldm_ini_note(ldm_ini *ini, const char *section, const char *key, const char *value) {
    size_t i = 0;
    while (i < ini->n_asked &&
           (strcmp(ini->asked[i].section, section) || strcmp(ini->asked[i].key, key)))
        i++;
    char *v = strdup(value ? value : "");
    if (!v) return; /* out of memory: the record is a convenience, reading goes on */
    if (i < ini->n_asked) {
        free(ini->asked[i].value);
        ini->asked[i].value = v;
        return;
    }
    if (ini->n_asked == ini->cap_asked) {
        size_t cap = ini->cap_asked ? 2 * ini->cap_asked : 64;
        lookup *grown = realloc(ini->asked, cap * sizeof *grown);
        if (!grown) {
            free(v);
            return;
        }
        ini->asked = grown;
        ini->cap_asked = cap;
    }
    lookup *l = &ini->asked[ini->n_asked];
    l->section = strdup(section);
    l->key = strdup(key);
    l->value = v;
    if (!l->section || !l->key) {
        free(l->section);
        free(l->key);
        free(v);
        return;
    }
    ini->n_asked++;
}

size_t ldm_ini_lookup_count(const ldm_ini *ini) {
    return ini->n_asked;
}

void ldm_ini_lookup_at(const ldm_ini *ini, size_t i, const char **section, const char **key,
                       const char **value) {
    *section = ini->asked[i].section;
    *key = ini->asked[i].key;
    *value = ini->asked[i].value;
}

static char *dup_n(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = 0;
    }
    return d;
}

static int valid_utf8(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        int extra = c < 0x80 ? 0 : (c >= 0xC2 && c <= 0xDF) ? 1 : (c >= 0xE0 && c <= 0xEF) ? 2 : 3;
        if (c >= 0x80 && !(c >= 0xC2 && c <= 0xF4)) return 0;
        if (n - i <= (size_t)extra) return 0;
        for (int k = 1; k <= extra; k++)
            if ((s[i + k] & 0xC0) != 0x80) return 0;
        if ((c == 0xE0 && s[i + 1] < 0xA0) || (c == 0xED && s[i + 1] >= 0xA0) ||
            (c == 0xF0 && s[i + 1] < 0x90) || (c == 0xF4 && s[i + 1] >= 0x90))
            return 0; /* overlong, surrogate, above U+10FFFF */
        i += (size_t)extra + 1;
    }
    return 1;
}

static int name_char(int c) {
    return isalnum(c) || c == '_' || c == '-' || c == '.';
}

#define FAIL_AT(line, ...)                                                                         \
    do {                                                                                           \
        char why_[512];                                                                            \
        snprintf(why_, sizeof why_, __VA_ARGS__);                                                  \
        st = LDM_FAIL(LDM_ERR_FORMAT, "%s:%d: %s", name, line, why_);                              \
    } while (0)

ldm_status ldm_ini_parse(const char *name, const char *text, size_t len, ldm_ini **out) {
    *out = NULL;
    ldm_ini *ini = calloc(1, sizeof *ini);
    if (!ini || !(ini->name = dup_n(name, strlen(name)))) {
        free(ini);
        return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    }
    ldm_status st = LDM_OK;
    const char *section = NULL;
    size_t pos = 0;
    int line = 0;
    if (len >= 3 && !memcmp(text, "\xEF\xBB\xBF", 3)) pos = 3; /* a UTF-8 byte order mark */
    while (st == LDM_OK && pos < len) {
        line++;
        const char *end = memchr(text + pos, '\n', len - pos);
        size_t n = end ? (size_t)(end - (text + pos)) : len - pos;
        const char *s = text + pos;
        pos += n + 1;
        if (memchr(s, 0, n)) {
            FAIL_AT(line, "a NUL byte: not a text file");
            break;
        }
        if (!valid_utf8((const unsigned char *)s, n)) {
            FAIL_AT(line, "the line is not UTF-8 text");
            break;
        }
        while (n > 0 && isspace((unsigned char)s[n - 1]))
            n--;
        while (n > 0 && isspace((unsigned char)*s))
            s++, n--;
        if (n == 0 || *s == ';' || *s == '#') continue;
        if (*s == '[') {
            size_t k = 1;
            while (k < n && name_char((unsigned char)s[k]))
                k++;
            if (k == 1 || k != n - 1 || s[k] != ']') {
                FAIL_AT(line, "a section header is [name] (letters, digits, _ - .), found \"%.*s\"",
                        (int)(n > 80 ? 80 : n), s);
                break;
            }
            char *sec = dup_n(s + 1, k - 1);
            char **secs = sec ? realloc(ini->sections, (ini->n_sections + 1) * sizeof *secs) : NULL;
            if (!secs) {
                free(sec);
                st = LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
                break;
            }
            ini->sections = secs;
            for (size_t i = 0; i < ini->n_sections && st == LDM_OK; i++)
                if (!strcmp(secs[i], sec)) FAIL_AT(line, "section [%s] appears twice", sec);
            secs[ini->n_sections++] = sec;
            section = sec;
            continue;
        }
        const char *eq = memchr(s, '=', n);
        size_t kn = eq ? (size_t)(eq - s) : 0;
        while (kn > 0 && isspace((unsigned char)s[kn - 1]))
            kn--;
        int key_ok = eq && kn > 0;
        for (size_t i = 0; key_ok && i < kn; i++)
            key_ok = name_char((unsigned char)s[i]);
        if (!key_ok) {
            FAIL_AT(line, "expected key = value, found \"%.*s\"", (int)(n > 80 ? 80 : n), s);
            break;
        }
        if (!section) {
            FAIL_AT(line, "key '%.*s' comes before any [section]", (int)kn, s);
            break;
        }
        const char *v = eq + 1;
        size_t vn = n - (size_t)(v - s);
        while (vn > 0 && isspace((unsigned char)*v))
            v++, vn--;
        if (vn >= 2 && v[0] == '"' && v[vn - 1] == '"') v++, vn -= 2;
        for (size_t i = 0; i < ini->n && st == LDM_OK; i++)
            if (ini->e[i].section == section && strlen(ini->e[i].key) == kn &&
                !strncmp(ini->e[i].key, s, kn))
                FAIL_AT(line, "key '%.*s' of [%s] is set twice (first on line %d)", (int)kn, s,
                        section, ini->e[i].line);
        if (st != LDM_OK) break;
        if (ini->n == ini->cap) {
            size_t cap = ini->cap ? 2 * ini->cap : 32;
            entry *e = realloc(ini->e, cap * sizeof *e);
            if (!e) {
                st = LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
                break;
            }
            ini->e = e;
            ini->cap = cap;
        }
        entry *e = &ini->e[ini->n];
        e->section = (char *)section;
        e->key = dup_n(s, kn);
        e->value = dup_n(v, vn);
        e->line = line;
        e->used = 0;
        if (!e->key || !e->value) {
            free(e->key);
            free(e->value);
            st = LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
            break;
        }
        ini->n++;
    }
    if (st != LDM_OK) {
        ldm_ini_free(ini);
        return st;
    }
    *out = ini;
    return LDM_OK;
}

ldm_status ldm_ini_read(const char *path, ldm_ini **out) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return LDM_FAIL(LDM_ERR_NOT_FOUND, "cannot open the config '%s': %s", path,
                        strerror(errno));
    char *text = NULL;
    size_t len = 0, cap = 0;
    ldm_status st = LDM_OK;
    for (;;) {
        if (len == cap) {
            if (cap >= (16u << 20)) {
                st = LDM_FAIL(LDM_ERR_FORMAT, "the config '%s' exceeds 16 MiB", path);
                break;
            }
            cap = cap ? 2 * cap : 65536;
            char *t = realloc(text, cap);
            if (!t) {
                st = LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
                break;
            }
            text = t;
        }
        size_t got = fread(text + len, 1, cap - len, f);
        len += got;
        if (got == 0) break;
    }
    if (st == LDM_OK && ferror(f)) st = LDM_FAIL(LDM_ERR_IO, "cannot read the config '%s'", path);
    fclose(f);
    if (st == LDM_OK) st = ldm_ini_parse(path, text ? text : "", len, out);
    free(text);
    return st;
}

int ldm_ini_has_section(const ldm_ini *ini, const char *section) {
    for (size_t i = 0; i < ini->n_sections; i++)
        if (!strcmp(ini->sections[i], section)) return 1;
    return 0;
}

static entry *find(ldm_ini *ini, const char *section, const char *key) {
    for (size_t i = 0; i < ini->n; i++)
        if (!strcmp(ini->e[i].section, section) && !strcmp(ini->e[i].key, key)) {
            ini->e[i].used = 1;
            return &ini->e[i];
        }
    return NULL;
}

int ldm_ini_line(const ldm_ini *ini, const char *section, const char *key) {
    for (size_t i = 0; i < ini->n; i++)
        if (!strcmp(ini->e[i].section, section) && !strcmp(ini->e[i].key, key))
            return ini->e[i].line;
    return 0;
}

#define BAD_VALUE(e, ...)                                                                          \
    do {                                                                                           \
        char why_[256];                                                                            \
        snprintf(why_, sizeof why_, __VA_ARGS__);                                                  \
        return LDM_FAIL(LDM_ERR_FORMAT, "%s:%d: [%s] %s = %s: %s", ini->name, (e)->line,           \
                        (e)->section, (e)->key, (e)->value, why_);                                 \
    } while (0)

ldm_status ldm_ini_string(ldm_ini *ini, const char *section, const char *key, const char **out) {
    entry *e = find(ini, section, key);
    if (e) *out = e->value;
    ldm_ini_note(ini, section, key, *out);
    return LDM_OK;
}

static int parse_long(const char *s, long *v) {
    char *end;
    errno = 0;
    *v = strtol(s, &end, 10);
    while (*end == ' ')
        end++;
    return end != s && *end == 0 && errno == 0;
}

/* Notes a number as the value a key resolved to. */
static void note_long(ldm_ini *ini, const char *section, const char *key, long v) {
    char text[32];
    snprintf(text, sizeof text, "%ld", v);
    ldm_ini_note(ini, section, key, text);
}

ldm_status ldm_ini_int(ldm_ini *ini, const char *section, const char *key, long min, long max,
                       long *out) {
    entry *e = find(ini, section, key);
    if (e) {
        long v;
        if (!parse_long(e->value, &v)) BAD_VALUE(e, "not an integer");
        if (v < min || v > max) BAD_VALUE(e, "outside [%ld, %ld]", min, max);
        *out = v;
    }
    note_long(ini, section, key, *out);
    return LDM_OK;
}

static ldm_status read_double(ldm_ini *ini, entry *e, double min, double max, double *out);

ldm_status ldm_ini_double(ldm_ini *ini, const char *section, const char *key, double min,
                          double max, double *out) {
    entry *e = find(ini, section, key);
    if (e) LDM_TRY(read_double(ini, e, min, max, out));
    char text[40];
    ldm_ini_format_number(*out, 0, text, sizeof text);
    ldm_ini_note(ini, section, key, text);
    return LDM_OK;
}

static ldm_status read_double(ldm_ini *ini, entry *e, double min, double max, double *out) {
    char *end;
    errno = 0;
    double v = strtod(e->value, &end);
    if (end == e->value || *end != 0 || errno == ERANGE || !isfinite(v))
        BAD_VALUE(e, "not a finite number");
    if (v < min || v > max) BAD_VALUE(e, "outside [%g, %g]", min, max);
    *out = v;
    return LDM_OK;
}

/* The shortest %g form of v that reads back as the same double (or float, when as_float). */
void ldm_ini_format_number(double v, int as_float, char *text, size_t size) {
    for (int digits = 1; digits <= 17; digits++) {
        snprintf(text, size, "%.*g", digits, v);
        double back = strtod(text, NULL);
        if (as_float ? (float)back == (float)v : back == v) return;
    }
}

ldm_status ldm_ini_bool(ldm_ini *ini, const char *section, const char *key, int *out) {
    entry *e = find(ini, section, key);
    if (e) {
        const char *t[] = {"true", "yes", "on", "1"}, *f[] = {"false", "no", "off", "0"};
        int v = -1;
        for (int i = 0; i < 4 && v < 0; i++)
            v = !strcasecmp(e->value, t[i]) ? 1 : !strcasecmp(e->value, f[i]) ? 0 : -1;
        if (v < 0) BAD_VALUE(e, "not a boolean (true/false, yes/no, on/off, 1/0)");
        *out = v;
    }
    ldm_ini_note(ini, section, key, *out ? "true" : "false");
    return LDM_OK;
}

/* The items of a list value (brackets optional) split at commas into buf, their starts in
 * items; *count receives the count (an empty list has none). */
static ldm_status split_list(const ldm_ini *ini, const entry *e, char *buf, size_t size,
                             char **items, int max_count, int *count) {
    const char *v = e->value;
    size_t n = strlen(v);
    if (n >= 2 && v[0] == '[' && v[n - 1] == ']') v++, n -= 2;
    if (n >= size) BAD_VALUE(e, "too long");
    memcpy(buf, v, n);
    buf[n] = 0;
    int k = 0;
    for (char *p = buf, *next; p; p = next) {
        next = strchr(p, ',');
        if (next) *next++ = 0;
        while (*p == ' ')
            p++;
        for (char *q = p + strlen(p); q > p && q[-1] == ' ';)
            *--q = 0;
        if (!*p && !next && k == 0) break; /* an empty list */
        if (k == max_count) BAD_VALUE(e, "more than %d values", max_count);
        items[k++] = p;
    }
    *count = k;
    return LDM_OK;
}

ldm_status ldm_ini_int_list(ldm_ini *ini, const char *section, const char *key, long min, long max,
                            long *out, int max_count, int *count) {
    entry *e = find(ini, section, key);
    ldm_ini_note(ini, section, key, e ? e->value : "");
    if (!e) return LDM_OK;
    char buf[1024], *items[64];
    int k;
    LDM_TRY(split_list(ini, e, buf, sizeof buf, items, max_count < 64 ? max_count : 64, &k));
    for (int i = 0; i < k; i++) {
        long x;
        if (!strcasecmp(items[i], "true") || !strcasecmp(items[i], "false"))
            x = !strcasecmp(items[i], "true");
        else if (!parse_long(items[i], &x))
            BAD_VALUE(e, "item %d is not an integer", i + 1);
        if (x < min || x > max) BAD_VALUE(e, "item %d outside [%ld, %ld]", i + 1, min, max);
        out[i] = x;
    }
    *count = k;
    return LDM_OK;
}

ldm_status ldm_ini_double_list(ldm_ini *ini, const char *section, const char *key, double min,
                               double max, double *out, int max_count, int *count) {
    entry *e = find(ini, section, key);
    ldm_ini_note(ini, section, key, e ? e->value : "");
    if (!e) return LDM_OK;
    char buf[4096], *items[64];
    int k;
    LDM_TRY(split_list(ini, e, buf, sizeof buf, items, max_count < 64 ? max_count : 64, &k));
    for (int i = 0; i < k; i++) {
        char *end;
        errno = 0;
        double x = strtod(items[i], &end);
        if (end == items[i] || *end != 0 || errno == ERANGE || !isfinite(x))
            BAD_VALUE(e, "item %d is not a finite number", i + 1);
        if (x < min || x > max) BAD_VALUE(e, "item %d outside [%g, %g]", i + 1, min, max);
        out[i] = x;
    }
    *count = k;
    return LDM_OK;
}

ldm_status ldm_ini_check_unused(const ldm_ini *ini) {
    char list[2048] = "";
    int n = 0;
    for (size_t i = 0; i < ini->n; i++) {
        if (ini->e[i].used) continue;
        size_t used = strlen(list);
        if (used + 200 < sizeof list)
            snprintf(list + used, sizeof list - used, "%s%s:%d [%s] %s", n ? "; " : "", ini->name,
                     ini->e[i].line, ini->e[i].section, ini->e[i].key);
        n++;
    }
    if (n)
        return LDM_FAIL(LDM_ERR_FORMAT, "%d unknown key%s (a typo?): %s", n, n > 1 ? "s" : "",
                        list);
    return LDM_OK;
}
