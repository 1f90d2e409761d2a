/*
 * Reed–Solomon erasure coding over GF(2^8), polynomial x^8+x^4+x^3+x^2+1 (0x11d),
 * with a Cauchy matrix for the parity rows: parity j = sum over data i of
 * 1/(j ^ (m + i)) * data i. Every square part of a Cauchy matrix can be inverted,
 * so up to m lost data shards are solved from as many intact parity shards.
 * The hot loop, dst ^= c * src over a shard, uses the split-nibble tables with
 * PSHUFB (AVX2 or SSSE3, chosen at run time), else a byte table. Shards are told
 * intact or damaged by their CRC-32C (SSE4.2 where there is one).
 */
#include "rs.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

static uint8_t gf_exp[512], gf_log[256];
/* c * x for x < 16 and c * (x << 4): the two halves of a product by c. */
static uint8_t mul_low[256][16], mul_high[256][16];
static pthread_once_t tables_once = PTHREAD_ONCE_INIT;
static void (*mul_add)(uint8_t *dst, const uint8_t *src, uint8_t c, size_t len);

static uint8_t gf_mul(uint8_t a, uint8_t b) {
  return a && b ? gf_exp[gf_log[a] + gf_log[b]] : 0;
}

static uint8_t gf_inv(uint8_t a) {
  return gf_exp[255 - gf_log[a]];
}

static void mul_add_bytes(uint8_t *dst, const uint8_t *src, uint8_t c, size_t len) {
  const uint8_t *low = mul_low[c], *high = mul_high[c];
  for (size_t i = 0; i < len; i++) dst[i] ^= low[src[i] & 15] ^ high[src[i] >> 4];
}

#if defined(__x86_64__)
__attribute__((target("ssse3"))) static void mul_add_ssse3(uint8_t *dst, const uint8_t *src, uint8_t c, size_t len) {
  const __m128i low = _mm_loadu_si128((const __m128i *)mul_low[c]), high = _mm_loadu_si128((const __m128i *)mul_high[c]);
  const __m128i nibble = _mm_set1_epi8(15);
  size_t i = 0;
  for (; i + 16 <= len; i += 16) {
    __m128i s = _mm_loadu_si128((const __m128i *)(src + i));
    __m128i p = _mm_xor_si128(_mm_shuffle_epi8(low, _mm_and_si128(s, nibble)),
                              _mm_shuffle_epi8(high, _mm_and_si128(_mm_srli_epi64(s, 4), nibble)));
    _mm_storeu_si128((__m128i *)(dst + i), _mm_xor_si128(_mm_loadu_si128((const __m128i *)(dst + i)), p));
  }
  mul_add_bytes(dst + i, src + i, c, len - i);
}

__attribute__((target("avx2"))) static void mul_add_avx2(uint8_t *dst, const uint8_t *src, uint8_t c, size_t len) {
  const __m256i low = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)mul_low[c]));
  const __m256i high = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)mul_high[c]));
  const __m256i nibble = _mm256_set1_epi8(15);
  size_t i = 0;
  for (; i + 32 <= len; i += 32) {
    __m256i s = _mm256_loadu_si256((const __m256i *)(src + i));
    __m256i p = _mm256_xor_si256(_mm256_shuffle_epi8(low, _mm256_and_si256(s, nibble)),
                                 _mm256_shuffle_epi8(high, _mm256_and_si256(_mm256_srli_epi64(s, 4), nibble)));
    _mm256_storeu_si256((__m256i *)(dst + i), _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(dst + i)), p));
  }
  mul_add_bytes(dst + i, src + i, c, len - i);
}
#endif

static void init_tables(void) {
  unsigned x = 1;
  for (int i = 0; i < 255; i++) {
    gf_exp[i] = (uint8_t)x;
    gf_log[x] = (uint8_t)i;
    x <<= 1;
    if (x & 0x100) x ^= 0x11d;
  }
  for (int i = 255; i < 512; i++) gf_exp[i] = gf_exp[i - 255];
  for (int c = 0; c < 256; c++) {
    for (int n = 0; n < 16; n++) {
      mul_low[c][n] = gf_mul((uint8_t)c, (uint8_t)n);
      mul_high[c][n] = gf_mul((uint8_t)c, (uint8_t)(n << 4));
    }
  }
  mul_add = mul_add_bytes;
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2")) mul_add = mul_add_avx2;
  else if (__builtin_cpu_supports("ssse3")) mul_add = mul_add_ssse3;
#endif
}

