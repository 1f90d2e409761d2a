/* Registers openRecord, openBlob and sealBlob (blob_napi.c) on strata_native's exports. */
#ifndef STRATA_BLOB_NAPI_H
#define STRATA_BLOB_NAPI_H
#include <node_api.h>
void blob_napi_register(napi_env env, napi_value exports);
#endif
