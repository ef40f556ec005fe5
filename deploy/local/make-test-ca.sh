#!/bin/sh
# deploy/local/make-test-ca.sh DIR — a throwaway CA and a server certificate for 127.0.0.1 and localhost,
# for the demo receiver of `make run` (and anyone who wants a local HTTPS receiver). Writes DIR/ca.pem,
# DIR/ca.key, DIR/server.pem, DIR/server.key. Idempotent: does nothing when DIR/server.pem exists.
set -eu
dir=$1
[ -f "$dir/server.pem" ] && exit 0
mkdir -p "$dir"
openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=hookd local test CA" \
    -keyout "$dir/ca.key" -out "$dir/ca.pem" -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$dir/ext.cnf"
openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial -days 30 \
    -extfile "$dir/ext.cnf" -out "$dir/server.pem" 2>/dev/null
rm -f "$dir/server.csr" "$dir/ext.cnf"
