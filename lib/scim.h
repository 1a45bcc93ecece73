/* TEMPORARY stand-in until the scim-import branch is merged. */
#ifndef SYNC_SCIM_H
#define SYNC_SCIM_H
#include "sync.h"
struct sync_scim_conf { char *url, *token_file, *ca_file; int tls_verify, allow_http; long timeout, connections, retry_budget; };
int tmpscim_parse(struct sync_connector *c, struct sync_node *map, struct sync_err *err);
void tmpscim_free(struct sync_connector *c);
#endif
