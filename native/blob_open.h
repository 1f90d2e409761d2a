/*
 * Opening what the repository sealed: the one implementation of reading a sealed
 * record or blob, used by strata_native (for every read in TypeScript) and by the
 * mount's data path (fuse_data.c). Blobs are sealed by blob_seal.c, records in TypeScript
 * (src/store/crypto.ts), in the same format.
 *
 * Format (see src/store/crypto.ts): encrypted, nonce (12) | AES-256-GCM ciphertext | tag (16);
 * unencrypted, body | first 16 bytes of SHA-256(body). A compressed blob's body is
 * u32 LE raw length | LZ4 block, or a zstd frame (in a repository that chose zstd; told
 * apart by the frame's magic number). A blob's id is HMAC-SHA256(id key, raw bytes).
 *
 * Threads: any; each keeps its own zstd context. Uses the OpenSSL that Node exports, liblz4 and libzstd.
 */
#ifndef STRATA_BLOB_OPEN_H
#define STRATA_BLOB_OPEN_H

#include <stddef.h>
#include <stdint.h>

#define BLOB_KEY_BYTES 32
#define BLOB_ID_BYTES 32
#define BLOB_NONCE_BYTES 12
#define BLOB_TAG_BYTES 16
#define BLOB_CHECKSUM_BYTES 16

typedef struct blob_keys {
  int encrypted;
  uint8_t encryption[BLOB_KEY_BYTES];
  uint8_t id[BLOB_KEY_BYTES];
} blob_keys;

/*
 * Buffers for blobs: large ones are mapped and unmapped whole, so that memory goes back to
 * the system as soon as a chunk leaves a cache, whichever thread allocated it.
 */
void *blob_alloc(size_t len);
void blob_free(void *p, size_t len);

/* Plaintext bytes a sealed record of `len` bytes holds (0 when it is too short to be one). */
size_t blob_plain_length(const blob_keys *k, size_t len);

/*
 * Authenticates and opens a sealed record into `out` (blob_plain_length bytes).
 * Returns NULL, or what is wrong ("failed authentication…").
 */
const char *blob_open_record(const blob_keys *k, const uint8_t *sealed, size_t len, uint8_t *out);

/*
 * Opens a sealed blob into `out` (raw_length bytes): authenticates, decompresses when
 * `compressed`, and checks that its id is `id`. Returns NULL, or what is wrong.
 */
const char *blob_open(const blob_keys *k, const uint8_t *sealed, size_t len, int compressed,
                      uint8_t *out, size_t raw_length, const uint8_t id[BLOB_ID_BYTES]);

#endif
