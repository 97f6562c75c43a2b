#!/usr/bin/env bash
# The embedded CA checked by an independent implementation (OpenSSL): chain, device
# certificates from `openssl req` CSRs, CRLs before and after a revocation, PKCS#7, strict DER.
. "$(dirname "$0")/lib.sh"
cd "$T"

# no_ecdsa_null FILE.pem|der: no NULL right after an ecdsa-with-SHA* OID.
no_ecdsa_null() {
    openssl asn1parse -inform "$2" -in "$1" >asn1.txt 2>&1 || return 1
    ! grep -A1 'ecdsa-with-SHA' asn1.txt | grep -q 'NULL'
}

# provision URL PRODUCT_KEY SERIAL: inserts a product (once) and a device, prints its id.
provision() {
    sql "$1" "INSERT INTO products (product_key, name, secret_hash) VALUES ('$2', 'test', 'x')
              ON CONFLICT (product_key) DO NOTHING" >/dev/null
    sql "$1" "INSERT INTO devices (product_id, serial_number, secret_hash)
              SELECT id, '$3', 'x' FROM products WHERE product_key = '$2' RETURNING id" | head -n 1
}

for ca_type in ec-p256 ec-p384 rsa-2048; do
    URL=$(new_db "${ca_type//-/_}")
    write_conf "$ca_type.conf" "$URL" "ca_key_type = $ca_type"
    "$IOTHUBD" -c "$ca_type.conf" init --token-file "$ca_type.token" >/dev/null 2>"$ca_type.init.err"
    expect "[$ca_type] init" $?
    "$IOTHUBD" -c "$ca_type.conf" ca chain >chain.pem 2>/dev/null
    awk '/BEGIN/{n++} {print > ("ca" n ".pem")}' chain.pem
    mv ca1.pem issuing.pem; mv ca2.pem root.pem
    openssl verify -x509_strict -CAfile root.pem issuing.pem >/dev/null 2>&1
    expect "[$ca_type] openssl verifies the issuing CA under the root" $?
    "$IOTHUBD" -c "$ca_type.conf" ca crl --format pem >crl.pem 2>/dev/null &&
        openssl crl -in crl.pem -CAfile chain.pem -noout -verify 2>&1 | grep -q 'verify OK'
    expect "[$ca_type] openssl crl -verify accepts the CRL" $?

    SERVER=$(sql "$URL" "SELECT encode(der, 'base64') FROM certificates WHERE kind = 'server'")
    { echo "-----BEGIN CERTIFICATE-----"; echo "$SERVER"; echo "-----END CERTIFICATE-----"; } >server.pem
    openssl verify -x509_strict -purpose sslserver -CAfile root.pem -untrusted issuing.pem server.pem >/dev/null 2>&1 &&
        openssl x509 -in server.pem -noout -ext subjectAltName | grep -q 'DNS:localhost, IP Address:127.0.0.1'
    expect "[$ca_type] server certificate verifies for sslserver with the configured SANs" $?

    case $ca_type in
        ec-*) no_ecdsa_null root.pem PEM && no_ecdsa_null issuing.pem PEM && no_ecdsa_null server.pem PEM && no_ecdsa_null crl.pem PEM
              expect "[$ca_type] no NULL after ecdsa-with-SHA* in CA, server certificate and CRL" $? ;;
    esac

    for key in ec-p256 ec-p384 rsa-2048; do
        case $key in
            ec-p256) opts=(-newkey ec -pkeyopt ec_paramgen_curve:P-256) ;;
            ec-p384) opts=(-newkey ec -pkeyopt ec_paramgen_curve:P-384) ;;
            rsa-2048) opts=(-newkey rsa:2048) ;;
        esac
        openssl req -new "${opts[@]}" -nodes -keyout dev.key -subj "/CN=ignored" -out dev.csr 2>/dev/null
        DEV=$(provision "$URL" PK1 "SN-$key")
        "$CA_TOOL" "$ca_type.conf" issue "$DEV" PK1 dev.csr >dev.pem 2>issue.err
        expect "[$ca_type/$key] a CSR from openssl req is signed" $?
        openssl verify -x509_strict -crl_check -CAfile root.pem -untrusted issuing.pem -CRLfile crl.pem \
            -purpose sslclient dev.pem >verify.out 2>&1
        expect "[$ca_type/$key] openssl verify -crl_check accepts the device certificate" $?
        subj=$(openssl x509 -in dev.pem -noout -subject -nameopt RFC2253)
        [ "$subj" = "subject=CN=$DEV,O=PK1" ] || [ "$subj" = "subject=O=PK1,CN=$DEV" ]
        expect "[$ca_type/$key] subject is CN=<device id>, O=<product key>" $?
        openssl x509 -in dev.pem -noout -text >dev.txt
        grep -A1 'Key Usage: critical' dev.txt | grep -q '^ *Digital Signature$' &&
            grep -A1 'Extended Key Usage' dev.txt | grep -q '^ *TLS Web Client Authentication$' &&
            grep -q 'X509v3 Subject Key Identifier' dev.txt &&
            grep -q 'X509v3 Authority Key Identifier' dev.txt &&
            grep -q "URI:https://localhost:$API_PORT/v1/crl" dev.txt
        expect "[$ca_type/$key] profile: keyUsage, clientAuth, SKI, AKI, CRL distribution point" $?
        grep -A1 'X509v3 Subject Alternative Name' dev.txt | grep -qx " *URI:urn:uuid:$DEV"
        expect "[$ca_type/$key] subjectAltName URI:urn:uuid:<device id> (SPEC 5)" $?
        serial=$(openssl x509 -in dev.pem -noout -serial | cut -d= -f2)
        [[ $serial =~ ^[0-7][0-9A-F]{31}$ ]] &&
            [ "$(sql "$URL" "SELECT device_id FROM certificates WHERE serial = '$serial'")" = "$DEV" ]
        expect "[$ca_type/$key] serial is 16 positive random bytes and recorded for the device" $?
        days=$(( ($(date -d "$(openssl x509 -in dev.pem -noout -enddate | cut -d= -f2)" +%s) - $(date +%s)) / 86400 ))
        [ "$days" -ge 364 ] && [ "$days" -le 365 ]
        expect "[$ca_type/$key] validity follows device_cert_days (365)" $?
        case $ca_type in
            ec-*) no_ecdsa_null dev.pem PEM; expect "[$ca_type/$key] no NULL after ecdsa-with-SHA* in the device certificate" $? ;;
        esac
    done

    # Revocation: the new CRL lists the serial with its reason and a higher cRLNumber.
    "$CA_TOOL" "$ca_type.conf" revoke "$serial" keyCompromise 2>revoke.err
    expect "[$ca_type] revocation commits" $?
    "$IOTHUBD" -c "$ca_type.conf" ca crl --format pem >crl2.pem 2>/dev/null
    openssl crl -in crl2.pem -noout -text >crl2.txt
    grep -q "Serial Number: $serial" crl2.txt && grep -A4 "Serial Number: $serial" crl2.txt | grep -q 'Key Compromise'
    expect "[$ca_type] the CRL lists the revoked serial with reason keyCompromise" $?
    n1=$(openssl crl -in crl.pem -noout -crlnumber | cut -d= -f2)
    n2=$(openssl crl -in crl2.pem -noout -crlnumber | cut -d= -f2)
    [ $((n2)) -gt $((n1)) ]
    expect "[$ca_type] cRLNumber increases ($n1 -> $n2)" $?
    openssl crl -in crl2.pem -CAfile chain.pem -noout -verify 2>&1 | grep -q 'verify OK'
    expect "[$ca_type] the new CRL verifies" $?
    openssl verify -crl_check -CAfile root.pem -untrusted issuing.pem -CRLfile crl2.pem dev.pem >verify2.out 2>&1
    [ $? != 0 ] && grep -q 'certificate revoked' verify2.out
    expect "[$ca_type] openssl verify -crl_check now fails: certificate revoked" $?
    "$CA_TOOL" "$ca_type.conf" revoke "$serial" keyCompromise 2>revoke2.err
    [ $? != 0 ] && grep -q 'already exists' revoke2.err
    expect "[$ca_type] revoking twice is refused" $?
