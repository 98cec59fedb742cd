/* Small reads of sysfs and procfs files (see file.h). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/file.h"

int hbc_read_line(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	return 0;
}

long hbc_read_long(const char *path)
{
	char buf[32];

	if (hbc_read_line(path, buf, sizeof(buf)) < 0 || !buf[0])
		return -1;
	return strtol(buf, NULL, 10);
}

bool hbc_file_has(const char *path, const char *word)
{
	char buf[256];

	return hbc_read_line(path, buf, sizeof(buf)) == 0 && strstr(buf, word) != NULL;
}

/* One folder, mode exactly as asked whatever the umask (a daemon's is 077: its folders would
 * keep QEMU and local clients out of the sockets in them). An existing one is left alone. */
static int make_dir(const char *dir, mode_t mode)
{
	if (mkdir(dir, mode) < 0)
		return errno == EEXIST ? 0 : -1;
	return chmod(dir, mode);
}

int hbc_mkdir_p(const char *dir, mode_t mode)
{
	char tmp[PATH_MAX];
	size_t len = strlen(dir);

	if (len == 0 || len >= sizeof(tmp))
		return -ENAMETOOLONG;
	memcpy(tmp, dir, len + 1);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (make_dir(tmp, mode) < 0)
			return -errno;
		*p = '/';
	}
	return make_dir(tmp, mode) < 0 ? -errno : 0;
}
