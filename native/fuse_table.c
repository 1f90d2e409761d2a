/*
 * The mount's inode table (see fuse_table.h for the rules it keeps).
 *
 * Owns: every node and folder allocation, the map from node id to node, the list of
 * folders that may be unloaded (least recently used last) and the byte budget.
 * Threads: any, with the table mutex held (FUSE workers, the JS thread for loads).
 */
#include "fuse_table.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CHILDREN (1u << 24)
#define MAX_NAME 255

struct table {
  pthread_mutex_t mutex;
  node *root;
  uint64_t next_id;
  node **slots; /* open addressing by node id, linear probing */
  size_t cap, used;
  node *lru_head, *lru_tail; /* loaded folders none of whose children is pinned */
  uint64_t clock;
  size_t bytes, budget;
  uint64_t folders_loaded;
};

static uint64_t mix64(uint64_t x) {
  /* splitmix64's finalizer: a bijection on 64 bits. */
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

uint64_t table_ino(uint64_t scope, uint64_t device, uint64_t inode) {
  return mix64(mix64(scope ^ mix64(device)) ^ inode);
}

static uint64_t get_u64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static uint32_t get_u32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }

/* ---- the id map */

static int map_grow(table *t) {
  size_t cap = t->cap ? t->cap * 2 : 1024;
  node **slots = calloc(cap, sizeof *slots);
  if (!slots) return ENOMEM;
  for (size_t i = 0; i < t->cap; i++) {
    node *n = t->slots[i];
    if (!n) continue;
    size_t j = mix64(n->nodeid) & (cap - 1);
    while (slots[j]) j = (j + 1) & (cap - 1);
    slots[j] = n;
  }
  free(t->slots);
  t->slots = slots;
  t->cap = cap;
  return 0;
}

static int map_put(table *t, node *n) {
  if ((t->used + 1) * 10 > t->cap * 7 && map_grow(t)) return ENOMEM;
  size_t j = mix64(n->nodeid) & (t->cap - 1);
  while (t->slots[j]) j = (j + 1) & (t->cap - 1);
  t->slots[j] = n;
  t->used++;
  return 0;
}

node *table_get(table *t, uint64_t nodeid) {
  if (!t->cap) return NULL;
  size_t j = mix64(nodeid) & (t->cap - 1);
  for (node *n; (n = t->slots[j]); j = (j + 1) & (t->cap - 1)) {
    if (n->nodeid == nodeid) return n;
  }
  return NULL;
}

static void map_remove(table *t, const node *n) {
  size_t mask = t->cap - 1;
  size_t j = mix64(n->nodeid) & mask;
  while (t->slots[j] != n) j = (j + 1) & mask;
  /* Backward-shift deletion keeps every probe sequence unbroken. */
  size_t hole = j;
  for (size_t k = (hole + 1) & mask; t->slots[k]; k = (k + 1) & mask) {
    size_t home = mix64(t->slots[k]->nodeid) & mask;
    if (((k - home) & mask) >= ((k - hole) & mask)) {
      t->slots[hole] = t->slots[k];
      hole = k;
    }
  }
  t->slots[hole] = NULL;
  t->used--;
}

/* ---- the list of unloadable folders */

static void lru_remove(table *t, node *n) {
  folder *d = n->dir;
  if (!d->lru_prev && t->lru_head != n) return; /* not listed */
  if (d->lru_prev) d->lru_prev->dir->lru_next = d->lru_next; else t->lru_head = d->lru_next;
  if (d->lru_next) d->lru_next->dir->lru_prev = d->lru_prev; else t->lru_tail = d->lru_prev;
  d->lru_prev = d->lru_next = NULL;
}

static void lru_add(table *t, node *n) {
  folder *d = n->dir;
  d->lru_prev = NULL;
  d->lru_next = t->lru_head;
  if (t->lru_head) t->lru_head->dir->lru_prev = n; else t->lru_tail = n;
  t->lru_head = n;
}

static void touch(table *t, node *dir) {
  folder *d = dir->dir;
  d->last_used = ++t->clock;
  if (d->pinned_children == 0 && t->lru_head != dir) {
    lru_remove(t, dir);
    lru_add(t, dir);
  }
}

/* ---- pinning */

static int pinned(const table *t, const node *n) {
  return n == t->root || n->nlookup || n->dir || n->state == DIR_LOADING || n->parked || n->kids_alive;
}

static void free_node(table *t, node *n);
static size_t node_bytes(const node *n);

