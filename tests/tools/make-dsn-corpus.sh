#!/usr/bin/env bash
# Makes tests/corpus/generated/: bounces, delay warnings and automatic
# replies written by real mail software, each with its .expect file, for
# tests/dsn_recall.rs. Not run by CI: the messages are committed, this
# script is how they were made and how to make them again.
#
# Most MTAs conflict with Postfix and with each other, so none is installed
# on the host: each runs in its own throwaway Debian tree (debootstrap
# --variant=minbase bookworm, then apt-get inside with chroot), sharing the
# host's loopback. Every MTA relays mail for remote.example to a fake
# remote MX this script runs on 127.0.0.1:$MX_PORT, which fails each
# recipient in a chosen way, so every MTA meets the same failures:
#   nosuch@   550 5.1.1 unknown user          full@  552 5.2.2 mailbox full
#   denied@   554 5.7.1 relay access denied   later@ 451 4.3.0 (a delay)
#   spam@     accepted, then 554 5.7.1 after DATA
# plus, where the software has them, local failures, headers-only returns
# (RET=HDRS), several recipients in one bounce, delay warnings and expiry.
#
# Usage, as root, from the repository:   tests/tools/make-dsn-corpus.sh [MTA...]
#   MTA: sendmail opensmtpd dma dovecot postfix exim courier (default: all)
# Trees are cached in $TREES (default /var/tmp/dsn-corpus-trees); delete it
# to start afresh. The Message-IDs are fixed per scenario, so a new run
# rewrites the same file names. Each .expect says the kind the message is
# (dsn for bounces and delay warnings, autoreply for vacation replies and
# Sieve's MDN-form rejections) and the original Message-ID when the
# message carries it anywhere (checked here by a plain text search, not by
# the code under test), `none` otherwise.
set -euo pipefail

repo="$(cd "$(dirname "$0")/../.." && pwd)"
out="$repo/tests/corpus/generated"
TREES=${TREES:-/var/tmp/dsn-corpus-trees}
MX_PORT=${MX_PORT:-2526}
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
command -v debootstrap >/dev/null || { echo "needs debootstrap (see .ci/packages)" >&2; exit 1; }
mkdir -p "$TREES" "$out"

base() {
  if [ ! -x "$TREES/base/bin/bash" ]; then
    rm -rf "$TREES/base"
    debootstrap --variant=minbase bookworm "$TREES/base" >/dev/null
  fi
}

# tree NAME PACKAGE...: a copy of the base tree with the packages installed.
tree() {
  local name=$1; shift
  local dir="$TREES/$name"
  if [ ! -e "$dir/.ready" ]; then
    base
    rm -rf "$dir"; cp -a "$TREES/base" "$dir"
    printf '#!/bin/sh\nexit 101\n' >"$dir/usr/sbin/policy-rc.d"; chmod +x "$dir/usr/sbin/policy-rc.d"
    cp /etc/resolv.conf "$dir/etc/resolv.conf"
    echo "127.0.0.1 localhost remote.example" >"$dir/etc/hosts"
    echo "postfix postfix/main_mailer_type select No configuration" >"$dir/tmp/debconf"
    in_tree "$name" "debconf-set-selections /tmp/debconf; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $* procps python3-minimal >/dev/null"
    touch "$dir/.ready"
  fi
}

# in_tree NAME COMMAND: runs a shell command inside the tree.
in_tree() {
  local dir="$TREES/$1"
  mountpoint -q "$dir/proc" || mount --bind /proc "$dir/proc"
  chroot "$dir" /bin/bash -c "$2"
  local status=$?
  umount "$dir/proc" 2>/dev/null || true
  return $status
}

