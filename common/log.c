/*
 * The log: one line per message on stderr, "IDENT: LEVEL: message", with
 * " (file:line)" appended while the level is debug. Under systemd, journald adds the time and
 * the unit, and the line starts with the syslog priority ("<3>" for an error) so that
 * `journalctl -p err` tells errors apart; elsewhere stderr is whatever the supervisor made it.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"

/* Long enough for any message we write on purpose; longer ones are cut, never split. */
#define HBC_LOG_LINE_MAX 2048

static enum hbc_log_level log_level = HBC_LOG_INFO;
static const char *log_ident = "hyperbufd";

void hbc_log_set_ident(const char *ident)
{
	log_ident = ident;
}

static const char *const level_names[] = {
    [HBC_LOG_ERROR] = "error",
    [HBC_LOG_WARN] = "warn",
    [HBC_LOG_INFO] = "info",
    [HBC_LOG_DEBUG] = "debug",
};

void hbc_log_set_level(enum hbc_log_level level)
{
	if (level < HBC_LOG_SILENT)
		level = HBC_LOG_SILENT;
	if (level > HBC_LOG_DEBUG)
		level = HBC_LOG_DEBUG;
	log_level = level;
}

enum hbc_log_level hbc_log_get_level(void)
{
	return log_level;
}

int hbc_log_parse_level(const char *name)
{
	unsigned i;

	if (!name)
		return -1;
	for (i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
		if (strcasecmp(name, level_names[i]) == 0)
			return (int)i;
	/* The spelling syslog and most daemons use; accepting it costs nothing. */
	if (strcasecmp(name, "warning") == 0)
		return HBC_LOG_WARN;
	return -1;
}

const char *hbc_log_level_name(enum hbc_log_level level)
{
	if (level < HBC_LOG_ERROR || level > HBC_LOG_DEBUG)
		return "?";
	return level_names[level];
}

/* syslog priorities: LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG. */
static const char level_priority[] = {
    [HBC_LOG_ERROR] = '3',
    [HBC_LOG_WARN] = '4',
    [HBC_LOG_INFO] = '6',
    [HBC_LOG_DEBUG] = '7',
};

/* Whether stderr is the journal: systemd says which stream it gave us in $JOURNAL_STREAM
 * ("DEVICE:INODE"); a stderr redirected since (by a shell, by a test) is not it. Asked at
 * every line: a dup2 may change the answer, and an fstat costs nothing next to a write. */
static bool stderr_is_journal(void)
{
	const char *env = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	if (!env || sscanf(env, "%llu:%llu", &dev, &ino) != 2)
		return false;
	return fstat(STDERR_FILENO, &st) == 0 && (unsigned long long)st.st_dev == dev &&
	       (unsigned long long)st.st_ino == ino;
}

static void log_line(enum hbc_log_level level, const char *file, int line, unsigned suppressed,
		     const char *fmt, va_list ap)
{
	char buf[HBC_LOG_LINE_MAX], prio[4] = "";
	size_t len, i;
	int n;

	if (stderr_is_journal())
		snprintf(prio, sizeof(prio), "<%c>", level_priority[level]);
	n = snprintf(buf, sizeof(buf), "%s%s: %s: ", prio, log_ident, hbc_log_level_name(level));
	if (n < 0)
		return;
	len = (size_t)n;
	n = vsnprintf(buf + len, sizeof(buf) - len, fmt, ap);
	if (n < 0)
		return;
	len = len + (size_t)n < sizeof(buf) ? len + (size_t)n : sizeof(buf) - 1;
	if (suppressed) {
		snprintf(buf + len, sizeof(buf) - len, " (%u more like it since the last)",
			 suppressed);
		len = strlen(buf);
	}

	/* Messages quote names and paths that came from configs and peers: a newline in one must
	 * not forge a second log line, so every control character becomes '?'. */
	for (i = 0; i < len; i++)
		if ((unsigned char)buf[i] < 0x20 || buf[i] == 0x7f)
			buf[i] = '?';

	if (log_level >= HBC_LOG_DEBUG && file)
		snprintf(buf + len, sizeof(buf) - len, " (%s:%d)", file, line);
	len = strlen(buf);
	/* Room for the newline is always kept, even when the message was cut. */
	if (len > sizeof(buf) - 2)
		len = sizeof(buf) - 2;
	buf[len++] = '\n';

	/* One write per line, so lines from concurrent writers (the sanitizers, a forked child)
	 * never interleave mid-line. A failing stderr has nowhere to report to. */
	while (len > 0) {
		ssize_t w = write(STDERR_FILENO, buf, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		/* A short write on a pipe only happens under signals; finish the line. */
		memmove(buf, buf + w, len - (size_t)w);
		len -= (size_t)w;
	}
}

void hbc_log_at(enum hbc_log_level level, const char *file, int line, const char *fmt, ...)
{
	int saved_errno = errno;
	va_list ap;

	if (level <= log_level) {
		va_start(ap, fmt);
		log_line(level, file, line, 0, fmt, ap);
		va_end(ap);
	}
	errno = saved_errno;
}

void hbc_log_limited(struct hbc_ratelimit *rl, enum hbc_log_level level, const char *file, int line,
		     const char *fmt, ...)
{
	int saved_errno = errno;
	uint64_t now = hbc_now_ms();
	va_list ap;

	if (level > log_level)
		goto out;
	if (now < rl->next_ms) {
		rl->suppressed++;
		goto out;
	}
	va_start(ap, fmt);
	log_line(level, file, line, rl->suppressed, fmt, ap);
	va_end(ap);
	rl->next_ms = now + 1000;
	rl->suppressed = 0;
out:
	errno = saved_errno;
}
