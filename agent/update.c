/* Firmware update client. The job moves through the phases of fwstate.h and every phase
 * change is on disk before its effect: the notice is stored before the download, the switch
 * is recorded before the reboot, the final state before its report. So a restart at any
 * point resumes the download (the partial file and a Range request), fails an interrupted
 * installation (the inactive slot is not booted) or settles a switch by the health check.
 *
 * Reports (devices/<id>/firmware/state): downloading (with progress, at most one per
 * PROGRESS_MS), verifying, installing, then one final state: installed, failed or
 * rolled_back. A final state is re-published on the next connection until it went out, and
 * again when a notice for the same rollout arrives (notices are idempotent). */
#include "agent/update.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <mbedtls/base64.h>

#include "agent/exec.h"
#include "agent/fwfetch.h"
#include "agent/fwstate.h"
#include "agent/fwverify.h"
#include "agent/keystore.h"
#include "agent/version.h"
#include "util/error.h"
#include "util/log.h"
#include "util/secure.h"

#define NOTICE_MAX (16 * 1024)
#define SIG_MAX 1024
#define PROGRESS_MS 2000
#define BACKOFF_MAX_MS 60000LL
#define HOOK_OUTPUT_MAX 4096

/* The notice of the job, as received (firmware-contract.md). */
struct notice {
    char rollout[40], firmware_id[40], version[32], min_version[32];
    long long size;
    char sha256[65], signer[65];
    char url[1024];
    uint8_t sig[SIG_MAX];
    size_t sig_len;
    int hardware_ok;
    char hardware[256]; /* the list as text, for the reason */
};

struct hub_update {
    const struct hub_state *st;
    const struct hub_agent_conf *conf;
    struct hub_pin *pin;
    struct hub_update_io io;
    int argc;
    char **argv;
    struct hub_fw_state fw;
    struct notice job; /* valid while fw.phase != HUB_FW_IDLE */
    char topic_notice[128], topic_state[128];
    char p_notice[1100], p_partial[1100], p_image[1100], p_signers[1100];
    unsigned attempts;
    long long next_try_ms, last_progress_ms;
    int exit_requested;
};

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Publishes a state report; rollout NULL for "running". Returns 0 or -1. */
static int report(struct hub_update *u, const char *rollout, const char *state, const char *version,
                  const char *reason, long long progress)
{
    json_t *j = json_pack("{s:o,s:s,s:s}", "rollout_id",
                          rollout && rollout[0] ? json_string(rollout) : json_null(), "state",
                          state, "version", version);
    if (j == NULL)
        return -1;
    if (reason != NULL && reason[0] != 0)
        json_object_set_new(j, "reason", json_string(reason));
    if (progress >= 0)
        json_object_set_new(j, "progress", json_integer(progress));
    char *text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    int rc = text ? u->io.publish(u->io.arg, u->topic_state, text) : -1;
    if (rc == 0)
        hub_debug("firmware state: %s", text);
    free(text);
    return rc;
}

/* Ends the job with a final state: recorded first, then reported. */
static void finish(struct hub_update *u, const char *state, const char *reason)
{
    struct hub_fw_state *fw = &u->fw;
    snprintf(fw->last_rollout, sizeof fw->last_rollout, "%s", fw->rollout);
    snprintf(fw->last_state, sizeof fw->last_state, "%s", state);
    snprintf(fw->last_version, sizeof fw->last_version, "%s", fw->version);
    snprintf(fw->last_reason, sizeof fw->last_reason, "%s", reason ? reason : "");
    fw->last_reported = 0;
    fw->phase = HUB_FW_IDLE;
    fw->rollout[0] = fw->firmware_id[0] = fw->version[0] = 0;
    fw->target = 0;
    fw->switched_at = 0;
    hub_fw_state_save(u->st, fw);
    unlink(u->p_notice);
    unlink(u->p_partial);
    unlink(u->p_image);
    if (strcmp(state, "installed") == 0)
        hub_info("firmware %s installed in slot %c (rollout %s)", fw->installed, fw->slot,
                 fw->last_rollout);
    else
        hub_warn("firmware update %s (rollout %s, version %s): %s", state, fw->last_rollout,
                 fw->last_version, reason ? reason : "");
    if (report(u, fw->last_rollout, state, fw->installed, reason, -1) == 0) {
        fw->last_reported = 1;
        hub_fw_state_save(u->st, fw);
    }
}

