{
  "targets": [
    {
      "target_name": "strata_native",
      "sources": ["strata_native.c", "blob_open.c", "blob_seal.c", "blob_napi.c", "pool_job.c", "rs.c", "rs_napi.c"],
      "cflags": ["-O3", "-Wall", "-Wextra", "-std=c11"],
      "libraries": ["-llz4", "-lzstd"],
      "defines": ["NAPI_VERSION=8", "_GNU_SOURCE"]
    },
    {
      "target_name": "strata_fuse",
      "sources": ["fuse_table.c", "fuse_ops.c", "fuse_data.c", "fuse_session.c", "fuse_napi.c", "blob_open.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-std=c11", "<!@(pkg-config --cflags fuse3)"],
      "libraries": ["<!@(pkg-config --libs fuse3)", "-llz4", "-lzstd"],
      "defines": ["NAPI_VERSION=8", "_GNU_SOURCE"]
    }
  ]
}
