#ifndef PGCROND_STRMAP_H
#define PGCROND_STRMAP_H

/* One string map for the whole core: a chained hash table of nodes that live in their
 * owners (a job, a metrics entry, an alert condition, a claim...), keyed by a string the
 * owner keeps. It is a multimap: several nodes may hold one key (the scheduler keeps a
 * removed job draining beside its successor of the same name), and they are found in the
 * order they were inserted. It never allocates a node and never fails: without memory to
 * grow its bucket array it keeps the one it has, and lookups only get slower. A zeroed
 * struct strmap is an empty map. Pure logic: libc only; not thread-safe. */

#include <stddef.h>
#include <stdint.h>

/* Embedded in the owner's struct; the map's fields, set by strmap_insert. */
struct strmap_node {
	struct strmap_node *next; /* in its bucket */
	const char *key;          /* the owner's string: it must outlive the node's membership;
	                           * the owner may point it at an equal copy while in the map */
	uint64_t hash;            /* strmap_hash(key) */
};

struct strmap {
	struct strmap_node **buckets; /* NULL: the one bucket `one` */
	struct strmap_node *one;
	size_t n_buckets; /* a power of two (1 while buckets is NULL) */
	size_t n;         /* nodes in the map */
};

/* The owner of NODE (a struct strmap_node * variable, or NULL), a TYPE whose field MEMBER
 * is the node; NULL for NULL. */
#define STRMAP_ENTRY(node, type, member)                                                           \
	((node) ? (type *)(void *)((char *)(node)-offsetof(type, member)) : (type *)NULL)

/* The map's hash of S (64-bit FNV-1a); other code may use it for its own string keys. */
uint64_t strmap_hash(const char *s);

/* Add NODE under KEY (not copied: see strmap_node.key), after the nodes already under it.
 * NODE must not be in a map. */
void strmap_insert(struct strmap *m, struct strmap_node *node, const char *key);

/* Take NODE out of M. NODE was inserted into M, or is zeroed; when it is no longer in M
 * (taken out before), nothing happens. */
void strmap_remove(struct strmap *m, struct strmap_node *node);

/* The first node under KEY (the earliest inserted), or NULL. */
struct strmap_node *strmap_find(const struct strmap *m, const char *key);

/* The node after NODE under NODE's key, or NULL. */
struct strmap_node *strmap_find_next(const struct strmap_node *node);

/* Every node once, in no given order: the first (NULL when M is empty), then the one after
 * NODE (NULL after the last). To remove or free NODE while walking, take the next first. */
struct strmap_node *strmap_first(const struct strmap *m);
struct strmap_node *strmap_next(const struct strmap *m, const struct strmap_node *node);

/* Free M's bucket array (not the nodes: they are their owners') and leave M empty. */
void strmap_free(struct strmap *m);

#endif
