/* Removal of the memberships of dead nodes (and of this node's own, when it drains), in steps
 * that each touch the keys of one Redis Cluster slot.
 *
 * A node is dead when its heartbeat in rrm:nodes is older than node-timeout-ms. Reaping node X:
 *   1. the lock rrm:node:{X}:reaper is taken (SET NX with an expiry): one reaper per dead node
 *      at a time, the others leave X alone;
 *   2. X's conns are read in batches (HSCAN); for each conn, its member leaves its room (the
 *      disconnect is recorded only if the member was removed there, so a step done again after
 *      a reaper died records nothing twice) and its device is released; once both are done the
 *      conn's entry goes (HDEL);
 *   3. when no entry is left, the conns hash and X's heartbeat go, then the lock.
 * Progress is durable: a reaper that dies leaves the entries it did not finish, and the next one
 * (after the lock expires) carries on from there. Draining runs the same steps on this node
 * without the lock and without waiting for a timeout. */
#ifndef RRM_REAPER_H
#define RRM_REAPER_H

struct app;
struct reaper;

struct reaper *reaper_create(struct app *app);
/* Abandons the reaps in flight (their callbacks still come, and find nothing to do). */
void reaper_destroy(struct reaper *rp);

/* Looks for dead nodes and starts reaping each one not already being reaped here. */
void reaper_tick(struct reaper *rp);

/* Removes this node's own memberships (reason recorded on each disconnect) and its heartbeat;
 * done(app) when finished or failed. Returns 0 if started, -1 if not (done is not called). */
int reaper_reap_self(struct reaper *rp, const char *reason, void (*done)(struct app *app));

#endif
