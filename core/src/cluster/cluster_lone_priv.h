#ifndef PGCROND_CLUSTER_LONE_PRIV_H
#define PGCROND_CLUSTER_LONE_PRIV_H

/* An instance alone (cluster_lone.c; schema step 23, docs/several-instances.md "An instance
 * alone"): while no other instance is live it claims nothing, takes no job lock and marks no
 * run; its heartbeat is its only statement. Shared by the cluster's files only. */

#include <stdbool.h>
#include <stddef.h>

#include "cluster.h"

struct cluster;
struct claim;

/* A claim statement refused because another instance runs unclaimed (pgcrond.claim_gate). */
#define CLUSTER_LONE_SQLSTATE "PGCL1"

/* The name is held (after each connect): SCHEMA, whether the schema has step 23. A process
 * that was lone, or going lone, claims again first: its row may still say lone. */
void cluster_lone_locked(struct cluster *c, bool schema);
/* A heartbeat answered (peers_live set); TOLD_DEAD: this process was found dead meanwhile;
 * UNSTOPPED: another instance's row is not stopped (live, or dead and not yet found so). */
void cluster_lone_beat(struct cluster *c, bool told_dead, bool unstopped);
/* Whether the schema has step 23: claim statements pass pgcrond.claim_gate. */
bool cluster_lone_gate(const struct cluster *c);
/* Whether this process runs lone now (no claims, marks, job locks or purges). */
bool cluster_lone_on(const struct cluster *c);
/* ... and its last heartbeat found no other instance's row not stopped: nothing to reap. */
bool cluster_lone_quiet(const struct cluster *c);
/* Whether a claim asked now is answered at once, without a statement: lone, connected, and
 * its last heartbeat recent enough that no other instance can have found it dead. */
bool cluster_lone_answers(const struct cluster *c);
/* For cluster_answer_claims: the claims answered lone, and their verdict (GRANTED: the run
 * releases "its lock" at its end, which cluster_lone_release takes). */
bool cluster_lone_which(struct cluster *c, const struct claim *q);
enum cluster_verdict cluster_lone_verdict(struct cluster *c, struct claim *q, char *why,
                                          size_t len);
/* A run ended (cluster_release): true if it was granted lone and holds no lock row. */
bool cluster_lone_release(struct cluster *c, const char *job);
/* The claim statement being answered was refused by the gate (ERR, the server's message), or
 * (NULL) its answer is over. */
void cluster_lone_refused(struct cluster *c, const char *err);
/* While such an answer is given: true, with the reason in WHY (if not NULL). */
bool cluster_lone_refusal(const struct cluster *c, char *why, size_t len);
void cluster_lone_free(struct cluster *c);

#endif
