/*
 * Reed–Solomon erasure coding over GF(2^8) for pack parity (src/store/parity.ts).
 * A stripe is k data shards then m parity shards, each `shard` bytes, one after
 * another in one buffer; k + m <= 256. The parity rows form a Cauchy matrix, so
 * any k intact shards of a stripe give back the rest.
 */
#ifndef STRATA_RS_H
#define STRATA_RS_H
#include <stddef.h>
#include <stdint.h>

/*
 * Rebuilds the shards named in `lost` (indices 0..k+m-1, each once) from the others.
 * Returns NULL, or what is wrong (more lost than there is parity, out of memory).
 */
const char *rs_rebuild(uint8_t *stripe, int k, int m, size_t shard, const uint8_t *lost, int nlost);

/*
 * The parity of a whole pack (src/store/parity.ts has the layout): `len` bytes cut into
 * shards of `shard` bytes (the last zero-padded), shard i in stripe i % stripes, each stripe
 * given m parity shards. Writes the CRC-32C (little-endian) of every data shard then of every
 * parity shard (stripe by stripe) to `hashes`, and the parity shards, stripe by stripe,
 * to `parity`. Returns NULL, or what is wrong.
 */
const char *rs_pack_parity(const uint8_t *pack, size_t len, size_t shard, int stripes, int m, uint8_t *hashes, uint8_t *parity);

#define RS_HASH_BYTES 4

/* CRC-32C of data: how a shard is told intact (parity.ts asks it through crc32c). */
uint32_t rs_crc32c(const uint8_t *data, size_t len);

#endif
