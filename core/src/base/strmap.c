/* The string map (strmap.h): chained buckets, a power of two of them, at most one node per
 * bucket on average. Each node keeps its key's hash, so that a lookup compares strings only
 * on a matching hash and growing never reads a key. */
#include <stdlib.h>
#include <string.h>

#include "strmap.h"

#define MIN_BUCKETS 16

uint64_t strmap_hash(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a's offset basis and prime */

	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		h = (h ^ *p) * 0x100000001b3ULL;
	return h;
}

/* The bucket of hash H. FNV-1a's low K bits depend only on the low K bits of each byte
 * (16 buckets would see "a" and "q" alike), so the high bits are mixed down first. */
static size_t bucket_of(const struct strmap *m, uint64_t h)
{
	h ^= h >> 32;
	h *= 0x9e3779b97f4a7c15ULL;
	h ^= h >> 29;
	return (size_t)h & (m->n_buckets - 1);
}

static struct strmap_node **bucket(struct strmap *m, uint64_t h)
{
	return m->buckets ? &m->buckets[bucket_of(m, h)] : &m->one;
}

static struct strmap_node *chain(const struct strmap *m, uint64_t h)
{
	return m->buckets ? m->buckets[bucket_of(m, h)] : m->one;
}

/* Double the buckets (at least MIN_BUCKETS); without memory, keep them. The nodes of one
 * key are in one chain: each chain is reversed and its nodes pushed onto the heads of the
 * new chains, which puts them back in their order. */
static void grow(struct strmap *m)
{
	size_t n_old = m->buckets ? m->n_buckets : 1;
	struct strmap_node **old = m->buckets ? m->buckets : &m->one;
	size_t n = m->n_buckets * 2 < MIN_BUCKETS ? MIN_BUCKETS : m->n_buckets * 2;
	struct strmap_node **b = calloc(n, sizeof(*b));

	if (!b)
		return;
	struct strmap grown = {.buckets = b, .n_buckets = n, .n = m->n};
	for (size_t i = 0; i < n_old; i++) {
		struct strmap_node *rev = NULL;
		for (struct strmap_node *x = old[i], *next; x; x = next) {
			next = x->next;
			x->next = rev;
			rev = x;
		}
		for (struct strmap_node *x = rev, *next; x; x = next) {
			next = x->next;
			struct strmap_node **head = &b[bucket_of(&grown, x->hash)];
			x->next = *head;
			*head = x;
		}
	}
	free(m->buckets);
	*m = grown;
}

void strmap_insert(struct strmap *m, struct strmap_node *node, const char *key)
{
	if (m->n_buckets == 0)
		m->n_buckets = 1; /* a zeroed map */
	node->key = key;
	node->hash = strmap_hash(key);
	node->next = NULL;
	if (++m->n > m->n_buckets)
		grow(m);
	struct strmap_node **p = bucket(m, node->hash);
	while (*p)
		p = &(*p)->next;
	*p = node;
}

void strmap_remove(struct strmap *m, struct strmap_node *node)
{
	if (!m->n)
		return;
	for (struct strmap_node **p = bucket(m, node->hash); *p; p = &(*p)->next) {
		if (*p == node) {
			*p = node->next;
			node->next = NULL;
			m->n--;
			return;
		}
	}
}

static struct strmap_node *same_key(struct strmap_node *x, uint64_t h, const char *key)
{
	for (; x; x = x->next)
		if (x->hash == h && strcmp(x->key, key) == 0)
			return x;
	return NULL;
}

struct strmap_node *strmap_find(const struct strmap *m, const char *key)
{
	if (!m->n)
		return NULL;
	uint64_t h = strmap_hash(key);
	return same_key(chain(m, h), h, key);
}

struct strmap_node *strmap_find_next(const struct strmap_node *node)
{
	return same_key(node->next, node->hash, node->key);
}

static struct strmap_node *from_bucket(const struct strmap *m, size_t i)
{
	if (!m->buckets)
		return i == 0 ? m->one : NULL;
	for (; i < m->n_buckets; i++)
		if (m->buckets[i])
			return m->buckets[i];
	return NULL;
}

struct strmap_node *strmap_first(const struct strmap *m)
{
	return m->n ? from_bucket(m, 0) : NULL;
}

struct strmap_node *strmap_next(const struct strmap *m, const struct strmap_node *node)
{
	if (node->next)
		return node->next;
	return m->buckets ? from_bucket(m, bucket_of(m, node->hash) + 1) : NULL;
}

void strmap_free(struct strmap *m)
{
	free(m->buckets);
	memset(m, 0, sizeof(*m));
}
