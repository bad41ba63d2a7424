//! Parsers for one value each: the kinds of value the configuration uses
//! (durations, sizes, numbers in a range, one of a few words, addresses,
//! paths), each with the problem and fix an admin sees when it is wrong.
//! A parser gets the key's name (for examples like `max_errors = 20`) and
//! the TOML value, and is handed to [`Section::get`](super::section::Section::get).

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::Path;
use std::path::PathBuf;
use std::time::Duration;

use toml::Value;

use crate::smtp::address::Domain;

/// What is wrong with a value and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Problem {
    /// A part of the value the problem is in (a domain of
    /// `message_id_patterns`), appended to the key's path.
    pub below: Option<String>,
    pub problem: String,
    pub fix: String,
}

impl Problem {
    pub fn new(problem: impl Into<String>, fix: impl Into<String>) -> Self {
        Problem { below: None, problem: problem.into(), fix: fix.into() }
    }

    pub fn below(mut self, part: impl Into<String>) -> Self {
        self.below = Some(part.into());
        self
    }
}

/// A value, or every problem found in it (a list can have several).
pub(super) type Parsed<T> = Result<T, Vec<Problem>>;

pub(super) fn invalid<T>(problem: impl Into<String>, fix: impl Into<String>) -> Parsed<T> {
    Err(vec![Problem::new(problem, fix)])
}

pub(super) fn type_name(value: &Value) -> &'static str {
    match value {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a number",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a date",
        Value::Array(_) => "a list",
        Value::Table(_) => "a table",
    }
}

pub(super) fn wrong_type<T>(value: &Value, wanted: &str, example: &str) -> Parsed<T> {
    invalid(format!("must be {wanted}, not {}", type_name(value)), format!("write it like {example}"))
}

/// Seconds (`300`) or a humantime duration (`"5m"`, `"90s"`), above zero.
pub(super) fn duration(_key: &str, value: &Value) -> Parsed<Duration> {
    match value {
        Value::Integer(seconds) if *seconds > 0 => Ok(Duration::from_secs(*seconds as u64)),
        Value::String(text) => match humantime::parse_duration(text) {
            Ok(duration) if !duration.is_zero() => Ok(duration),
            _ => invalid(
                format!("\"{text}\" is not a duration"),
                "write seconds (300) or a duration like \"5m\", \"90s\"",
            ),
        },
        other => invalid(
            format!("must be a positive duration, not {}", type_name(other)),
            "write seconds (300) or a duration like \"5m\"",
        ),
    }
}

/// Bytes (`10240000`) or a size with a unit (`"50MiB"`), above zero.
pub(super) fn size(_key: &str, value: &Value) -> Parsed<u64> {
    match value {
        Value::Integer(bytes) if *bytes > 0 => Ok(*bytes as u64),
        Value::String(text) => match parse_size(text) {
            Some(bytes) if bytes > 0 => Ok(bytes),
            _ => invalid(
                format!("\"{text}\" is not a size"),
                "write bytes (10240000) or a size like \"50MiB\", \"10MB\"",
            ),
        },
        other => invalid(
            format!("must be a positive size, not {}", type_name(other)),
            "write bytes or a size like \"50MiB\"",
        ),
    }
}

/// `10240000`, `50MiB`, `10MB`, `512k`: binary and decimal units.
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1000,
        "kib" => 1024,
        "m" | "mb" => 1000 * 1000,
        "mib" => 1024 * 1024,
        "g" | "gb" => 1000 * 1000 * 1000,
        "gib" => 1024 * 1024 * 1024,
        _ => return None,
    };
    number.checked_mul(factor)
}

pub(super) fn flag(key: &str, value: &Value) -> Parsed<bool> {
    match value {
        Value::Boolean(value) => Ok(*value),
        other => wrong_type(other, "true or false", &format!("{key} = true")),
    }
}

/// A whole number within `range`.
pub(super) fn number<T>(range: RangeInclusive<T>) -> impl FnOnce(&str, &Value) -> Parsed<T>
where
    T: Copy + TryFrom<i64> + TryInto<i64>,
{
    let bound = |n: T| n.try_into().unwrap_or(i64::MAX);
    let (low, high) = (bound(*range.start()), bound(*range.end()));
    move |key, value| match value {
        Value::Integer(n) => match T::try_from(*n) {
            Ok(within) if (low..=high).contains(n) => Ok(within),
            _ => invalid(format!("{n} is out of range"), format!("use a whole number from {low} to {high}")),
        },
        other => wrong_type(other, "a whole number", &format!("{key} = {}", low.max(1))),
    }
}