/* 1 when s has no control character, space or DEL (it goes into logs and reasons). */
static int printable(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s <= 0x20 || *s == 0x7f)
            return 0;
    return 1;
}

/* 1 for a non-empty string of hex digits and dashes (a UUID's alphabet). */
static int uuid_chars(const char *s)
{
    if (s[0] == 0)
        return 0;
    for (; *s; s++)
        if (!(*s == '-' || (*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f') ||
              (*s >= 'A' && *s <= 'F')))
            return 0;
    return 1;
}

/* A notice from JSON; returns 0 or HUB_EINVAL with why. */
static int notice_parse(const struct hub_update *u, const void *data, size_t len, struct notice *n,
                        char *why, size_t why_len)
{
    json_error_t jerr;
    memset(n, 0, sizeof *n);
    if (len > NOTICE_MAX) {
        snprintf(why, why_len, "notice larger than %d bytes", NOTICE_MAX);
        return HUB_EINVAL;
    }
    json_t *j = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
    int rc = HUB_EINVAL;
    const char *s;
    if (!json_is_object(j)) {
        snprintf(why, why_len, "notice is not a JSON object");
        goto out;
    }
#define FIELD(name, dst)                                                                           \
    s = json_string_value(json_object_get(j, name));                                               \
    if (s == NULL || strlen(s) == 0 || strlen(s) >= sizeof(dst)) {                                 \
        snprintf(why, why_len, "notice: \"%s\" missing or invalid", name);                         \
        goto out;                                                                                  \
    }                                                                                              \
    memcpy(dst, s, strlen(s) + 1)
    FIELD("rollout_id", n->rollout);
    FIELD("firmware_id", n->firmware_id);
    FIELD("version", n->version);
    FIELD("sha256", n->sha256);
    FIELD("signer", n->signer);
    FIELD("url", n->url);
#undef FIELD
    if (!uuid_chars(n->rollout) || !uuid_chars(n->firmware_id)) {
        snprintf(why, why_len, "notice: rollout_id and firmware_id must be UUIDs");
        goto out;
    }
    if (hub_version_parse(n->version, NULL) != 0) {
        snprintf(why, why_len, "notice: version \"%.31s\" is not MAJOR.MINOR.PATCH", n->version);
        goto out;
    }
    json_t *mv = json_object_get(j, "min_version");
    if (json_is_string(mv)) {
        s = json_string_value(mv);
        if (hub_version_parse(s, NULL) != 0 || strlen(s) >= sizeof n->min_version) {
            snprintf(why, why_len, "notice: min_version is not a version");
            goto out;
        }
        snprintf(n->min_version, sizeof n->min_version, "%s", s);
    } else if (mv != NULL && !json_is_null(mv)) {
        snprintf(why, why_len, "notice: min_version must be a string or null");
        goto out;
    }
    json_t *size = json_object_get(j, "size");
    if (!json_is_integer(size) || json_integer_value(size) <= 0) {
        snprintf(why, why_len, "notice: size must be a positive integer");
        goto out;
    }
    n->size = json_integer_value(size);
    uint8_t tmp[32];
    if (strlen(n->sha256) != 64 || hub_hex_decode(n->sha256, tmp, sizeof tmp) != 32 ||
        strlen(n->signer) != 64 || hub_hex_decode(n->signer, tmp, sizeof tmp) != 32) {
        snprintf(why, why_len, "notice: sha256 and signer must be 64 hex digits");
        goto out;
    }
    s = json_string_value(json_object_get(j, "signature"));
    if (s == NULL ||
        mbedtls_base64_decode(n->sig, sizeof n->sig, &n->sig_len, (const unsigned char *)s,
                              strlen(s)) != 0 ||
        n->sig_len == 0) {
        snprintf(why, why_len, "notice: signature must be base64 of at most %d bytes", SIG_MAX);
        goto out;
    }
    if (strncmp(n->url, "https://", 8) != 0 || !printable(n->url)) {
        snprintf(why, why_len, "notice: url must be https:// without spaces or controls");
        goto out;
    }
    json_t *hw = json_object_get(j, "hardware"), *v;
    size_t i;
    n->hardware_ok = json_array_size(hw) == 0;
    json_array_foreach(hw, i, v)
    {
        s = json_string_value(v);
        if (s == NULL || !printable(s))
            continue;
        if (strcmp(s, u->conf->hardware) == 0)
            n->hardware_ok = 1;
        size_t l = strlen(n->hardware);
        snprintf(n->hardware + l, sizeof n->hardware - l, "%s%s", l ? ", " : "", s);
    }
    rc = 0;
out:
    json_decref(j);
    return rc;
}

/* Why the device refuses an otherwise valid notice, or 0. */
static int refuse(const struct hub_update *u, const struct notice *n, char *why, size_t len)
{
    const char *installed = u->fw.installed;
    if (!n->hardware_ok)
        snprintf(why, len, "hardware \"%s\" is not one of [%s]", u->conf->hardware, n->hardware);
    else if (n->min_version[0] && hub_version_cmp(installed, n->min_version) < 0)
        snprintf(why, len, "the installed version %s is older than min_version %s", installed,
                 n->min_version);
    else if (hub_version_cmp(n->version, installed) <= 0)
        snprintf(why, len, "version %s is not newer than the installed %s (anti-rollback)",
                 n->version, installed);
    else if (n->size > u->conf->max_size)
        snprintf(why, len, "image of %lld bytes exceeds firmware_max_size (%lld)", n->size,
                 u->conf->max_size);
    else if (!hub_fw_signer_trusted(u->p_signers, n->signer))
        snprintf(why, len, "signer %s is not a trusted firmware signer", n->signer);
    else
        return 0;
    return 1;
}

void hub_update_notice(struct hub_update *u, const void *payload, size_t len)
{
    struct notice n;
    char why[400];
    struct hub_fw_state *fw = &u->fw;
    if (notice_parse(u, payload, len, &n, why, sizeof why) != 0) {
        hub_warn("firmware notice refused: %s", why);
        /* Reported only under a rollout id that is one (the id is stored and echoed). */
        if (uuid_chars(n.rollout) && fw->phase == HUB_FW_IDLE) {
            snprintf(fw->rollout, sizeof fw->rollout, "%s", n.rollout);
            snprintf(fw->version, sizeof fw->version, "%s",
                     hub_version_parse(n.version, NULL) == 0 ? n.version : "");
            finish(u, "failed", why);
        }
        return;
    }
    if (strcmp(n.rollout, fw->last_rollout) == 0) {
        hub_info("firmware notice for the finished rollout %s: re-reporting %s", n.rollout,
                 fw->last_state);
        if (report(u, fw->last_rollout, fw->last_state, fw->installed, fw->last_reason, -1) == 0 &&
            !fw->last_reported) {
            fw->last_reported = 1;
            hub_fw_state_save(u->st, fw);
        }
        return;
    }
    if (fw->phase != HUB_FW_IDLE) {
        if (strcmp(n.rollout, fw->rollout) == 0)
            hub_info("firmware notice for rollout %s: already in progress", n.rollout);
        else
            hub_warn("firmware notice for rollout %s ignored: rollout %s is in progress", n.rollout,
                     fw->rollout);
        return;
    }
    hub_info("firmware notice: rollout %s, version %s (%lld bytes), installed %s", n.rollout,
             n.version, n.size, fw->installed);
    snprintf(fw->rollout, sizeof fw->rollout, "%s", n.rollout);
    snprintf(fw->firmware_id, sizeof fw->firmware_id, "%s", n.firmware_id);
    snprintf(fw->version, sizeof fw->version, "%s", n.version);
    if (refuse(u, &n, why, sizeof why)) {
        finish(u, "failed", why);
        return;
    }
    unlink(u->p_partial);
    unlink(u->p_image);
    if (hub_state_file_write(u->p_notice, payload, len, 0600) != 0) {
        finish(u, "failed", "cannot store the notice");
        return;
    }
    fw->phase = HUB_FW_DOWNLOADING;
    fw->target = hub_fw_other_slot(fw->slot);
    if (hub_fw_state_save(u->st, fw) != 0) {
        finish(u, "failed", "cannot store the firmware state");
        return;
    }
    u->job = n;
    u->attempts = 0;
    u->next_try_ms = now_ms();
    u->last_progress_ms = 0;
    report(u, fw->rollout, "downloading", fw->installed, NULL, 0);
}

static void progress(void *arg, long long have)
{
    struct hub_update *u = arg;
    long long now = now_ms();
    u->io.service(u->io.arg);
    if (now - u->last_progress_ms >= PROGRESS_MS) {
        u->last_progress_ms = now;
        report(u, u->fw.rollout, "downloading", u->fw.installed, NULL, have);
    }
}

static const char *const hook_env[] = {
    "IOTHUB_HOOK",
    "IOTHUB_DEVICE_ID",
    "IOTHUB_STATE_DIR",
    "IOTHUB_FIRMWARE_ROLLOUT",
    "IOTHUB_FIRMWARE_VERSION",
    "IOTHUB_FIRMWARE_PREVIOUS_VERSION",
    "IOTHUB_FIRMWARE_SLOT",
    "IOTHUB_FIRMWARE_PREVIOUS_SLOT",
    "IOTHUB_FIRMWARE_IMAGE",
};

/* Runs a hook: `/bin/sh -c 'HOOK "$@"' hook ARGS...` with the IOTHUB_* environment; returns
 * its exit status (-1 on timeout, 127 when it cannot run) and its first output line in out. */
static int run_hook(struct hub_update *u, const char *hook, const char *a1, const char *a2,
                    const char *a3, char *out, size_t out_len)
{
    char slot[2] = {u->fw.target ? u->fw.target : u->fw.slot, 0}, prev[2] = {u->fw.slot, 0};
    const char *argv[] = {"/bin/sh", "-c", "exec $IOTHUB_HOOK \"$@\"", "iothub-hook", a1, a2,
                          a3,        NULL};
    hub_buf_t output = HUB_BUF_INIT;
    int code = 127, truncated;
    setenv("IOTHUB_HOOK", hook, 1);
    setenv("IOTHUB_DEVICE_ID", u->st->device_id, 1);
    setenv("IOTHUB_STATE_DIR", u->st->dir, 1);
    setenv("IOTHUB_FIRMWARE_ROLLOUT", u->fw.rollout, 1);
    setenv("IOTHUB_FIRMWARE_VERSION", u->fw.version, 1);
    setenv("IOTHUB_FIRMWARE_PREVIOUS_VERSION", u->fw.installed, 1);
    setenv("IOTHUB_FIRMWARE_SLOT", slot, 1);
    setenv("IOTHUB_FIRMWARE_PREVIOUS_SLOT", prev, 1);
    setenv("IOTHUB_FIRMWARE_IMAGE", u->p_image, 1);
    struct hub_exec e = {argv, NULL, 0, u->conf->hook_timeout_s, HOOK_OUTPUT_MAX, 1};
    if (hub_exec_run(&e, &output, &code, &truncated) != 0)
        code = 127;
    const char *text = output.data ? (const char *)output.data : "";
    snprintf(out, out_len, "%.*s", (int)strcspn(text, "\n"), text);
    hub_buf_free(&output);
    for (size_t i = 0; i < sizeof hook_env / sizeof hook_env[0]; i++)
        unsetenv(hook_env[i]); /* the telemetry command and handlers do not see them */
    hub_info("hook %s %s %s %s: exit %d%s%s", hook, a1 ? a1 : "", a2 ? a2 : "", a3 ? a3 : "", code,
             out[0] ? ": " : "", out);
    return code;
}

/* Writes the image to slot_dir/SLOT.img when no install hook is configured. */
static int copy_to_slot(struct hub_update *u, char *why, size_t len)
{
    char dir[HUB_CONF_PATH_MAX + 8], path[HUB_CONF_PATH_MAX + 40];
    if (u->conf->slot_dir[0])
        snprintf(dir, sizeof dir, "%s", u->conf->slot_dir);
    else
        snprintf(dir, sizeof dir, "%s/slots", u->st->dir);
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        snprintf(why, len, "cannot create %.200s: %s", dir, strerror(errno));
        return -1;
    }
    snprintf(path, sizeof path, "%s/%c.img", dir, u->fw.target);
    hub_buf_t img = HUB_BUF_INIT;
    int rc = hub_state_file_read(u->p_image, &img, (size_t)u->conf->max_size);
    if (rc == 0)
        rc = hub_state_file_write(path, img.data, img.len, 0600);
    hub_buf_free(&img);
    if (rc != 0)
        snprintf(why, len, "cannot write the image to %.300s", path);
    return rc;
}

