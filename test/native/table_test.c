/*
 * A C unit test of the mount's inode table (native/fuse_table.c), built with
 * AddressSanitizer and UBSan by test/fs/table.test.ts: batches are checked byte by
 * byte before anything is kept, ids are never reused, what the kernel holds is
 * never freed, reloads keep the ids of what came back, and the budget is kept.
 * Prints "ok N - what" / "not ok N - what" lines; exits nonzero on a failure.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../native/fuse_table.h"

static int failures, tests;

static void check(int ok, const char *what) {
  tests++;
  if (!ok) failures++;
  printf("%s %d - %s\n", ok ? "ok" : "not ok", tests, what);
}

typedef struct entry {
  const char *name;
  unsigned mode;
  const char *ref;
  unsigned flags;
} entry;

/* A batch in the layout of src/fs/batch.ts. */
static uint8_t *batch(const entry *e, unsigned n, size_t *len) {
  size_t heap = 0;
  for (unsigned i = 0; i < n; i++) heap += strlen(e[i].name) + (e[i].ref ? strlen(e[i].ref) : 0);
  *len = BATCH_HEADER_SIZE + (size_t)n * BATCH_RECORD_SIZE + heap;
  uint8_t *b = calloc(1, *len);
  uint32_t v;
  v = BATCH_MAGIC; memcpy(b, &v, 4);
  v = n; memcpy(b + 4, &v, 4);
  v = BATCH_RECORD_SIZE; memcpy(b + 8, &v, 4);
  v = (uint32_t)heap; memcpy(b + 12, &v, 4);
  uint8_t *h = b + BATCH_HEADER_SIZE + (size_t)n * BATCH_RECORD_SIZE;
  uint32_t at = 0;
  for (unsigned i = 0; i < n; i++) {
    uint8_t *r = b + BATCH_HEADER_SIZE + (size_t)i * BATCH_RECORD_SIZE;
    memcpy(r + REC_MODE, &e[i].mode, 4);
    memcpy(r + REC_FLAGS, &e[i].flags, 4);
    uint64_t inode = i + 1;
    memcpy(r + REC_INO_INODE, &inode, 8);
    uint32_t len = (uint32_t)strlen(e[i].name);
    memcpy(r + REC_NAME, &at, 4);
    memcpy(r + REC_NAME + 4, &len, 4);
    memcpy(h + at, e[i].name, len);
    at += len;
    if (e[i].ref) {
      len = (uint32_t)strlen(e[i].ref);
      memcpy(r + REC_REF, &at, 4);
      memcpy(r + REC_REF + 4, &len, 4);
      memcpy(h + at, e[i].ref, len);
      at += len;
    }
  }
  return b;
}

#define DIR 0040755u
#define FILE_ 0100644u

static int refused(table *t, node *dir, const entry *e, unsigned n, void (*spoil)(uint8_t *, size_t)) {
  size_t len;
  uint8_t *b = batch(e, n, &len);
  if (spoil) spoil(b, len);
  const char *problem = NULL;
  int err = table_load(t, dir, b, len, &problem);
  free(b);
  return err != 0 && problem != NULL && table_needs_load(dir);
}

static void past_heap(uint8_t *b, size_t len) { (void)len; uint32_t huge = 1u << 30; memcpy(b + BATCH_HEADER_SIZE + REC_NAME + 4, &huge, 4); }
static void cut_short(uint8_t *b, size_t len) { (void)len; uint32_t n = 1000; memcpy(b + 4, &n, 4); }
static void bad_type(uint8_t *b, size_t len) { (void)len; uint32_t mode = 0170777; memcpy(b + BATCH_HEADER_SIZE + REC_MODE, &mode, 4); }

