#include "cli/args.h"

#include <stdio.h>
#include <string.h>

static const struct {
    const char *name;
    char short_name;
    int has_value;
} opts[OPT_COUNT] = {
    [OPT_URL] = {"url", 0, 1},
    [OPT_TOKEN] = {"token", 0, 1},
    [OPT_TOKEN_FILE] = {"token-file", 0, 1},
    [OPT_CACERT] = {"cacert", 0, 1},
    [OPT_CONFIG] = {"config", 0, 1},
    [OPT_JSON] = {"json", 0, 0},
    [OPT_INSECURE] = {"insecure", 0, 0},
    [OPT_HELP] = {"help", 'h', 0},
    [OPT_VERSION] = {"version", 'V', 0},
    [OPT_PRODUCT] = {"product", 0, 1},
    [OPT_SERIAL] = {"serial", 0, 1},
    [OPT_PRODUCT_SECRET] = {"product-secret", 0, 1},
    [OPT_PRODUCT_SECRET_FILE] = {"product-secret-file", 0, 1},
    [OPT_LIMIT] = {"limit", 0, 1},
    [OPT_AFTER] = {"after", 0, 1},
    [OPT_ALL] = {"all", 0, 0},
    [OPT_REASON] = {"reason", 0, 1},
    [OPT_DEVICE] = {"device", 0, 1},
    [OPT_FORMAT] = {"format", 0, 1},
    [OPT_OUTPUT] = {"output", 'o', 1},
    [OPT_ROLE] = {"role", 0, 1},
    [OPT_PUBLISH] = {"publish", 0, 1},
    [OPT_SUBSCRIBE] = {"subscribe", 0, 1},
    [OPT_SECRET] = {"secret", 0, 1},
    [OPT_SECRET_FILE] = {"secret-file", 0, 1},
    [OPT_OUT_DIR] = {"out-dir", 0, 1},
    [OPT_PAYLOAD_FILE] = {"payload-file", 0, 1},
    [OPT_PEM] = {"pem", 0, 0},
    [OPT_BEFORE] = {"before", 0, 1},
    [OPT_FIRMWARE] = {"firmware", 0, 1},
    [OPT_TAG] = {"tag", 0, 1},
    [OPT_DEVICES] = {"devices", 0, 1},
    [OPT_WAVES] = {"waves", 0, 1},
    [OPT_WAVE_PAUSE] = {"wave-pause", 0, 1},
    [OPT_FAILURE_THRESHOLD] = {"failure-threshold", 0, 1},
    [OPT_STATE] = {"state", 0, 1},
    [OPT_FIRMWARE_VERSION] = {"firmware-version", 0, 1},
    [OPT_SIGNATURE] = {"signature", 0, 1},
    [OPT_SIGNER] = {"signer", 0, 1},
    [OPT_HARDWARE] = {"hardware", 0, 1},
    [OPT_MIN_VERSION] = {"min-version", 0, 1},
    [OPT_NOTES] = {"notes", 0, 1},
    [OPT_PENDING] = {"pending", 0, 0},
    [OPT_CA] = {"ca", 0, 1},
    [OPT_ISSUED_BETWEEN] = {"issued-between", 0, 1},
    [OPT_DEVICES_FILE] = {"devices-file", 0, 1},
    [OPT_SERIALS_FILE] = {"serials-file", 0, 1},
    [OPT_NO_WAIT] = {"no-wait", 0, 0},
};

const char *hub_args_name(enum hub_opt o)
{
    static char buf[OPT_COUNT][32];
    snprintf(buf[o], sizeof buf[o], "--%s", opts[o].name);
    return buf[o];
}

/* Finds an option by "--name" (name of length n) or "-c"; returns its id or -1. */
static int lookup(const char *word, size_t n)
{
    for (int i = 0; i < OPT_COUNT; i++) {
        if (word[1] == '-' && strlen(opts[i].name) == n - 2 &&
            strncmp(word + 2, opts[i].name, n - 2) == 0)
            return i;
        if (word[1] != '-' && n == 2 && opts[i].short_name == word[1])
            return i;
    }
    return -1;
}

/* Appends v to the pattern list of o; returns 0 or 2 (too many). */
static int add_pattern(struct hub_args *a, enum hub_opt o, const char *v)
{
    const char **list = o == OPT_PUBLISH ? a->publish : a->subscribe;
    size_t *n = o == OPT_PUBLISH ? &a->npublish : &a->nsubscribe;
    if (*n == HUB_ARGS_MAX_LIST) {
        fprintf(stderr, "error: at most %d %s patterns\n", HUB_ARGS_MAX_LIST, hub_args_name(o));
        return 2;
    }
    list[(*n)++] = v;
    return 0;
}

int hub_args_parse(int argc, char **argv, struct hub_args *a)
{
    int only_words = 0;
    memset(a, 0, sizeof *a);
    for (int i = 1; i < argc; i++) {
        const char *w = argv[i];
        if (only_words || w[0] != '-' || w[1] == 0) {
            if (a->npos == HUB_ARGS_MAX_POS) {
                fprintf(stderr, "error: too many arguments\n");
                return 2;
            }
            a->pos[a->npos++] = w;
            continue;
        }
        if (strcmp(w, "--") == 0) {
            only_words = 1;
            continue;
        }
        const char *eq = w[1] == '-' ? strchr(w, '=') : NULL;
        size_t n = eq ? (size_t)(eq - w) : strlen(w);
        int o = lookup(w, n);
        if (o < 0) {
            fprintf(stderr, "error: unknown option %.*s (see iothubctl --help)\n", (int)n, w);
            return 2;
        }
        const char *v = "";
        if (opts[o].has_value) {
            if (eq != NULL)
                v = eq + 1;
            else if (i + 1 < argc)
                v = argv[++i];
            else {
                fprintf(stderr, "error: %s needs a value\n", hub_args_name(o));
                return 2;
            }
        } else if (eq != NULL) {
            fprintf(stderr, "error: %s takes no value\n", hub_args_name(o));
            return 2;
        }
        a->val[o] = v;
        a->given |= OPT_BIT(o);
        if (o == OPT_PUBLISH || o == OPT_SUBSCRIBE) {
            if (add_pattern(a, o, v) != 0)
                return 2;
            while (i + 1 < argc && argv[i + 1][0] != '-')
                if (add_pattern(a, o, argv[++i]) != 0)
                    return 2;
        }
    }
    return 0;
}
