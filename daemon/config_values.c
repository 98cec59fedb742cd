/*
 * The kinds of values a config holds, each checked the one way: plain decimal numbers in a
 * range, sizes with a K, M or G suffix, names, socket paths (relative ones resolved against the
 * config's folder) with their placeholders, comma-separated lists; and the first error found,
 * which is the one a load reports.
 */
#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "daemon/config_parse.h"

/* Only the first error counts: what follows it is often its consequence. */
void hbd_config_fail(struct hbd_config_parse *p, unsigned line, const char *fmt, ...)
{
	va_list ap;

	if (p->failed)
		return;
	p->failed = true;
	p->err_line = line;
	va_start(ap, fmt);
	vsnprintf(p->err, sizeof(p->err), fmt, ap);
	va_end(ap);
}

/* Plain decimal only: no sign, no blanks, no 0x, no overflow. */
bool hbd_config_parse_u64(const char *s, uint64_t *out)
{
	uint64_t v = 0;

	if (!*s)
		return false;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return false;
		if (v > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
			return false;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*out = v;
	return true;
}

bool hbd_config_number(struct hbd_config_parse *p, const char *key, const char *value, uint64_t min,
		       uint64_t max, uint64_t *out)
{
	unsigned line = p->lineno;

	if (!hbd_config_parse_u64(value, out)) {
		hbd_config_fail(p, line, "%s = '%s': not a number", key, value);
		return false;
	}
	if (*out < min || *out > max) {
		if (max == UINT64_MAX)
			hbd_config_fail(p, line, "%s = %s: must be at least %llu", key, value,
					(unsigned long long)min);
		else
			hbd_config_fail(p, line, "%s = %s: out of range (%llu..%llu)", key, value,
					(unsigned long long)min, (unsigned long long)max);
		return false;
	}
	return true;
}

/* "64M": a byte count with an optional K, M or G (binary) suffix. */
bool hbd_config_parse_size(const char *s, uint64_t *out)
{
	char digits[32];
	size_t len = strlen(s);
	unsigned shift = 0;
	uint64_t v;

	if (len == 0 || len >= sizeof(digits))
		return false;
	switch (s[len - 1]) {
	case 'K':
	case 'k':
		shift = 10;
		break;
	case 'M':
	case 'm':
		shift = 20;
		break;
	case 'G':
	case 'g':
		shift = 30;
		break;
	}
	if (shift)
		len--;
	memcpy(digits, s, len);
	digits[len] = '\0';
	if (!hbd_config_parse_u64(digits, &v) || v > (UINT64_MAX >> shift))
		return false;
	*out = v << shift;
	return true;
}

/* Letters, digits, '_', '.', '-': names end up in logs, in hyperbufctl tables, in pool headers
 * and (comma-separated) in members lists, so nothing that needs quoting anywhere. */
bool hbd_config_valid_name(const char *s, size_t max)
{
	size_t n = 0;

	for (; *s; s++, n++)
		if (!isalnum((unsigned char)*s) && *s != '_' && *s != '.' && *s != '-')
			return false;
	return n > 0 && n <= max;
}

/*
 * Joins base and a relative path. Leading "./" and "../" are folded into base here, which is
 * exact because base is canonical (realpath) whenever the folder exists; the result is shorter,
 * and socket paths have little room.
 */
char *hbd_config_join_path(const char *base, const char *rel)
{
	size_t blen = strlen(base);
	char *out, *slash;

	out = malloc(blen + strlen(rel) + 2);
	if (!out)
		return NULL;
	memcpy(out, base, blen + 1);
	for (;;) {
		if (rel[0] == '.' && rel[1] == '/') {
			rel += 2;
		} else if (rel[0] == '.' && rel[1] == '.' && rel[2] == '/') {
			slash = strrchr(out, '/');
			if (slash == out)
				out[1] = '\0';
			else if (slash)
				*slash = '\0';
			rel += 3;
		} else {
			break;
		}
		while (*rel == '/')
			rel++;
	}
	blen = strlen(out);
	if (blen == 0 || out[blen - 1] != '/')
		out[blen++] = '/';
	strcpy(out + blen, rel);
	return out;
}

/* A path: absolute as given, relative to the config's folder otherwise; it must fit in out[max]
 * (what names the kind of path in the message). */
static bool resolve_path(struct hbd_config_parse *p, const char *key, const char *value, char *out,
			 size_t max, const char *what)
{
	unsigned line = p->lineno;
	char *full;
	size_t len;

	if (!*value) {
		hbd_config_fail(p, line, "%s: empty path", key);
		return false;
	}
	full = value[0] == '/' ? strdup(value) : hbd_config_join_path(p->base, value);
	if (!full) {
		p->oom = true;
		hbd_config_fail(p, line, "out of memory");
		return false;
	}
	len = strlen(full);
	if (len >= max) {
		/* Name the resolved path: for a relative one, that is where the length went. */
		bool rel = value[0] != '/';

		hbd_config_fail(p, line, "%s%s%s: %s is %zu bytes long; %s holds at most %zu",
				key, rel ? " = " : "", rel ? value : "", full, len, what, max - 1);
		free(full);
		return false;
	}
	memcpy(out, full, len + 1);
	free(full);
	return true;
}

/* A socket path: it must fit in sockaddr_un, which holds HBC_SUN_PATH_MAX - 1 bytes and a NUL. */
bool hbd_config_path(struct hbd_config_parse *p, const char *key, const char *value,
		     char out[HBC_SUN_PATH_MAX])
{
	return resolve_path(p, key, value, out, HBC_SUN_PATH_MAX, "a socket path");
}

bool hbd_config_file_path(struct hbd_config_parse *p, const char *key, const char *value,
			  char out[HBC_CONFIG_PATH_MAX])
{
	return resolve_path(p, key, value, out, HBC_CONFIG_PATH_MAX, "a path");
}

/* A user by name or number; *gid gets its primary group where the user is known. */
bool hbd_config_user(struct hbd_config_parse *p, const char *key, const char *value,
		     uint32_t *uid, uint32_t *gid)
{
	struct passwd *pw;
	uint64_t v;

	if (hbd_config_parse_u64(value, &v)) {
		if (v >= HBC_ID_UNSET) {
			hbd_config_fail(p, p->lineno, "%s = %s: not a uid", key, value);
			return false;
		}
		*uid = (uint32_t)v;
		pw = getpwuid((uid_t)v);
		*gid = pw ? pw->pw_gid : HBC_ID_UNSET;
		return true;
	}
	pw = getpwnam(value);
	if (!pw) {
		hbd_config_fail(p, p->lineno, "%s = %s: no such user", key, value);
		return false;
	}
	*uid = pw->pw_uid;
	*gid = pw->pw_gid;
	return true;
}

/* A group by name or number. */
bool hbd_config_group(struct hbd_config_parse *p, const char *key, const char *value,
		      uint32_t *gid)
{
	struct group *gr;
	uint64_t v;

	if (hbd_config_parse_u64(value, &v)) {
		if (v >= HBC_ID_UNSET) {
			hbd_config_fail(p, p->lineno, "%s = %s: not a gid", key, value);
			return false;
		}
		*gid = (uint32_t)v;
		return true;
	}
	gr = getgrnam(value);
	if (!gr) {
		hbd_config_fail(p, p->lineno, "%s = %s: no such group", key, value);
		return false;
	}
	*gid = gr->gr_gid;
	return true;
}

/* A file mode in octal, at most 0777 ("0660", "660"). */
bool hbd_config_mode(struct hbd_config_parse *p, const char *key, const char *value,
		     unsigned *mode)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(value, &end, 8);
	if (!*value || *end || errno || v > 0777) {
		hbd_config_fail(p, p->lineno, "%s = %s: not a mode (octal, 0 to 0777)", key,
				value);
		return false;
	}
	*mode = (unsigned)v;
	return true;
}

