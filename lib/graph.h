/*
 * graph.h: private interface of the Microsoft Graph connector.
 */
#ifndef SYNC_GRAPH_H
#define SYNC_GRAPH_H

#include "sync.h"

struct sync_graph_conf {
	char *tenant;
	char *client_id;
	char *secret_file;      /* client secret, mode 0600 */
	char *cert_file;        /* or a certificate and its key */
	char *key_file;
	char *token_url;        /* default: login.microsoftonline.com */
	char *graph_url;        /* default: https://graph.microsoft.com/v1.0 */
	char *ca_file;
	int tls_verify;
	int allow_http;         /* for the emulator only */
	long timeout;           /* seconds per request */
	long connections;       /* parallel connections for export */
	long page_size;         /* $top, at most 999 */
	long retry_budget;      /* seconds spent waiting on retries, at most */
	int enabled[SYNC_NOBJTYPES];
	struct sync_strv attrs[SYNC_NOBJTYPES]; /* properties to $select */
};

#endif