/// One of a few words, each standing for a value.
pub(super) fn choice<T: Copy>(options: &'static [(&'static str, T)]) -> impl FnOnce(&str, &Value) -> Parsed<T> {
    move |key, value| {
        let text = match value {
            Value::String(text) => text,
            other => return wrong_type(other, "a string", &format!("{key} = \"{}\"", options[0].0)),
        };
        match options.iter().find(|(name, _)| name == text) {
            Some((_, value)) => Ok(*value),
            None => {
                let names: Vec<String> = options.iter().map(|(name, _)| format!("\"{name}\"")).collect();
                invalid(
                    format!("\"{text}\" is not one of {}", names.join(", ")),
                    format!("use one of {}", names.join(", ")),
                )
            }
        }
    }
}

/// A string; `example` shows the key written out.
pub(super) fn text(example: &'static str) -> impl FnOnce(&str, &Value) -> Parsed<String> {
    move |_key, value| match value {
        Value::String(text) => Ok(text.clone()),
        other => wrong_type(other, "a string", example),
    }
}

/// A list of strings.
pub(super) fn texts(key: &str, value: &Value) -> Parsed<Vec<String>> {
    let example = format!("{key} = [\"...\"]");
    match value {
        Value::Array(items) => items
            .iter()
            .map(|item| match item {
                Value::String(text) => Ok(text.clone()),
                other => wrong_type(other, "a list of strings", &example),
            })
            .collect(),
        other => wrong_type(other, "a list of strings", &example),
    }
}

/// A path; a relative one is taken relative to `base`.
pub(super) fn path(base: &Path, example: &'static str) -> impl FnOnce(&str, &Value) -> Parsed<PathBuf> {
    move |key, value| text(example)(key, value).map(|text| relative_to(base, &text))
}

pub(super) fn relative_to(base: &Path, text: &str) -> PathBuf {
    let path = Path::new(text);
    if path.is_absolute() { path.to_owned() } else { base.join(path) }
}

/// A path to a file that must exist (a certificate, a CA file).
pub(super) fn existing_file(
    base: &Path,
    example: &'static str,
    fix: &'static str,
) -> impl FnOnce(&str, &Value) -> Parsed<PathBuf> {
    move |key, value| {
        let path = path(base, example)(key, value)?;
        match std::fs::metadata(&path) {
            Ok(_) => Ok(path),
            Err(error) => invalid(format!("cannot read {}: {error}", path.display()), fix),
        }
    }
}

/// `IP:port`; `example` shows the key written out.
pub(super) fn socket_address(example: &'static str) -> impl FnOnce(&str, &Value) -> Parsed<SocketAddr> {
    move |key, value| {
        let text = text(example)(key, value)?;
        text.parse()
            .or_else(|_| invalid(format!("\"{text}\" is not an IP address and port"), format!("write {example}")))
    }
}

/// `host:port`, the host a name or an address.
pub(super) fn host_port(example: &'static str) -> impl FnOnce(&str, &Value) -> Parsed<String> {
    move |key, value| {
        let text = text(example)(key, value)?;
        if valid_host_port(&text) {
            Ok(text)
        } else {
            invalid(format!("\"{text}\" is not host:port"), format!("write {example}"))
        }
    }
}

fn valid_host_port(text: &str) -> bool {
    if text.parse::<SocketAddr>().is_ok() {
        return true;
    }
    match text.rsplit_once(':') {
        Some((host, port)) => {
            !host.is_empty()
                && !host.contains(':')
                && port.parse::<u16>().is_ok_and(|p| p > 0)
                && Domain::parse(host).is_ok()
        }
        None => false,
    }
}

/// A host name: a domain, not an address literal, no wildcard.
pub(super) fn is_host_name(name: &str) -> bool {
    !name.is_empty() && !name.contains('*') && !name.starts_with('[') && Domain::parse(name).is_ok()
}

/// One of our domains: `example.com` or `*.example.com`.
pub(super) fn check_domain_entry(entry: &str) -> Result<(), &'static str> {
    let name = entry.strip_prefix("*.").unwrap_or(entry);
    if name.contains('*')
        || name.contains('@')
        || name.starts_with('[')
        || Domain::parse(name).is_err()
        || !name.contains('.') && name != "localhost"
    {
        Err("not a domain name")
    } else {
        Ok(())
    }
}