/* Follows a change of n's pinned state (`was` is the state before the change). */
static void settle(table *t, node *n, int was) {
  int now = pinned(t, n);
  if (was == now) return;
  if (n->attached) {
    node *parent = n->parent;
    folder *d = parent->dir;
    if (now) {
      if (d->pinned_children++ == 0) lru_remove(t, parent);
    } else if (--d->pinned_children == 0) {
      lru_add(t, parent);
    }
  } else if (!now) {
    free_node(t, n);
  }
}

static void free_node(table *t, node *n) {
  node *parent = n->parent;
  map_remove(t, n);
  t->bytes -= node_bytes(n);
  free(n->layout);
  free(n);
  if (parent) {
    int was = pinned(t, parent);
    parent->kids_alive--;
    settle(t, parent, was);
  }
}

/* Drops a folder's children (the caller makes sure none is pinned: see evict). */
static void unload(table *t, node *dir) {
  folder *d = dir->dir;
  lru_remove(t, dir);
  int was = pinned(t, dir);
  dir->dir = NULL;
  dir->state = DIR_UNLOADED;
  dir->stale = 0;
  t->folders_loaded--;
  t->bytes -= sizeof *d + d->count * sizeof(node *);
  node **children = d->children;
  uint32_t count = d->count;
  free(d);
  for (uint32_t i = 0; i < count; i++) children[i]->attached = 0;
  /* While children remain, kids_alive keeps `dir` pinned: the last one freed settles it. */
  settle(t, dir, was);
  for (uint32_t i = 0; i < count; i++) {
    node *c = children[i];
    if (!pinned(t, c)) free_node(t, c);
  }
  free(children);
}

static void evict(table *t, node *keep) {
  node *n = t->lru_tail;
  while (t->bytes > t->budget && n) {
    node *prev = n->dir->lru_prev;
    if (n != keep) unload(t, n);
    n = prev;
  }
}

/* ---- batches */

typedef struct field { uint32_t off, len; } field;

static field rec_field(const uint8_t *rec, int at) { return (field){ get_u32(rec + at), get_u32(rec + at + 4) }; }

static int in_heap(field f, size_t heap_len) { return (uint64_t)f.off + f.len <= heap_len; }

static int valid_type(uint32_t mode) {
  switch (mode & 0170000) {
    case 0100000: case 0040000: case 0120000: case 0010000: case 0020000: case 0060000: case 0140000: return 1;
    default: return 0;
  }
}

static int valid_xattrs(const uint8_t *p, uint32_t len) {
  uint32_t at = 0;
  while (at < len) {
    if (len - at < 8) return 0;
    uint32_t nlen = get_u32(p + at), vlen = get_u32(p + at + 4);
    at += 8;
    if (nlen == 0 || nlen > MAX_NAME || nlen > len - at || vlen > len - at - nlen) return 0;
    if (memchr(p + at, 0, nlen)) return 0;
    at += nlen + vlen;
  }
  return 1;
}

static int valid_extents(const uint8_t *p, uint32_t len) {
  if (len % 16) return 0;
  uint64_t previous_end = 0;
  for (uint32_t at = 0; at < len; at += 16) {
    uint64_t start = get_u64(p + at), end = get_u64(p + at + 8);
    if (start >= end || start < previous_end) return 0;
    previous_end = end;
  }
  return 1;
}

static int compare_names(const uint8_t *a, uint32_t alen, const uint8_t *b, uint32_t blen) {
  int c = memcmp(a, b, alen < blen ? alen : blen);
  return c ? c : (alen > blen) - (alen < blen);
}

