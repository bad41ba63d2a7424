//! `batv-proxy keys status`: every key with its fingerprint, its role at
//! a given moment and its activation, one line each, so that the output
//! of two hosts can be compared line by line. Never a secret.

use crate::batv::{Codec, Moment};

/// The table, with a header line.
pub fn table(codec: &Codec, now: Moment) -> String {
    let mut rows = vec![[
        "key_set".to_owned(),
        "key_id".to_owned(),
        "fingerprint".to_owned(),
        "role".to_owned(),
        "activation".to_owned(),
    ]];
    for (key, role) in codec.key_roles(now) {
        let activation = match key.activates {
            None => "always".to_owned(),
            Some(at) => at.rfc3339(),
        };
        rows.push([key.key_set, key.id.to_string(), key.fingerprint, role.as_str().to_owned(), activation]);
    }
    let widths: Vec<usize> = (0..5).map(|column| rows.iter().map(|row| row[column].len()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row.iter().zip(&widths).map(|(cell, width)| format!("{cell:<width$}")).collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out.push_str(&format!("# as of {}\n", now.rfc3339()));
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::batv::{HashAlgorithm, KeyRing, TagForm};

    #[test]
    fn lists_every_key_with_its_role_and_never_a_secret() {
        let ring =
            KeyRing::parse("0 c2VjcmV0LXplcm8=\n1 c2VjcmV0LW9uZQ== activate=2030-01-01T00:00:00Z\n", Path::new("k"))
                .unwrap();
        let tenant = KeyRing::parse("4 dGVuYW50\n", Path::new("t")).unwrap();
        let codec = Codec::new(&ring, HashAlgorithm::Sha256, 7, TagForm::Standard)
            .with_domain_keys(&["tenant.example".into(), "*.tenant.example".into()], &tenant);
        let now = Moment::parse_rfc3339("2029-12-31T23:59:59Z").unwrap();
        let text = table(&codec, now);
        let lines: Vec<Vec<&str>> = text.lines().map(|line| line.split_whitespace().collect()).collect();
        assert_eq!(lines[0], ["key_set", "key_id", "fingerprint", "role", "activation"]);
        assert_eq!(lines[1][..2], ["default", "0"]);
        assert_eq!(lines[1][3..], ["signing", "always"]);
        assert_eq!(lines[2][3..], ["staged", "2030-01-01T00:00:00Z"]);
        assert_eq!(lines[3][..2], ["tenant.example", "4"]);
        assert_eq!(lines[3][3], "signing");
        for secret in ["c2VjcmV0LXplcm8", "secret-zero", "dGVuYW50", "tenant\n"] {
            assert!(!text.contains(secret), "{secret} in\n{text}");
        }
        let later = table(&codec, Moment::parse_rfc3339("2030-01-01T00:00:00Z").unwrap());
        assert!(later.lines().nth(1).unwrap().contains("verifying"), "{later}");
        assert!(later.lines().nth(2).unwrap().contains("signing"), "{later}");
    }
}
