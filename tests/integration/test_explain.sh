#!/usr/bin/env bash
# No request path scans the whole devices or certificates table (issue 7): a database with a
# realistic fleet (20,000 devices in 20 products, their current and superseded certificates,
# 100 services; ANALYZE'd), then EXPLAIN of every SQL statement of db/*.c that reads or
# writes devices or certificates, taken from the C sources themselves (string literals of
# each function, macros expanded), with realistic parameters. A plan with "Seq Scan on
# devices" or "Seq Scan on certificates" fails, and so does a statement without parameters
# below (a new or renumbered query) or parameters that match no statement (a removed one).
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
cd "$T" || exit 1

URL=$(new_db explain) || exit 1
write_conf iothub.conf "$URL"
"$IOTHUBD" -c iothub.conf init --token-file admin.token >init.out 2>&1
expect "iothubd init (every migration applied)" $?

sql "$URL" "
INSERT INTO products (product_key, name, secret_hash)
    SELECT lpad(to_hex(i), 16, '0'), 'product ' || i, 'x' FROM generate_series(1, 20) i;
INSERT INTO devices (product_id, serial_number, secret_hash, status, created_at, activated_at, last_seen)
    SELECT p.id, 'SN-' || i, 'x',
           CASE WHEN i % 20 = 0 THEN 'revoked' WHEN i % 20 = 1 THEN 'provisioned' ELSE 'active' END,
           now() - (i % 365) * interval '1 day', now() - (i % 300) * interval '1 day',
           now() - (i % 1000) * interval '1 minute'
    FROM generate_series(1, 20000) i JOIN products p ON p.id = (SELECT min(id) FROM products) + i % 20;
INSERT INTO services (name, publish, subscribe, secret_hash, status)
    SELECT 'service ' || i, '{devices/+/commands/#}', '{devices/#}', 'x', 'active'
    FROM generate_series(1, 100) i;
-- current certificates (active devices), superseded ones (a third of the devices), revoked
-- ones (revoked devices), expired ones, services' certificates
INSERT INTO certificates (serial, ca_id, kind, device_id, service_id, subject, der, not_before,
                          not_after, status, revoked_at, revocation_reason, created_at)
    SELECT upper(md5(d.id::text || g)), (SELECT id FROM cas WHERE role = 'issuing'), 'device', d.id,
           NULL, 'CN=' || d.id, '\x00', d.created_at + g * interval '1 day',
           CASE WHEN g = 3 THEN now() - interval '1 day' ELSE now() + interval '300 days' END,
           CASE WHEN g = 1 AND d.status = 'active' THEN 'valid' ELSE 'revoked' END,
           CASE WHEN g = 1 AND d.status = 'active' THEN NULL ELSE d.created_at + interval '1 hour' END,
           CASE WHEN g = 1 AND d.status = 'active' THEN NULL WHEN g = 1 THEN 1 ELSE 4 END,
           d.created_at + g * interval '1 day'
    FROM devices d, generate_series(1, 3) g
    WHERE (g = 1 AND d.status <> 'provisioned') OR (g = 2 AND hashtext(d.id::text) % 3 = 0)
       OR (g = 3 AND hashtext(d.id::text) % 10 = 0);
INSERT INTO certificates (serial, ca_id, kind, service_id, subject, der, not_before, not_after)
    SELECT upper(md5(s.id::text)), (SELECT id FROM cas WHERE role = 'issuing'), 'service', s.id,
           'CN=' || s.id || ', O=services', '\x00', now(), now() + interval '300 days'
    FROM services s;
-- a CA that published for a long time: bases and deltas (pruning keeps fewer)
INSERT INTO crls (ca_id, crl_number, this_update, next_update, entries, der, base_number, watermark)
    SELECT (SELECT id FROM cas WHERE role = 'issuing'), 100 + g, now() - (20000 - g) * interval '1 second',
           now() + interval '1 day', 10, '\x00', CASE WHEN g % 100 = 0 THEN NULL ELSE 100 + g - g % 100 END,
           CASE WHEN g % 100 = 0 THEN now() - (20000 - g) * interval '1 second' END
    FROM generate_series(1, 20000) g;