done

# Root CRL: -crl_check_all works with both CRLs.
URL=$(new_db all)
write_conf all.conf "$URL"
"$IOTHUBD" -c all.conf init --token-file all.token >/dev/null 2>&1
"$IOTHUBD" -c all.conf ca chain >chain.pem 2>/dev/null
awk '/BEGIN/{n++} {print > ("ca" n ".pem")}' chain.pem; mv ca1.pem issuing.pem; mv ca2.pem root.pem
sql "$URL" "SELECT encode(der, 'base64') FROM crls c JOIN cas a ON a.id = c.ca_id WHERE a.role = 'root' AND c.base_number IS NULL" >root-crl.b64
{ echo "-----BEGIN X509 CRL-----"; cat root-crl.b64; echo "-----END X509 CRL-----"; } >root-crl.pem
"$IOTHUBD" -c all.conf ca crl --format pem >crl.pem 2>/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout d.key -subj /CN=x -out d.csr 2>/dev/null
DEV=$(provision "$URL" PK2 SN1)
"$CA_TOOL" all.conf issue "$DEV" PK2 d.csr >d.pem 2>/dev/null
cat crl.pem root-crl.pem >crls.pem
openssl verify -crl_check_all -CAfile root.pem -untrusted issuing.pem -CRLfile crls.pem d.pem >/dev/null 2>&1
expect "openssl verify -crl_check_all passes with the root and issuing CRLs" $?

