/* ldmcl/ini.h: strict INI files for training configs, read by ldmcl itself (Debian's inih r55
 * splits lines longer than 200 bytes silently and treats ';' in a value as a comment, which
 * breaks prompts):
 *   [section]            names of letters, digits, '_', '-', '.'
 *   key = value          the value runs to the end of the line (';' and '#' are part of it),
 *                        surrounding spaces trimmed; "quoted" values keep their spaces
 *   ; or # at the start of a line: a comment; blank lines ignored
 * A line that is none of these, a key outside a section, a duplicate key, a NUL byte or text that
 * is not UTF-8 is an error naming file:line. Typed getters check values (file:line: key: why);
 * after reading what it knows, a program calls ldm_ini_check_unused so that unknown keys (typos)
 * are errors too. */
#ifndef LDMCL_INI_H
#define LDMCL_INI_H

#include <stddef.h>

#include "ldmcl/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ldm_ini ldm_ini;

ldm_status ldm_ini_read(const char *path, ldm_ini **out);
/* The same from text in memory (name: what messages call it). */
ldm_status ldm_ini_parse(const char *name, const char *text, size_t len, ldm_ini **out);
void ldm_ini_free(ldm_ini *ini);

/* 1 when the section exists (marks nothing). */
int ldm_ini_has_section(const ldm_ini *ini, const char *section);

/* Getters: absent keys leave *out alone and return LDM_OK (the caller's default stays). */
ldm_status ldm_ini_string(ldm_ini *ini, const char *section, const char *key, const char **out);
ldm_status ldm_ini_int(ldm_ini *ini, const char *section, const char *key, long min, long max,
                       long *out);
ldm_status ldm_ini_double(ldm_ini *ini, const char *section, const char *key, double min,
                          double max, double *out);
/* true/false, yes/no, on/off, 1/0 (Python's True/False too). */
ldm_status ldm_ini_bool(ldm_ini *ini, const char *section, const char *key, int *out);
/* A comma-separated list of integers (brackets optional: [256, 384]); *count receives the count
 * (at most max_count, and at most 64). */
ldm_status ldm_ini_int_list(ldm_ini *ini, const char *section, const char *key, long min, long max,
                            long *out, int max_count, int *count);
/* The same for finite numbers (at most 64). */
ldm_status ldm_ini_double_list(ldm_ini *ini, const char *section, const char *key, double min,
                               double max, double *out, int max_count, int *count);

/* The line of key in section (for messages about its value), 0 when absent; marks nothing. */
int ldm_ini_line(const ldm_ini *ini, const char *section, const char *key);

/* LDM_OK, or an error listing every key no getter asked for (file:line [section] key). */
ldm_status ldm_ini_check_unused(const ldm_ini *ini);

/* Every key a getter asked for, present or not, in the order first asked, with the value it
 * resolved to as it would be written (integers; numbers with the digits that read back; true or
 * false; a string or list as given, empty when absent): what a reader reads, defaults included
 * (ldmcl-train --print-config). ldm_ini_note sets a key's value (a name for one of a set, a
 * default a caller applies itself); later notes of a key replace earlier ones. */
void ldm_ini_note(ldm_ini *ini, const char *section, const char *key, const char *value);
size_t ldm_ini_lookup_count(const ldm_ini *ini);
void ldm_ini_lookup_at(const ldm_ini *ini, size_t i, const char **section, const char **key,
                       const char **value);

/* The shortest %g text of v that reads back as v (as a float when as_float). */
void ldm_ini_format_number(double v, int as_float, char *text, size_t size);

#ifdef __cplusplus
}
#endif
#endif
