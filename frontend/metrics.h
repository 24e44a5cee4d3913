/* /metrics: the node's counters and gauges in the Prometheus text format (version 0.0.4). */
#ifndef RRM_METRICS_H
#define RRM_METRICS_H

#include "textbuf.h"

struct app;

/* Appends every series of app to b. */
void metrics_write(struct app *app, struct textbuf *b);

#endif
