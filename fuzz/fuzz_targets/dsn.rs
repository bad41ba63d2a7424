//! `dsn::inspect` on any bytes never panics, and `to_json()` is one JSON
//! object with exactly the documented keys in the documented order
//! (`kind`, `original_message_id`, `reason` first, a fixed interface for
//! scripts; then `rule`, `referenced_ids`), holding what the `Inspection`
//! holds: a known kind, a rule that belongs to it, a non-empty reason, and
//! at most 64 distinct referenced ids led by the original's.

#![no_main]

use std::fmt;

use batv_proxy::dsn::{Kind, inspect};
use libfuzzer_sys::fuzz_target;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::Value;

const KEYS: [&str; 5] = ["kind", "original_message_id", "reason", "rule", "referenced_ids"];
const DSN_RULES: [&str; 9] =
    ["rfc3464", "qmail", "exim", "opensmtpd", "sendmail", "postfix_plain", "exchange", "lotus", "plain_bounce"];
const AUTO_REPLY_RULES: [&str; 7] =
    ["mdn", "challenge_response", "exchange_oof", "vacation", "auto_submitted", "x_autoreply", "precedence"];

/// The members of a JSON object in the order written.
struct Ordered(Vec<(String, Value)>);

impl<'de> serde::Deserialize<'de> for Ordered {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Members;
        impl<'de> Visitor<'de> for Members {
            type Value = Ordered;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Ordered, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry::<String, Value>()? {
                    members.push(member);
                }
                Ok(Ordered(members))
            }
        }
        deserializer.deserialize_map(Members)
    }
}

fuzz_target!(|message: &[u8]| {
    let inspection = inspect(message);
    let json = inspection.to_json();
    let Ordered(members) = serde_json::from_str(&json).unwrap_or_else(|error| panic!("not JSON ({error}): {json}"));
    let keys: Vec<&str> = members.iter().map(|(key, _)| key.as_str()).collect();
    assert_eq!(keys, KEYS, "{json}");
    let value = |key: &str| &members.iter().find(|(k, _)| k == key).expect("checked above").1;

    assert_eq!(value("kind"), inspection.kind.as_str(), "{json}");
    assert!(["dsn", "autoreply", "none"].contains(&inspection.kind.as_str()));
    assert_eq!(value("rule"), inspection.rule, "{json}");
    let rules_of_kind: &[&str] = match inspection.kind {
        Kind::Dsn => &DSN_RULES,
        Kind::AutoReply => &AUTO_REPLY_RULES,
        Kind::None => &["none"],
    };
    assert!(rules_of_kind.contains(&inspection.rule), "rule {} for kind {}", inspection.rule, inspection.kind);
    assert_eq!(value("reason"), inspection.reason.as_str(), "{json}");
    assert!(!inspection.reason.is_empty(), "{json}");
    match (value("original_message_id"), &inspection.original_message_id) {
        (Value::Null, None) => {}
        (Value::String(json_id), Some(id)) => {
            assert_eq!(json_id, id);
            assert_eq!(inspection.referenced_ids.first(), Some(id), "the original does not lead: {json}");
        }
        (json_id, id) => panic!("original_message_id {json_id} for {id:?}"),
    }
    let ids: Vec<Value> = inspection.referenced_ids.iter().cloned().map(Value::String).collect();
    assert_eq!(value("referenced_ids"), &Value::Array(ids), "{json}");
    assert!(inspection.referenced_ids.len() <= 64, "{} referenced ids", inspection.referenced_ids.len());
    for (index, id) in inspection.referenced_ids.iter().enumerate() {
        assert!(!inspection.referenced_ids[..index].contains(id), "{id} twice: {json}");
    }
});
