/* src/io/ini_keys.h: typed INI keys over ldmcl/ini.h, as configs use them: into int and float
 * fields (an absent key leaves the field as it is), lists into int arrays, one of a set of names,
 * and paths made relative to the config file's folder. Errors name file, line and key. Not
 * installed. */
#ifndef LDMCL_IO_INI_KEYS_H
#define LDMCL_IO_INI_KEYS_H

#include "ldmcl/ini.h"

/* A path value made relative to the config file's folder (config: the file's path) into out
 * (size bytes); one too long is an error naming file, line and key, never cut. */
ldm_status ldm_ini_path_key(ldm_ini *ini, const char *config, const char *section, const char *key,
                            char *out, size_t size);
ldm_status ldm_ini_int_key(ldm_ini *ini, const char *section, const char *key, long lo, long hi,
                           int *out);
ldm_status ldm_ini_float_key(ldm_ini *ini, const char *section, const char *key, double lo,
                             double hi, float *out);
/* A list into an int array of at most max entries; *n (may be NULL) gets the count when the key
 * is present. */
ldm_status ldm_ini_list_key(ldm_ini *ini, const char *section, const char *key, long lo, long hi,
                            int *out, int max, int *n);
/* Notes the list v[0 .. n) as the value key resolved to (ldm_ini_note), in brackets. */
void ldm_ini_note_list(ldm_ini *ini, const char *section, const char *key, const int *v, int n);
/* One of names[0..n_names): *out gets its index. */
ldm_status ldm_ini_enum_key(ldm_ini *ini, const char *config, const char *section, const char *key,
                            const char *const *names, int n_names, int *out);

#endif