/* Restarts into the new slot: the reboot hook, or the agent re-executes itself. */
static void reboot(struct hub_update *u)
{
    char slot[2] = {u->fw.target, 0}, out[300];
    u->io.shutdown(u->io.arg);
    if (u->conf->reboot_hook[0]) {
        int code = run_hook(u, u->conf->reboot_hook, slot, u->fw.version, NULL, out, sizeof out);
        if (code != 0) {
            char why[400];
            snprintf(why, sizeof why, "reboot hook exited %d%s%s", code, out[0] ? ": " : "", out);
            finish(u, "failed", why);
            return;
        }
        hub_info("reboot hook done: exiting for the restart into slot %c", u->fw.target);
        u->exit_requested = 1;
        return;
    }
    hub_info("re-executing the agent to start firmware %s in slot %c", u->fw.version, u->fw.target);
    char **args = calloc((size_t)u->argc + 2, sizeof *args);
    if (args != NULL) {
        args[0] = "iothub-device";
        for (int i = 0; i < u->argc; i++)
            args[i + 1] = u->argv[i];
        execv("/proc/self/exe", args);
        hub_error("cannot re-execute /proc/self/exe: %s", strerror(errno));
        free(args);
    }
    u->exit_requested = 1; /* the switch is recorded: the next start settles it */
}