/* Checks a batch; on success *records and *heap point into it. */
static int check_batch(const uint8_t *batch, size_t len, uint32_t *count, const uint8_t **records,
                       const uint8_t **heap, size_t *heap_len, const char **problem) {
  if (len < BATCH_HEADER_SIZE || get_u32(batch) != BATCH_MAGIC) return *problem = "not a folder batch", EINVAL;
  *count = get_u32(batch + 4);
  if (get_u32(batch + 8) != BATCH_RECORD_SIZE) return *problem = "a folder batch of another version", EINVAL;
  *heap_len = get_u32(batch + 12);
  if (*count > MAX_CHILDREN) return *problem = "a folder with too many entries", EINVAL;
  if ((uint64_t)BATCH_HEADER_SIZE + (uint64_t)*count * BATCH_RECORD_SIZE + *heap_len != len) {
    return *problem = "a folder batch of the wrong length", EINVAL;
  }
  *records = batch + BATCH_HEADER_SIZE;
  *heap = *records + (size_t)*count * BATCH_RECORD_SIZE;
  const uint8_t *previous = NULL;
  uint32_t previous_len = 0;
  for (uint32_t i = 0; i < *count; i++) {
    const uint8_t *rec = *records + (size_t)i * BATCH_RECORD_SIZE;
    field name = rec_field(rec, REC_NAME), target = rec_field(rec, REC_TARGET), xattrs = rec_field(rec, REC_XATTRS);
    field ref = rec_field(rec, REC_REF), extents = rec_field(rec, REC_EXTENTS), chunks = rec_field(rec, REC_CHUNKS);
    if (!in_heap(name, *heap_len) || !in_heap(target, *heap_len) || !in_heap(xattrs, *heap_len) ||
        !in_heap(ref, *heap_len) || !in_heap(extents, *heap_len) || !in_heap(chunks, *heap_len)) {
      return *problem = "an entry pointing outside its batch", EINVAL;
    }
    const uint8_t *n = *heap + name.off;
    if (name.len == 0 || name.len > MAX_NAME || memchr(n, '/', name.len) || memchr(n, 0, name.len) ||
        (name.len == 1 && n[0] == '.') || (name.len == 2 && n[0] == '.' && n[1] == '.')) {
      return *problem = "an entry with an unsafe name", EINVAL;
    }
    if (previous && compare_names(previous, previous_len, n, name.len) >= 0) {
      return *problem = "entries not sorted by name, or a name twice", EINVAL;
    }
    previous = n;
    previous_len = name.len;
    if (!valid_type(get_u32(rec + REC_MODE))) return *problem = "an entry of unknown type", EINVAL;
    if (!valid_xattrs(*heap + xattrs.off, xattrs.len)) return *problem = "malformed extended attributes", EINVAL;
    if (!valid_extents(*heap + extents.off, extents.len)) return *problem = "malformed extents", EINVAL;
  }
  return 0;
}

static void read_attr(const uint8_t *rec, node_attr *a) {
  a->size = get_u64(rec + REC_SIZE);
  a->blocks = get_u64(rec + REC_BLOCKS);
  a->rdev = get_u64(rec + REC_RDEV);
  a->atime = (int64_t)get_u64(rec + REC_ATIME);
  a->mtime = (int64_t)get_u64(rec + REC_MTIME);
  a->ctime = (int64_t)get_u64(rec + REC_CTIME);
  a->atime_ns = get_u32(rec + REC_ATIME_NS);
  a->mtime_ns = get_u32(rec + REC_MTIME_NS);
  a->ctime_ns = get_u32(rec + REC_CTIME_NS);
  a->mode = get_u32(rec + REC_MODE);
  a->nlink = get_u32(rec + REC_NLINK);
  a->uid = get_u32(rec + REC_UID);
  a->gid = get_u32(rec + REC_GID);
  a->ino = table_ino(get_u64(rec + REC_INO_SCOPE), get_u64(rec + REC_INO_DEVICE), get_u64(rec + REC_INO_INODE));
}

static size_t node_bytes(const node *n) {
  return sizeof *n + (size_t)n->name_len + 1 + n->target_len + n->xattrs_len + n->ref_len + n->extents_len + n->chunks_len + n->layout_bytes;
}

static node *new_node(table *t, const uint8_t *rec, const uint8_t *heap, uint32_t index) {
  field name = rec_field(rec, REC_NAME), target = rec_field(rec, REC_TARGET), xattrs = rec_field(rec, REC_XATTRS);
  field ref = rec_field(rec, REC_REF), extents = rec_field(rec, REC_EXTENTS), chunks = rec_field(rec, REC_CHUNKS);
  node *n = calloc(1, sizeof *n + (size_t)name.len + 1 + target.len + xattrs.len + ref.len + extents.len + chunks.len);
  if (!n) return NULL;
  n->nodeid = t->next_id++;
  n->index = index;
  n->flags = (uint8_t)get_u32(rec + REC_FLAGS);
  read_attr(rec, &n->attr);
  uint8_t *p = n->bytes;
  n->name = p; n->name_len = name.len; memcpy(p, heap + name.off, name.len); p[name.len] = 0; p += name.len + 1;
  n->target = p; n->target_len = target.len; memcpy(p, heap + target.off, target.len); p += target.len;
  n->xattrs = p; n->xattrs_len = xattrs.len; memcpy(p, heap + xattrs.off, xattrs.len); p += xattrs.len;
  n->ref = p; n->ref_len = ref.len; memcpy(p, heap + ref.off, ref.len); p += ref.len;
  n->extents = p; n->extents_len = extents.len; memcpy(p, heap + extents.off, extents.len); p += extents.len;
  n->chunks = p; n->chunks_len = chunks.len; memcpy(p, heap + chunks.off, chunks.len);
  if (map_put(t, n)) {
    free(n);
    return NULL;
  }
  t->bytes += node_bytes(n);
  return n;
}

