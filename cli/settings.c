#include "cli/settings.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "util/secure.h"

#define LINE_MAX_LEN 4096

/* Settings read from the config file; owned here until moved into hub_settings. */
struct file_settings {
    char *url, *token, *token_file, *cacert;
};

static void wipe_free(char *s)
{
    if (s != NULL) {
        hub_wipe(s, strlen(s));
        free(s);
    }
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = 0;
    return s;
}

/* A credential goes into an HTTP header: printable ASCII without spaces only. */
static int credential_valid(const char *s)
{
    for (; *s; s++)
        if (*s < 0x21 || *s > 0x7e)
            return 0;
    return 1;
}

int hub_settings_read_secret(const char *path, const char *what, char **out)
{
    char buf[LINE_MAX_LEN];
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "error: cannot read the %s file %s: %s\n", what, path, strerror(errno));
        return 2;
    }
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    buf[strcspn(buf, "\r\n")] = 0;
    char *v = trim(buf);
    int rc = 2;
    if (*v == 0)
        fprintf(stderr, "error: the %s file %s is empty\n", what, path);
    else if (!credential_valid(v))
        fprintf(stderr, "error: the %s in %s contains spaces or control characters\n", what, path);
    else if ((*out = strdup(v)) == NULL)
        fprintf(stderr, "error: out of memory\n");
    else
        rc = 0;
    hub_wipe(buf, sizeof buf);
    return rc;
}

/* The default config file path into out; returns 0, or -1 when no home is known. */
static int default_path(char *out, size_t cap)
{
    const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
    int n;
    if (xdg != NULL && xdg[0] == '/')
        n = snprintf(out, cap, "%s/iothub/iothubctl.conf", xdg);
    else if (home != NULL && home[0] != 0)
        n = snprintf(out, cap, "%s/.config/iothub/iothubctl.conf", home);
    else
        return -1;
    return n > 0 && (size_t)n < cap ? 0 : -1;
}

/* Parses the config file at path into fs. A missing file is fine unless required. */
static int load_file(const char *path, int required, struct file_settings *fs)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        if (!required && errno == ENOENT)
            return 0;
        fprintf(stderr, "error: cannot read the config file %s: %s\n", path, strerror(errno));
        return 2;
    }
    struct stat st;
    char line[LINE_MAX_LEN];
    int lineno = 0, rc = 0;
    if (fstat(fileno(f), &st) != 0) {
        fprintf(stderr, "error: cannot stat the config file %s: %s\n", path, strerror(errno));
        rc = 2;
    }
    while (rc == 0 && fgets(line, sizeof line, f) != NULL) {
        lineno++;
        if (strchr(line, '\n') == NULL && !feof(f)) {
            fprintf(stderr, "error: %s:%d: line too long\n", path, lineno);
            rc = 2;
            break;
        }
        char *l = trim(line);
        if (*l == 0 || *l == '#')
            continue;
        char *eq = strchr(l, '=');
        if (eq == NULL) {
            fprintf(stderr, "error: %s:%d: expected `key = value`\n", path, lineno);
            rc = 2;
            break;
        }
        *eq = 0;
        char *key = trim(l), *value = trim(eq + 1), **slot;
        if (strcmp(key, "url") == 0)
            slot = &fs->url;
        else if (strcmp(key, "token") == 0)
            slot = &fs->token;
        else if (strcmp(key, "token_file") == 0)
            slot = &fs->token_file;
        else if (strcmp(key, "cacert") == 0)
            slot = &fs->cacert;
        else {
            fprintf(stderr,
                    "error: %s:%d: unknown key \"%s\" (known: url, token, token_file, "
                    "cacert)\n",
                    path, lineno, key);
            rc = 2;
            break;
        }
        if (*value == 0) {
            fprintf(stderr, "error: %s:%d: %s has no value\n", path, lineno, key);
            rc = 2;
            break;
        }
        wipe_free(*slot);
        if ((*slot = strdup(value)) == NULL) {
            fprintf(stderr, "error: out of memory\n");
            rc = 2;
        }
    }
    hub_wipe(line, sizeof line);
    fclose(f);
    if (rc == 0 && fs->token != NULL && (st.st_mode & 077)) {
        fprintf(stderr,
                "error: the config file %s holds a token but other users of this machine may "
                "read it (mode %04o); run `chmod 600 %s`, or keep the token elsewhere "
                "(token_file, IOTHUB_TOKEN)\n",
                path, (unsigned)(st.st_mode & 07777), path);
        rc = 2;
    }
    return rc;
}

