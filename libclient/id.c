/* Export handles as text: 32 hex digits, lowercase out, either case in. */
#include <errno.h>
#include <string.h>

#include "libclient/client.h"

HBL_PUBLIC int hb_id_format(const struct hb_id *id, char out[33])
{
	static const char hex[] = "0123456789abcdef";

	if (!id || !out)
		return hbl_fail(-EINVAL);
	for (size_t i = 0; i < sizeof(id->bytes); i++) {
		out[2 * i] = hex[id->bytes[i] >> 4];
		out[2 * i + 1] = hex[id->bytes[i] & 0xf];
	}
	out[2 * sizeof(id->bytes)] = '\0';
	return 0;
}

static int hex_digit(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

HBL_PUBLIC int hb_id_parse(const char *text, struct hb_id *id)
{
	struct hb_id tmp;

	if (!text || !id)
		return hbl_fail(-EINVAL);
	/* Exactly 32 digits: no prefix, no whitespace, nothing after. The NUL stops the loop
	 * at a short string because it is not a digit. */
	for (size_t i = 0; i < sizeof(tmp.bytes); i++) {
		int hi = hex_digit(text[2 * i]);
		int lo = hi < 0 ? -1 : hex_digit(text[2 * i + 1]);
		if (lo < 0)
			return hbl_fail(-EINVAL);
		tmp.bytes[i] = (uint8_t)(hi << 4 | lo);
	}
	if (text[2 * sizeof(tmp.bytes)] != '\0')
		return hbl_fail(-EINVAL);
	*id = tmp;
	return 0;
}

HBL_PUBLIC int hb_id_equal(const struct hb_id *a, const struct hb_id *b)
{
	if (!a || !b)
		return 0;
	return memcmp(a->bytes, b->bytes, sizeof(a->bytes)) == 0;
}
