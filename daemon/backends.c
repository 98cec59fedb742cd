/* The backends compiled into this hyperbufd, by the kind the config names. */
#include "daemon/hyperbufd.h"

static const struct {
	enum hbc_backend_kind kind;
	const struct hbd_backend_ops *ops;
} backends[] = {
    {HBC_BACKEND_KVM, &hbd_kvm_backend},
#ifdef HB_WITH_XEN
    {HBC_BACKEND_XEN, &hbd_xen_backend},
#endif
};

const struct hbd_backend_ops *hbd_backend_find(enum hbc_backend_kind kind)
{
	for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++)
		if (backends[i].kind == kind)
			return backends[i].ops;
	return NULL;
}
