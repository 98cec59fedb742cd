/* Small reads of sysfs and procfs files. */
#ifndef HB_COMMON_FILE_H
#define HB_COMMON_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* The first line of a small file, without its newline, into buf[len]. 0 or -errno. */
int hbc_read_line(const char *path, char *buf, size_t len);
/* The decimal number a file starts with, or -1 if it cannot be read. */
long hbc_read_long(const char *path);
/* Whether the file's first bytes contain word. */
bool hbc_file_has(const char *path, const char *word);

/* mkdir -p: dir and every missing folder above it, with mode. 0 or -errno. */
int hbc_mkdir_p(const char *dir, mode_t mode);

#endif
