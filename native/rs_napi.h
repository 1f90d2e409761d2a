/* Registers the Reed–Solomon functions of rs_napi.c on strata_native's exports. */
#ifndef STRATA_RS_NAPI_H
#define STRATA_RS_NAPI_H
#include <node_api.h>

void rs_napi_register(napi_env env, napi_value exports);

#endif
