/* This node's life in the cluster: heartbeats, removal of dead nodes' members, recycling of
 * empty rooms, resynchronising its own memberships when Redis comes back, the per-minute status
 * record, and deregistering at the end of a drain. */
#ifndef RRM_NODE_H
#define RRM_NODE_H

struct app;
struct node;

struct node *node_create(struct app *app);
void node_destroy(struct node *n);

/* Redis is usable again (or for the first time): re-assert every local membership, drop the
 * ones Redis holds for connections this node no longer has, and beat at once. */
void node_redis_up(struct node *n);

/* Removes this node and all its memberships from Redis; done() is called when Redis answered
 * (or at once if Redis is down). */
void node_deregister(struct node *n, void (*done)(struct app *app));

/* Writes the status record to the log now. */
void node_status(struct node *n);

#endif
