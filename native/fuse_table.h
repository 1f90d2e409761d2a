/*
 * The mount's inode table: every node the kernel may name, with the attributes,
 * names, link targets, xattrs and extents that C answers from. It knows neither
 * FUSE nor N-API; fuse_ops.c drives it, fuse_napi.c feeds it folder batches.
 *
 * Locking: one mutex (table_lock/table_unlock) guards the whole table; every
 * function here expects the caller to hold it, except table_new and table_free.
 *
 * Node ids are handed out from a counter and never reused within a mount, so
 * the kernel's generation number stays 1. Id 1 is the root, which is never freed.
 *
 * Lifetime: a node is pinned while the kernel holds references to it (nlookup),
 * while it has loaded children, a load in flight, parked requests, or children
 * that still point at it. A pinned node is never freed. Children of a loaded
 * folder are freed together when the folder is unloaded, which happens only when
 * none of them is pinned and the table is over its byte budget (least recently
 * used folders first). A child dropped by a reload of a volatile folder (the
 * snapshot list changed) is detached and freed as soon as it is not pinned.
 *
 * The batch a folder is loaded from (little-endian, built by src/fs/batch.ts):
 *   header  u32 magic 'STRB', u32 count, u32 record size (BATCH_RECORD_SIZE), u32 heap bytes
 *   count × record (offsets below), then the heap (names, targets, xattrs, refs, extents, chunks).
 * Names must be sorted by bytes (shorter first on a common prefix), unique, 1..255
 * bytes, without '/' or NUL; a bad batch is refused whole.
 */
#ifndef STRATA_FUSE_TABLE_H
#define STRATA_FUSE_TABLE_H

#include <stddef.h>
#include <stdint.h>
#include <pthread.h>

#define BATCH_MAGIC 0x42525453u /* "STRB" */
#define BATCH_HEADER_SIZE 16
#define BATCH_RECORD_SIZE 152

/* Record field offsets (shared with src/fs/batch.ts). */
enum {
  REC_SIZE = 0, REC_BLOCKS = 8, REC_RDEV = 16,
  REC_ATIME = 24, REC_MTIME = 32, REC_CTIME = 40,
  REC_ATIME_NS = 48, REC_MTIME_NS = 52, REC_CTIME_NS = 56,
  REC_MODE = 60, REC_NLINK = 64, REC_UID = 68, REC_GID = 72, REC_FLAGS = 76,
  REC_INO_SCOPE = 80, REC_INO_DEVICE = 88, REC_INO_INODE = 96,
  REC_NAME = 104, REC_TARGET = 112, REC_XATTRS = 120, REC_REF = 128, REC_EXTENTS = 136, REC_CHUNKS = 144,
};

/* Record flags. */
enum {
  /* A folder whose listing changes when the snapshot list does (the virtual folders). */
  NODE_VOLATILE = 1,
  /* A sparse file: its extents list where the data is; elsewhere are holes. */
  NODE_SPARSE = 2,
  /* A file that cannot be read: its chunks field holds why (a chunk missing from the index…). */
  NODE_UNREADABLE = 4,
};

enum dir_state { DIR_UNLOADED = 0, DIR_LOADING, DIR_LOADED };
enum { AHEAD_ONE = 1, AHEAD_WALK = 2 };

typedef struct node_attr {
  uint64_t ino, size, blocks, rdev;
  int64_t atime, mtime, ctime;
  uint32_t atime_ns, mtime_ns, ctime_ns;
  uint32_t mode, nlink, uid, gid;
} node_attr;

typedef struct node node;

/* What a loaded folder holds. */
typedef struct folder {
  node **children; /* sorted by name */
  uint32_t count;
  uint32_t pinned_children;
  node *lru_prev, *lru_next; /* in the table's list of unloadable folders while pinned_children == 0 */
  uint64_t last_used;
} folder;

