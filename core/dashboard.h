/*
 * The dashboard page served at / by the metrics endpoint (http.c): the bytes
 * of core/dashboard.html and the Content-Security-Policy that goes with
 * them, both generated at build time by core/embed_page.py. Immutable.
 */
#ifndef SY_CORE_DASHBOARD_H
#define SY_CORE_DASHBOARD_H

#include <stddef.h>

/* The page, UTF-8 HTML with its one script and one style inline. */
extern const unsigned char sy__dashboard_page[];
extern const size_t sy__dashboard_page_len;

/* The policy that admits that script and style by hash, and nothing else. */
extern const char sy__dashboard_csp[];

#endif /* SY_CORE_DASHBOARD_H */
