#!/bin/sh
# Init container of the compose demo: a throwaway CA and a certificate for the host name "receiver", written to
# the shared volume mounted at /tls. The dispatcher trusts ca.pem through RECEIVER_CA_FILE. Idempotent.
set -eu
dir=/tls
[ -f "$dir/server.pem" ] && exit 0
command -v openssl >/dev/null || apk add --no-cache openssl >/dev/null
openssl req -x509 -newkey rsa:2048 -nodes -days 365 -subj "/CN=hookd compose demo CA" \
    -keyout "$dir/ca.key" -out "$dir/ca.pem" -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign"
openssl req -newkey rsa:2048 -nodes -subj "/CN=receiver" -keyout "$dir/server.key" -out "$dir/server.csr"
printf 'subjectAltName=DNS:receiver\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$dir/ext.cnf"
openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial -days 365 \
    -extfile "$dir/ext.cnf" -out "$dir/server.pem"
rm -f "$dir/server.csr" "$dir/ext.cnf" "$dir/ca.key" "$dir/ca.srl"
# the dispatcher runs as uid 10001: the CA must be readable; the key stays with the receiver (nginx reads it as root)
chmod 644 "$dir/ca.pem" "$dir/server.pem"
chmod 600 "$dir/server.key"
