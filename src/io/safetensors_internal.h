/* src/io/safetensors_internal.h: what the safetensors reader and writer share. */
#ifndef LDMCL_SAFETENSORS_INTERNAL_H
#define LDMCL_SAFETENSORS_INTERNAL_H

/* The metadata key of the data section's SHA-256 (lower-case hex), written by ldmcl and checked
 * on opening when present. */
#define SHA256_KEY "ldmcl.sha256"

#endif