/* A percentage from 1 to 100, "50%" or "50". */
bool hbd_config_percent(struct hbd_config_parse *p, const char *key, const char *value,
			unsigned *pct)
{
	char buf[16];
	size_t n = strlen(value);
	uint64_t v;

	if (n > 0 && n < sizeof(buf) && value[n - 1] == '%')
		n--;
	if (n == 0 || n >= sizeof(buf))
		goto bad;
	memcpy(buf, value, n);
	buf[n] = '\0';
	if (!hbd_config_parse_u64(buf, &v) || v < 1 || v > 100)
		goto bad;
	*pct = (unsigned)v;
	return true;
bad:
	hbd_config_fail(p, p->lineno, "%s = %s: not a percentage from 1%% to 100%%", key, value);
	return false;
}

/* A '{' in a path must start the one placeholder that key knows: a typo such as {VM} would
 * otherwise become part of a socket name and every VM would share one socket. */
bool hbd_config_placeholders(struct hbd_config_parse *p, const char *key, const char *path,
			     const char *ph)
{
	const char *q;

	for (q = strchr(path, '{'); q; q = strchr(q + 1, '{')) {
		if (strncmp(q, ph, strlen(ph)) != 0) {
			hbd_config_fail(p, p->lineno,
					"%s = %s: %s is the only placeholder %s knows", key, path,
					ph, key);
			return false;
		}
	}
	return true;
}

/* Splits a comma-separated list in place; calls fn for each trimmed item, stops when it
 * returns false. An empty item ("a,,b", a trailing comma) is passed as "". */
bool hbd_config_for_each_item(char *list,
			      bool (*fn)(struct hbd_config_parse *, void *, const char *),
			      struct hbd_config_parse *p, void *arg)
{
	char *item = list, *comma, *end;

	for (;;) {
		comma = strchr(item, ',');
		if (comma)
			*comma = '\0';
		while (isspace((unsigned char)*item))
			item++;
		end = item + strlen(item);
		while (end > item && isspace((unsigned char)end[-1]))
			*--end = '\0';
		if (!fn(p, arg, item))
			return false;
		if (!comma)
			return true;
		item = comma + 1;
	}
}
