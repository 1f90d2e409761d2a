/*
 * Sealing blobs (see blob_seal.h). The body is written once: compressed straight
 * into the output after the nonce and encrypted there in place, or encrypted from
 * the data itself when it does not compress.
 */
#include "blob_seal.h"

#include <lz4.h>
#include <zstd.h>

#include "per_thread.h"
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>

#define LENGTH_PREFIX 4

/* zstd at its lowest level: on the bench corpus 568 MiB against 564 at level 3 (LZ4: 663), for less CPU. */
#define ZSTD_LEVEL 1

size_t blob_seal_bound(const blob_keys *k, size_t len) {
  size_t body = LENGTH_PREFIX + (size_t)LZ4_compressBound((int)len);
  if (body < ZSTD_compressBound(len)) body = ZSTD_compressBound(len);
  if (body < len) body = len;
  return body + (k->encrypted ? BLOB_NONCE_BYTES + BLOB_TAG_BYTES : BLOB_CHECKSUM_BYTES);
}

/* ZSTD_compress2's context, one per thread: making one costs more than sealing a small blob. */
static void *make_cctx(void) { return ZSTD_createCCtx(); }
static void free_cctx(void *ctx) { ZSTD_freeCCtx(ctx); }
static per_thread cctx = PER_THREAD(make_cctx, free_cctx);

/* A zstd frame, which carries its own size. */
static size_t zstd_body(const uint8_t *data, size_t len, uint8_t *body, size_t room) {
  ZSTD_CCtx *ctx = per_thread_get(&cctx);
  if (!ctx) return 0;
  ZSTD_CCtx_setParameter(ctx, ZSTD_c_compressionLevel, ZSTD_LEVEL);
  size_t n = ZSTD_compress2(ctx, body, room, data, len);
  return ZSTD_isError(n) ? 0 : n;
}

/*
 * Compresses into `body` when that makes the data smaller: LZ4 with the raw length in
 * front, or a zstd frame. Returns the body's length and sets *compressed; otherwise the
 * body is the data itself, which the caller takes from `data` (nothing is copied).
 */
static size_t compress_body(const uint8_t *data, size_t len, int compression, uint8_t *body, int *compressed) {
  *compressed = 0;
  if (compression == BLOB_STORE || len <= LENGTH_PREFIX) return len;
  if (compression == BLOB_ZSTD) {
    size_t n = zstd_body(data, len, body, len - 1); /* only worth keeping if smaller than the data */
    *compressed = n > 0;
    return n > 0 ? n : len;
  }
  int room = (int)(len - LENGTH_PREFIX - 1); /* only worth keeping if smaller than the data */
  int n = LZ4_compress_default((const char *)data, (char *)body + LENGTH_PREFIX, (int)len, room);
  if (n <= 0) return len;
  for (int i = 0; i < LENGTH_PREFIX; i++) body[i] = (uint8_t)(len >> (8 * i)); /* little-endian, as the format says */
  *compressed = 1;
  return LENGTH_PREFIX + (size_t)n;
}

const char *blob_seal(const blob_keys *k, const uint8_t *data, size_t len, int compression,
                      uint8_t *out, size_t *out_len, int *compressed) {
  if (len > (size_t)LZ4_MAX_INPUT_SIZE) return "is larger than any blob Strata writes";
  if (!k->encrypted) {
    size_t body = compress_body(data, len, compression, out, compressed);
    if (!*compressed) memcpy(out, data, len);
    uint8_t digest[32];
    if (!EVP_Digest(out, body, digest, NULL, EVP_sha256(), NULL)) return "cannot be sealed (SHA-256 failed)";
    memcpy(out + body, digest, BLOB_CHECKSUM_BYTES);
    *out_len = body + BLOB_CHECKSUM_BYTES;
    return NULL;
  }
  if (RAND_bytes(out, BLOB_NONCE_BYTES) != 1) return "cannot be sealed (no random nonce)";
  uint8_t *body = out + BLOB_NONCE_BYTES;
  size_t body_len = compress_body(data, len, compression, body, compressed);
  const uint8_t *plain = *compressed ? body : data; /* encrypted in place, or straight from the data */
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
  if (!ctx) return "cannot be sealed (out of memory)";
  int n = 0, ok = EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, k->encryption, out) &&
                  EVP_EncryptUpdate(ctx, body, &n, plain, (int)body_len) &&
                  EVP_EncryptFinal_ex(ctx, body + n, &n) &&
                  EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, BLOB_TAG_BYTES, body + body_len);
  EVP_CIPHER_CTX_free(ctx);
  if (!ok) return "cannot be sealed (AES-GCM failed)";
  *out_len = BLOB_NONCE_BYTES + body_len + BLOB_TAG_BYTES;
  return NULL;
}

const char *blob_seal_new(const blob_keys *k, const uint8_t *data, size_t len, int compression,
                          uint8_t **out, size_t *out_len, int *compressed) {
  *out = malloc(blob_seal_bound(k, len));
  if (!*out) return "cannot be sealed (out of memory)";
  const char *problem = blob_seal(k, data, len, compression, *out, out_len, compressed);
  /* Only what it holds: a pack keeps it until it is saved, and a 1 MiB chunk may seal to a few KiB. */
  uint8_t *fitted = problem ? NULL : realloc(*out, *out_len ? *out_len : 1);
  if (fitted) *out = fitted;
  return problem;
}
