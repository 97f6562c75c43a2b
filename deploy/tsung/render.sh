#!/usr/bin/env bash
# Renders a tsung scenario of deploy/tsung/ for a set of enrolled devices.
#   deploy/tsung/render.sh SCENARIO CERTS_DIR OUT_DIR --port PORT --ca CA.pem [options]
# SCENARIO: connect (a), telemetry (b) or reconnect (c). CERTS_DIR is what
# tests/bench/iothub-enroll (or tests/bench/provision.sh) wrote: devices.csv ("certfile,keyfile")
# and, from iothub-enroll, ids.csv ("index,device_id"); without ids.csv the device id is read
# from each certificate's CN. Writes OUT_DIR/certs.csv (tsung's file_server:
# "certfile;keyfile;device_id") and OUT_DIR/SCENARIO.xml. Options (defaults):
#   --users N (all devices)   --rate R  arrivals/s (100)      --hold S  connect: hold (10)
#   --count K  telemetry: messages per device (10), reconnect: loops (5)
#   --interval S  seconds between messages / reconnects (1)   --qos 0|1 telemetry (0)
#   --sources K  source addresses 127.0.0.1..127.0.0.K (8)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
die() { echo "render: $*" >&2; exit 2; }
[ $# -ge 3 ] || die "usage: $0 connect|telemetry|reconnect CERTS_DIR OUT_DIR --port PORT --ca CA.pem [options]"
SCEN=$1 CERTS=$2 OUTD=$3
shift 3
[ -f "$HERE/$SCEN.xml" ] || die "unknown scenario \"$SCEN\" (connect, telemetry, reconnect)"
PORT= CA= USERS= RATE=100 HOLD=10 COUNT= INTERVAL=1 QOS=0 SOURCES=8
while [ $# -gt 0 ]; do
    case $1 in
        --port) PORT=$2 ;; --ca) CA=$2 ;; --users) USERS=$2 ;; --rate) RATE=$2 ;;
        --hold) HOLD=$2 ;; --count) COUNT=$2 ;; --interval) INTERVAL=$2 ;; --qos) QOS=$2 ;;
        --sources) SOURCES=$2 ;;
        *) die "unknown option $1" ;;
    esac
    shift 2 || die "$1 needs a value"
done
[[ $PORT =~ ^[0-9]+$ ]] || die "--port is required"
[ -r "$CA" ] || die "--ca: cannot read \"$CA\""
[ -r "$CERTS/devices.csv" ] || die "no $CERTS/devices.csv (run tests/bench/iothub-enroll first)"
[[ $QOS =~ ^[01]$ ]] || die "--qos must be 0 or 1"
[[ $SOURCES =~ ^[1-9][0-9]*$ ]] && [ "$SOURCES" -le 250 ] || die "--sources must be 1..250"
COUNT=${COUNT:-$([ "$SCEN" = reconnect ] && echo 5 || echo 10)}
mkdir -p "$OUTD"
CA=$(cd "$(dirname "$CA")" && pwd)/$(basename "$CA")

# certs.csv: certfile;keyfile;device_id, in the order of devices.csv.
if [ -r "$CERTS/ids.csv" ]; then
    paste -d, <(tail -n +2 "$CERTS/devices.csv") <(tail -n +2 "$CERTS/ids.csv" | cut -d, -f2) |
        tr ',' ';' >"$OUTD/certs.csv"
else
    tail -n +2 "$CERTS/devices.csv" | while IFS=, read -r c k; do
        id=$(openssl x509 -in "$c" -noout -subject -nameopt multiline | awk '/commonName/ {print $3}')
        echo "$c;$k;$id"
    done >"$OUTD/certs.csv"
fi
have=$(wc -l <"$OUTD/certs.csv")
USERS=${USERS:-$have}
[ "$USERS" -le "$have" ] || die "--users $USERS but only $have devices in $CERTS/devices.csv"
# maxnumber stops the arrivals; the phase is longer so that a late start loses no user.
ARRIVAL_S=$(((USERS + RATE - 1) / RATE * 2 + 5))
IPS=
for i in $(seq 1 "$SOURCES"); do IPS="$IPS<ip value=\"127.0.0.$i\"/>"; done
sed -e "s|@USERS@|$USERS|g" -e "s|@MAXUSERS@|$((USERS + 1000))|g" -e "s|@RATE@|$RATE|g" \
    -e "s|@ARRIVAL_S@|$ARRIVAL_S|g" -e "s|@HOLD@|$HOLD|g" -e "s|@COUNT@|$COUNT|g" \
    -e "s|@INTERVAL@|$INTERVAL|g" -e "s|@QOS@|$QOS|g" -e "s|@PORT@|$PORT|g" \
    -e "s|@CA@|$CA|g" -e "s|@CSV@|$OUTD/certs.csv|g" -e "s|@IPS@|$IPS|g" \
    "$HERE/$SCEN.xml" >"$OUTD/$SCEN.xml"
echo "$OUTD/$SCEN.xml"
