/* The daemon's log: one line per message on stderr (journald adds time and unit). */
#ifndef HB_LOG_H
#define HB_LOG_H

#include <stdarg.h>

enum hb_log_level { HB_LOG_ERROR = 0, HB_LOG_WARN, HB_LOG_INFO, HB_LOG_DEBUG };

void hb_log_set_level(enum hb_log_level level);
enum hb_log_level hb_log_get_level(void);
/* "error" | "warn" | "info" | "debug" -> level; -1 if unknown. */
int hb_log_parse_level(const char *name);
const char *hb_log_level_name(enum hb_log_level level);

/* Preserves errno, so `hb_log(..., "%s", strerror(errno))` patterns stay safe. */
void hb_log_at(enum hb_log_level level, const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#define hb_err(...) hb_log_at(HB_LOG_ERROR, __FILE__, __LINE__, __VA_ARGS__)
#define hb_warn(...) hb_log_at(HB_LOG_WARN, __FILE__, __LINE__, __VA_ARGS__)
#define hb_info(...) hb_log_at(HB_LOG_INFO, __FILE__, __LINE__, __VA_ARGS__)
#define hb_debug(...) hb_log_at(HB_LOG_DEBUG, __FILE__, __LINE__, __VA_ARGS__)

#endif
