/* The one check of N-API calls at entry points of both addons: it throws and returns NULL from the caller. */
#ifndef STRATA_NAPI_RETURN_H
#define STRATA_NAPI_RETURN_H
#include <node_api.h>

#define NAPI_OR_RETURN_NULL(call)                                       \
  do {                                                                  \
    if ((call) != napi_ok) {                                            \
      napi_throw_error(env, NULL, "strata: N-API call failed: " #call); \
      return NULL;                                                      \
    }                                                                   \
  } while (0)

#endif
