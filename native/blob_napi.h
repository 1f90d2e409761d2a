/* Registers the blob functions of blob_napi.c on strata_native's exports. */
#ifndef STRATA_BLOB_NAPI_H
#define STRATA_BLOB_NAPI_H
#include <node_api.h>
#include "blob_open.h"
void blob_napi_register(napi_env env, napi_value exports);
/* The keys behind a sealingKeys handle (NULL if `value` is not one), the size from which to compress, and how. */
const blob_keys *blob_napi_sealing(napi_env env, napi_value value, size_t *min_compress, int *compression);
#endif
