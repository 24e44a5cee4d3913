/* Fuzzes the frontend's receive assembly (frontend/rxbuf.c) with sequences of pieces as lws hands
 * them over, and checks every answer against a model of its contract: a message is its pieces
 * from the last first piece to the first final piece with nothing remaining; it is refused once
 * its size so far plus the rest of the current frame exceeds max. Pieces can be empty, have no
 * data pointer, be large (to cross the buffer's give-back size) or announce absurd remainders. */
#include "fuzz.h"
#include "rxbuf.h"

#include <stdint.h>
#include <string.h>

#define MAX_LIMIT (4 * RXBUF_KEEP_CAP)

static unsigned char pattern[MAX_LIMIT + 4];
static unsigned char model[MAX_LIMIT + 1];

struct input {
    const uint8_t *p;
    size_t left;
};

static unsigned take(struct input *in, int bytes) {
    unsigned v = 0;
    for (int i = 0; i < bytes; i++) {
        v <<= 8;
        if (in->left) {
            v |= *in->p++;
            in->left--;
        }
    }
    return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!pattern[1])
        for (size_t i = 0; i < sizeof(pattern); i++)
            pattern[i] = (unsigned char)(i * 31 + 7);
    struct input in = {data, size};
    size_t max = 1 + (size_t)take(&in, 2) * 4; /* up to MAX_LIMIT - 3 */
    struct rxbuf rb = {0};
    size_t mlen = 0;

    while (in.left) {
        unsigned op = take(&in, 1);
        int first = op & 1, final = (op >> 1) & 1;
        const void *piece;
        size_t len;
        if (op & 4) { /* bytes from the input */
            len = take(&in, 1);
            if (len > in.left)
                len = in.left;
            piece = in.p;
            in.p += len;
            in.left -= len;
        } else { /* a run of the pattern, up to MAX_LIMIT bytes */
            len = (size_t)take(&in, 2) * 4;
            if (len > MAX_LIMIT)
                len = MAX_LIMIT;
            piece = pattern + (op >> 6);
        }
        if (len == 0 && (op & 8))
            piece = NULL;
        size_t remaining = 0;
        if (op & 16)
            remaining = take(&in, 2);
        if (op & 32)
            remaining = SIZE_MAX - take(&in, 1);

        /* the model's answer */
        if (first)
            mlen = 0;
        int too_big = len > max || remaining > max - len || mlen + len + remaining > max;
        int done = final && remaining == 0;

        const void *msg = NULL;
        size_t msg_len = 0;
        enum rxbuf_status st =
            rxbuf_add(&rb, first, final, remaining, piece, len, max, &msg, &msg_len);
        if (too_big) {
            FUZZ_CHECK(st == RXBUF_TOO_BIG);
            FUZZ_CHECK(rb.len == 0);
            mlen = 0;
            continue;
        }
        FUZZ_CHECK(st != RXBUF_TOO_BIG);
        if (st == RXBUF_NOMEM) { /* allowed, but only when memory ran out */
            mlen = 0;
            continue;
        }
        if (len)
            memcpy(model + mlen, piece, len);
        mlen += len;
        if (!done) {
            FUZZ_CHECK(st == RXBUF_MORE);
            FUZZ_CHECK(rb.len == mlen);
            FUZZ_CHECK(rb.len <= rb.cap && rb.len <= max);
            continue;
        }
        FUZZ_CHECK(st == RXBUF_COMPLETE);
        FUZZ_CHECK(msg != NULL);
        FUZZ_CHECK(msg_len == mlen);
        FUZZ_CHECK(mlen == 0 || memcmp(msg, model, mlen) == 0);
        if (first && piece)
            FUZZ_CHECK(msg == piece); /* one piece: no copy */
        rxbuf_done(&rb);
        FUZZ_CHECK(rb.len == 0);
        FUZZ_CHECK(rb.cap <= RXBUF_KEEP_CAP);
        FUZZ_CHECK((rb.buf == NULL) == (rb.cap == 0));
        mlen = 0;
    }
    rxbuf_free(&rb);
    FUZZ_CHECK(rb.buf == NULL && rb.cap == 0 && rb.len == 0);
    return 0;
}