/* Verify, install, switch: after a complete download. */
static void install(struct hub_update *u)
{
    char why[400], out[300];
    struct hub_fw_state *fw = &u->fw;
    const struct notice *n = &u->job;
    report(u, fw->rollout, "verifying", fw->installed, NULL, n->size);
    int rc = hub_fw_verify(u->p_partial, n->size, n->sha256, n->sig, n->sig_len, u->p_signers,
                           n->signer, why, sizeof why);
    if (rc != 0) {
        finish(u, "failed", why);
        return;
    }
    if (rename(u->p_partial, u->p_image) != 0) {
        snprintf(why, sizeof why, "cannot rename the image: %s", strerror(errno));
        finish(u, "failed", why);
        return;
    }
    hub_info("firmware %s verified (sha256 %.16s…, signer %.16s…); installing to slot %c",
             n->version, n->sha256, n->signer, fw->target);
    fw->phase = HUB_FW_INSTALLING;
    hub_fw_state_save(u->st, fw);
    report(u, fw->rollout, "installing", fw->installed, NULL, -1);
    char slot[2] = {fw->target, 0};
    if (u->conf->install_hook[0]) {
        int code =
            run_hook(u, u->conf->install_hook, u->p_image, fw->version, slot, out, sizeof out);
        if (code != 0) {
            snprintf(why, sizeof why, "install hook exited %d%s%s", code, out[0] ? ": " : "", out);
            finish(u, "failed", why);
            return;
        }
    } else if (copy_to_slot(u, why, sizeof why) != 0) {
        finish(u, "failed", why);
        return;
    }
    unlink(u->p_image);
    fw->phase = HUB_FW_SWITCHED;
    fw->switched_at = (long long)time(NULL);
    if (hub_fw_state_save(u->st, fw) != 0) {
        finish(u, "failed", "cannot record the switch");
        return;
    }
    reboot(u);
}