/* The coefficient of data shard i in parity shard j. */
static uint8_t cauchy(int j, int i, int m) {
  return gf_inv((uint8_t)(j ^ (m + i)));
}

static void encode_row(uint8_t *stripe, int k, int m, size_t shard, int j) {
  uint8_t *parity = stripe + (size_t)(k + j) * shard;
  memset(parity, 0, shard);
  for (int i = 0; i < k; i++) mul_add(parity, stripe + (size_t)i * shard, cauchy(j, i, m), shard);
}

/* Fills the m parity shards of a stripe from its k data shards. */
static void rs_encode(uint8_t *stripe, int k, int m, size_t shard) {
  pthread_once(&tables_once, init_tables);
  for (int j = 0; j < m; j++) encode_row(stripe, k, m, shard, j);
}

/* Inverts the n×n matrix a in place (Gauss–Jordan); 0 when it is singular (never for a Cauchy matrix). */
static int invert(uint8_t *a, int n) {
  uint8_t *inv = calloc((size_t)n * n, 1);
  if (!inv) return 0;
  for (int i = 0; i < n; i++) inv[i * n + i] = 1;
  for (int col = 0; col < n; col++) {
    int pivot = col;
    while (pivot < n && !a[pivot * n + col]) pivot++;
    if (pivot == n) {
      free(inv);
      return 0;
    }
    for (int c = 0; c < n; c++) {
      uint8_t t = a[col * n + c]; a[col * n + c] = a[pivot * n + c]; a[pivot * n + c] = t;
      t = inv[col * n + c]; inv[col * n + c] = inv[pivot * n + c]; inv[pivot * n + c] = t;
    }
    uint8_t scale = gf_inv(a[col * n + col]);
    for (int c = 0; c < n; c++) {
      a[col * n + c] = gf_mul(a[col * n + c], scale);
      inv[col * n + c] = gf_mul(inv[col * n + c], scale);
    }
    for (int r = 0; r < n; r++) {
      uint8_t f = a[r * n + col];
      if (r == col || !f) continue;
      for (int c = 0; c < n; c++) {
        a[r * n + c] ^= gf_mul(f, a[col * n + c]);
        inv[r * n + c] ^= gf_mul(f, inv[col * n + c]);
      }
    }
  }
  memcpy(a, inv, (size_t)n * n);
  free(inv);
  return 1;
}

const char *rs_rebuild(uint8_t *stripe, int k, int m, size_t shard, const uint8_t *lost, int nlost) {
  pthread_once(&tables_once, init_tables);
  uint8_t is_lost[256] = {0};
  int data_lost[256], nd = 0, rows[256], nr = 0;
  for (int i = 0; i < nlost; i++) {
    if (lost[i] >= k + m) return "names a shard beyond the stripe";
    is_lost[lost[i]] = 1;
  }
  for (int i = 0; i < k; i++) if (is_lost[i]) data_lost[nd++] = i;
  for (int j = 0; j < m && nr < nd; j++) if (!is_lost[k + j]) rows[nr++] = j;
  if (nr < nd) return "has more damaged shards than parity to rebuild them";
  if (nd > 0) {
    uint8_t *a = malloc((size_t)nd * nd);
    uint8_t *sums = malloc((size_t)nd * shard);
    if (!a || !sums) {
      free(a);
      free(sums);
      return "cannot be rebuilt (out of memory)";
    }
    for (int r = 0; r < nd; r++) {
      for (int l = 0; l < nd; l++) a[r * nd + l] = cauchy(rows[r], data_lost[l], m);
      /* What the lost shards add up to in this parity row: the parity less the intact shards' part. */
      uint8_t *sum = sums + (size_t)r * shard;
      memcpy(sum, stripe + (size_t)(k + rows[r]) * shard, shard);
      for (int i = 0; i < k; i++) if (!is_lost[i]) mul_add(sum, stripe + (size_t)i * shard, cauchy(rows[r], i, m), shard);
    }
    if (!invert(a, nd)) {
      free(a);
      free(sums);
      return "cannot be rebuilt (singular matrix)";
    }
    for (int l = 0; l < nd; l++) {
      uint8_t *out = stripe + (size_t)data_lost[l] * shard;
      memset(out, 0, shard);
      for (int r = 0; r < nd; r++) mul_add(out, sums + (size_t)r * shard, a[l * nd + r], shard);
    }
    free(a);
    free(sums);
  }
  for (int j = 0; j < m; j++) if (is_lost[k + j]) encode_row(stripe, k, m, shard, j);
  return NULL;
}

