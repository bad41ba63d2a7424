#!/usr/bin/env python3
"""Writes the seed inputs of each fuzz target into fuzz/seeds/<target>/.

Run from anywhere: python3 fuzz/make_seeds.py. The seeds are committed;
this script says where they come from and regenerates them.
"""

import pathlib
import struct

HERE = pathlib.Path(__file__).resolve().parent
SAMPLES = HERE.parent / "tests" / "dsn_samples"


def write(target, name, data):
    folder = HERE / "seeds" / target
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data if isinstance(data, bytes) else data.encode())


# command: one line without its CRLF.
COMMANDS = [
    "EHLO client.example.com",
    "HELO [192.0.2.7]",
    "MAIL FROM:<alice@example.com> SIZE=12345 BODY=8BITMIME",
    "mail from:<alice@example.com> BODY=8BITMIME RET=HDRS ENVID=QQ314159 SMTPUTF8",
    "MAIL FROM:<> RET=HDRS ENVID=QQ314159",
    "MAIL FROM: <Alice.Smith@Example.COM> AUTH=<> MT-PRIORITY=3 REQUIRETLS",
    'MAIL FROM:<"john doe"@example.com> SMTPUTF8',
    'MAIL FROM:<"a\\"b\\\\c"@example.com>',
    'MAIL FROM:<"a>b"@example.com> SIZE=1',
    "MAIL FROM:<prvs=3789abcdef=alice@example.com>",
    "MAIL FROM:<alice+prvs=3789abcdef@example.com>",
    "MAIL FROM:alice@example.com BODY=8BITMIME",
    "MAIL FROM:<@relay.test,@other.test:bob@example.com>",
    "MAIL FROM:<josé@exámple.com> SMTPUTF8",
    "MAIL FROM:<x@[192.0.2.1]>",
    "MAIL FROM:postmaster@[192.0.2.1] BODY=7BIT",
    "RCPT TO:<carol@remote.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;carol@remote.test",
    "RCPT TO:<carol@remote.test> NOTIFY=NEVER ORCPT=rfc822;carol+2Bx@remote.test",
    "rcpt to:<Postmaster>",
    "RCPT TO:<postmaster@example.com>",
    "RCPT TO:<用户@例子.广告>",
    "RCPT TO:<x@[IPv6:2001:db8::1]>",
    "RCPT TO:<PRVS=3789ABCDEF=bob@example.com>",
    "RCPT TO: <bob+news+prvs=3789abcdef@example.com> NOTIFY=DELAY",
    "RCPT TO:bob@example.com",
    "DATA",
    "RSET",
    "QUIT",
    "STARTTLS",
    "AUTH PLAIN AGFsaWNlAHNlY3JldA==",
    "AUTH LOGIN",
    "NOOP whatever",
    "VRFY alice",
    "EXPN staff",
    "HELP MAIL",
    "BDAT 10 LAST",
    "XCLIENT ADDR=192.0.2.1 NAME=client.example.com",
    "XFORWARD HELO=client.example.com",
    "ETRN example.com",
]
for index, line in enumerate(COMMANDS):
    write("command", f"line-{index:02}", line)

# reply: bytes from an upstream, possibly with more after the reply.
REPLIES = {
    "greeting": b"220 mx.example.com ESMTP Postfix\r\n",
    "ehlo-postfix": b"250-mx.example.com\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-VRFY\r\n250-ETRN\r\n"
    b"250-STARTTLS\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-DSN\r\n250-SMTPUTF8\r\n250 CHUNKING\r\n",
    "ehlo-exim": b"250-mx.example.com Hello client.example.com [192.0.2.7]\r\n250-SIZE 52428800\r\n"
    b"250-8BITMIME\r\n250-PIPELINING\r\n250-PIPE_CONNECT\r\n250-CHUNKING\r\n250-STARTTLS\r\n250-PRDR\r\n250 HELP\r\n",
    "ehlo-smtp-sink": b"250-sink.example.com\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 \r\n",
    "bare-code": b"250\r\n",
    "bare-lf": b"250-bare\n250 lf\n",
    "stray-cr": b"550 a\rb\r\n",
    "mixed-codes": b"250-a\r\n550 b\r\n",
    "pipelined": b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n",
    "queued": b"250 2.0.0 Ok: queued as 4XyZ1234\r\n221 2.0.0 Bye\r\n",
    "unknown-user": b"550 5.1.1 <bob@example.com>: Recipient address rejected: User unknown in local recipient table\r\n",
    "timeout": b"421 4.4.2 mx.example.com Error: timeout exceeded\r\n",
    "greylist": b"450-4.2.0 <bob@example.com>: Recipient address rejected:\r\n450 4.2.0 Greylisted, see https://example.com/grey\r\n",
    "incomplete": b"250-first\r\n250 sec",
    "code-out-of-range": b"199 what\r\n",
    "utf8": b"250 2.0.0 Ok: queued as \xc3\xa9t\xc3\xa9\r\n",
}
for name, data in REPLIES.items():
    write("reply", name, data)


# data_scan: 2 bytes line limit, 4 bytes chunk sizes, then the stream.
def data_seed(limit, sizes, stream):
    return struct.pack("<H", limit - 1) + bytes(sizes) + stream


