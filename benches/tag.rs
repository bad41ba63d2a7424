//! Tag signing and verification throughput (one core).

use std::hint::black_box;
use std::path::Path;

use batv_proxy::batv::{Codec, Day, HashAlgorithm, KeyRing, TagForm};
use batv_proxy::smtp::address::Mailbox;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn codec(hash: HashAlgorithm) -> Codec {
    let keys = KeyRing::parse(
        "3 q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80=\n2 3q2+796tvu/erb7v3q2+796tvu/erb7v3q2+796tvu8=\n",
        Path::new("keys"),
    )
    .unwrap();
    Codec::new(&keys, hash, 7, TagForm::Standard)
}

fn bench(c: &mut Criterion) {
    let today = Day::parse("2026-11-25").unwrap();
    let address = Mailbox::parse("alice.smith@example.com").unwrap();
    for (name, hash) in [("sha256", HashAlgorithm::Sha256), ("sha1", HashAlgorithm::Sha1)] {
        let codec = codec(hash);
        let tagged = codec.sign(&address, today);
        let text = tagged.to_string();
        let mut group = c.benchmark_group(format!("tag/{name}"));
        group.throughput(Throughput::Elements(1));
        group.bench_function("sign", |b| b.iter(|| codec.sign(black_box(&address), today)));
        group.bench_function("verify", |b| b.iter(|| codec.verify(black_box(&tagged), today).is_ok()));
        // What the proxy does per RCPT: parse the address text, then verify.
        group.bench_function("parse_and_verify", |b| {
            b.iter(|| codec.verify(&Mailbox::parse(black_box(&text)).unwrap(), today).is_ok())
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