/* The new slot runs: healthy → installed; else back to the previous slot → rolled_back. */
static void settle(struct hub_update *u, int connected)
{
    char why[400] = "", out[300];
    struct hub_fw_state *fw = &u->fw;
    char slot[2] = {fw->target, 0}, prev[2] = {fw->slot, 0};
    int healthy = connected;
    if (!connected)
        snprintf(why, sizeof why, "no connection within %d s after the switch to slot %c",
                 u->conf->health_timeout_s, fw->target);
    else if (u->conf->health_hook[0]) {
        int code = run_hook(u, u->conf->health_hook, fw->version, slot, NULL, out, sizeof out);
        healthy = code == 0;
        if (!healthy)
            snprintf(why, sizeof why, "health check exited %d%s%s", code, out[0] ? ": " : "", out);
    }
    if (healthy) {
        fw->slot = fw->target;
        snprintf(fw->installed, sizeof fw->installed, "%s", fw->version);
        finish(u, "installed", NULL);
        return;
    }
    hub_warn("firmware %s in slot %c is unhealthy (%s): rolling back to slot %c", fw->version,
             fw->target, why, fw->slot);
    if (u->conf->rollback_hook[0]) {
        int code = run_hook(u, u->conf->rollback_hook, prev, fw->version, NULL, out, sizeof out);
        if (code != 0) {
            size_t l = strlen(why);
            snprintf(why + l, sizeof why - l, "; rollback hook exited %d", code);
        }
    }
    finish(u, "rolled_back", why);
}

