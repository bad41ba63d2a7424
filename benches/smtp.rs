//! Hot paths of the SMTP layer: command parsing and the DATA scan
//! (end-of-data and bare CR/LF detection).

use std::hint::black_box;

use batv_proxy::smtp::command::Command;
use batv_proxy::smtp::data::{DataScanner, Scan};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// A realistic message body: 76-character lines of text.
fn message(size: usize) -> Vec<u8> {
    let line = b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tem\r\n";
    let mut body = Vec::with_capacity(size + 100);
    while body.len() < size {
        body.extend_from_slice(line);
    }
    body.extend_from_slice(b".\r\n");
    body
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("command");
    group.throughput(Throughput::Elements(1));
    for (name, line) in [
        ("mail", &b"MAIL FROM:<alice.smith@example.com> SIZE=5120 BODY=8BITMIME"[..]),
        ("rcpt", &b"RCPT TO:<prvs=3789abcdef=bob@example.com> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob@example.com"[..]),
        ("noop", &b"NOOP"[..]),
    ] {
        group.bench_function(name, |b| b.iter(|| Command::parse(black_box(line)).unwrap()));
    }
    group.finish();

    let mut group = c.benchmark_group("data_scan");
    for (name, body) in [
        ("text_1MiB", message(1 << 20)),
        ("long_lines_1MiB", {
            let mut body = vec![b'x'; 1 << 20];
            body.extend_from_slice(b"\r\n.\r\n");
            body
        }),
    ] {
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut scanner = DataScanner::new();
                // 16 KiB reads, as the proxy does.
                for chunk in body.chunks(16 * 1024) {
                    if let Scan::End(_) = scanner.scan(black_box(chunk)) {
                        break;
                    }
                }
                scanner.size()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
