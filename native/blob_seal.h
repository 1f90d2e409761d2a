/*
 * Sealing blobs: the write side of blob_open.h, in the same format (see there).
 * Compresses (LZ4, or zstd where the repository chose it) when that makes the blob smaller, then seals (AES-256-GCM
 * with a random nonce, or a checksum in an unencrypted repository).
 *
 * Threads: any; nothing is shared. Uses the OpenSSL that Node exports, and liblz4.
 */
#ifndef STRATA_BLOB_SEAL_H
#define STRATA_BLOB_SEAL_H

#include <stddef.h>
#include <stdint.h>

#include "blob_open.h"

/* How a blob's body is compressed: not at all, LZ4 (the default), or zstd (a repository's choice at init). */
#define BLOB_STORE 0
#define BLOB_LZ4 1
#define BLOB_ZSTD 2

/* The most bytes blob_seal may write for `len` bytes of data. */
size_t blob_seal_bound(const blob_keys *k, size_t len);

/*
 * Seals `data` into `out` (blob_seal_bound bytes), compressed first with `compression`
 * (BLOB_LZ4, BLOB_ZSTD) when that shrinks it. Sets *out_len and *compressed; returns
 * NULL, or what went wrong.
 */
const char *blob_seal(const blob_keys *k, const uint8_t *data, size_t len, int compression,
                      uint8_t *out, size_t *out_len, int *compressed);

/* blob_seal into memory it allocates (malloc'd, fitted to the result; the caller frees *out, also on failure). */
const char *blob_seal_new(const blob_keys *k, const uint8_t *data, size_t len, int compression,
                          uint8_t **out, size_t *out_len, int *compressed);

#endif
