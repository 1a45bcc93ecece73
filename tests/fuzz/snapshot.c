/*
 * Fuzz target: the snapshot reader of sync-diff (lib/snapread.c).  Any
 * input must give a snapshot or a "name:line:col: ..." error, never a
 * crash or a leak.
 */
#include <stdlib.h>
#include <string.h>

#include "diff.h"
#include "main.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sync_err err;
	struct snap *s;
	char *buf;

	if ((buf = malloc(size + 2)) == NULL)
		return 0;
	buf[0] = '\0';
	memcpy(buf + 1, data, size);
	buf[size + 1] = '\0';
	s = snap_parse("fuzz", buf, size, &err);
	if (s == NULL && strncmp(err.msg, "fuzz:", 5) != 0)
		abort();
	snap_free(s);
	return 0;
}
