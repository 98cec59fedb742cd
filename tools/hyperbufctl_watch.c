/*
 * hyperbufctl over time: `events` prints the daemon's events as they happen (PROTOCOL.md §10:
 * Subscribe, then CtlEvent frames), one line each, text or JSON; `watch` asks for the daemon's
 * view every interval and redraws it in place, like top: the counts, the rates of the
 * counters since the last screen, and the domains.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "protocol/limits.h"
#include "tools/hyperbufctl.h"

#define SUBSCRIBE_ID     2u /* after the Hello */
#define FIRST_CONTROL_ID 3u

static void event_text(const CtlEvent *e)
{
	char hid[33], when[16];
	time_t secs = (time_t)(e->time_ms / 1000);
	struct tm tm;

	localtime_r(&secs, &tm);
	strftime(when, sizeof(when), "%H:%M:%S", &tm);
	printf("%s.%03u ", when, (unsigned)(e->time_ms % 1000));
	tool_ctl_put_text(e->what);
	printf(" domain %u", e->domain);
	if (e->peer)
		printf(" peer %u", e->peer);
	if (e->session[0]) {
		fputs(" session ", stdout);
		tool_ctl_put_text(e->session);
	}
	if (e->hid.len) {
		tool_ctl_hid_hex(&e->hid, hid);
		printf(" hid %s", hid);
	}
	if (e->size)
		printf(" size %" PRIu64, e->size);
	if (e->timeline)
		printf(" timeline %" PRIu64, e->timeline);
	if (e->detail[0]) {
		fputs(": ", stdout);
		tool_ctl_put_text(e->detail);
	}
	if (e->dropped)
		printf(" (%u events missed before this one)", e->dropped);
	putchar('\n');
}

/* One JSON object per line; 64-bit numbers that are ids are strings (jq rounds past 2^53). */
static void event_json(const CtlEvent *e)
{
	char hid[33];

	printf("{\"seq\":\"%" PRIu64 "\",\"time_ms\":%" PRIu64 ",\"what\":", e->seq, e->time_ms);
	tool_ctl_put_json_str(e->what);
	fputs(",\"session\":", stdout);
	tool_ctl_put_json_str(e->session);
	printf(",\"domain\":%u,\"peer\":%u", e->domain, e->peer);
	tool_ctl_hid_hex(&e->hid, hid);
	if (hid[0] == '-')
		fputs(",\"hid\":null", stdout);
	else
		printf(",\"hid\":\"%s\"", hid);
	printf(",\"size\":%" PRIu64 ",\"timeline\":\"%" PRIu64 "\",\"value\":\"%" PRIu64
	       "\",\"detail\":",
	       e->size, e->timeline, e->value);
	tool_ctl_put_json_str(e->detail);
	printf(",\"dropped\":%u}\n", e->dropped);
}

int tool_ctl_events(struct tool_ctl_conn *c, const struct tool_ctl_follow *f)
{
	ClientMsg req = CLIENT_MSG__INIT;
	Subscribe sub = SUBSCRIBE__INIT;
	unsigned long n = 0;
	ServerMsg *m;

	req.id = SUBSCRIBE_ID;
	req.body_case = CLIENT_MSG__BODY_SUBSCRIBE;
	req.subscribe = &sub;
	m = tool_ctl_request(c, &req, SERVER_MSG__BODY__NOT_SET, "subscribe");
	if (!m)
		return -1;
	server_msg__free_unpacked(m, NULL);
	/* Told once, on stderr (stdout is events only): from here on nothing is missed. */
	tool_ctl_errmsg("%s: subscribed, waiting for events", c->path);
	while (!f->count || n < f->count) {
		m = tool_ctl_event(c);
		if (!m)
			return -1;
		if (f->json)
			event_json(m->ctl_event);
		else
			event_text(m->ctl_event);
		server_msg__free_unpacked(m, NULL);
		n++;
		/* A reader at the other end of a pipe sees each event as it comes. */
		if (fflush(stdout) != 0)
			return -1;
	}
	return 0;
}

/* ---- watch -------------------------------------------------------------------------------- */

/* The counters shown with their rates, in this order. */
static const char *const rate_keys[] = {
    "messages_in",      "messages_out",       "exports_total",  "imports_total",
    "fences_completed", "bytes_shared_total", "errors_request", "events_sent",
};
#define N_RATES (sizeof(rate_keys) / sizeof(rate_keys[0]))

static uint64_t stat_of(const ControlReply *r, const char *key)
{
	for (size_t i = 0; i < r->n_stats; i++)
		if (strcmp(r->stats[i]->key, key) == 0)
			return r->stats[i]->value;
	return 0;
}

static void screen(const ControlReply *r, const uint64_t *last, uint64_t elapsed_ms, bool tty)
{
	/* Home and clear: the screen is redrawn in place, like top. */
	if (tty)
		fputs("\033[H\033[2J", stdout);
	fputs("hyperbufd ", stdout);
	tool_ctl_put_text(r->version);
	fputs(", backend ", stdout);
	tool_ctl_put_text(r->backend);
	printf(", up %" PRIu64 " s\n", r->uptime_ms / 1000);
	printf("sessions %" PRIu64 "  exports %" PRIu64 "  imports %" PRIu64 "  timelines %" PRIu64
	       "  fence waits %" PRIu64 "  bytes mapped %" PRIu64 "\n",
	       stat_of(r, "sessions"), stat_of(r, "exports"), stat_of(r, "imports"),
	       stat_of(r, "timelines"), stat_of(r, "fence_waits"), stat_of(r, "bytes_mapped"));
	for (size_t i = 0; i < N_RATES; i++) {
		uint64_t now = stat_of(r, rate_keys[i]);
		double rate = last && elapsed_ms && now >= last[i]
				  ? (double)(now - last[i]) * 1000.0 / (double)elapsed_ms
				  : 0.0;

		printf("%-20s %14" PRIu64 " %12.1f/s\n", rate_keys[i], now, rate);
	}
	putchar('\n');
	tool_ctl_print_domains(r);
}

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int tool_ctl_watch(struct tool_ctl_conn *c, const struct tool_ctl_follow *f)
{
	ClientMsg req = CLIENT_MSG__INIT;
	Control control = CONTROL__INIT;
	uint64_t last[N_RATES], then = 0, now;
	bool tty = isatty(STDOUT_FILENO), have_last = false;
	unsigned long n = 0;
	ServerMsg *m;

	control.what = HBP_CTL_STATUS;
	req.body_case = CLIENT_MSG__BODY_CONTROL;
	req.control = &control;
	for (;;) {
		req.id = FIRST_CONTROL_ID + (uint32_t)(n % 1000000u);
		m = tool_ctl_request(c, &req, SERVER_MSG__BODY_CONTROL, "status");
		if (!m)
			return -1;
		now = mono_ms();
		screen(m->control, have_last ? last : NULL, now - then, tty);
		for (size_t i = 0; i < N_RATES; i++)
			last[i] = stat_of(m->control, rate_keys[i]);
		have_last = true;
		then = now;
		server_msg__free_unpacked(m, NULL);
		if (fflush(stdout) != 0)
			return -1;
		if (++n == f->count)
			return 0;
		usleep((useconds_t)(f->interval_ms * 1000u));
	}
}
