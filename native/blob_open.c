/*
 * Opening sealed records and blobs (see blob_open.h).
 * Owns nothing; every call allocates only what it frees before returning.
 */
#include "blob_open.h"

#include <lz4.h>
#include <zstd.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/mman.h>

#include "per_thread.h"

/*
 * Below MAPPED_BYTES, malloc's arenas serve well. Above it, each buffer is a mapping of its
 * own, its size rounded up to a power of two (pages never written are never resident), so
 * that memory goes back to the system when a chunk leaves a cache. Freed mappings are kept
 * for reuse, up to POOL_BYTES: a sequential reader then neither faults in nor zeroes fresh
 * pages for every chunk (measured: ~15% of the CPU of reading a large file).
 */
#define MAPPED_BYTES (16u << 10)
#define POOL_BYTES (8u << 20)
#define CLASSES 16

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static void *pool[CLASSES][8];
static int pooled[CLASSES];
static size_t pool_bytes;

static int class_of(size_t len, size_t *size) {
  int c = 0;
  for (*size = MAPPED_BYTES; *size < len; *size <<= 1) c++;
  return c;
}

void *blob_alloc(size_t len) {
  if (len < MAPPED_BYTES) return malloc(len ? len : 1);
  size_t size;
  int c = class_of(len, &size);
  void *p = NULL;
  pthread_mutex_lock(&pool_lock);
  if (c < CLASSES && pooled[c]) {
    p = pool[c][--pooled[c]];
    pool_bytes -= size;
  }
  pthread_mutex_unlock(&pool_lock);
  if (p) return p;
  p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return p == MAP_FAILED ? NULL : p;
}

void blob_free(void *p, size_t len) {
  if (!p) return;
  if (len < MAPPED_BYTES) {
    free(p);
    return;
  }
  size_t size;
  int c = class_of(len, &size);
  pthread_mutex_lock(&pool_lock);
  int keep = c < CLASSES && pooled[c] < 8 && pool_bytes + size <= POOL_BYTES;
  if (keep) {
    pool[c][pooled[c]++] = p;
    pool_bytes += size;
  }
  pthread_mutex_unlock(&pool_lock);
  if (!keep) munmap(p, size);
}

size_t blob_plain_length(const blob_keys *k, size_t len) {
  size_t overhead = k->encrypted ? BLOB_NONCE_BYTES + BLOB_TAG_BYTES : BLOB_CHECKSUM_BYTES;
  return len < overhead ? 0 : len - overhead;
}

const char *blob_open_record(const blob_keys *k, const uint8_t *sealed, size_t len, uint8_t *out) {
  size_t plain = blob_plain_length(k, len);
  if (!plain && len < (k->encrypted ? BLOB_NONCE_BYTES + BLOB_TAG_BYTES : BLOB_CHECKSUM_BYTES)) return "is truncated";
  if (!k->encrypted) {
    uint8_t digest[32];
    if (!EVP_Digest(sealed, plain, digest, NULL, EVP_sha256(), NULL)) return "cannot be checked (SHA-256 failed)";
    if (CRYPTO_memcmp(digest, sealed + plain, BLOB_CHECKSUM_BYTES)) return "fails its checksum: it is damaged";
    memcpy(out, sealed, plain);
    return NULL;
  }
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
  if (!ctx) return "cannot be opened (out of memory)";
  int n = 0, ok = EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, k->encryption, sealed) &&
                  EVP_DecryptUpdate(ctx, out, &n, sealed + BLOB_NONCE_BYTES, (int)plain) &&
                  EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, BLOB_TAG_BYTES, (void *)(sealed + len - BLOB_TAG_BYTES)) &&
                  EVP_DecryptFinal_ex(ctx, out + n, &n);
  EVP_CIPHER_CTX_free(ctx);
  return ok ? NULL : "failed authentication: it is damaged or was altered";
}

/* zstd's decompression context, one per thread. */
static void *make_dctx(void) { return ZSTD_createDCtx(); }
static void free_dctx(void *ctx) { ZSTD_freeDCtx(ctx); }
static per_thread dctx = PER_THREAD(make_dctx, free_dctx);

/*
 * A zstd frame starts with its magic number; an LZ4 body starts with the raw length, which
 * cannot be that large (0xFD2FB528 bytes is beyond any blob), so the two never mix up.
 */
static int is_zstd(const uint8_t *body, size_t len) {
  return len >= 4 && body[0] == 0x28 && body[1] == 0xb5 && body[2] == 0x2f && body[3] == 0xfd;
}

const char *blob_open(const blob_keys *k, const uint8_t *sealed, size_t len, int compressed,
                      uint8_t *out, size_t raw_length, const uint8_t id[BLOB_ID_BYTES]) {
  size_t plain = blob_plain_length(k, len);
  if (!compressed && plain != raw_length) return "is not as long as the index says";
  uint8_t *body = compressed ? blob_alloc(plain) : out;
  if (!body) return "cannot be opened (out of memory)";
  const char *problem = blob_open_record(k, sealed, len, body);
  if (!problem && compressed && is_zstd(body, plain)) {
    ZSTD_DCtx *ctx = per_thread_get(&dctx);
    size_t n = ctx ? ZSTD_decompressDCtx(ctx, out, raw_length, body, plain) : 0;
    if (!ctx || ZSTD_isError(n) || n != raw_length) problem = "does not decompress";
  } else if (!problem && compressed) {
    uint32_t stated = plain < 4 ? 0 : (uint32_t)body[0] | (uint32_t)body[1] << 8 | (uint32_t)body[2] << 16 | (uint32_t)body[3] << 24;
    if (plain < 4 || stated != raw_length ||
        LZ4_decompress_safe((const char *)body + 4, (char *)out, (int)(plain - 4), (int)raw_length) != (int)raw_length) {
      problem = "does not decompress";
    }
  }
  if (compressed) blob_free(body, plain);
  if (problem) return problem;
  uint8_t digest[32];
  unsigned int digest_len = 0;
  if (!HMAC(EVP_sha256(), k->id, BLOB_KEY_BYTES, out, raw_length, digest, &digest_len)) return "cannot be checked (HMAC failed)";
  if (CRYPTO_memcmp(digest, id, BLOB_ID_BYTES)) return "does not match its id: the data is damaged";
  return NULL;
}