/* Whether the old node `o` stands for the same thing as the record (so it keeps its id). */
static int same_thing(const node *o, const uint8_t *rec, const uint8_t *heap) {
  field ref = rec_field(rec, REC_REF), target = rec_field(rec, REC_TARGET);
  return (o->attr.mode & 0170000) == (get_u32(rec + REC_MODE) & 0170000) &&
         o->ref_len == ref.len && !memcmp(o->ref, heap + ref.off, ref.len) &&
         o->target_len == target.len && !memcmp(o->target, heap + target.off, target.len);
}

static node *find_child(const folder *d, const uint8_t *name, size_t len) {
  uint32_t lo = 0, hi = d->count;
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo) / 2;
    node *c = d->children[mid];
    int cmp = compare_names(c->name, c->name_len, name, (uint32_t)len);
    if (cmp == 0) return c;
    if (cmp < 0) lo = mid + 1; else hi = mid;
  }
  return NULL;
}

table *table_new(const uint8_t *batch, size_t len, size_t budget_bytes, const char **problem) {
  uint32_t count;
  const uint8_t *records, *heap;
  size_t heap_len;
  if (check_batch(batch, len, &count, &records, &heap, &heap_len, problem)) return NULL;
  if (count != 1 || (get_u32(records + REC_MODE) & 0170000) != 0040000) {
    *problem = "the root must be one folder";
    return NULL;
  }
  table *t = calloc(1, sizeof *t);
  if (!t) return *problem = "out of memory", NULL;
  pthread_mutex_init(&t->mutex, NULL);
  t->budget = budget_bytes;
  t->next_id = 1; /* FUSE_ROOT_ID */
  t->root = new_node(t, records, heap, 0);
  if (!t->root) {
    table_free(t);
    return *problem = "out of memory", NULL;
  }
  return t;
}

void table_free(table *t) {
  for (size_t i = 0; i < t->cap; i++) {
    node *n = t->slots[i];
    if (!n) continue;
    if (n->dir) {
      free(n->dir->children);
      free(n->dir);
    }
    free(n->layout);
    free(n);
  }
  free(t->slots);
  pthread_mutex_destroy(&t->mutex);
  free(t);
}

void table_lock(table *t) { pthread_mutex_lock(&t->mutex); }
void table_unlock(table *t) { pthread_mutex_unlock(&t->mutex); }

node *table_root(table *t) { return t->root; }

int table_needs_load(const node *dir) { return dir->state != DIR_LOADED || dir->stale; }

void table_set_loading(table *t, node *dir) {
  int was = pinned(t, dir);
  dir->state = DIR_LOADING;
  settle(t, dir, was);
}