MESSAGE = (
    b"From: Alice <alice@example.com>\r\nTo: bob@example.net\r\nSubject: hello\r\n"
    b"Message-ID: <1@example.com>\r\n\r\nHi Bob,\r\n..a dot-stuffed line\r\n.\r\n..\r\nbye\r\n"
)
SMUGGLED = b"MAIL FROM:<mallory@example.com>\r\nRCPT TO:<victim@example.net>\r\nDATA\r\nSubject: smuggled\r\n\r\nx\r\n.\r\n"
STREAMS = {
    "message": MESSAGE + b".\r\nQUIT\r\n",
    "empty-message": b".\r\nQUIT\r\n",
    "8bit-nul": b"caf\xc3\xa9 \x00 \xff\r\n.\r\n",
    "commands": b"EHLO client.example.com\r\nMAIL FROM:<alice@example.com> SIZE=10\r\nRCPT TO:<bob@example.net>\r\nDATA\r\n",
    "no-end": MESSAGE,
    # SMTP smuggling (SEC Consult, December 2023): end-of-data look-alikes.
    "smuggle-lf-dot-lf": b"Subject: x\r\n\r\nbody\n.\n" + SMUGGLED,
    "smuggle-crlf-dot-lf": b"Subject: x\r\n\r\nbody\r\n.\n" + SMUGGLED,
    "smuggle-lf-dot-crlf": b"Subject: x\r\n\r\nbody\n.\r\n" + SMUGGLED,
    "smuggle-cr-dot-cr": b"Subject: x\r\n\r\nbody\r.\r" + SMUGGLED,
    "smuggle-crlf-dot-cr": b"Subject: x\r\n\r\nbody\r\n.\r" + SMUGGLED,
    "smuggle-cr-dot-crlf": b"Subject: x\r\n\r\nbody\r.\r\n" + SMUGGLED,
    "smuggle-crlf-nul-dot": b"Subject: x\r\n\r\nbody\r\n\x00.\r\n" + SMUGGLED,
    "smuggle-lf-dot-cr-lf": b"Subject: x\r\n\r\nbody\n.\r\r\n" + SMUGGLED,
    "bare-lf-then-end": b"x\ny\r\n.\r\nafter",
    "long-line": b"X-Long: " + b"a" * 1200 + b"\r\n.\r\n",
}
for index, (name, stream) in enumerate(STREAMS.items()):
    sizes = [[1, 2, 3, 4], [0x81, 5, 0x90, 1], [7, 7, 7, 7], [0xff, 0, 0xc0, 3]][index % 4]
    write("data_scan", name, data_seed([512, 1000, 64, 5][index % 4], sizes, stream))


# tag: 4 bytes day, 2 bytes lifetime, 1 byte settings, then the address.
def tag_seed(day, lifetime, settings, address):
    return struct.pack("<IHB", day, lifetime - 1, settings) + address.encode()


DAY = 20782  # 2026-11-25
ADDRESSES = [
    "alice@example.com",
    "Alice.Smith@Example.COM",
    "user+tag@example.com",
    "john..doe@example.com",
    "o'brien@example.ie",
    '"john doe"@example.com',
    '"a\\"b\\\\c"@example.com',
    '"a@b"@example.com',
    "josé@exámple.com",
    "用户@例子.广告",
    "x@[192.0.2.1]",
    "x@[IPv6:2001:db8::1]",
    "prvs=3789abcdef=alice@example.com",
    "PRVS=37894E943A=alice@example.com",
    "alice+news+prvs=3789abcdef@example.com",
    '"prvs=3789abcdef=john doe"@example.com',
    "prvs=37xx000000=alice@example.com",
    "prvsfan@example.com",
    "alice+prvs=3789abc@example.com",
    "bob@example.com.",
]
for index, address in enumerate(ADDRESSES):
    write("tag", f"address-{index:02}", tag_seed(DAY, 7, index % 8, address))
# Around the stamp's wrap on 2027-07-01 (day 21000) and the longest lifetime.
write("tag", "wrap-1", tag_seed(20999, 7, 0, "alice@example.com"))
write("tag", "wrap-2", tag_seed(20995, 7, 1, "alice@example.com"))
write("tag", "lifetime-365", tag_seed(DAY, 365, 2, "alice@example.com"))
write("tag", "lifetime-1", tag_seed(DAY, 1, 3, "Alice@Example.com"))

# dsn: the sample messages, and two small hand-made ones.
for sample in sorted(SAMPLES.glob("*.eml")):
    write("dsn", sample.stem, sample.read_bytes())
write(
    "dsn",
    "report-minimal",
    b"Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n--b\r\n"
    b"Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.net\r\n\r\n"
    b"Final-Recipient: rfc822; bob@example.net\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n--b\r\n"
    b"Content-Type: text/rfc822-headers\r\n\r\nMessage-ID: <orig.1@example.com>\r\n\r\n--b--\r\n",
)
write(
    "dsn",
    "reply-references",
    b"Message-ID: <own@example.net>\r\nIn-Reply-To: <a@example.com>\r\nReferences: <b@example.com> <a@example.com>\r\n"
    b"Auto-Submitted: auto-replied\r\nSubject: Out of office\r\n\r\nI am away.\r\n",
)
