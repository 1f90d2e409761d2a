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

/* Fills the m parity shards from the k data shards. */
void rs_encode(uint8_t *stripe, int k, int m, size_t shard);

/*
 * Rebuilds the shards named in `lost` (indices 0..k+m-1, each once) from the others.
 * Returns NULL, or what is wrong (more lost than there is parity, out of memory).
 */
const char *rs_rebuild(uint8_t *stripe, int k, int m, size_t shard, const uint8_t *lost, int nlost);

#endif
