/*
 * Fuzz target: parsed DN comparison (sync_dn_under, sync_dn_equal), on
 * the two halves of the input split at the first newline.
 */
#include <stdlib.h>
#include <string.h>

#include "sync.h"
#include "main.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size + 1), *nl;

	if (buf == NULL)
		return 0;
	memcpy(buf, data, size);
	buf[size] = '\0';
	if ((nl = strchr(buf, '\n')) != NULL) {
		*nl = '\0';
		(void)sync_dn_under(buf, nl + 1);
		(void)sync_dn_equal(buf, nl + 1);
		/* A DN is under itself and equal to itself, whatever it is. */
		if (strlen(buf) == size - (size_t)(nl - buf) - 1 &&
		    memcmp(buf, nl + 1, strlen(buf)) == 0 &&
		    sync_dn_equal(buf, nl + 1) != sync_dn_under(buf, nl + 1))
			abort();
	}
	free(buf);
	return 0;
}
