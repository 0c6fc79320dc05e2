#!/bin/sh
# Switch an existing `twist web` site to resumetls by changing the endpoint
# prefix: `ssl:` becomes `resumetls:`, the options stay the same.
#
#   before:  twist web --listen ssl:8443:privateKey=/etc/ssl/private/site.key:certKey=/etc/ssl/certs/site.pem --path /srv/www
#   after:   (below)
#
#   usage:   examples/web_listen.sh CERT KEY DIRECTORY
#
# The key must not be inside the directory served: anyone could download it
# (`--path .` beside key.pem would serve it). This script refuses that, as
# `twist resumetls --path` does.
#
# Then check resumption with openssl (the first line says New, the second Reused):
#   sleep 1 | openssl s_client -connect localhost:8443 -sess_out /tmp/s 2>/dev/null | grep -E '^(New|Reused)'
#   sleep 1 | openssl s_client -connect localhost:8443 -sess_in /tmp/s 2>/dev/null | grep -E '^(New|Reused)'
# (the sleep lets TLS 1.3 tickets, sent after the handshake, arrive)
set -e
cert=${1:-/etc/ssl/certs/site.pem}
key=${2:-/etc/ssl/private/site.key}
site=${3:-/srv/www}
case "$(realpath "$key")/" in
"$(realpath "$site")"/*)
    echo "refusing to serve $site: it holds the private key $key" >&2
    exit 64
    ;;
esac
exec twist web --listen "resumetls:8443:privateKey=$key:certKey=$cert" --path "$site"
