/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Force-included (-include) when tests/kvm/mkmodules.sh builds Debian's unmodified
 * drivers/dma-buf/udmabuf.c as a module. Linux 6.1 makes CONFIG_UDMABUF a bool: built in, the
 * file may use what is not exported to modules. Three things, nothing else:
 *
 * - the DMA_BUF symbol namespace, which modules must import;
 * - memfd_fcntl(F_GET_SEALS), not exported: the seals of a shmem memfd read directly, the
 *   same field mm/memfd.c reads;
 * - is_file_hugepages(), whose inline body uses hugetlbfs symbols that are not exported:
 *   false, so a hugetlbfs memfd is refused (EBADFD) instead of used. hyperbuf's pools are
 *   shmem memfds.
 */
#include <linux/hugetlb.h>
#include <linux/memfd.h>
#include <linux/module.h>
#include <linux/shmem_fs.h>

MODULE_IMPORT_NS(DMA_BUF);

static inline long hb_udmabuf_get_seals(struct file *file)
{
	if (!shmem_mapping(file->f_mapping))
		return -EINVAL;
	return SHMEM_I(file_inode(file))->seals;
}

#define memfd_fcntl(file, cmd, arg) hb_udmabuf_get_seals(file)
#define is_file_hugepages(file)     false
