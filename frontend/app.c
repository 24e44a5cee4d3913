/* Application-wide helpers: error and delay counting, Redis readiness. */
#include "app.h"

#include "frame.h"
#include "proto.h"
#include "util.h"
#include "router.h"

#include <string.h>

const char *const app_error_codes[] = {
    PROTO_E_INVALID_JSON,    PROTO_E_INVALID_IDENTIFY, PROTO_E_INVALID_DEVICE_ID,
    PROTO_E_INVALID_ROOM_ID, PROTO_E_INVALID_IDENTITY, PROTO_E_NOT_IDENTIFIED,
    PROTO_E_RESERVED_TYPE,   PROTO_E_RATE_LIMITED,     PROTO_E_TOO_BIG,
    PROTO_E_UNAVAILABLE,     PROTO_E_REPLACED,         PROTO_E_IDENTIFY_TIMEOUT,
    PROTO_E_SERVER_FULL,     PROTO_E_DRAINING,         PROTO_E_NOT_MEMBER,
    PROTO_E_OUTCOME_UNKNOWN, PROTO_E_UNAUTHORIZED,     PROTO_E_FORBIDDEN,
    PROTO_E_INVALID_ACK_ID,  PROTO_E_DISCONNECTED,
};
const size_t app_error_code_count = sizeof(app_error_codes) / sizeof(app_error_codes[0]);

const char *const app_pause_reasons[APP_PAUSES] = {"rate", "redis"};

const char *const app_refusal_reasons[APP_REFUSALS] = {
    [APP_REFUSED_VERSION] = "version", [APP_REFUSED_BAD_REQUEST] = "bad_request",
    [APP_REFUSED_ORIGIN] = "origin",   [APP_REFUSED_ADMIN_PORT] = "admin_port",
    [APP_REFUSED_PER_IP] = "per_ip",
};

const int64_t app_delay_bounds_us[APP_DELAY_BOUNDS] = {500, 1000, 2000, 5000, 10000, 50000, 250000};

const int64_t app_relay_bounds_us[APP_RELAY_BOUNDS] = {1000,  2500,   5000,   10000,  25000,
                                                       50000, 100000, 250000, 500000, 1000000};

/* One observation into a histogram of n bounds (n + 1 buckets); below 0 counts as 0. */
static void observe(uint64_t *buckets, uint64_t *sum, const int64_t *bounds, int n, int64_t us) {
    int i = 0;
    while (i < n && us > bounds[i])
        i++;
    buckets[i]++;
    *sum += (uint64_t)(us > 0 ? us : 0);
}

void app_count_delay(struct fe_stats *st, int64_t us) {
    observe(st->delay_buckets, &st->delay_sum_us, app_delay_bounds_us, APP_DELAY_BOUNDS, us);
}

void app_count_relay(struct fe_stats *st, int64_t us) {
    observe(st->relay_buckets, &st->relay_sum_us, app_relay_bounds_us, APP_RELAY_BOUNDS, us);
}

void app_count_written(struct fe_stats *st, const struct frame *f, int64_t now, int64_t *wall) {
    app_count_delay(st, now - f->born_us);
    if (!f->sent_us)
        return;
    if (!*wall)
        *wall = util_now_us();
    app_count_relay(st, *wall - (int64_t)f->sent_us);
}

void app_count_error(struct app *app, const char *code) {
    for (size_t i = 0; i < app_error_code_count; i++)
        if (strcmp(app_error_codes[i], code) == 0)
            app->stats.errors[i]++;
}

int app_redis_ready(const struct app *app) {
    return app->router && router_ready(app->router) && app->sub_up;
}
