#!/bin/sh
# Switch an existing `twist web` site to resumetls by changing the endpoint
# prefix: `ssl:` becomes `resumetls:`, the options stay the same.
#
#   before:  twist web --listen ssl:8443:privateKey=key.pem:certKey=cert.pem --path .
#   after:   (below)
#
# Then check resumption with openssl (the first line says New, the second Reused):
#   sleep 1 | openssl s_client -connect localhost:8443 -sess_out /tmp/s 2>/dev/null | grep -E '^(New|Reused)'
#   sleep 1 | openssl s_client -connect localhost:8443 -sess_in /tmp/s 2>/dev/null | grep -E '^(New|Reused)'
# (the sleep lets TLS 1.3 tickets, sent after the handshake, arrive)
set -e
cert=${1:-cert.pem}
key=${2:-key.pem}
exec twist web --listen "resumetls:8443:privateKey=$key:certKey=$cert" --path .
