/*
 * Sealing blobs: the write side of blob_open.h, in the same format (see there).
 * Compresses with LZ4 when that makes the blob smaller, then seals (AES-256-GCM
 * with a random nonce, or a checksum in an unencrypted repository).
 *
 * Threads: any; nothing is shared. Uses the OpenSSL that Node exports, and liblz4.
 */
#ifndef STRATA_BLOB_SEAL_H
#define STRATA_BLOB_SEAL_H

#include <stddef.h>
#include <stdint.h>

#include "blob_open.h"

/* The most bytes blob_seal may write for `len` bytes of data. */
size_t blob_seal_bound(const blob_keys *k, size_t len);

/*
 * Seals `data` into `out` (blob_seal_bound bytes), compressing it first when
 * `try_compress` and LZ4 shrinks it. Sets *out_len and *compressed; returns NULL,
 * or what went wrong.
 */
const char *blob_seal(const blob_keys *k, const uint8_t *data, size_t len, int try_compress,
                      uint8_t *out, size_t *out_len, int *compressed);

#endif
