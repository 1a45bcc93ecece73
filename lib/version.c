/*
 * version.c: what --version says about the libraries a binary runs with.
 */
#include <curl/curl.h>
#include <jansson.h>
#include <ldap_features.h>
#include <openssl/crypto.h>
#include <yaml.h>

#include "sync.h"

int
sync_version_print(FILE *fp, const char *prog, const char *version)
{
	const curl_version_info_data *cv = curl_version_info(CURLVERSION_NOW);

	/*
	 * The versions loaded at run time where the library can say, since
	 * a bug report is about those; OpenLDAP's as built.
	 */
	fprintf(fp, "%s %s\n", prog, version);
	fprintf(fp, "libsync %s, libcurl %s, jansson %s, libyaml %s, "
	    "OpenLDAP %d.%d.%d, OpenSSL %s\n", SYNC_VERSION,
	    cv && cv->version ? cv->version : "?", jansson_version_str(),
	    yaml_get_version_string(), LDAP_VENDOR_VERSION_MAJOR,
	    LDAP_VENDOR_VERSION_MINOR, LDAP_VENDOR_VERSION_PATCH,
	    OpenSSL_version(OPENSSL_VERSION_STRING));
	return ferror(fp) ? -1 : 0;
}

int
sync_stdout_done(const char *prog)
{
	if (ferror(stdout) || fclose(stdout) == EOF) {
		sync_msg(stderr, prog, "cannot write to standard output");
		return 2;
	}
	return 0;
}
