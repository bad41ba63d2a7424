# Run after every change to batv-proxy's key file (first start, rotation):
install -m 640 -o root -g Debian-exim /var/lib/batv-proxy/keys /etc/exim4/batv-keys
