/* bench_lease_sim: how several pgcrond instances share 1,000,000 jobs (docs/scaling.md).
 * A simulation in whole seconds, no database: it counts the statements each scheme would
 * send to PostgreSQL and checks that every fire runs exactly once.
 *
 *   per-fire claims: every live instance tries to claim every fire (INSERT ... ON CONFLICT
 *   DO NOTHING on (job, fire)); one wins. Claim statements = fires x live instances.
 *
 *   bucket leases: jobs hash into BUCKETS buckets; each bucket is leased to one instance
 *   (pgcrond.bucket_lease: bucket, owner, epoch, lease_until). An instance renews all its
 *   leases with one UPDATE every RENEW s (lease TTL s), takes expired or unowned buckets up
 *   to its fair share (ceil(buckets / live)), hands extra ones back, and claims only the
 *   fires of its own buckets, fenced by the lease epoch, in one multi-row INSERT per second.
 *   Claim statements = runs / batch + renewals; fires of a dead instance's buckets wait for
 *   the lease to expire and run late (catch-up), never twice and never lost.
 *
 *   build/bench/lease/bench_lease_sim [JOBS [FIRES_PER_S [INSTANCES]]]
 *   (defaults 1000000 15000 4; instance 1 dies at 60 s, a new one joins at 120 s; 180 s) */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BUCKETS 4096
#define TTL 15
#define RENEW 5
#define SECONDS 180
#define MAX_INST 64

struct inst {
	bool alive;
	int joined_at, died_at;
};

static uint32_t hash_u32(uint32_t x)
{
	x ^= x >> 16;
	x *= 0x7feb352dU;
	x ^= x >> 15;
	x *= 0x846ca68bU;
	x ^= x >> 16;
	return x;
}

