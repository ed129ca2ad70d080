/*
 * GET / on the admin port: the dashboard, one self-contained page
 * (src/dashboard.html, compiled in by cmake/embed.cmake) that reads the
 * API's own endpoints. See docs/admin-api.md.
 */
#include "admin_int.h"

#include <event2/buffer.h>
#include <event2/http.h>

/*
 * The page may talk to the API it came from and to nothing else: no
 * script, style, font or image from elsewhere (it has none; this makes
 * sure), no framing by another site (its switches change the rules).
 */
#define PAGE_CSP                                                               \
    "default-src 'none'; script-src 'unsafe-inline'; "                         \
    "style-src 'unsafe-inline'; connect-src 'self'; img-src data:; "           \
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

/* src/dashboard.html, byte for byte. */
static const unsigned char page[] = {
#include "dashboard_html.inc"
};

void admin_page(struct admin *ad, struct evhttp_request *req,
                struct evkeyvalq *params)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    struct evbuffer *b = evbuffer_new();
    (void)ad;
    (void)params;

    /* The page is static: the reply refers to it, nothing is copied. */
    if (b == NULL ||
        evbuffer_add_reference(b, page, sizeof(page), NULL, NULL) != 0) {
        if (b != NULL) {
            evbuffer_free(b);
        }
        admin_reply_error(req, 500, "out of memory");
        return;
    }
    evhttp_add_header(h, "Content-Security-Policy", PAGE_CSP);
    evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
    evhttp_add_header(h, "X-Frame-Options", "DENY");
    evhttp_add_header(h, "Referrer-Policy", "no-referrer");
    admin_reply(req, 200, "text/html; charset=utf-8", b);
}
