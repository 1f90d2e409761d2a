{
  "targets": [
    {
      "target_name": "strata_native",
      "sources": ["strata_native.c"],
      "cflags": ["-O3", "-Wall", "-Wextra", "-std=c11"],
      "defines": ["NAPI_VERSION=8", "_GNU_SOURCE"]
    }
  ]
}