int table_load(table *t, node *dir, const uint8_t *batch, size_t len, const char **problem) {
  uint32_t count;
  const uint8_t *records, *heap;
  size_t heap_len;
  int err = check_batch(batch, len, &count, &records, &heap, &heap_len, problem);
  if (err) {
    table_load_failed(t, dir);
    return err;
  }
  folder *d = calloc(1, sizeof *d);
  node **children = count ? calloc(count, sizeof(node *)) : NULL;
  if (!d || (count && !children)) {
    free(d);
    free(children);
    table_load_failed(t, dir);
    return *problem = "out of memory", ENOMEM;
  }
  folder *old = dir->dir;
  uint32_t made = 0;
  for (; made < count; made++) {
    const uint8_t *rec = records + (size_t)made * BATCH_RECORD_SIZE;
    field name = rec_field(rec, REC_NAME);
    node *o = old ? find_child(old, heap + name.off, name.len) : NULL;
    if (o && same_thing(o, rec, heap)) {
      /* The same thing as before (a reload of a volatile folder): it keeps its id. */
      read_attr(rec, &o->attr);
      o->flags = (uint8_t)get_u32(rec + REC_FLAGS);
      o->index = made;
      o->kept = 1;
      children[made] = o;
      continue;
    }
    node *c = new_node(t, rec, heap, made);
    if (!c) break;
    c->parent = dir;
    dir->kids_alive++;
    children[made] = c;
  }
  if (made < count) {
    for (uint32_t i = 0; i < made; i++) {
      if (children[i]->kept) children[i]->kept = 0;
      else free_node(t, children[i]);
    }
    free(children);
    free(d);
    table_load_failed(t, dir);
    return *problem = "out of memory", ENOMEM;
  }
  if (old) lru_remove(t, dir); /* while dir->dir is still the old folder */
  int was = pinned(t, dir);
  d->children = children;
  d->count = count;
  dir->dir = d;
  dir->state = DIR_LOADED;
  dir->stale = 0;
  if (old) {
    /* Children that did not come back are detached: freed now, or once nothing pins them. */
    for (uint32_t i = 0; i < old->count; i++) {
      node *o = old->children[i];
      if (o->kept) o->kept = 0;
      else o->attached = 0;
    }
    t->bytes -= sizeof *old + old->count * sizeof(node *);
    for (uint32_t i = 0; i < old->count; i++) {
      node *o = old->children[i];
      if (!o->attached && !pinned(t, o)) free_node(t, o);
    }
    free(old->children);
    free(old);
  } else {
    t->folders_loaded++;
  }
  for (uint32_t i = 0; i < count; i++) {
    children[i]->attached = 1;
    if (pinned(t, children[i])) d->pinned_children++;
  }
  t->bytes += sizeof *d + count * sizeof(node *);
  d->last_used = ++t->clock;
  if (d->pinned_children == 0) lru_add(t, dir);
  settle(t, dir, was);
  evict(t, dir);
  return 0;
}

void table_load_failed(table *t, node *dir) {
  int was = pinned(t, dir);
  dir->state = dir->dir ? DIR_LOADED : DIR_UNLOADED;
  settle(t, dir, was);
}

node *table_child(table *t, node *dir, const uint8_t *name, size_t len) {
  touch(t, dir);
  return find_child(dir->dir, name, len);
}

uint32_t table_child_count(const node *dir) { return dir->dir ? dir->dir->count : 0; }

node *table_child_at(const node *dir, uint32_t i) { return dir->dir->children[i]; }

void table_ref(table *t, node *n, uint64_t count) {
  int was = pinned(t, n);
  n->nlookup += count;
  settle(t, n, was);
}

void table_forget(table *t, node *n, uint64_t count) {
  int was = pinned(t, n);
  n->nlookup = count > n->nlookup ? 0 : n->nlookup - count;
  settle(t, n, was);
  if (t->bytes > t->budget) evict(t, NULL);
}

void table_set_layout(table *t, node *n, void *layout, uint32_t bytes) {
  n->layout = layout;
  n->layout_bytes = bytes;
  t->bytes += bytes;
}

void table_set_parked(table *t, node *n, void *parked) {
  int was = pinned(t, n);
  n->parked = parked;
  settle(t, n, was);
}

void table_mark_stale(table *t, void (*each)(void *ctx, node *dir), void *ctx) {
  for (size_t i = 0; i < t->cap; i++) {
    node *n = t->slots[i];
    if (n && (n->flags & NODE_VOLATILE) && n->dir) {
      n->stale = 1;
      if (each) each(ctx, n);
    }
  }
}

size_t table_path(const node *n, char *out, size_t cap) {
  if (cap == 0) return 0;
  if (!n->parent) {
    if (cap > 1) { out[0] = '/'; out[1] = 0; return 1; }
    out[0] = 0;
    return 0;
  }
  size_t len = 0;
  for (const node *p = n; p->parent; p = p->parent) len += 1 + p->name_len;
  size_t end = len < cap - 1 ? len : cap - 1;
  out[end] = 0;
  size_t at = len;
  for (const node *p = n; p->parent; p = p->parent) {
    at -= p->name_len;
    for (uint32_t i = 0; i < p->name_len; i++) if (at + i < end) out[at + i] = (char)p->name[i];
    at -= 1;
    if (at < end) out[at] = '/';
  }
  return end;
}

const uint8_t *table_read_ref(const node *n, uint32_t *len, uint32_t *index) {
  *index = n->index;
  if (n->ref_len || !n->parent) {
    *len = n->ref_len;
    return n->ref;
  }
  *len = n->parent->ref_len;
  return n->parent->ref;
}

table_stats table_get_stats(table *t) {
  return (table_stats){ .nodes = t->used, .folders_loaded = t->folders_loaded, .bytes = t->bytes, .budget = t->budget };
}
