/* tools/cli_options.h: what the programs share about talking to their users: the closest known
 * option to a mistyped one (by edit distance), for "unknown option '--stesp' (did you mean
 * '--steps'?)", and the library's messages without its source positions unless -v. */
#ifndef LDMCL_TOOLS_CLI_OPTIONS_H
#define LDMCL_TOOLS_CLI_OPTIONS_H

#include <stddef.h>

/* The entry of known[0..n) nearest to word, or NULL when none is within a third of its length
 * (at least 2 edits). */
const char *cli_closest_option(const char *word, const char *const *known, size_t n);

/* Prints "PROGRAM: unknown option 'word'" with the closest known one, to stderr. */
void cli_unknown_option(const char *program, const char *word, const char *const *known, size_t n);

/* msg into buf, without the library's source positions ("src/io/ini.c:266: ") unless verbose:
 * a user needs the file, line and key of their input, not of ldmcl's code. Returns buf. */
const char *cli_user_text(const char *msg, int verbose, char *buf, size_t size);

#endif
