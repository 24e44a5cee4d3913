/* The outage reporting rule (see outage.h). */
#include "outage.h"

void outage_init(struct outage *o, int64_t now_ms, int64_t grace_ms, int64_t interval_ms) {
    o->grace_ms = grace_ms;
    o->interval_ms = interval_ms;
    o->down_since_ms = now_ms;
    o->last_report_ms = now_ms;
    o->reported = 0;
}

enum outage_report outage_update(struct outage *o, int up, int64_t now_ms, int64_t *duration_ms) {
    if (up) {
        int reported = o->reported;
        *duration_ms = o->down_since_ms < 0 ? 0 : now_ms - o->down_since_ms;
        o->down_since_ms = -1;
        o->reported = 0;
        return reported ? OUTAGE_BACK : OUTAGE_NONE;
    }
    if (o->down_since_ms < 0)
        o->down_since_ms = now_ms;
    *duration_ms = now_ms - o->down_since_ms;
    if (!o->reported) {
        if (*duration_ms < o->grace_ms)
            return OUTAGE_NONE;
        o->reported = 1;
        o->last_report_ms = now_ms;
        return OUTAGE_DOWN;
    }
    if (now_ms - o->last_report_ms < o->interval_ms)
        return OUTAGE_NONE;
    o->last_report_ms = now_ms;
    return OUTAGE_STILL_DOWN;
}
