/*
 * The mount's data path for a repository on a local disk: file data is read from the
 * pack files and opened here (blob_open.c), so it never passes through JS.
 *
 * A folder's batch carries, for each of its files, the chunk records (node->chunks): each
 * chunk's id and where it lies in which pack, in file order:
 *   id (32) | pack id (32) | u64 offset | u32 sealed length | u32 raw length | u32 compressed | u32 0
 * or, for a file flagged NODE_UNREADABLE, why it cannot be read. They become the file's
 * layout (which chunk covers which bytes) on its first read. Reads are then served from a
 * byte-bounded cache of opened chunks; a chunk missing from it is read and opened by the
 * thread that needs it. Two ahead workers load the next chunk of a file read sequentially
 * and push whole files into the page cache ahead of a reader.
 *
 * Threads: data_read on FUSE workers; data_layout and data_push with the table lock held
 * (any thread); data_new and data_free on the JS thread.
 */
#ifndef STRATA_FUSE_DATA_H
#define STRATA_FUSE_DATA_H

#include "blob_open.h"
#include "fuse_mount.h"

/* One file's chunks; freed with its node. */
typedef struct chunk_loc {
  uint8_t id[BLOB_ID_BYTES];
  uint32_t pack;       /* index in the data path's pack table */
  uint32_t length;     /* sealed bytes in the pack */
  uint64_t offset;     /* where they start in the pack */
  uint32_t raw_length;
  uint32_t compressed;
} chunk_loc;

typedef struct layout {
  char *problem;       /* why the file cannot be read (then count is 0), or NULL */
  uint32_t count;
  uint64_t *starts;    /* count + 1 file offsets: chunk i holds [starts[i], starts[i + 1]) */
  chunk_loc chunks[];
} layout;

typedef struct data_path data_path;

data_path *data_new(strata_mount *m, const blob_keys *keys, const char *pack_root, size_t cache_bytes);
/* Stops the ahead workers; data_free then frees everything. */
void data_stop(data_path *dp);
void data_free(data_path *dp);

/* A file's layout, made from its chunk records on first use (NULL when out of memory). Table lock held. */
layout *data_layout(data_path *dp, table *t, node *n);

/* Answers a read of file `nodeid` from the cache and the packs. No lock held. */
void data_read(data_path *dp, fuse_req_t req, uint64_t nodeid, uint64_t off, size_t size);

/*
 * Queues file `n` to be pushed whole into the page cache or, while the kernel does not know
 * it yet (a folder it has not listed), its chunks to be loaded into the cache. 0 when the
 * queue is full. Table lock held.
 */
int data_push(data_path *dp, table *t, node *n);

#endif
