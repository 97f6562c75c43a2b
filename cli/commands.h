/* iothubctl's subcommands: one function per SPEC §4 call. Each returns an exit code
 * (enum hub_exit) after printing its result or its error. */
#ifndef HUB_CLI_COMMANDS_H
#define HUB_CLI_COMMANDS_H

#include <stdarg.h>

#include "cli/args.h"
#include "cli/client.h"

/* What a command runs with; everything is borrowed from main(). */
struct hub_ctl {
    const struct hub_args *a;
    struct hub_client *client;
    const char *const *words; /* the operands after the command words */
    int nwords;
    const char *usage; /* "devices list [--limit N] ..." for usage errors */
    int json;          /* --json: print the server's JSON as received */
};

/* Prints "error: <fmt>" and the command's usage line on stderr; returns HUB_EXIT_USAGE. */
int hub_ctl_usage_error(const struct hub_ctl *ctl, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

int hub_cmd_products_create(struct hub_ctl *ctl);
int hub_cmd_products_list(struct hub_ctl *ctl);
int hub_cmd_devices_provision(struct hub_ctl *ctl);
int hub_cmd_devices_list(struct hub_ctl *ctl);
int hub_cmd_devices_show(struct hub_ctl *ctl);
int hub_cmd_devices_revoke(struct hub_ctl *ctl);
int hub_cmd_devices_reset(struct hub_ctl *ctl);
int hub_cmd_certs_list(struct hub_ctl *ctl);
int hub_cmd_certs_show(struct hub_ctl *ctl);
int hub_cmd_certs_revoke(struct hub_ctl *ctl);
int hub_cmd_crl_get(struct hub_ctl *ctl);
int hub_cmd_ca_get(struct hub_ctl *ctl);
int hub_cmd_tokens_create(struct hub_ctl *ctl);
int hub_cmd_tokens_list(struct hub_ctl *ctl);
int hub_cmd_tokens_revoke(struct hub_ctl *ctl);
int hub_cmd_services_create(struct hub_ctl *ctl);
int hub_cmd_commands_send(struct hub_ctl *ctl);
int hub_cmd_audit(struct hub_ctl *ctl);
int hub_cmd_health(struct hub_ctl *ctl);
/* services activate (cli/activate.c): key, CSR, certificate files for a backend service. */
int hub_cmd_services_activate(struct hub_ctl *ctl);

#endif