int main(int argc, char **argv)
{
	long jobs = argc > 1 ? atol(argv[1]) : 1000000;
	long fires_per_s = argc > 2 ? atol(argv[2]) : 15000;
	int n_inst = argc > 3 ? atoi(argv[3]) : 4;
	if (jobs < 1 || fires_per_s < 1 || fires_per_s > jobs || n_inst < 2 || n_inst >= MAX_INST) {
		fprintf(stderr, "usage: %s [JOBS [FIRES_PER_S [INSTANCES (2-%d)]]]\n", argv[0],
		        MAX_INST - 1);
		return 64;
	}
	struct inst inst[MAX_INST] = {{0}};
	int owner[BUCKETS], lease_until[BUCKETS];
	unsigned epoch[BUCKETS];
	int *bucket_of = malloc(sizeof(int) * (size_t)jobs);
	/* fires not yet run: (job, due second), a ring of pending catch-ups */
	long pend_cap = jobs, pend_n = 0;
	long *pend_job = malloc(sizeof(long) * (size_t)pend_cap);
	int *pend_due = malloc(sizeof(int) * (size_t)pend_cap);
	uint8_t *runs_of_fire = calloc((size_t)jobs, 1); /* this second's fire of each job */
	if (!bucket_of || !pend_job || !pend_due || !runs_of_fire)
		return 1;
	for (long j = 0; j < jobs; j++)
		bucket_of[j] = (int)(hash_u32((uint32_t)j) % BUCKETS);
	for (int b = 0; b < BUCKETS; b++) {
		owner[b] = -1;
		lease_until[b] = 0;
		epoch[b] = 0;
	}
	for (int i = 0; i < n_inst; i++)
		inst[i] = (struct inst){true, 0, -1};
	int total_inst = n_inst, die = 1, join_at = 120, die_at = 60;

	unsigned long long a_stmts = 0, b_claim_stmts = 0, b_lease_stmts = 0, fires = 0, runs = 0;
	unsigned long long doubles = 0, late = 0, moves = 0;
	int max_late = 0;
	long period = jobs / fires_per_s; /* each job fires once per PERIOD seconds */

	for (int t = 0; t < SECONDS; t++) {
		if (t == die_at) {
			inst[die].alive = false;
			inst[die].died_at = t;
		}
		if (t == join_at && total_inst < MAX_INST)
			inst[total_inst++] = (struct inst){true, t, -1};
		int live = 0;
		for (int i = 0; i < total_inst; i++)
			live += inst[i].alive;

		/* leases: each live instance acts on its renewal tick (staggered by its index) */
		int fair = (BUCKETS + live - 1) / live;
		for (int i = 0; i < total_inst; i++) {
			if (!inst[i].alive || (t + i) % RENEW != 0)
				continue;
			int mine = 0;
			for (int b = 0; b < BUCKETS; b++)
				if (owner[b] == i && lease_until[b] > t) {
					lease_until[b] = t + TTL; /* one UPDATE renews them all */
					mine++;
				}
			b_lease_stmts++;
			/* hand back above the fair share (one UPDATE), take expired ones up to it
			 * (one UPDATE ... FOR UPDATE SKIP LOCKED) */
			for (int b = BUCKETS - 1; b >= 0 && mine > fair; b--)
				if (owner[b] == i) {
					owner[b] = -1;
					lease_until[b] = 0;
					mine--;
				}
			bool took = false;
			for (int b = 0; b < BUCKETS && mine < fair; b++)
				if (lease_until[b] <= t) {
					if (owner[b] >= 0 && owner[b] != i)
						moves++;
					owner[b] = i;
					epoch[b]++;
					lease_until[b] = t + TTL;
					mine++;
					took = true;
				}
			b_lease_stmts += 1 + took;
		}

		/* this second's fires, then the catch-ups that are now someone's */
		memset(runs_of_fire, 0, (size_t)jobs);
		long first = (t % period) * fires_per_s;
		bool claimed_any[MAX_INST] = {false};
		for (long j = first; j < first + fires_per_s && j < jobs; j++) {
			fires++;
			a_stmts += (unsigned long long)live; /* every live instance tries */
			int b = bucket_of[j], o = owner[b];
			if (o >= 0 && inst[o].alive && lease_until[b] > t) {
				runs_of_fire[j]++;
				runs++;
				claimed_any[o] = true;
			} else if (pend_n < pend_cap) {
				pend_job[pend_n] = j;
				pend_due[pend_n++] = t;
			}
		}
		long keep = 0;
		for (long k = 0; k < pend_n; k++) {
			long j = pend_job[k];
			int b = bucket_of[j], o = owner[b];
			if (o >= 0 && inst[o].alive && lease_until[b] > t) {
				runs_of_fire[j]++;
				runs++;
				late++;
				claimed_any[o] = true;
				if (t - pend_due[k] > max_late)
					max_late = t - pend_due[k];
			} else {
				pend_job[keep] = j;
				pend_due[keep++] = pend_due[k];
			}
		}
		pend_n = keep;
		for (long j = 0; j < jobs; j++)
			doubles += runs_of_fire[j] > 1;
		for (int i = 0; i < total_inst; i++)
			b_claim_stmts +=
			    claimed_any[i]; /* one multi-row INSERT per instance and second */
	}

	double secs = SECONDS;
	printf("%ld jobs in %d buckets, %ld fires/s, %d instances (instance %d dies at %d s, one "
	       "joins at %d s), lease TTL %d s renewed every %d s, %d s simulated\n",
	       jobs, BUCKETS, fires_per_s, n_inst, die, die_at, join_at, TTL, RENEW, SECONDS);
	printf("per-fire claims by every instance: %.0f claim statements/s for %.0f fires/s "
	       "(%.1f per fire)\n",
	       a_stmts / secs, fires / secs, (double)a_stmts / (double)fires);
	printf("bucket leases: %.1f claim statements/s (one multi-row INSERT per instance and "
	       "second, %.0f fires claimed/s) + %.1f lease statements/s\n",
	       b_claim_stmts / secs, runs / secs, b_lease_stmts / secs);
	printf("fires %llu, runs %llu, run twice %llu, never run %ld, run late after a handover "
	       "%llu (at most %d s late), buckets moved %llu\n",
	       fires, runs, doubles, pend_n, late, max_late, moves);
	free(bucket_of);
	free(pend_job);
	free(pend_due);
	free(runs_of_fire);
	return doubles || pend_n ? 1 : 0;
}
