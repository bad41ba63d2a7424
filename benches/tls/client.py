"""Sends N messages through a listener, one per session, from several
processes; prints messages per second. Modes: plain, starttls, implicit."""
import multiprocessing, smtplib, ssl, sys, time

MODE, PORT, TOTAL, CLIENTS = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
BODY = "Subject: bench\r\n\r\n" + ("x" * 70 + "\r\n") * 70


def context():
    c = ssl.create_default_context()
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    return c


def worker(count):
    tls = context()
    for _ in range(count):
        if MODE == "implicit":
            s = smtplib.SMTP_SSL("127.0.0.1", PORT, context=tls, timeout=30)
        else:
            s = smtplib.SMTP("127.0.0.1", PORT, timeout=30)
            if MODE == "starttls":
                s.starttls(context=tls)
        s.sendmail("alice@example.com", ["bob@example.net"], BODY)
        s.quit()


if __name__ == "__main__":
    share = TOTAL // CLIENTS
    start = time.monotonic()
    with multiprocessing.Pool(CLIENTS) as pool:
        pool.map(worker, [share] * CLIENTS)
    print(round(share * CLIENTS / (time.monotonic() - start)))
