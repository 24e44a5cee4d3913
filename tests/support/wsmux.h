/*
 * wsmux.h - drive many blocking test WebSocket clients (wsclient.h) from one thread.
 *
 * This module owns a fixed table of slots, each holding at most one struct wsc (owned by the
 * mux once set). wsmux_poll waits with poll() over every occupied slot's socket and hands each
 * complete message to the caller's on_message callback; when a connection ends (the server's
 * close frame, TCP ended, a protocol error) the mux closes it, empties the slot and calls on_end.
 * Nothing blocks except the one poll() bounded by the caller's timeout, and sends the callbacks
 * make (wsc sends are blocking, bounded by the send timeout; keep the rate modest so that the
 * server's socket buffer never fills).
 *
 * Callbacks may set, drop or send on any slot, including the one being dispatched: the mux
 * re-checks the slot after every callback. Not thread safe; one mux per thread.
 */
#ifndef RRM_TESTSUPPORT_WSMUX_H
#define RRM_TESTSUPPORT_WSMUX_H

#include "wsclient.h"

struct wsmux;

struct wsmux_ops {
    /* A complete text or binary message arrived on slot (msg is freed after the call). */
    void (*on_message)(void *ud, int slot, const struct wsc_msg *msg);
    /* The connection of slot ended and has been closed (the slot is empty now). close_code is
     * the server's close code (WSC_CLOSE_NO_STATUS for an empty close frame), or
     * WSC_CLOSE_ABNORMAL when TCP ended without one; err is 0 for a close frame or the negative
     * errno wsc_recv returned. */
    void (*on_end)(void *ud, int slot, int close_code, int err);
};

/* A mux of `slots` empty slots; ops is copied, ud passed to every callback. NULL on failure. */
struct wsmux *wsmux_new(int slots, const struct wsmux_ops *ops, void *ud);

/* Close every connection and free the mux (NULL is allowed). */
void wsmux_free(struct wsmux *mux);

/* Put ws in slot (the mux owns it from now on); a connection already there is closed first
 * (without on_end). 0 or -EINVAL. */
int wsmux_set(struct wsmux *mux, int slot, struct wsc *ws);

/* The connection in slot, or NULL if the slot is empty. */
struct wsc *wsmux_get(const struct wsmux *mux, int slot);

/* Close the connection in slot (no close frame, no on_end) and empty it. */
void wsmux_drop(struct wsmux *mux, int slot);

/* Number of occupied slots. */
int wsmux_count(const struct wsmux *mux);

/*
 * Wait up to timeout_ms (0: do not wait) for any occupied slot to become readable, then read
 * every readable slot until it has no complete message left, dispatching messages and ends.
 * Returns the number of callbacks made (0 on timeout or with no slot occupied) or a negative
 * errno value if poll() failed.
 */
int wsmux_poll(struct wsmux *mux, int timeout_ms);

#endif /* RRM_TESTSUPPORT_WSMUX_H */
