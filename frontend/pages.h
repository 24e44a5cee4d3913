/* The HTML pages served from the binary, each one self-contained (inline CSS and JS, no external
 * assets): the browser client (client.html, on the public port at /, RRM_DEMO_PAGE) and the
 * operator's status page (status.html, on the admin port at /status and /, drawing
 * /status.json). The .html files in frontend/ are the sources; the build turns each into a
 * C array (embed.cmake). */
#ifndef RRM_PAGES_H
#define RRM_PAGES_H

#include <stddef.h>

/* The page's bytes (NUL-terminated) and length without the NUL. */
extern const unsigned char page_client[];
extern const size_t page_client_len;
extern const unsigned char page_status[];
extern const size_t page_status_len;

#endif
