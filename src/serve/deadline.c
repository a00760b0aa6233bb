/* deadline.c — the whole-request deadline of `tuna serve` (see deadline.h):
 * a list of watched connections under one mutex, and a thread that shuts
 * down the sockets of those whose request is overdue. The socket is shut
 * down, never closed, here: MHD owns the descriptor and closes it, after
 * telling us (srv_deadline_close, under the same mutex), so the watchdog
 * never touches a descriptor number that was reused. The same thread gives
 * freed heap memory back to the system every 5 s (see deadline.h). */
#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

#include "serve/deadline.h"
#include "core/clock.h"
#include "core/error.h"

struct srv_watch {
    int fd;
    double t0;      /* when the current request's clock started */
    int waiting;    /* 1 while a request is expected and not yet whole */
    srv_watch *prev, *next;
};

struct srv_deadline {
    double seconds;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop;
    long expired;
    srv_watch *head;
    pthread_t thread;
};

/* one pass over the list (mutex held): shut down what is overdue */
static void expire(srv_deadline *d) {
    double now = core_now_s();
    for (srv_watch *w = d->head; w; w = w->next)
        if (w->waiting && now - w->t0 > d->seconds) {
            shutdown(w->fd, SHUT_RDWR);
            w->waiting = 0;
            d->expired++;
        }
}

static void *watchdog(void *arg) {
    srv_deadline *d = arg;
    int pass = 0;
    pthread_mutex_lock(&d->mu);
    while (!d->stop) {
        expire(d);
        if (++pass % 20 == 0) malloc_trim(0); /* every 20 x 0.25 s */
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 250000000L;
        if (until.tv_nsec >= 1000000000L) { until.tv_sec++; until.tv_nsec -= 1000000000L; }
        pthread_cond_timedwait(&d->cv, &d->mu, &until);
    }
    pthread_mutex_unlock(&d->mu);
    return NULL;
}

tuna_status srv_deadline_start(srv_deadline **out, double seconds) {
    *out = NULL;
    if (!(seconds > 0)) return core_fail(TUNA_ERR_ARG, "request deadline %g s: must be positive", seconds);
    srv_deadline *d = calloc(1, sizeof *d);
    if (!d) return core_fail(TUNA_ERR_NOMEM, "out of memory");
    d->seconds = seconds;
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->cv, NULL);
    if (pthread_create(&d->thread, NULL, watchdog, d) != 0) {
        pthread_cond_destroy(&d->cv);
        pthread_mutex_destroy(&d->mu);
        free(d);
        return core_fail(TUNA_ERR_NOMEM, "cannot start the request-deadline thread");
    }
    *out = d;
    return TUNA_OK;
}

void srv_deadline_stop(srv_deadline *d) {
    if (!d) return;
    pthread_mutex_lock(&d->mu);
    d->stop = 1;
    pthread_cond_signal(&d->cv);
    pthread_mutex_unlock(&d->mu);
    pthread_join(d->thread, NULL);
    while (d->head) srv_deadline_close(d, d->head);
    pthread_cond_destroy(&d->cv);
    pthread_mutex_destroy(&d->mu);
    free(d);
}

srv_watch *srv_deadline_open(srv_deadline *d, int fd) {
    srv_watch *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    w->fd = fd;
    w->t0 = core_now_s();
    w->waiting = 1;
    pthread_mutex_lock(&d->mu);
    w->next = d->head;
    if (d->head) d->head->prev = w;
    d->head = w;
    pthread_mutex_unlock(&d->mu);
    return w;
}

static void set_waiting(srv_deadline *d, srv_watch *w, int waiting) {
    if (!w) return;
    pthread_mutex_lock(&d->mu);
    w->waiting = waiting;
    w->t0 = core_now_s();
    pthread_mutex_unlock(&d->mu);
}

void srv_deadline_received(srv_deadline *d, srv_watch *w) { set_waiting(d, w, 0); }
void srv_deadline_restart(srv_deadline *d, srv_watch *w) { set_waiting(d, w, 1); }

void srv_deadline_close(srv_deadline *d, srv_watch *w) {
    if (!w) return;
    pthread_mutex_lock(&d->mu);
    if (w->prev) w->prev->next = w->next;
    else d->head = w->next;
    if (w->next) w->next->prev = w->prev;
    pthread_mutex_unlock(&d->mu);
    free(w);
}

long srv_deadline_expired(srv_deadline *d) {
    pthread_mutex_lock(&d->mu);
    long n = d->expired;
    pthread_mutex_unlock(&d->mu);
    return n;
}
