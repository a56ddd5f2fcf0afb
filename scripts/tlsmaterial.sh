# Throwaway TLS material for bench/: a private CA and a server certificate for
# localhost and 127.0.0.1, valid for two days, made with openssl as the tests do.
# shellcheck shell=bash
#
# tls_make DIR   writes DIR/ca.pem, DIR/server-key.pem and DIR/server-cert.pem

tls_make() {
	local dir=$1
	mkdir -p "$dir"
	printf '%s\n' "subjectAltName=DNS:localhost,IP:127.0.0.1" \
		"basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" \
		"extendedKeyUsage=serverAuth" >"$dir/server.ext"
	{
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
			-keyout "$dir/ca-key.pem" -out "$dir/ca.pem" -days 2 -subj "/CN=bench throwaway CA" \
			-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" &&
			openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
				-keyout "$dir/server-key.pem" -out "$dir/server.csr" -subj "/CN=localhost" &&
			openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca-key.pem" \
				-set_serial "0x$(date +%s)$$" -days 2 -extfile "$dir/server.ext" -out "$dir/server-cert.pem"
	} >"$dir/openssl.log" 2>&1 || { cat "$dir/openssl.log" >&2; return 1; }
	chmod 600 "$dir/ca-key.pem" "$dir/server-key.pem"
}
