//! `dsn::inspect` stays linear: for each pathological shape, an input four
//! times as long takes at most about four times as long (a factor of 10
//! is allowed for noise and caches; a quadratic scan shows 16 or more).
//! The shapes are those that defeat naive scanners: many boundaries, many
//! header lines, long lines, deep `>` quoting, many `<` and many header-shaped
//! lines, each also mixed at random by proptest.

use std::time::{Duration, Instant};

use batv_proxy::dsn::inspect;
use proptest::prelude::*;

/// The fastest of a few runs, to keep a busy machine's noise out.
fn time(message: &[u8]) -> Duration {
    (0..5)
        .map(|_| {
            let started = Instant::now();
            std::hint::black_box(inspect(message));
            started.elapsed()
        })
        .min()
        .unwrap_or_default()
}

fn repeated(head: &str, unit: &str, length: usize) -> Vec<u8> {
    let mut message = String::from(head);
    while message.len() < length {
        message.push_str(unit);
    }
    message.into_bytes()
}

fn assert_linear(name: &str, make: impl Fn(usize) -> Vec<u8>) {
    let small = make(32 * 1024);
    let large = make(128 * 1024);
    let (small_time, large_time) = (time(&small), time(&large));
    // Below a millisecond, timer resolution and noise dominate.
    let floor = Duration::from_micros(500);
    assert!(
        large_time <= small_time.max(floor) * 10,
        "{name}: {} bytes took {small_time:?}, {} bytes {large_time:?}",
        small.len(),
        large.len()
    );
}

/// A shape: its name and how to make an input of about n bytes.
type Shape = (&'static str, Box<dyn Fn(usize) -> Vec<u8>>);

const DAEMON: &str = "From: MAILER-DAEMON@mx.example.net\r\nSubject: Undelivered Mail Returned to Sender\r\n";

#[test]
fn pathological_shapes_scale_linearly() {
    let shapes: Vec<Shape> = vec![
        (
            "many boundaries",
            Box::new(|n| {
                repeated(
                    &format!("{DAEMON}Content-Type: multipart/report; boundary=b\r\n\r\n"),
                    "--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--bb\r\n--b \r\n",
                    n,
                )
            }),
        ),
        ("many header lines", Box::new(|n| repeated(DAEMON, "X-Field: could not be delivered\r\n", n))),
        ("one long line", Box::new(|n| repeated(&format!("{DAEMON}\r\n"), "undeliverable could not ", n))),
        ("deep > quoting", Box::new(|n| repeated(&format!("{DAEMON}\r\n"), ">>>>>>>>>>>>>>>>>>>> Received: x\r\n", n))),
        ("many <", Box::new(|n| repeated(&format!("{DAEMON}\r\n"), "<<<<a@b <x@y> ", n))),
        (
            "many header-shaped lines",
            Box::new(|n| repeated(&format!("{DAEMON}\r\n"), "Received: a\r\n\tb\r\nMessage-ID: <a@b>\r\n", n)),
        ),
        ("many indented lines", Box::new(|n| repeated(&format!("{DAEMON}\r\n"), "    Received: a\r\n    \tb\r\n", n))),
        (
            "many calendar parts",
            Box::new(|n| {
                repeated(
                    "Content-Type: multipart/mixed; boundary=c\r\n\r\n",
                    "--c\r\nContent-Type: text/calendar; method=REPLY\r\n\r\nUID:a\r\n b\r\n",
                    n,
                )
            }),
        ),
        (
            "html markup",
            Box::new(|n| {
                repeated(&format!("{DAEMON}Content-Type: text/html\r\n\r\n"), "<p><style>x</p><b>&amp;&nbsp;", n)
            }),
        ),
        (
            "many parts without blank lines",
            Box::new(|n| {
                repeated(
                    &format!("{DAEMON}Content-Type: multipart/mixed; boundary=d\r\n\r\n"),
                    "--d\r\nContent-Type: message/rfc822\r\nReceived: x\r\nMessage-ID: <m@x>\r\n",
                    n,
                )
            }),
        ),
    ];
    for (name, make) in &shapes {
        assert_linear(name, make);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// A random mix of the hostile units, repeated to 32 KiB and to 128 KiB.
    #[test]
    fn random_mixes_scale_linearly(units in proptest::collection::vec(0usize..8, 1..6)) {
        const UNITS: [&str; 8] = [
            "--b\r\n", "> ", "<", "Received: x\r\n", " \t", "could not be delivered ", "=?utf-8?q?x?=", "\r\n",
        ];
        let unit: String = units.iter().map(|&index| UNITS[index]).collect();
        let head = format!("{DAEMON}Content-Type: multipart/mixed; boundary=b\r\n\r\n");
        assert_linear(&unit, |n| repeated(&head, &unit, n));
    }
}
