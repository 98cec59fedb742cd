/*
 * The log: one line per message on stderr, "IDENT: LEVEL: message" (journald adds time and
 * unit). The daemon logs as "hyperbufd" at its configured level; the library as "libhyperbuf",
 * silent unless HYPERBUF_DEBUG is set.
 */
#ifndef HB_COMMON_LOG_H
#define HB_COMMON_LOG_H

#include <stdarg.h>
#include <stdint.h>

enum hbc_log_level {
	HBC_LOG_SILENT = -1,
	HBC_LOG_ERROR = 0,
	HBC_LOG_WARN,
	HBC_LOG_INFO,
	HBC_LOG_DEBUG,
};

/* The program name every line starts with (default "hyperbufd"); ident must outlive its use. */
void hbc_log_set_ident(const char *ident);

void hbc_log_set_level(enum hbc_log_level level);
enum hbc_log_level hbc_log_get_level(void);
/* "error" | "warn" | "info" | "debug" -> level; -1 if unknown. */
int hbc_log_parse_level(const char *name);
const char *hbc_log_level_name(enum hbc_log_level level);

/* Preserves errno, so `log_err("%s", strerror(errno))` patterns stay safe. */
void hbc_log_at(enum hbc_log_level level, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/*
 * A cause of log lines a peer can provoke at will (refused connections, quota errors): at most
 * one line per second gets through, and it says how many were held back since the last one.
 * One struct per cause.
 */
struct hbc_ratelimit {
	uint64_t next_ms;    /* no line before this */
	unsigned suppressed; /* lines held back since the last one */
};
void hbc_log_limited(struct hbc_ratelimit *rl, enum hbc_log_level level, const char *file,
		     int line, const char *fmt, ...) __attribute__((format(printf, 5, 6)));

#define log_err(...)   hbc_log_at(HBC_LOG_ERROR, __FILE__, __LINE__, __VA_ARGS__)
#define log_warn(...)  hbc_log_at(HBC_LOG_WARN, __FILE__, __LINE__, __VA_ARGS__)
#define log_info(...)  hbc_log_at(HBC_LOG_INFO, __FILE__, __LINE__, __VA_ARGS__)
#define log_debug(...) hbc_log_at(HBC_LOG_DEBUG, __FILE__, __LINE__, __VA_ARGS__)
#define log_warn_limited(rl, ...) hbc_log_limited(rl, HBC_LOG_WARN, __FILE__, __LINE__, __VA_ARGS__)
#define log_info_limited(rl, ...) hbc_log_limited(rl, HBC_LOG_INFO, __FILE__, __LINE__, __VA_ARGS__)

#endif
