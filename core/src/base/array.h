#ifndef PGCROND_ARRAY_H
#define PGCROND_ARRAY_H

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Room for one more item in an array of N items of SIZE bytes with room for *CAP: when it is
 * full, its room doubles (FIRST items the first time). ITEMS is the address of the array's
 * pointer (&a, a T **), read and written as bytes, so any pointer type serves without a cast.
 * Returns 0, or -ENOMEM with the array as it was. */
static inline int array_grow(void *items, size_t n, size_t *cap, size_t size, size_t first)
{
	void *p;
	if (n < *cap)
		return 0;
	size_t ncap = *cap ? *cap * 2 : first;
	memcpy(&p, items, sizeof(p));
	if (!(p = realloc(p, ncap * size)))
		return -ENOMEM;
	memcpy(items, &p, sizeof(p));
	*cap = ncap;
	return 0;
}

#endif