/* Copies the first non-NULL of flag, env and file into *out. */
static int pick(char **out, const char *flag, const char *env, const char *file)
{
    const char *v = flag ? flag : env && *env ? env : file;
    if (v != NULL && (*out = strdup(v)) == NULL) {
        fprintf(stderr, "error: out of memory\n");
        return 2;
    }
    return 0;
}

/* Checks the scheme and strips trailing "/" and "/v1" (the CLI adds the paths). */
static int normalise_url(char *url)
{
    if (strncasecmp(url, "https://", 8) != 0 || url[8] == 0 || url[8] == '/') {
        fprintf(stderr, "error: the server URL must be https://HOST[:PORT], got \"%s\"\n", url);
        return 2;
    }
    size_t n = strlen(url);
    while (n > 8 && url[n - 1] == '/')
        url[--n] = 0;
    if (n > 11 && strcmp(url + n - 3, "/v1") == 0)
        url[n -= 3] = 0;
    while (n > 8 && url[n - 1] == '/')
        url[--n] = 0;
    return 0;
}

/* The token: --token-file / --token, IOTHUB_TOKEN, then token / token_file in the file. */
static int load_token(const struct hub_args *a, const struct file_settings *fs,
                      struct hub_settings *s)
{
    const char *env = getenv("IOTHUB_TOKEN");
    if (a->val[OPT_TOKEN_FILE] != NULL)
        return hub_settings_read_secret(a->val[OPT_TOKEN_FILE], "token", &s->token);
    if (a->val[OPT_TOKEN] != NULL || (env != NULL && *env) || fs->token != NULL) {
        int rc = pick(&s->token, a->val[OPT_TOKEN], env, fs->token);
        if (rc == 0 && !credential_valid(s->token)) {
            fprintf(stderr, "error: the token contains spaces or control characters\n");
            rc = 2;
        }
        return rc;
    }
    if (fs->token_file != NULL)
        return hub_settings_read_secret(fs->token_file, "token", &s->token);
    return 0;
}

int hub_settings_load(const struct hub_args *a, struct hub_settings *s)
{
    struct file_settings fs = {0};
    char path[4096];
    int rc = 0;
    memset(s, 0, sizeof *s);
    if (a->val[OPT_CONFIG] != NULL)
        rc = load_file(a->val[OPT_CONFIG], 1, &fs);
    else if (default_path(path, sizeof path) == 0)
        rc = load_file(path, 0, &fs);
    if (rc == 0)
        rc = pick(&s->url, a->val[OPT_URL], getenv("IOTHUB_URL"), fs.url);
    if (rc == 0)
        rc = pick(&s->cacert, a->val[OPT_CACERT], getenv("IOTHUB_CACERT"), fs.cacert);
    if (rc == 0 && s->url != NULL)
        rc = normalise_url(s->url);
    if (rc == 0 && a->val[OPT_TOKEN] != NULL && a->val[OPT_TOKEN_FILE] != NULL) {
        fprintf(stderr, "error: give either --token or --token-file, not both\n");
        rc = 2;
    }
    if (rc == 0)
        rc = load_token(a, &fs, s);
    s->insecure = a->val[OPT_INSECURE] != NULL;
    wipe_free(fs.url);
    wipe_free(fs.token);
    wipe_free(fs.token_file);
    wipe_free(fs.cacert);
    if (rc != 0)
        hub_settings_free(s);
    return rc;
}

void hub_settings_free(struct hub_settings *s)
{
    wipe_free(s->url);
    wipe_free(s->token);
    free(s->cacert);
    s->url = s->token = s->cacert = NULL;
}