void hub_update_connected(struct hub_update *u)
{
    struct hub_fw_state *fw = &u->fw;
    hub_update_fetch_signers(u->st, u->conf, u->pin);
    if (fw->phase == HUB_FW_SWITCHED)
        settle(u, 1);
    report(u, NULL, "running", fw->installed, NULL, -1);
    if (fw->last_rollout[0] && !fw->last_reported &&
        report(u, fw->last_rollout, fw->last_state, fw->installed, fw->last_reason, -1) == 0) {
        fw->last_reported = 1;
        hub_fw_state_save(u->st, fw);
    }
}

long long hub_update_tick(struct hub_update *u, int connected)
{
    struct hub_fw_state *fw = &u->fw;
    long long now = now_ms();
    if (fw->phase == HUB_FW_SWITCHED && !connected &&
        (long long)time(NULL) - fw->switched_at > u->conf->health_timeout_s)
        settle(u, 0);
    if (fw->phase != HUB_FW_DOWNLOADING || !connected)
        return 1000;
    if (now < u->next_try_ms)
        return u->next_try_ms - now < 1000 ? u->next_try_ms - now : 1000;
    char etag[80];
    char cacert[1100], cert[1100], key[1100];
    snprintf(etag, sizeof etag, "\"%s\"", u->job.sha256);
    hub_state_path(u->st, "chain.pem", cacert, sizeof cacert);
    hub_state_path(u->st, "cert.pem", cert, sizeof cert);
    hub_state_path(u->st, "key.pem", key, sizeof key);
    int own_ca = u->conf->firmware_cacert[0] != 0;
    struct hub_fw_download d = {.url = u->job.url,
                                .path = u->p_partial,
                                .etag = etag,
                                .size = u->job.size,
                                .tls = {own_ca ? u->conf->firmware_cacert : cacert,
                                        own_ca ? NULL : u->pin, cert, key,
                                        hub_keystore_passphrase()},
                                .progress = progress,
                                .arg = u};
    int rc = hub_fw_download(&d);
    if (rc == 0) {
        install(u);
        return 0;
    }
    u->attempts++;
    if (rc == HUB_EINVAL || u->attempts >= (unsigned)u->conf->download_attempts) {
        char why[400];
        snprintf(why, sizeof why, "download failed after %u attempt%s: %s", u->attempts,
                 u->attempts == 1 ? "" : "s", d.error);
        finish(u, "failed", why);
        return 1000;
    }
    long long delay = 1000LL << (u->attempts < 6 ? u->attempts - 1 : 6);
    if (delay > BACKOFF_MAX_MS)
        delay = BACKOFF_MAX_MS;
    u->next_try_ms = now_ms() + delay;
    hub_warn("firmware download attempt %u failed: %s; retrying in %lld s", u->attempts, d.error,
             delay / 1000);
    return 0;
}

