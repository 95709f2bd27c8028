/* tools/cli_options.h: what the programs share about their flags: the closest known option to a
 * mistyped one (by edit distance), for "unknown option '--stesp' (did you mean '--steps'?)". */
#ifndef LDMCL_TOOLS_CLI_OPTIONS_H
#define LDMCL_TOOLS_CLI_OPTIONS_H

#include <stddef.h>

/* The entry of known[0..n) nearest to word, or NULL when none is within a third of its length
 * (at least 2 edits). */
const char *cli_closest_option(const char *word, const char *const *known, size_t n);

/* Prints "PROGRAM: unknown option 'word'" with the closest known one, to stderr. */
void cli_unknown_option(const char *program, const char *word, const char *const *known, size_t n);

#endif
