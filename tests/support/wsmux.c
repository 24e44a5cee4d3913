/*
 * wsmux.c - many test WebSocket clients driven from one thread (see wsmux.h).
 *
 * A readable socket may hold several messages, and wsclient buffers what it read past the
 * first, where poll() cannot see it: a readable slot is therefore read with zero timeouts until
 * wsc_recv reports -ETIMEDOUT (no complete message buffered and nothing more on the socket).
 */
#include "wsmux.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>

struct wsmux {
    int slots;
    struct wsc **ws;
    struct pollfd *pfd;
    int *pfd_slot; /* slot of each pollfd entry */
    struct wsmux_ops ops;
    void *ud;
};

struct wsmux *wsmux_new(int slots, const struct wsmux_ops *ops, void *ud) {
    if (slots <= 0 || !ops)
        return NULL;
    struct wsmux *mux = calloc(1, sizeof(*mux));
    if (!mux)
        return NULL;
    mux->slots = slots;
    mux->ws = calloc((size_t)slots, sizeof(*mux->ws));
    mux->pfd = calloc((size_t)slots, sizeof(*mux->pfd));
    mux->pfd_slot = calloc((size_t)slots, sizeof(*mux->pfd_slot));
    mux->ops = *ops;
    mux->ud = ud;
    if (!mux->ws || !mux->pfd || !mux->pfd_slot) {
        wsmux_free(mux);
        return NULL;
    }
    return mux;
}

void wsmux_free(struct wsmux *mux) {
    if (!mux)
        return;
    for (int i = 0; mux->ws && i < mux->slots; i++)
        wsc_close(mux->ws[i]);
    free(mux->ws);
    free(mux->pfd);
    free(mux->pfd_slot);
    free(mux);
}

int wsmux_set(struct wsmux *mux, int slot, struct wsc *ws) {
    if (!mux || slot < 0 || slot >= mux->slots)
        return -EINVAL;
    if (mux->ws[slot] != ws)
        wsc_close(mux->ws[slot]);
    mux->ws[slot] = ws;
    return 0;
}

struct wsc *wsmux_get(const struct wsmux *mux, int slot) {
    if (!mux || slot < 0 || slot >= mux->slots)
        return NULL;
    return mux->ws[slot];
}

void wsmux_drop(struct wsmux *mux, int slot) {
    wsmux_set(mux, slot, NULL);
}

int wsmux_count(const struct wsmux *mux) {
    int n = 0;
    for (int i = 0; mux && i < mux->slots; i++)
        n += mux->ws[i] != NULL;
    return n;
}

/* Read slot until nothing complete is left; returns the number of callbacks made. */
static int drain_slot(struct wsmux *mux, int slot) {
    int calls = 0;
    struct wsc *ws = mux->ws[slot];
    while (ws && mux->ws[slot] == ws) {
        struct wsc_msg m;
        int r = wsc_recv(ws, &m, 0);
        if (r == -ETIMEDOUT)
            break;
        if (r == 0 && m.opcode != WSC_OP_CLOSE) {
            calls++;
            if (mux->ops.on_message)
                mux->ops.on_message(mux->ud, slot, &m);
            wsc_msg_free(&m);
            continue;
        }
        int code = r == 0 ? m.close_code : WSC_CLOSE_ABNORMAL;
        wsc_msg_free(&m);
        wsc_close(ws);
        mux->ws[slot] = NULL;
        calls++;
        if (mux->ops.on_end)
            mux->ops.on_end(mux->ud, slot, code, r);
        break;
    }
    return calls;
}

int wsmux_poll(struct wsmux *mux, int timeout_ms) {
    if (!mux)
        return -EINVAL;
    nfds_t n = 0;
    for (int i = 0; i < mux->slots; i++) {
        if (!mux->ws[i])
            continue;
        mux->pfd[n].fd = wsc_fd(mux->ws[i]);
        mux->pfd[n].events = POLLIN;
        mux->pfd[n].revents = 0;
        mux->pfd_slot[n++] = i;
    }
    if (n == 0) {
        if (timeout_ms > 0)
            poll(NULL, 0, timeout_ms);
        return 0;
    }
    int r = poll(mux->pfd, n, timeout_ms < 0 ? 0 : timeout_ms);
    if (r < 0)
        return errno == EINTR ? 0 : -errno;
    int calls = 0;
    for (nfds_t k = 0; k < n; k++)
        if (mux->pfd[k].revents)
            calls += drain_slot(mux, mux->pfd_slot[k]);
    return calls;
}
