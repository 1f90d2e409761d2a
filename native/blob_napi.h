/* Registers the blob functions of blob_napi.c on strata_native's exports. */
#ifndef STRATA_BLOB_NAPI_H
#define STRATA_BLOB_NAPI_H
#include <node_api.h>
#include <stdint.h>
#include "blob_open.h"
void blob_napi_register(napi_env env, napi_value exports);
/* The keys behind a sealingKeys handle (NULL if `value` is not one), the size from which to compress, and how. */
const blob_keys *blob_napi_sealing(napi_env env, napi_value value, size_t *min_compress, int *compression);
/*
 * A Buffer of the `len` malloc'd bytes at *bytes: handed over without a copy where the runtime
 * allows external buffers (*bytes becomes NULL: the Buffer frees it), else copied.
 */
napi_status blob_napi_buffer(napi_env env, uint8_t **bytes, size_t len, napi_value *out);
#endif