# PKCS#7 certs-only bundle.
"$IOTHUBD" -c all.conf ca chain --format p7b >chain.p7b 2>/dev/null
openssl pkcs7 -inform DER -in chain.p7b -print_certs >p7.txt 2>&1 &&
    [ "$(grep -c 'BEGIN CERTIFICATE' p7.txt)" = 2 ] &&
    grep -q 'iothub Root CA' p7.txt && grep -q 'iothub Issuing CA' p7.txt
expect "openssl pkcs7 -print_certs reads both CA certificates from the p7b" $?
"$IOTHUBD" -c all.conf ca crl --format der >crl.der 2>/dev/null && openssl crl -inform DER -in crl.der -noout
expect "ca crl --format der prints a DER CRL" $?
"$IOTHUBD" -c all.conf ca chain --format xml >/dev/null 2>fmt.err
[ $? = 2 ] && grep -q 'unknown --format "xml"' fmt.err
expect "ca chain with an unknown format is refused" $?

# CSR rejections.
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout t.key -subj /CN=tamper -outform DER -out t.der 2>/dev/null
# Flip a byte in the signature (the last byte of the CSR) and one in the subject.
perl -e 'local $/; $_ = <STDIN>; substr($_, -1, 1) = chr(ord(substr($_, -1, 1)) ^ 1); print' <t.der >sig.der
perl -e 'local $/; $_ = <STDIN>; my $i = index($_, "tamper"); substr($_, $i, 1) = "T"; print' <t.der >subj.der
for f in sig subj; do
    DEV=$(provision "$URL" PK2 "SN-$f")
    "$CA_TOOL" all.conf issue "$DEV" PK2 $f.der >/dev/null 2>$f.err
    [ $? = 3 ] && grep -q 'does not verify' $f.err
    expect "a CSR with a tampered ${f/sig/signature}${f/subj/ject} is refused (proof of possession)" $?
done
openssl req -new -newkey rsa:1024 -nodes -keyout r.key -subj /CN=small -out r.csr 2>/dev/null
DEV=$(provision "$URL" PK2 SN-rsa1024)
"$CA_TOOL" all.conf issue "$DEV" PK2 r.csr >/dev/null 2>r.err
[ $? = 3 ] && grep -q '1024 bits is too small' r.err
expect "an RSA-1024 CSR is refused as too small" $?
openssl dsaparam -genkey -out dsa.key 2048 2>/dev/null && openssl req -new -key dsa.key -subj /CN=dsa -out dsa.csr 2>/dev/null
DEV=$(provision "$URL" PK2 SN-dsa)
"$CA_TOOL" all.conf issue "$DEV" PK2 dsa.csr >/dev/null 2>dsa.err
[ $? = 3 ] && grep -qi 'not accepted' dsa.err
expect "a DSA CSR is refused" $?
head -c 500 /dev/urandom >garbage.csr
DEV=$(provision "$URL" PK2 SN-garbage)
"$CA_TOOL" all.conf issue "$DEV" PK2 garbage.csr >/dev/null 2>g.err
[ $? = 3 ]
expect "garbage instead of a CSR is refused" $?
[ "$(sql "$URL" "SELECT count(*) FROM certificates WHERE kind = 'device'")" = 1 ]
expect "refused CSRs leave no certificate behind" $?

finish
