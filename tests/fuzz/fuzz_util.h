/* tests/fuzz/fuzz_util.h: what the libFuzzer targets share: a private temporary folder per
 * process for the readers that take paths, an input split into several files, the PNG CRC
 * repair that lets mutations reach past libpng's checksums, and sinks for messages. */
#ifndef LDMCL_FUZZ_UTIL_H
#define LDMCL_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "ldmcl/ldmcl.h"

/* libFuzzer's entry points (no header declares them). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* This process's temporary folder, created on first use and removed at exit: under
 * $LDMCL_FUZZ_TMPDIR, else /dev/shm when writable, else $TMPDIR, else /tmp. */
const char *fuzz_dir(void);
/* fuzz_dir()/name into out (size bytes). */
void fuzz_path(char *out, size_t size, const char *name);
/* Writes data to path (replacing it), creating nothing else; aborts when it cannot. */
void fuzz_write(const char *path, const void *data, size_t size);
/* Creates the folder path (and no parents); aborts when it cannot, unless it exists. */
void fuzz_mkdir(const char *path);
/* Removes everything inside the folder path, leaving the folder. */
void fuzz_clear(const char *path);

/* The separator of the several files of one input (a line of five dashes). */
#define FUZZ_SEP "\n-----\n"

typedef struct fuzz_part {
    const uint8_t *data;
    size_t size;
} fuzz_part;

/* Splits data at FUZZ_SEP into at most max parts (the last keeps the rest, separators
 * included); returns the count (at least 1). */
int fuzz_split(const uint8_t *data, size_t size, fuzz_part *parts, int max);

/* Rewrites the CRC of every whole chunk of a PNG (data starts with the signature) so that a
 * mutated chunk is read rather than refused by its checksum. */
void fuzz_png_fix_crcs(uint8_t *data, size_t size);

/* A log function that reads each message (its formatting runs, nothing is printed). */
void fuzz_log(void *user, ldm_log_level level, const char *message);
/* Reads the library's message after a failure, so that its formatting is checked too; prints it
 * when $LDMCL_FUZZ_VERBOSE is set (why does an input not parse?). */
void fuzz_status(ldm_status st);

#endif