/* CRC-32C (Castagnoli), reflected, as iSCSI and ext4 use it: SSE4.2's crc32 instruction, else a table. */
static uint32_t crc_table[256];

static uint32_t crc32c_bytes(uint32_t crc, const uint8_t *p, size_t len) {
  for (size_t i = 0; i < len; i++) crc = crc_table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
  return crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t crc32c_sse42(uint32_t crc, const uint8_t *p, size_t len) {
  uint64_t c = crc;
  size_t i = 0;
  for (; i + 8 <= len; i += 8) {
    uint64_t word;
    memcpy(&word, p + i, 8);
    c = _mm_crc32_u64(c, word);
  }
  return crc32c_bytes((uint32_t)c, p + i, len - i);
}
#endif

static uint32_t (*crc32c_run)(uint32_t crc, const uint8_t *p, size_t len);
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void init_crc(void) {
  for (uint32_t n = 0; n < 256; n++) {
    uint32_t c = n;
    for (int k = 0; k < 8; k++) c = c & 1 ? (c >> 1) ^ 0x82f63b78u : c >> 1;
    crc_table[n] = c;
  }
  crc32c_run = crc32c_bytes;
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("sse4.2")) crc32c_run = crc32c_sse42;
#endif
}

uint32_t rs_crc32c(const uint8_t *data, size_t len) {
  pthread_once(&crc_once, init_crc);
  return ~crc32c_run(~0u, data, len);
}

static void shard_hash(const uint8_t *data, size_t len, uint8_t *out) {
  uint32_t crc = rs_crc32c(data, len);
  for (int i = 0; i < RS_HASH_BYTES; i++) out[i] = (uint8_t)(crc >> (8 * i)); /* little-endian */
}

const char *rs_pack_parity(const uint8_t *pack, size_t len, size_t shard, int stripes, int m, uint8_t *hashes, uint8_t *parity) {
  size_t shards = (len + shard - 1) / shard;
  if (!shards) shards = 1;
  int k_max = (int)((shards + (size_t)stripes - 1) / (size_t)stripes);
  if (stripes < 1 || m < 1 || k_max + m > 256) return "has a layout with too many shards in a stripe";
  uint8_t *stripe = malloc((size_t)(k_max + m) * shard);
  if (!stripe) return "cannot be given parity (out of memory)";
  for (size_t s = 0; s < shards; s++) {
    size_t from = s * shard, to = from + shard < len ? from + shard : len;
    shard_hash(pack + from, to > from ? to - from : 0, hashes + s * RS_HASH_BYTES);
  }
  for (int g = 0; g < stripes; g++) {
    int k = 0;
    for (size_t s = (size_t)g; s < shards; s += (size_t)stripes, k++) {
      size_t from = s * shard, to = from + shard < len ? from + shard : len;
      uint8_t *out = stripe + (size_t)k * shard;
      size_t n = to > from ? to - from : 0;
      memcpy(out, pack + from, n);
      memset(out + n, 0, shard - n);
    }
    rs_encode(stripe, k, m, shard);
    for (int j = 0; j < m; j++) {
      const uint8_t *p = stripe + (size_t)(k + j) * shard;
      memcpy(parity + ((size_t)g * m + j) * shard, p, shard);
      shard_hash(p, shard, hashes + (shards + (size_t)g * m + j) * RS_HASH_BYTES);
    }
  }
  free(stripe);
  return NULL;
}
