//! Hand-checked samples of what other MTAs and mail programs send
//! (tests/dsn_samples/), each with the verdict `dsn::inspect` must give.
//! postfix-de-template.eml was written by Postfix 3.7 itself (see
//! dsn_corpus.rs); the others follow the formats of the software named in
//! their file names.

use std::path::Path;

use batv_proxy::dsn::{Kind, inspect};

struct Sample {
    file: &'static str,
    kind: Kind,
    rule: &'static str,
    original: Option<&'static str>,
    referenced: &'static [&'static str],
}

const SAMPLES: &[Sample] = &[
    Sample {
        file: "qmail.eml",
        kind: Kind::Dsn,
        rule: "qmail",
        original: Some("<20260112081401.GA4242@mx.example.com>"),
        referenced: &["<20260112081401.GA4242@mx.example.com>"],
    },
    Sample {
        file: "exim-plain.eml",
        kind: Kind::Dsn,
        rule: "exim",
        original: Some("<54D0F0D1.3050904@example.com>"),
        referenced: &["<54D0F0D1.3050904@example.com>"],
    },
    Sample {
        file: "lotus-notes.eml",
        kind: Kind::Dsn,
        rule: "lotus",
        original: Some("<49F866A2.4060205@example.com>"),
        referenced: &["<49F866A2.4060205@example.com>"],
    },
    Sample {
        // Domino names the failed message by subject only.
        file: "lotus-domino.eml",
        kind: Kind::Dsn,
        rule: "lotus",
        original: None,
        referenced: &[],
    },
    Sample {
        file: "exchange-5.5-ndr.eml",
        kind: Kind::Dsn,
        rule: "exchange",
        original: Some("<40917A37.8030101@example.com>"),
        referenced: &["<40917A37.8030101@example.com>"],
    },
    Sample {
        file: "exchange-2016-ndr.eml",
        kind: Kind::Dsn,
        rule: "rfc3464",
        original: Some("<CAF8kWq1zX9pQ2+Lr0s@mail.example.com>"),
        referenced: &["<CAF8kWq1zX9pQ2+Lr0s@mail.example.com>"],
    },
    Sample {
        file: "exchange-oof.eml",
        kind: Kind::AutoReply,
        rule: "exchange_oof",
        original: Some("<d41d8cd98f00b204e9800998ecf8427e@example.com>"),
        referenced: &["<d41d8cd98f00b204e9800998ecf8427e@example.com>"],
    },
    Sample {
        file: "postfix-de-template.eml",
        kind: Kind::Dsn,
        rule: "rfc3464",
        original: Some("<postfix-german-18542-1795627263759544190@example.com>"),
        referenced: &["<postfix-german-18542-1795627263759544190@example.com>"],
    },
    Sample {
        file: "postfix-fr-template.eml",
        kind: Kind::Dsn,
        rule: "rfc3464",
        original: Some("<8b1f6c2e-3d4a-4e5f-9a0b-1c2d3e4f5a6b@example.com>"),
        referenced: &["<8b1f6c2e-3d4a-4e5f-9a0b-1c2d3e4f5a6b@example.com>"],
    },
    Sample {
        file: "mdn-thunderbird.eml",
        kind: Kind::AutoReply,
        rule: "mdn",
        original: Some("<5d2c9a71-0b4e-4f3a-9c8d-7e6f5a4b3c2d@example.com>"),
        referenced: &["<5d2c9a71-0b4e-4f3a-9c8d-7e6f5a4b3c2d@example.com>"],
    },
    Sample {
        file: "mdn-outlook.eml",
        kind: Kind::AutoReply,
        rule: "mdn",
        original: Some("<000001dcaf8e$1c2d3e40$54b7bac0$@example.com>"),
        referenced: &["<000001dcaf8e$1c2d3e40$54b7bac0$@example.com>"],
    },
    Sample {
        // vacation(1) answers without In-Reply-To.
        file: "vacation.eml",
        kind: Kind::AutoReply,
        rule: "vacation",
        original: None,
        referenced: &[],
    },
    Sample {
        file: "sieve-vacation.eml",
        kind: Kind::AutoReply,
        rule: "auto_submitted",
        original: Some("<87h6j2k9xq.fsf@laptop.example.com>"),
        referenced: &["<87h6j2k9xq.fsf@laptop.example.com>"],
    },
    Sample {
        file: "challenge-response.eml",
        kind: Kind::AutoReply,
        rule: "challenge_response",
        original: Some("<a7c3e1f0-2b4d-4c6e-8f0a-1b3d5f7a9c0e@example.com>"),
        referenced: &["<a7c3e1f0-2b4d-4c6e-8f0a-1b3d5f7a9c0e@example.com>"],
    },
    Sample {
        // Mentions being out of office, answers a message: still a person.
        file: "human-reply.eml",
        kind: Kind::None,
        rule: "none",
        original: None,
        referenced: &["<20260112081401.GA4242@mx.example.com>"],
    },
    Sample {
        // Bulk mail: Precedence: bulk and Auto-Submitted: auto-generated are
        // not reply markers.
        file: "newsletter.eml",
        kind: Kind::None,
        rule: "none",
        original: None,
        referenced: &[],
    },
];

fn samples_directory() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/dsn_samples"))
}

#[test]
fn samples_get_their_verdicts() {
    let mut failures = Vec::new();
    for sample in SAMPLES {
        let bytes = std::fs::read(samples_directory().join(sample.file)).expect(sample.file);
        let inspection = inspect(&bytes);
        let got = (
            inspection.kind,
            inspection.rule,
            inspection.original_message_id.as_deref(),
            inspection.referenced_ids.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        let expected = (sample.kind, sample.rule, sample.original, sample.referenced.to_vec());
        if got != expected {
            failures.push(format!("{}: got {got:?}, expected {expected:?} ({})", sample.file, inspection.reason));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_sample_file_has_a_verdict() {
    for entry in std::fs::read_dir(samples_directory()).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(SAMPLES.iter().any(|sample| sample.file == name), "{name} has no expected verdict in SAMPLES");
    }
}

#[test]
fn samples_survive_line_ending_changes() {
    for sample in SAMPLES {
        let text = std::fs::read_to_string(samples_directory().join(sample.file)).expect(sample.file);
        let lf = text.replace("\r\n", "\n");
        let crlf = lf.replace('\n', "\r\n");
        for (endings, message) in [("LF", lf), ("CRLF", crlf)] {
            let inspection = inspect(message.as_bytes());
            assert_eq!(
                (inspection.kind, inspection.rule, inspection.original_message_id.as_deref()),
                (sample.kind, sample.rule, sample.original),
                "{} with {endings} line endings: {}",
                sample.file,
                inspection.reason
            );
        }
    }
}