int main(void) {
  entry root_e = { "root", DIR, "R", NODE_VOLATILE };
  size_t len;
  uint8_t *b = batch(&root_e, 1, &len);
  const char *problem = NULL;
  table *t = table_new(b, len, 1 << 20, &problem);
  free(b);
  check(t != NULL, "a table from one root record");
  table_lock(t);
  node *root = table_root(t);
  check(root->nodeid == 1 && node_is_dir(root), "the root is node 1, a folder");

  entry bad_names[][1] = { { { "a/b", FILE_, 0, 0 } }, { { "..", FILE_, 0, 0 } }, { { "", FILE_, 0, 0 } } };
  for (int i = 0; i < 3; i++) check(refused(t, root, bad_names[i], 1, NULL), "a name with '/', '..' or nothing is refused whole");
  entry unsorted[] = { { "b", FILE_, 0, 0 }, { "a", FILE_, 0, 0 } };
  check(refused(t, root, unsorted, 2, NULL), "names out of order are refused");
  entry twice[] = { { "a", FILE_, 0, 0 }, { "a", FILE_, 0, 0 } };
  check(refused(t, root, twice, 2, NULL), "a name twice is refused");
  entry one[] = { { "a", FILE_, 0, 0 } };
  check(refused(t, root, one, 1, past_heap), "a field pointing past the batch is refused");
  check(refused(t, root, one, 1, cut_short), "a count larger than the batch is refused");
  check(refused(t, root, one, 1, bad_type), "an unknown file type is refused");

  entry kids[] = { { "a.txt", FILE_, 0, 0 }, { "docs", DIR, "Tdocs", 0 }, { "snapshots", DIR, "Vsnapshots", NODE_VOLATILE } };
  b = batch(kids, 3, &len);
  check(table_load(t, root, b, len, &problem) == 0 && !table_needs_load(root), "a good batch loads");
  free(b);
  node *a = table_child(t, root, (const uint8_t *)"a.txt", 5);
  node *docs = table_child(t, root, (const uint8_t *)"docs", 4);
  node *snaps = table_child(t, root, (const uint8_t *)"snapshots", 9);
  check(a && docs && snaps && !table_child(t, root, (const uint8_t *)"zz", 2), "children are found by name, and only they");
  check(a->nodeid != docs->nodeid && docs->nodeid != snaps->nodeid && a->nodeid > 1, "each has an id of its own");
  check(table_get(t, docs->nodeid) == docs, "and is found by it");
  char path[64];
  table_path(docs, path, sizeof path);
  check(!strcmp(path, "/docs"), "its path is built from the names up to the root");

  /* The kernel holds docs and snapshots; a reload of the root (volatile) keeps what came back. */
  table_ref(t, docs, 1);
  table_ref(t, snaps, 2);
  uint64_t docs_id = docs->nodeid, snaps_id = snaps->nodeid, a_id = a->nodeid;
  table_mark_stale(t, NULL, NULL);
  check(table_needs_load(root), "a stale volatile folder must load again");
  entry again[] = { { "b.txt", FILE_, 0, 0 }, { "docs", DIR, "Tdocs-2", 0 }, { "snapshots", DIR, "Vsnapshots", NODE_VOLATILE } };
  b = batch(again, 3, &len);
  check(table_load(t, root, b, len, &problem) == 0, "the reload loads");
  free(b);
  node *snaps2 = table_child(t, root, (const uint8_t *)"snapshots", 9);
  node *docs2 = table_child(t, root, (const uint8_t *)"docs", 4);
  check(snaps2 && snaps2->nodeid == snaps_id, "the same thing keeps its id");
  check(docs2 && docs2->nodeid != docs_id, "a thing of the same name but another ref gets a new one");
  check(table_get(t, docs_id) != NULL, "the old one lives on while the kernel holds it");
  check(table_get(t, a_id) == NULL, "a child nobody holds that did not come back is freed");
  node *old_docs = table_get(t, docs_id);
  table_forget(t, old_docs, 1);
  check(table_get(t, docs_id) == NULL, "and freed once the kernel forgets it");
  table_forget(t, snaps2, 100);
  check(table_get(t, snaps_id) == snaps2 && snaps2->nlookup == 0, "forgetting more than was taken does not underflow");

  /* A budget of 1 MiB: loading many folders nobody holds unloads the least recently used. */
  for (int round = 0; round < 200; round++) {
    node *d = table_child(t, root, (const uint8_t *)"docs", 4);
    if (table_needs_load(d)) table_set_loading(t, d);
    entry many[64];
    char names[64][32];
    for (int i = 0; i < 64; i++) {
      snprintf(names[i], sizeof names[i], "f%02d-%03d", i, round);
      many[i] = (entry){ names[i], FILE_, 0, 0 };
    }
    b = batch(many, 64, &len);
    table_load(t, d, b, len, &problem);
    free(b);
    table_mark_stale(t, NULL, NULL); /* the root reloads: docs is a new node each round */
    entry next[] = { { "docs", DIR, round % 2 ? "Tx" : "Ty", 0 }, { "snapshots", DIR, "Vsnapshots", NODE_VOLATILE } };
    b = batch(next, 2, &len);
    table_load(t, root, b, len, &problem);
    free(b);
  }
  table_stats s = table_get_stats(t);
  check(s.bytes <= s.budget + 64 * 1024, "the table stays within its budget");
  table_unlock(t);
  table_free(t);
  printf("1..%d\n", tests);
  return failures != 0;
}
