# Moving from Exim's own prvs (docs/operations.md): the secret and key
# number of your ${prvs{$return_path}{SECRET}{K}}, as batv-proxy's key
# file, so the tags Exim made keep verifying and batv-proxy signs alike.
secret='the secret from exim.conf'
key=0
umask 077
printf '%s %s\n' "$key" "$(printf '%s' "$secret" | base64 -w0)" > /var/lib/batv-proxy/keys
chown batv-proxy:batv-proxy /var/lib/batv-proxy/keys
