//! The properties the `dsn` fuzz target checks, as one function: the
//! target calls it on what libFuzzer generates, and
//! `tests/dsn_fuzz_corpus.rs` (`#[path]`-included there) on the committed
//! fuzz corpus, seeds and message corpus on stable Rust.
//!
//! `dsn::inspect` on any bytes never panics, and `to_json()` is one JSON
//! object with exactly the documented keys in the documented order
//! (`kind`, `original_message_id`, `reason` first, a fixed interface for
//! scripts; then `rule`, `referenced_ids`, `references`, `calendar_uids`,
//! `reporting_mta`), holding what the `Inspection` holds: a known kind, a rule that belongs
//! to it, a non-empty reason, at most 64 distinct referenced ids led by the
//! original's, and all of them, in order, at the head of the (at most 128,
//! distinct) references.

use std::fmt;

use batv_proxy::dsn::{
    AUTO_REPLY_RULES, Kind, MAX_CALENDAR_UIDS, MAX_REFERENCED_IDS, MAX_REFERENCES, dsn_rules, inspect,
};
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::Value;

const KEYS: [&str; 8] =
    ["kind", "original_message_id", "reason", "rule", "referenced_ids", "references", "calendar_uids", "reporting_mta"];

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

pub fn inspection_properties(message: &[u8]) {
    let inspection = inspect(message);
    let json = inspection.to_json();
    let Ordered(members) = serde_json::from_str(&json).unwrap_or_else(|error| panic!("not JSON ({error}): {json}"));
    let keys: Vec<&str> = members.iter().map(|(key, _)| key.as_str()).collect();
    assert_eq!(keys, KEYS, "{json}");
    let value = |key: &str| &members.iter().find(|(k, _)| k == key).expect("checked above").1;

    assert_eq!(value("kind"), inspection.kind.as_str(), "{json}");
    assert!(["dsn", "autoreply", "none"].contains(&inspection.kind.as_str()));
    assert_eq!(value("rule"), inspection.rule, "{json}");
    let rule_fits = match inspection.kind {
        Kind::Dsn => dsn_rules().any(|rule| rule == inspection.rule),
        Kind::AutoReply => AUTO_REPLY_RULES.contains(&inspection.rule),
        Kind::None => inspection.rule == "none",
    };
    assert!(rule_fits, "rule {} for kind {}", inspection.rule, inspection.kind);
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
    assert!(
        inspection.referenced_ids.len() <= MAX_REFERENCED_IDS,
        "{} referenced ids",
        inspection.referenced_ids.len()
    );
    for (index, id) in inspection.referenced_ids.iter().enumerate() {
        assert!(!inspection.referenced_ids[..index].contains(id), "{id} twice: {json}");
        assert_eq!(inspection.references.get(index).map(|reference| &reference.id), Some(id), "{json}");
    }
    assert!(inspection.references.len() <= MAX_REFERENCES, "{} references", inspection.references.len());
    for (index, reference) in inspection.references.iter().enumerate() {
        assert!(!inspection.references[..index].iter().any(|earlier| earlier.id == reference.id), "twice: {json}");
        assert!(reference.id.starts_with('<') && reference.id.ends_with('>') && reference.id.contains('@'), "{json}");
    }
    let references = value("references").as_array().expect("references is an array");
    assert_eq!(references.len(), inspection.references.len(), "{json}");
    for (json_reference, reference) in references.iter().zip(&inspection.references) {
        assert_eq!(json_reference["id"], reference.id.as_str(), "{json}");
        assert_eq!(json_reference["found"], reference.found.as_str(), "{json}");
    }
    assert!(inspection.calendar_uids.len() <= MAX_CALENDAR_UIDS, "{json}");
    let uids: Vec<Value> = inspection.calendar_uids.iter().cloned().map(Value::String).collect();
    assert_eq!(value("calendar_uids"), &Value::Array(uids), "{json}");
    let reporting_mta = inspection.reporting_mta.clone().map_or(Value::Null, Value::String);
    assert_eq!(value("reporting_mta"), &reporting_mta, "{json}");
    if let Some(host) = &inspection.reporting_mta {
        assert!(!host.is_empty() && host.len() <= 255 && host.bytes().all(|byte| byte.is_ascii_graphic()), "{json}");
    }
}