struct node {
  uint64_t nodeid;
  uint64_t nlookup;
  node *parent;        /* kept while this node lives (the parent counts it in kids_alive) */
  folder *dir;         /* loaded children, or NULL */
  void *parked;        /* requests waiting for this folder to load: owned by fuse_ops.c */
  node_attr attr;
  uint32_t index;      /* position in the batch it came from */
  uint32_t kids_alive; /* nodes whose parent is this one */
  uint8_t state;       /* enum dir_state, for folders */
  uint8_t flags;       /* NODE_* record flags */
  uint8_t attached;    /* in its parent's current children */
  uint8_t stale;       /* a volatile folder to reload before it answers again */
  uint8_t kept;        /* during a reload: this old child came back */
  uint8_t ahead;       /* loaded ahead of a walk (AHEAD_ONE), with its subtree to follow (AHEAD_WALK) */
  uint8_t pushed;      /* a file whose data went (or goes) into the page cache ahead of its reader */
  uint8_t preloaded;   /* a file whose chunks were loaded ahead into the data path's cache */
  void *layout;        /* a file's chunk layout, made from `chunks` on first read (fuse_data.c); freed with the node */
  uint32_t layout_bytes;
  uint32_t name_len, target_len, xattrs_len, ref_len, extents_len, chunks_len;
  uint8_t *name;       /* NUL-terminated; the others are not */
  uint8_t *target, *xattrs, *ref, *extents;
  uint8_t *chunks;     /* a file's chunk records for the data path in C (fuse_data.h), when JS gave them */
  uint8_t bytes[];
};

typedef struct table table;

typedef struct table_stats {
  uint64_t nodes, folders_loaded, bytes, budget;
} table_stats;

/* A table whose root is the single record in `batch` (its name is ignored). NULL on a bad batch. */
table *table_new(const uint8_t *batch, size_t len, size_t budget_bytes, const char **problem);
void table_free(table *t);

void table_lock(table *t);
void table_unlock(table *t);

node *table_root(table *t);
/* The live node with this id, or NULL. */
node *table_get(table *t, uint64_t nodeid);

static inline int node_is_dir(const node *n) { return (n->attr.mode & 0170000) == 0040000; }
static inline int node_is_file(const node *n) { return (n->attr.mode & 0170000) == 0100000; }
static inline int node_is_symlink(const node *n) { return (n->attr.mode & 0170000) == 0120000; }

/* Whether the folder must be (re)loaded before it can answer for its children. */
int table_needs_load(const node *dir);
/* Marks a folder as loading (a request to JS is on its way). */
void table_set_loading(table *t, node *dir);
/*
 * Replaces a folder's children with the batch's. Children of a stale volatile folder
 * that come back with the same name, ref and type keep their node (and id); the others
 * are detached. Returns 0, or EINVAL with `problem` set when the batch is malformed
 * (the folder is then unloaded again).
 */
int table_load(table *t, node *dir, const uint8_t *batch, size_t len, const char **problem);
/* A load that failed: the folder is unloaded again (a later call retries). */
void table_load_failed(table *t, node *dir);

/* The child named `name` of a loaded folder, or NULL. Marks the folder used. */
node *table_child(table *t, node *dir, const uint8_t *name, size_t len);
/* Children by position (0 <= i < count) of a loaded folder. */
uint32_t table_child_count(const node *dir);
node *table_child_at(const node *dir, uint32_t i);

/* The kernel took `n` references (a lookup reply, a readdirplus entry) or dropped them (forget). */
void table_ref(table *t, node *n, uint64_t count);
void table_forget(table *t, node *n, uint64_t count);
/* Gives a file its parsed layout (counted against the budget; freed with the node). */
void table_set_layout(table *t, node *n, void *layout, uint32_t bytes);

/* The parked-request list changed (NULL ↔ not NULL): pinning follows it. */
void table_set_parked(table *t, node *n, void *parked);

/* Marks every loaded volatile folder stale; calls `each` for it (to invalidate the kernel's cache). */
void table_mark_stale(table *t, void (*each)(void *ctx, node *dir), void *ctx);

/* Writes the node's path from the root ("/a/b") into out (truncated to cap); returns its length. */
size_t table_path(const node *n, char *out, size_t cap);

/* The ref to give JS for reading a file: its own, or its folder's (then *index is its position). */
const uint8_t *table_read_ref(const node *n, uint32_t *len, uint32_t *index);

table_stats table_get_stats(table *t);

/* The inode number shown for a stored entry: a bijection on inode for a fixed scope and device. */
uint64_t table_ino(uint64_t scope, uint64_t device, uint64_t inode);

#endif
