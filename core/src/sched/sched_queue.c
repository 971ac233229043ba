/* The max_running queue (sched.h): a binary min-heap of fires ordered by scheduled instant,
 * then by arrival. Pure; split from sched.c. */
#include <errno.h>
#include <stdlib.h>

#include "sched.h"

static bool q_less(const struct sched_qitem *a, const struct sched_qitem *b)
{
	return a->at_us < b->at_us || (a->at_us == b->at_us && a->seq < b->seq);
}

static void q_swap(struct sched_queue *q, size_t i, size_t j)
{
	struct sched_qitem t = q->items[i];
	q->items[i] = q->items[j];
	q->items[j] = t;
}

static void q_up(struct sched_queue *q, size_t i)
{
	while (i > 0 && q_less(&q->items[i], &q->items[(i - 1) / 2])) {
		q_swap(q, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
}

static void q_down(struct sched_queue *q, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < q->n && q_less(&q->items[l], &q->items[m]))
			m = l;
		if (r < q->n && q_less(&q->items[r], &q->items[m]))
			m = r;
		if (m == i)
			return;
		q_swap(q, i, m);
		i = m;
	}
}

int sched_queue_push(struct sched_queue *q, int64_t at_us, uint64_t seq, void *data)
{
	if (q->n == q->cap) {
		size_t cap = q->cap ? q->cap * 2 : 16;
		struct sched_qitem *items = realloc(q->items, cap * sizeof(*items));
		if (!items)
			return -ENOMEM;
		q->items = items;
		q->cap = cap;
	}
	q->items[q->n] = (struct sched_qitem){at_us, seq, data};
	q_up(q, q->n++);
	return 0;
}

bool sched_queue_remove(struct sched_queue *q, void *data)
{
	for (size_t i = 0; i < q->n; i++) {
		if (q->items[i].data != data)
			continue;
		q->items[i] = q->items[--q->n];
		if (i < q->n) {
			q_down(q, i);
			q_up(q, i);
		}
		return true;
	}
	return false;
}

void sched_queue_clear(struct sched_queue *q)
{
	free(q->items);
	q->items = NULL;
	q->n = q->cap = 0;
}
