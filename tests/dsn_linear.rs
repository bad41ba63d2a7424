//! `dsn::inspect` stays linear: for each pathological shape, an input eight
//! times as long takes at most about eight times as long (a factor of 24
//! is allowed for noise and caches; a quadratic scan shows 64). The
//! measurements run one at a time, small and large interleaved, and the
//! fastest of several runs counts, so that a busy machine does not fail
//! the test; `a_quadratic_scan_is_caught` shows that it still can fail.
//! The shapes are those that defeat naive scanners: many boundaries, many
//! header lines, long lines, deep `>` quoting, many `<` and many header-shaped
//! lines, each also mixed at random by proptest.

use std::time::{Duration, Instant};

use batv_proxy::dsn::inspect;
use proptest::prelude::*;

/// The fastest of a few runs of `work`, to keep a busy machine's noise out.
fn time(work: &dyn Fn(&[u8]), message: &[u8]) -> Duration {
    (0..3)
        .map(|_| {
            let started = Instant::now();
            work(message);
            started.elapsed()
        })
        .min()
        .unwrap_or_default()
}

fn run_inspect(message: &[u8]) {
    std::hint::black_box(inspect(message));
}

fn repeated(head: &str, unit: &str, length: usize) -> Vec<u8> {
    let mut message = String::from(head);
    while message.len() < length {
        message.push_str(unit);
    }
    message.into_bytes()
}

fn assert_linear(name: &str, make: impl Fn(usize) -> Vec<u8>) {
    assert_linear_work(name, &run_inspect, make);
}

/// Timing tests in this file do not run side by side.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn assert_linear_work(name: &str, work: &dyn Fn(&[u8]), make: impl Fn(usize) -> Vec<u8>) {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    // Smaller in an unoptimised build, which is some thirty times slower.
    let small_length = if cfg!(debug_assertions) { 16 * 1024 } else { 48 * 1024 };
    let small = make(small_length);
    let large = make(8 * small_length);
    let (mut small_time, mut large_time) = (Duration::MAX, Duration::MAX);
    for _ in 0..3 {
        small_time = small_time.min(time(work, &small));
        large_time = large_time.min(time(work, &large));
    }
    // Below this, timer resolution and noise dominate.
    let floor = Duration::from_micros(200);
    assert!(
        large_time <= small_time.max(floor) * 24,
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
        ("one long line of quote marks", Box::new(|n| repeated(&format!("{DAEMON}\r\n"), "> ", n))),
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

/// The guard itself can fail: a scan that is quadratic in the number of
/// lines, as a naive "find the previous line that …" would be, is caught.
#[test]
#[should_panic(expected = "took")]
fn a_quadratic_scan_is_caught() {
    let quadratic = |message: &[u8]| {
        let lines: Vec<&[u8]> = message.split(|&byte| byte == b'\n').collect();
        let mut same = 0usize;
        for (index, line) in lines.iter().enumerate() {
            same += lines[..index].iter().filter(|earlier| earlier.len() == line.len()).count();
        }
        std::hint::black_box(same);
    };
    assert_linear_work("quadratic", &quadratic, |n| repeated(DAEMON, "Received: x\r\n", n));
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: if cfg!(debug_assertions) { 4 } else { 12 },
        // A timing failure on a loaded machine is not a case worth replaying.
        failure_persistence: None, ..ProptestConfig::default() })]

    /// A random mix of the hostile units, repeated to n and 8n bytes.
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