ANALYZE;" >fixture.out 2>&1
rc=$?
expect "fixture: 20 products, 20,000 devices, $(sql "$URL" "SELECT count(*) FROM certificates") certificates, 100 services, ANALYZE'd" $rc

DEVICE=$(sql "$URL" "SELECT d.id FROM devices d JOIN certificates c ON c.device_id = d.id
                     WHERE d.status = 'active' AND c.status = 'valid' ORDER BY d.id OFFSET 5000 LIMIT 1")
SERIAL=$(sql "$URL" "SELECT serial FROM certificates WHERE device_id = '$DEVICE' AND status = 'valid'")
IDS=$(sql "$URL" "SELECT json_agg(id) FROM (SELECT id FROM devices ORDER BY id DESC LIMIT 500) s")

python3 - "$ROOT" "$URL" "$DEVICE" "$SERIAL" "$IDS" <<'PY'
import glob, os, re, subprocess, sys, time

root, url, device, serial, ids = sys.argv[1:6]
q = lambda s: psql1(s)


def psql1(query):
    return subprocess.run(["psql", url, "-X", "-q", "-A", "-t", "-c", query], capture_output=True,
                          text=True).stdout.strip()


service = q("SELECT id FROM services ORDER BY id OFFSET 50 LIMIT 1")
ca = q("SELECT id FROM cas WHERE role = 'issuing'")
product = q("SELECT product_id FROM devices WHERE id = '%s'" % device)
NULL = None
ROLLOUT = "00000000-0000-4000-8000-000000000001"
# Parameters of each statement ("function#n": the n-th statement of that function in source
# order), as the request paths pass them: one list per EXPLAIN.
PARAMS = {
    "hub_db_certificates_list_sealed#1": [[]],
    "hub_db_certificates_set_sealed#1": [["\\x00", serial]],
    "hub_db_certificates_insert#1": [["0123456789ABCDEF", ca, "device", device, NULL, "CN=x", "\\x00",
                              NULL, "1700000000", "1900000000"]],
    "hub_db_certificates_get_server#1": [["1700000000"]],
    "hub_db_server_certs_list#1": [["1700000000"]],
    "hub_db_certificates_revoke#1": [[serial, "1"]],
    "hub_db_certificates_revoke#2": [[serial]],
    "hub_db_certificates_revoked_list#1": [[ca]],
    "hub_db_certificates_revoked_serials#1": [[]],
    "hub_db_certificates_valid_serials#1": [[service]],
    "hub_db_certificates_valid_serials#2": [[device]],
    "hub_db_devices_secret#1": [[device]],
    "hub_db_products_list#1": [[]],
    "hub_db_devices_insert#1": [[product, "SN-new", "x"]],
    "hub_db_devices_get#1": [[device]],
    "hub_db_devices_list#1": [[NULL, "100"], [device, "100"]],
    "hub_db_devices_set_status#1": [[device, "active"]],
    "hub_db_devices_set_secret#1": [[device, "x"]],
    "hub_db_devices_lock#1": [[device]],
    "hub_db_certificates_get#1": [[serial]],
    "hub_db_certificates_list#1": [[NULL, "100"], [device, "100"]],
    "hub_db_devices_mark_seen#1": [['["%s"]' % device], [ids]],
    # several nodes (issue 18, migration 019)
    "hub_db_devices_mark_presence#1": [["1", '["%s"]' % device, "[]"], ["1", ids, "[]"]],
    "hub_db_devices_mark_presence#2": [["1", '["%s"]' % device], ["1", ids]],
    "hub_db_devices_connected_node#1": [[device]],
    "hub_db_nodes_register#3": [["1"]],
    "hub_db_nodes_reap#3": [["1"]],
    # device CAs (issue 15): their device counts and the pending devices
    "hub_db_device_cas_insert#1": [[product, "CN=x", "01", "0" * 64, "\\x00", "1700000000",
                                    "1900000000", "auto", NULL, "token:x"]],
    "hub_db_device_cas_list#1": [[]],
    "hub_db_device_cas_list#2": [[]],
    "hub_db_device_cas_get#1": [["00000000-0000-0000-0000-000000000001"]],
    "hub_db_device_cas_update#1": [["00000000-0000-0000-0000-000000000001", "disabled", NULL]],
    "hub_db_device_cas_pending#1": [[NULL, "100"], [device, "100"]],
    # jit: device-CA certificates (db/registrations.c)
    "hub_db_registrations_lookup#1": [[serial, "00000000-0000-0000-0000-000000000000", "\\x00"]],
    "register_rows#1": [["00000000-0000-5000-8000-000000000000", product, "SN-jit", "x", "active",
                         NULL]],
    "register_rows#2": [["0123456789ABCDEF", NULL, "00000000-0000-5000-8000-000000000000",
                         "CN=x", "\\x00", "1700000000", "1900000000"]],
    # rollouts (issue 16)
    "hub_db_devices_set_tags#1": [[device, '["beta", "site:lyon"]']],
    "hub_db_devices_set_firmware_versions#1": [['[{"device_id": "%s", "version": "1.2.0"}]' % device]],
    "hub_db_rollouts_target_count#1": [[product, ids]],
    "hub_db_rollouts_target_count#2": [[product, "beta"]],
    "hub_db_rollouts_target_count#3": [[product]],
    "hub_db_rollouts_target_busy#1": [[product, ids]],
    "hub_db_rollouts_target_busy#2": [[product, "beta"]],
    "hub_db_rollouts_target_busy#3": [[product]],
    "hub_db_rollouts_materialize#1": [[product, ids, ROLLOUT, "{10,100}"]],
    "hub_db_rollouts_materialize#2": [[product, "beta", ROLLOUT, "{10,100}"]],
    "hub_db_rollouts_materialize#3": [[product, NULL, ROLLOUT, "{10,100}"]],
    "hub_db_firmware_for_device#1": [[device, device, serial], [device, device, ""]],
    # OCSP responder (db/ocsp.c): one primary-key probe per certificate asked about
    "hub_db_ocsp_status#1": [[serial]],
    # bulk revocation (issue 14, db/revocation_jobs.c): the checks of a job's lists, its
    # selection by devices, serials, product (with or without a window of issuance) and by
    # CA within a window (a CA's every certificate is most of the table: a scan is right
    # there), and a chunk
    "hub_db_revjobs_missing#1": [['["%s"]' % serial]],
    "hub_db_revjobs_missing#2": [[ids]],
    "hub_db_revjobs_select#2": [[ROLLOUT, ids]],
    "hub_db_revjobs_select#3": [[ROLLOUT, '["%s"]' % serial]],
    "hub_db_revjobs_select#4": [[ROLLOUT, product, NULL, NULL],
                                [ROLLOUT, product, "2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z"]],
    "hub_db_revjobs_select#5": [[ROLLOUT, ca, "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"]],
    "hub_db_revjobs_chunk#1": [[ROLLOUT, "1", "t", "1000"]],
    # CRL publication (issue 14): the delta's revocations, the newest base and delta, pruning
    "hub_db_certificates_revoked_since#1": [[ca, str(int(time.time()) - 3600)]],
    "hub_db_crls_insert#1": [[ca, "9000001", "1700000000", "1700086400", "0", "\\x00"]],
    "hub_db_crls_record#1": [[ca, "9000002", "1700000000", "1700086400", "0", "\\x00", "20100",
                              NULL]],
    "hub_db_crls_latest#1": [[ca]],
    "hub_db_crls_latest#2": [[ca]],
    "hub_db_crls_newest#1": [[ca]],
    "hub_db_crls_newest#2": [[ca]],
    "hub_db_crls_newest#3": [[ca]],
    "hub_db_crls_newest#4": [[ca]],
    "hub_db_crls_prune#1": [[ca, "20000", "20099", "16", "500"]],
}


def tokens(src):
    """C tokens (kind, text, depth): "str" (unescaped), "id", "pp" (a whole preprocessor
    line), "punct"; comments and character constants are skipped; depth counts braces."""
    i, n, depth = 0, len(src), 0
    while i < n:
        c = src[i]
        if src.startswith("//", i):
            i = src.find("\n", i)
            i = n if i < 0 else i
        elif src.startswith("/*", i):
            i = src.find("*/", i) + 2
        elif c == '"':
            j, buf = i + 1, []
            while src[j] != '"':
                if src[j] == "\\":
                    buf.append({"n": "\n", "t": "\t"}.get(src[j + 1], src[j + 1]))
                    j += 2
                else:
                    buf.append(src[j])
                    j += 1
            yield "str", "".join(buf), depth
            i = j + 1
        elif c == "'":
            j = i + 1
            while src[j] != "'":
                j += 2 if src[j] == "\\" else 1
            i = j + 1
        elif c == "#" and (i == 0 or src[i - 1] == "\n"):
            e = i
            while True:
                e = src.find("\n", e)
                e = n if e < 0 else e
                if e == n or src[e - 1] != "\\":
                    break
                e += 1
            yield "pp", src[i:e], depth
            i = e
        elif c.isalpha() or c == "_":
            m = re.match(r"\w+", src[i:])
            yield "id", m.group(0), depth
            i += len(m.group(0))
        elif c.isspace():
            i += 1
        else:
            if c == "{":
                depth += 1
            yield "punct", c, depth
            if c == "}":
                depth -= 1
            i += 1


def statements(path):
    """(function, n, sql) for every SQL statement of a C file: a run of adjacent string
    literals (and string macros) that starts with SELECT, UPDATE, INSERT, DELETE or WITH."""
    src = open(path).read()
    toks = list(tokens(src))
    macros = {}
    for kind, text, _ in toks:
        m = re.match(r"#\s*define\s+(\w+)\s+(.*)", text, re.S) if kind == "pp" else None
        if m:
            body = list(tokens(m.group(2).replace("\\\n", " ")))
            if body and all(k == "str" for k, _, _ in body):
                macros[m.group(1)] = "".join(t for _, t, _ in body)
    out, count, func, run = [], {}, "<file scope>", None
    for k, (kind, text, depth) in enumerate(toks):
        if kind == "punct" and text == "{" and depth == 1:
            j, level = k - 1, 0
            while j >= 0 and toks[j][1] != ")":
                j -= 1
            while j >= 0:
                level += toks[j][1] == ")"
                level -= toks[j][1] == "("
                if level == 0:
                    break
                j -= 1
            func = toks[j - 1][1] if j > 0 and toks[j - 1][0] == "id" else "<file scope>"
        if kind == "str" or (kind == "id" and text in macros):
            run = (run or "") + (text if kind == "str" else macros[text])
            continue
        if run is not None:
            sql = " ".join(run.split())
            if re.match(r"(SELECT|UPDATE|INSERT|DELETE|WITH)\b", sql):
                count[func] = count.get(func, 0) + 1
                out.append((func, count[func], sql))
            run = None
        if kind == "punct" and text == "}" and depth == 1:
            func = "<file scope>"
    return out


def literal(v):
    return "NULL" if v is None else "'" + v.replace("'", "''") + "'"


FAILED = 0


def check(cond, name, detail=""):
    global FAILED
    print(("ok - " if cond else "not ok - ") + name, flush=True)
    if not cond:
        FAILED += 1
        if detail:
            print(detail, file=sys.stderr, flush=True)


found = []
for path in sorted(glob.glob(os.path.join(root, "db", "*.c"))):
    for func, n, sql in statements(path):
        if re.search(r"\b(FROM|JOIN|UPDATE|INTO)\s+(devices|certificates|crls)\b", sql, re.I):
            found.append(("%s#%d" % (func, n), os.path.basename(path), sql))
check(len(found) >= 15, "%d statements on devices or certificates found in db/*.c" % len(found))
outside = subprocess.run(["grep", "-rlE", r"(FROM|JOIN|UPDATE|INTO) (devices|certificates)\b"] +
                         [os.path.join(root, d) for d in ("api", "ca", "mqtt", "server", "util")],
                         capture_output=True, text=True).stdout.split()
check(not outside, "no SQL on devices or certificates outside db/", outside)

keys = {k for k, _, _ in found}
stale = sorted(set(PARAMS) - keys)
check(not stale, "every statement this test has parameters for still exists", stale)
for key, path, sql in found:
    if key not in PARAMS:
        check(False, "%s (%s) has EXPLAIN parameters in test_explain.sh" % (key, path), sql)
        continue
    nparams = max([int(x) for x in re.findall(r"\$(\d+)", sql)] or [0])
    for params in PARAMS[key]:
        script = "SET plan_cache_mode = force_custom_plan;\nPREPARE s AS %s;\n" % sql
        script += "EXPLAIN EXECUTE s%s;\n" % (
            "(" + ", ".join(literal(v) for v in params[:nparams]) + ")" if nparams else "")
        r = subprocess.run(["psql", url, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"],
                           input=script, capture_output=True, text=True)
        plan = r.stdout
        scans = sorted(set(re.findall(r"Seq Scan on (devices|certificates|crls)\b", plan)))
        used = sorted({a or b for a, b in re.findall(
            r"Index (?:Only )?Scan(?: Backward)? using (\w+)|Bitmap Index Scan on (\w+)", plan)})
        shown = ", ".join("NULL" if v is None else (v[:12] + "…" if len(v) > 14 else v)
                          for v in params[:nparams])
        check(r.returncode == 0 and not scans,
              "%s(%s): no Seq Scan on devices, certificates or crls (%s)" %
              (key, shown, "error" if r.returncode else ", ".join(used) or "no index needed"),
              "%s\n%s\n%s" % (sql, r.stderr, plan))
sys.exit(1 if FAILED else 0)
PY
rc=$?
[ "$rc" = 0 ] || [ "$rc" = 1 ] || not_ok "the EXPLAIN checks exited with status $rc"
[ "$rc" = 0 ] || FAILED=$((FAILED + 1))

# ---- durable MQTT state (db/mqtt_state.c, issue 18) ------------------------------------------
# Every writer of the prepared-statement table and the garbage collector, on 20,000 sessions,
# 200,000 queue rows, 100,000 messages and 10,000 retained topics: no Seq Scan on an mqtt_
# table. The loads at `serve` start (hub_db_mqtt_load) read every row of the node: not here.
sql "$URL" "
INSERT INTO mqtt_sessions (key, owner, expiry_s) SELECT 'd:' || md5(i::text), NULL, 0 FROM generate_series(1, 20000) i;
INSERT INTO mqtt_messages (id, topic, payload, qos) SELECT (7::bigint << 32) + i, 'devices/x/telemetry', '\x00', 1 FROM generate_series(1, 100000) i;
INSERT INTO mqtt_queue (session_key, msg_id, qos) SELECT 'd:' || md5((i % 20000)::text), (7::bigint << 32) + i % 100000 + 1, 1 FROM generate_series(1, 200000) i ON CONFLICT DO NOTHING;
INSERT INTO mqtt_subscriptions (session_key, filter, qos) SELECT 'd:' || md5(i::text), 'devices/' || i || '/commands/#', 1 FROM generate_series(1, 20000) i;
INSERT INTO mqtt_incoming (session_key, packet_id) SELECT 'd:' || md5(i::text), i % 65535 + 1 FROM generate_series(1, 5000) i;
INSERT INTO mqtt_retained (topic, msg_id) SELECT 'devices/' || i || '/status', (7::bigint << 32) + i FROM generate_series(1, 10000) i;
ANALYZE;" >mqtt_fixture.out 2>&1
expect "fixture: 20,000 MQTT sessions, 200,000 queue rows, 100,000 messages, ANALYZE'd" $?
python3 - "$ROOT" "$URL" <<'PY'
import re, subprocess, sys

root, url = sys.argv[1:3]
src = open(root + "/db/mqtt_state.c").read()
K, M = "d:" + __import__("hashlib").md5(b"77").hexdigest(), str((7 << 32) + 500)
PARAMS = {
    "mqtt_session_open": [K, None, "0"], "mqtt_session_gone": [K, None],
    "mqtt_session_offline": [K, None],
    "mqtt_sub": [K, "devices/+/telemetry", "1"], "mqtt_unsub": [K, "devices/+/telemetry"],
    "mqtt_message": [M, "devices/x/telemetry", "\\x00", "1"], "mqtt_queue": [K, M, "1"],
    "mqtt_delivered": [K, M], "mqtt_delivery_state": [K, M, "1", "7"],
    "mqtt_incoming_add": [K, "7"], "mqtt_incoming_del": [K, "7"],
    "mqtt_retain_set": ["devices/1/status", M], "mqtt_retain_clear": ["devices/1/status"],
    "gc": [str(7 << 32), "5000"],
    "mqtt_messages_many": ["\\x746f70696300", "{%s}" % M, "{1}", "{5}", "{6}", "{1}", "{1}"],
    "mqtt_queue_many": ["\\x" + K.encode().hex(), "{1}", "{%d}" % len(K), "{%s}" % M, "{1}"],
}
stmts = {m.group(1): "".join(re.findall(r'"((?:[^"\\]|\\.)*)"', m.group(2)))
         for m in re.finditer(r'\{"(mqtt_\w+)", \d+,((?:\s*"(?:[^"\\]|\\.)*")+)\}', src)}
gc = re.search(r'hub_db_mqtt_gc\(.*?hub_db_exec_row\(\s*c, &r,((?:\s*"(?:[^"\\]|\\.)*")+)', src, re.S)
stmts["gc"] = "".join(re.findall(r'"((?:[^"\\]|\\.)*)"', gc.group(1)))
failed = 0
if set(stmts) != set(PARAMS):
    print("not ok - every db/mqtt_state.c writer has EXPLAIN parameters here (%s)" %
          sorted(set(stmts) ^ set(PARAMS)))
    failed += 1
lit = lambda v: "NULL" if v is None else "'" + v.replace("'", "''") + "'"
for name, sql in sorted(stmts.items()):
    if name not in PARAMS:
        continue
    script = "SET plan_cache_mode = force_custom_plan;\nPREPARE s AS %s;\nEXPLAIN EXECUTE s(%s);\n" % (
        sql, ", ".join(lit(v) for v in PARAMS[name]))
    r = subprocess.run(["psql", url, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"],
                       input=script, capture_output=True, text=True)
    scans = sorted(set(re.findall(r"Seq Scan on (mqtt_\w+)", r.stdout)))
    used = sorted(set(re.findall(r"(?:Index (?:Only )?Scan(?: Backward)? using|Bitmap Index Scan on) (\w+)", r.stdout)))
    good = r.returncode == 0 and not scans
    print("%s - %s: no Seq Scan on an mqtt_ table (%s)" % ("ok" if good else "not ok", name,
          "error" if r.returncode else ", ".join(used) or "no index needed"), flush=True)
    if not good:
        failed += 1
        print(sql, r.stderr, r.stdout, file=sys.stderr)
sys.exit(1 if failed else 0)
PY
[ $? = 0 ] || FAILED=$((FAILED + 1))
finish
