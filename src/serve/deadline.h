/* deadline.h — a whole-request deadline for `tuna serve`'s connections.
 * libmicrohttpd's connection timeout is an idle timeout: every byte restarts
 * it, so a client sending one byte a second (slowloris) would hold its
 * connection and thread for ever. A watch per connection starts its clock
 * when the connection opens and again when a response has been sent; the
 * request (headers and body) must have arrived whole within the deadline,
 * else a watchdog thread shuts the socket down (MHD then closes the
 * connection as it does for a client that hung up). Generation and streaming
 * after the request arrived are not limited by it.
 * The watchdog is also the server's housekeeping: every 5 s it hands freed
 * heap memory back to the system (malloc_trim). Connection threads allocate
 * from up to 8 glibc arenas per core and free memory stays in them: under
 * scripts/soak_serve.sh's hostile mix (3 x 30 s) the server's RSS grew
 * 58.6 -> 65.5 -> 68.7 MiB without it and stays flat with it (55.9, 55.2,
 * 55.4 MiB; LeakSanitizer finds no leak either way; same tokens/s). */
#ifndef TUNA_SERVE_DEADLINE_H
#define TUNA_SERVE_DEADLINE_H
#include "tuna.h"

typedef struct srv_deadline srv_deadline;
typedef struct srv_watch srv_watch;

/* Starts the watchdog (checks every 0.25 s); seconds > 0. */
tuna_status srv_deadline_start(srv_deadline **out, double seconds);
/* Stops the watchdog and frees it; call after every watch was closed. */
void srv_deadline_stop(srv_deadline *d);
/* A new connection on socket fd: its clock starts now. NULL when out of
 * memory (the connection is then not watched). */
srv_watch *srv_deadline_open(srv_deadline *d, int fd);
/* The connection's request has arrived whole: its clock stops. */
void srv_deadline_received(srv_deadline *d, srv_watch *w);
/* A response was sent: the clock of the next request on it starts now. */
void srv_deadline_restart(srv_deadline *d, srv_watch *w);
/* The connection closed: forget and free its watch (w may be NULL). */
void srv_deadline_close(srv_deadline *d, srv_watch *w);
/* Connections shut down for missing the deadline so far. */
long srv_deadline_expired(srv_deadline *d);
#endif