# The fake remote MX, on the host's loopback (shared with the trees).
fake_mx() {
  python3 - "$MX_PORT" <<'EOF' &
import socketserver, sys
REPLIES = {"nosuch": "550 5.1.1 <{a}>: Recipient address rejected: User unknown in virtual mailbox table",
           "full": "552 5.2.2 <{a}>: Mailbox full, quota exceeded",
           "denied": "554 5.7.1 <{a}>: Relay access denied",
           "later": "451 4.3.0 <{a}>: Temporary lookup failure, try again later"}
class Handler(socketserver.StreamRequestHandler):
    def handle(self):
        say = lambda line: self.wfile.write((line + "\r\n").encode())
        say("220 mx.remote.example ESMTP")
        spam = False
        while True:
            line = self.rfile.readline().decode("latin-1").strip()
            if not line: return
            verb = line[:4].upper()
            if verb in ("EHLO", "HELO"): say("250-mx.remote.example\r\n250-PIPELINING\r\n250 8BITMIME" if verb == "EHLO" else "250 mx.remote.example")
            elif verb == "MAIL": spam = False; say("250 2.1.0 Ok")
            elif verb == "RCPT":
                address = line.split(":", 1)[1].strip().strip("<>").split(">")[0]
                local = address.split("@")[0].lower()
                spam = spam or local.startswith("spam")
                say(next((r.format(a=address) for k, r in REPLIES.items() if local.startswith(k)), "250 2.1.5 Ok"))
            elif verb == "DATA":
                say("354 End data with <CR><LF>.<CR><LF>")
                while self.rfile.readline().rstrip(b"\r\n") != b".": pass
                say("554 5.7.1 Message rejected: spam content detected" if spam else "250 2.0.0 Ok: queued")
            elif verb == "QUIT": say("221 2.0.0 Bye"); return
            elif verb == "RSET" or verb == "NOOP": say("250 2.0.0 Ok")
            else: say("502 5.5.2 Error: command not recognized")
class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
Server(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
EOF
  MX_PID=$!
  sleep 1
}

# A test message with a fixed Message-ID, in a file inside the tree.
message() { # tree file id to...
  local dir="$TREES/$1" file=$2 id=$3; shift 3
  printf 'From: Alice <alice@localhost>\nTo: %s\nSubject: corpus test %s\nMessage-ID: <%s@corpus.example>\nDate: Thu, 01 Jan 2026 00:00:00 +0000\nMIME-Version: 1.0\nContent-Type: text/plain; charset=us-ascii\n\nHello, this is a test message.\n' \
    "$(IFS=,; echo "$*")" "$id" "$id" >"$dir/$file"
}

# collect MTA MBOX KIND...: splits an mbox file into tests/corpus/generated/MTA/,
# one .eml per message that names one of our test ids, with its .expect.
# KIND is `id=kind` pairs; ids not listed are dsn.
collect() {
  local mta=$1 mbox=$2; shift 2
  rm -rf "${out:?}/$mta"; mkdir -p "$out/$mta"
  python3 - "$mbox" "$out/$mta" "$@" <<'EOF'
import re, sys, os
mbox, target, kinds = sys.argv[1], sys.argv[2], dict(pair.split("=") for pair in sys.argv[3:])
text = open(mbox, "rb").read().decode("latin-1") if os.path.exists(mbox) else ""
messages = [m for m in re.split(r"(?m)^From [^\n]*\n", text) if m.strip()]
seen = {}
for message in messages:
    message = re.sub(r"(?m)^>From ", "From ", message)
    own = re.search(r"(?im)^Message-ID:\s*(<[^>]+>)", message.split("\n\n", 1)[0])
    ids = [i for i in re.findall(r"<([a-z0-9-]+)@corpus\.example>", message, re.I)]
    if not ids:
        continue
    scenario = ids[0]
    original = f"<{scenario}@corpus.example>"
    if own and own.group(1) == original:
        continue  # the test message itself, delivered
    body = message.split("\n\n", 1)[1] if "\n\n" in message else ""
    carried = original in body or original in message.split("\n\n", 1)[0].replace(own.group(0) if own else "", "")
    kind = kinds.get(scenario, "dsn")
    subject = re.search(r"(?im)^Subject:(.*)$", message.split("\n\n", 1)[0])
    subject = subject.group(1).lower() if subject else ""
    if "action: delayed" in message.lower() or "warning" in subject or "delay" in subject:
        suffix = "-delayed"
    else:
        suffix = ""
    name = scenario + suffix
    seen[name] = seen.get(name, 0) + 1
    if seen[name] > 1:
        name += f"-{seen[name]}"
    with open(os.path.join(target, name + ".eml"), "w", encoding="latin-1", newline="") as f:
        f.write(message.rstrip("\n") + "\n")
    with open(os.path.join(target, name + ".expect"), "w") as f:
        f.write(f"kind: {kind}\noriginal: {original if carried else 'none'}\n")
    print(f"  {target}/{name}.eml: {kind}, original {'carried' if carried else 'not carried'}")
EOF
}

sendmail_corpus() {
  tree sendmail sendmail-bin sendmail-cf m4 make
  local cf=/etc/mail/sendmail.cf
  in_tree sendmail "
    id alice >/dev/null 2>&1 || useradd -m alice
    mkdir -p /tmp/corpus && chmod 1777 /tmp/corpus && : >/tmp/corpus/alice.mbox && chmod 666 /tmp/corpus/alice.mbox
    grep -q '^alice:' /etc/mail/aliases || echo 'alice: /tmp/corpus/alice.mbox' >>/etc/mail/aliases
    sed -i -e 's/^DS.*/DS[127.0.0.1]/' -e 's/A=TCP \$h\$/A=TCP \$h $MX_PORT/' -e 's/A=TCP \$h [0-9]*\$/A=TCP \$h $MX_PORT/' $cf
    sendmail -C $cf -bi >/dev/null 2>&1; rm -f /var/spool/mqueue/*"
  local send="sendmail -C $cf -Mjmx.sendmail.example -odi -oem -oi -f alice"
  message sendmail m-local sendmail-local-unknown nosuchuser@localhost
  message sendmail m-remote sendmail-remote-unknown nosuch@remote.example
  message sendmail m-multi sendmail-multi nosuch@remote.example full@remote.example denied@remote.example
  message sendmail m-headers sendmail-headers-only nosuch@remote.example
  message sendmail m-data sendmail-data-rejected spam@remote.example
  message sendmail m-delay sendmail-delay later@remote.example
  message sendmail m-expire sendmail-expired later2@remote.example
  in_tree sendmail "
    $send nosuchuser </m-local; $send nosuch@remote.example </m-remote
    $send nosuch@remote.example full@remote.example denied@remote.example </m-multi
    $send -R hdrs nosuch@remote.example </m-headers; $send spam@remote.example </m-data
    $send -O Timeout.queuewarn=1s later@remote.example </m-delay; sleep 2
    sendmail -C $cf -Mjmx.sendmail.example -O Timeout.queuewarn=1s -q >/dev/null 2>&1
    $send later2@remote.example </m-expire; sleep 1
    sendmail -C $cf -Mjmx.sendmail.example -O Timeout.queuereturn=1s -q >/dev/null 2>&1
    for i in 1 2 3; do sendmail -C $cf -Mjmx.sendmail.example -q >/dev/null 2>&1; done" || true
  collect sendmail "$TREES/sendmail/tmp/corpus/alice.mbox"
}

opensmtpd_corpus() {
  tree opensmtpd opensmtpd
  cat >"$TREES/opensmtpd/etc/smtpd.conf" <<EOF
table aliases file:/etc/aliases
queue ttl 20s
bounce warn-interval 5s
action "local" mbox alias <aliases>
action "relay" relay host smtp://127.0.0.1:$MX_PORT
match from local for local action "local"
match from local for any action "relay"
EOF
  message opensmtpd m-remote opensmtpd-remote-unknown nosuch@remote.example
  message opensmtpd m-multi opensmtpd-multi nosuch@remote.example full@remote.example
  message opensmtpd m-data opensmtpd-data-rejected spam@remote.example
  message opensmtpd m-delay opensmtpd-delay later@remote.example
  message opensmtpd m-relay opensmtpd-relay-denied denied@remote.example
  in_tree opensmtpd "
    id alice >/dev/null 2>&1 || useradd -m alice; : >/var/mail/alice; chown alice /var/mail/alice
    echo mx.opensmtpd.example >/etc/mailname; smtpctl stop >/dev/null 2>&1 || true
    smtpd -f /etc/smtpd.conf; sleep 2
    send() { sendmail -f alice@localhost \"\$@\"; }
    send nosuch@remote.example </m-remote; send nosuch@remote.example full@remote.example </m-multi
    send spam@remote.example </m-data; send denied@remote.example </m-relay; send later@remote.example </m-delay
    sleep 40; smtpctl stop >/dev/null 2>&1 || pkill -x smtpd || true" || true
  collect opensmtpd "$TREES/opensmtpd/var/mail/alice"
}

dma_corpus() {
  tree dma dma
  in_tree dma "
    id alice >/dev/null 2>&1 || useradd -m alice; rm -f /var/mail/alice
    echo mx.dma.example >/etc/mailname
    printf 'SMARTHOST 127.0.0.1\nPORT $MX_PORT\nMAILNAME /etc/mailname\n' >/etc/dma/dma.conf"
  message dma m-remote dma-remote-unknown nosuch@remote.example
  message dma m-quota dma-mailbox-full full@remote.example
  message dma m-data dma-data-rejected spam@remote.example
  message dma m-relay dma-relay-denied denied@remote.example
  in_tree dma "
    for m in remote:nosuch quota:full data:spam relay:denied; do
      dma -f alice \${m#*:}@remote.example </m-\${m%%:*}; done; sleep 3; dma -q; sleep 2" || true
  collect dma "$TREES/dma/var/mail/alice"
}

dovecot_corpus() {
  tree dovecot dovecot-core dovecot-sieve dma
  in_tree dovecot "
    id alice >/dev/null 2>&1 || useradd -m alice; id bob >/dev/null 2>&1 || useradd -m bob
    rm -f /var/mail/alice; echo mx.dovecot.example >/etc/mailname
    printf 'MAILNAME /etc/mailname\n' >/etc/dma/dma.conf
    cat >/etc/dovecot/local.conf <<'EOF'
mail_location = mbox:~/mail:INBOX=/var/mail/%u
protocol lda {
  mail_plugins = sieve
}
plugin {
  sieve = file:~/sieve;active=~/.dovecot.sieve
}
postmaster_address = postmaster@mx.dovecot.example
sendmail_path = /usr/sbin/sendmail
EOF
    chmod 1777 /var/mail; mkdir -p ~bob/sieve; chown -R bob ~bob"
  message dovecot m-vacation dovecot-sieve-vacation bob@localhost
  message dovecot m-vacation-de dovecot-sieve-vacation-subject bob@localhost
  message dovecot m-reject dovecot-sieve-reject bob@localhost
  # Without a running dovecot (no auth socket) the LDA runs as its user.
  local lda='lda() { su -s /bin/sh bob -c "HOME=/home/bob USER=bob /usr/lib/dovecot/dovecot-lda -f alice@mx.dovecot.example"; }; '
  local sieve="$TREES/dovecot/home/bob/.dovecot.sieve"
  printf 'require ["vacation"];\nvacation :days 1 :addresses ["bob@localhost"] "I am away until Monday.";\n' >"$sieve"
  in_tree dovecot "$lda chown bob ~bob/.dovecot.sieve; sed -i 's/alice@localhost/alice@mx.dovecot.example/' /m-vacation /m-vacation-de /m-reject
    lda </m-vacation" || true
  printf 'require ["vacation"];\nvacation :days 1 :subject "Abwesenheitsnotiz" :addresses ["bob@localhost"] "Ich bin bis Montag nicht im Büro.";\n' >"$sieve"
  in_tree dovecot "$lda chown bob ~bob/.dovecot.sieve; rm -rf ~bob/.dovecot.lda-dupes ~bob/sieve/*.svbin ~bob/.dovecot.svbin; lda </m-vacation-de" || true
  printf 'require ["reject"];\nreject "This mailbox no longer accepts mail.";\n' >"$sieve"
  in_tree dovecot "$lda chown bob ~bob/.dovecot.sieve; rm -f ~bob/.dovecot.svbin; lda </m-reject; sleep 1" || true
  collect dovecot "$TREES/dovecot/var/mail/alice" dovecot-sieve-vacation=autoreply dovecot-sieve-vacation-subject=autoreply dovecot-sieve-reject=autoreply
}

postfix_corpus() {
  tree postfix postfix
  in_tree postfix "
    id alice >/dev/null 2>&1 || useradd -m alice; rm -f /var/mail/alice
    postconf -e myhostname=mx.postfix.example mydestination=localhost,mx.postfix.example \
      relayhost=[127.0.0.1]:$MX_PORT smtp_dns_support_level=disabled smtp_host_lookup=native \
      delay_warning_time=1s queue_run_delay=1s minimal_backoff_time=1s maximal_backoff_time=2s \
      maximal_queue_lifetime=1d bounce_queue_lifetime=1d compatibility_level=3.6 inet_interfaces=loopback-only inet_protocols=ipv4
    sed -i 's/^smtp      inet/#smtp      inet/' /etc/postfix/master.cf
    postfix stop >/dev/null 2>&1 || true; postfix start >/dev/null 2>&1; sleep 2"
  # Postfix ships English templates only; bounce(5) documents how sites
  # translate them. These are such translations.
  cat >"$TREES/postfix/etc/postfix/bounce.de.cf" <<'EOF'
failure_template = <<EOT
Charset: utf-8
From: MAILER-DAEMON (Mail-Zustellsystem)
Subject: Unzustellbare Nachricht
Postmaster-Subject: Postmaster-Kopie: Unzustellbare Nachricht

Dies ist das Mailsystem auf dem Rechner $myhostname.

Leider konnte Ihre Nachricht an einen oder mehrere Empfänger nicht
zugestellt werden. Sie ist unten angehängt.

                   Das Mailsystem
EOT
EOF
  cat >"$TREES/postfix/etc/postfix/bounce.fr.cf" <<'EOF'
failure_template = <<EOT
Charset: utf-8
From: MAILER-DAEMON (Système de messagerie)
Subject: Message non remis
Postmaster-Subject: Copie postmaster : message non remis

Ceci est le système de messagerie de la machine $myhostname.

Votre message n'a pas pu être remis à un ou plusieurs destinataires.
Il est joint ci-dessous.

                   Le système de messagerie
EOT
EOF
  message postfix m-local postfix-local-unknown nosuchuser@localhost
  message postfix m-remote postfix-remote-unknown nosuch@remote.example
  message postfix m-multi postfix-multi nosuch@remote.example full@remote.example denied@remote.example
  message postfix m-data postfix-data-rejected spam@remote.example
  message postfix m-delay postfix-delay later@remote.example
  message postfix m-de postfix-german-template nosuch@remote.example
  message postfix m-fr postfix-french-template nosuch@remote.example
  in_tree postfix "
    send() { sendmail -f alice@localhost \"\$@\"; }
    send nosuchuser@localhost </m-local; send nosuch@remote.example </m-remote
    send nosuch@remote.example full@remote.example denied@remote.example </m-multi
    send spam@remote.example </m-data; send later@remote.example </m-delay; sleep 4; postqueue -f; sleep 4
    postconf -e bounce_template_file=/etc/postfix/bounce.de.cf; postfix reload >/dev/null 2>&1; sleep 1
    send nosuch@remote.example </m-de; sleep 3
    postconf -e bounce_template_file=/etc/postfix/bounce.fr.cf; postfix reload >/dev/null 2>&1; sleep 1
    send nosuch@remote.example </m-fr; sleep 3; postsuper -d ALL >/dev/null 2>&1; postfix stop >/dev/null 2>&1" || true
  collect postfix "$TREES/postfix/var/mail/alice"
}

exim_corpus() {
  tree exim exim4-daemon-light
  in_tree exim "
    id alice >/dev/null 2>&1 || useradd -m alice; rm -f /var/mail/alice
    cat >/etc/exim4/update-exim4.conf.conf <<EOF
dc_eximconfig_configtype='smarthost'
dc_other_hostnames='mx.exim.example'
dc_local_interfaces='127.0.0.1'
dc_readhost=''
dc_relay_domains=''
dc_minimaldns='false'
dc_relay_nets=''
dc_smarthost='127.0.0.1::$MX_PORT'
CFILEMODE='644'
dc_use_split_config='false'
dc_hide_mailname=''
dc_mailname_in_oh='true'
dc_localdelivery='mail_spool'
EOF
    echo mx.exim.example >/etc/mailname; update-exim4.conf
    # The fake MX is on this host: let the smarthost router and transport use it.
    sed -i -e '/^smarthost:/,/^$/ s/driver = manualroute/driver = manualroute\n  self = send/' \
      -e '/^remote_smtp_smarthost:/,/^$/ s/driver = smtp/driver = smtp\n  allow_localhost/' /var/lib/exim4/config.autogenerated
    exim4 -bV >/dev/null"
  message exim m-local exim-local-unknown nosuchuser@localhost
  message exim m-remote exim-remote-unknown nosuch@remote.example
  message exim m-multi exim-multi nosuch@remote.example full@remote.example denied@remote.example
  message exim m-data exim-data-rejected spam@remote.example
  message exim m-headers exim-headers-only nosuch@remote.example
  message exim m-delay exim-delay later@remote.example
  in_tree exim "
    send() { exim4 -odi -f alice@mx.exim.example \"\$@\"; }
    send nosuchuser@localhost </m-local; send nosuch@remote.example </m-remote
    send nosuch@remote.example full@remote.example denied@remote.example </m-multi; send spam@remote.example </m-data
    exim4 -odi -DBOUNCE_RETURN_BODY=no -f alice@mx.exim.example nosuch@remote.example </m-headers 2>/dev/null || send nosuch@remote.example </m-headers
    send later@remote.example </m-delay; sleep 2; exim4 -odi -qff -d-all+retry -oMr x 2>/dev/null >/dev/null || true
    exim4 -bpc; exim4 -Mrm \$(exim4 -bpr | awk '/^ *[0-9]+[mhd]/ {print \$3}') >/dev/null 2>&1 || true" || true
  collect exim "$TREES/exim/var/mail/alice"
}

courier_corpus() {
  tree courier courier-mta
  in_tree courier "
    id alice >/dev/null 2>&1 || useradd -m alice; rm -rf ~alice/Maildir; mkdir -p ~alice/Maildir/cur ~alice/Maildir/new ~alice/Maildir/tmp; chown -R alice ~alice/Maildir
    echo mx.courier.example >/etc/courier/me; printf 'localhost\nmx.courier.example\n' >/etc/courier/locals
    echo 'remote.example: 127.0.0.1,$MX_PORT' >/etc/courier/esmtproutes
    sed -i 's|^DEFAULTDELIVERY=.*|DEFAULTDELIVERY=./Maildir|' /etc/courier/courierd
    echo 10s >/etc/courier/warntime; echo 1m >/etc/courier/queuetime; echo 5 >/etc/courier/retryalpha; echo 1 >/etc/courier/retrybeta
    makealiases; courier stop >/dev/null 2>&1 || true; authdaemond stop >/dev/null 2>&1 || true
    mkdir -p /run/courier/authdaemon; authdaemond start; courier start >/dev/null 2>&1; sleep 2"
  message courier m-local courier-local-unknown nosuchuser@localhost
  message courier m-remote courier-remote-unknown nosuch@remote.example
  message courier m-multi courier-multi nosuch@remote.example full@remote.example
  message courier m-data courier-data-rejected spam@remote.example
  message courier m-delay courier-delay later@remote.example
  message courier m-headers courier-headers-only denied@remote.example
  in_tree courier "
    send() { sendmail -f alice@mx.courier.example \"\$@\"; }
    send nosuchuser@localhost </m-local; send nosuch@remote.example </m-remote
    send nosuch@remote.example full@remote.example </m-multi; send spam@remote.example </m-data
    sendmail -R hdrs -f alice@mx.courier.example denied@remote.example </m-headers
    send later@remote.example </m-delay; sleep 40; courier stop >/dev/null 2>&1 || true; authdaemond stop >/dev/null 2>&1 || true
    for f in ~alice/Maildir/new/* ~alice/Maildir/cur/*; do [ -f \"\$f\" ] && { echo 'From courier'; cat \"\$f\"; }; done >/tmp/alice.mbox" || true
  collect courier "$TREES/courier/tmp/alice.mbox"
}

trap '[ -n "${MX_PID:-}" ] && kill "$MX_PID" 2>/dev/null; for d in "$TREES"/*/proc; do umount "$d" 2>/dev/null || true; done' EXIT
fake_mx
for dir in "$TREES"/*/; do grep -qs remote.example "$dir/etc/hosts" || echo "127.0.0.1 localhost remote.example" >>"$dir/etc/hosts"; done
for mta in "${@:-sendmail opensmtpd dma dovecot postfix exim courier}"; do
  for one in $mta; do
    echo "$one:"
    "${one}_corpus"
  done
done