int hub_update_exit_requested(const struct hub_update *u)
{
    return u->exit_requested;
}

const char *hub_update_topic(const struct hub_update *u)
{
    return u->topic_notice;
}

int hub_update_fetch_signers(const struct hub_state *st, const struct hub_agent_conf *conf,
                             struct hub_pin *pin)
{
    char url[1200], cacert[1100], cert[1100], key[1100], path[1100];
    if (conf->signers_url[0])
        snprintf(url, sizeof url, "%s", conf->signers_url);
    else
        snprintf(url, sizeof url, "%s/v1/devices/%s/firmware-signers", st->api_url, st->device_id);
    hub_state_path(st, "chain.pem", cacert, sizeof cacert);
    hub_state_path(st, "cert.pem", cert, sizeof cert);
    hub_state_path(st, "key.pem", key, sizeof key);
    hub_state_path(st, "signers.pem", path, sizeof path);
    int own_ca = conf->signers_url[0] && conf->firmware_cacert[0];
    struct hub_fw_tls tls = {own_ca ? conf->firmware_cacert : cacert, own_ca ? NULL : pin, cert,
                             key, hub_keystore_passphrase()};
    return hub_fw_fetch_signers(url, &tls, path);
}

struct hub_update *hub_update_new(const struct hub_state *st, const struct hub_agent_conf *conf,
                                  struct hub_pin *pin, const struct hub_update_io *io, int argc,
                                  char **argv)
{
    struct hub_update *u = calloc(1, sizeof *u);
    if (u == NULL)
        return NULL;
    u->st = st;
    u->conf = conf;
    u->pin = pin;
    u->io = *io;
    u->argc = argc;
    u->argv = argv;
    snprintf(u->topic_notice, sizeof u->topic_notice, "devices/%s/firmware/notice", st->device_id);
    snprintf(u->topic_state, sizeof u->topic_state, "devices/%s/firmware/state", st->device_id);
    hub_state_path(st, "firmware-notice.json", u->p_notice, sizeof u->p_notice);
    hub_state_path(st, "firmware.partial", u->p_partial, sizeof u->p_partial);
    /* The hooks get an absolute path to the image, whatever their working directory. */
    char abs[PATH_MAX];
    if (realpath(st->dir, abs) != NULL)
        snprintf(u->p_image, sizeof u->p_image, "%.1000s/firmware.img", abs);
    else
        hub_state_path(st, "firmware.img", u->p_image, sizeof u->p_image);
    hub_state_path(st, "signers.pem", u->p_signers, sizeof u->p_signers);
    if (hub_fw_state_load(st, conf->firmware_version, &u->fw) != 0) {
        free(u);
        return NULL;
    }
    struct hub_fw_state *fw = &u->fw;
    if (fw->phase == HUB_FW_DOWNLOADING) {
        hub_buf_t b = HUB_BUF_INIT;
        char why[300];
        int rc = hub_state_file_read(u->p_notice, &b, NOTICE_MAX);
        if (rc == 0)
            rc = notice_parse(u, b.data, b.len, &u->job, why, sizeof why);
        hub_buf_free(&b);
        if (rc != 0 || strcmp(u->job.rollout, fw->rollout) != 0)
            fw->phase = HUB_FW_IDLE, unlink(u->p_partial);
        else
            hub_info("resuming the download of firmware %s (rollout %s)", fw->version, fw->rollout);
        u->next_try_ms = now_ms();
    } else if (fw->phase == HUB_FW_INSTALLING) {
        finish(u, "failed",
               "the agent stopped during the installation; the inactive slot was "
               "not switched to");
    } else if (fw->phase == HUB_FW_SWITCHED) {
        hub_info("started after the switch to firmware %s in slot %c: checking its health",
                 fw->version, fw->target);
    }
    hub_info("firmware %s in slot %c%s%s", fw->installed, fw->slot,
             conf->hardware[0] ? ", hardware " : "", conf->hardware);
    return u;
}

void hub_update_free(struct hub_update *u)
{
    free(u);
}
