/*
 * Fuzz target: sync.conf parsing (YAML, connectors, typed readers).
 */
#include <string.h>

#include "sync.h"
#include "main.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sync_config *cfg;
	struct sync_err err;

	cfg = sync_config_loadb("fuzz.yaml", (const char *)data, size, &err);
	sync_config_free(cfg);
	return 0;
}
