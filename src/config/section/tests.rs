//! The declarative reader on its own: a small made-up section read the way
//! the real ones are, so each rule (defaults, types, ranges, unknown keys,
//! nesting) is tested once, whatever keys the configuration has.

use std::net::SocketAddr;
use std::time::Duration;

use toml::Table;

use super::super::values::{choice, duration, flag, number, size, socket_address, text};
use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Colour {
    Red,
    Blue,
}

const COLOURS: &[(&str, Colour)] = &[("red", Colour::Red), ("blue", Colour::Blue)];

#[derive(Debug, PartialEq)]
struct Sample {
    timeout: Duration,
    size: u64,
    count: u16,
    enabled: bool,
    colour: Colour,
    name: Option<String>,
    listen: Option<SocketAddr>,
    inner_depth: u8,
    items: Vec<u8>,
}

const DEFAULTS: Sample = Sample {
    timeout: Duration::from_secs(30),
    size: 1024,
    count: 7,
    enabled: true,
    colour: Colour::Red,
    name: None,
    listen: None,
    inner_depth: 3,
    items: Vec::new(),
};

fn read_sample(section: &mut Section) -> Option<Sample> {
    let listen = section.require("listen", "add listen = \"IP:port\"", socket_address("listen = \"127.0.0.1:25\""));
    Some(Sample {
        timeout: section.get_or("timeout", DEFAULTS.timeout, duration),
        size: section.get_or("size", DEFAULTS.size, size),
        count: section.get_or("count", DEFAULTS.count, number(1..=100)),
        enabled: section.get_or("enabled", DEFAULTS.enabled, flag),
        colour: section.get_or("colour", DEFAULTS.colour, choice(COLOURS)),
        name: section.get("name", text("name = \"x\"")),
        inner_depth: section.table("inner", "[sample.inner]", Presence::Optional, |inner| {
            inner.get_or("depth", DEFAULTS.inner_depth, number(1..=9))
        }),
        items: section
            .tables("item", "[[sample.item]]", Presence::Optional, |item| item.get_or("weight", 1, number(1..=9))),
        listen: Some(listen?),
    })
}

/// The sample read from `text`, and every error as `key: problem; fix`.
fn read(text: &str) -> (Option<Sample>, Vec<String>) {
    let table: Table = text.parse().unwrap();
    let report = Report::new("sample.toml".into());
    let sample = Section::read_file(&table, &report, |root| {
        root.table(
            "sample",
            "[sample]",
            Presence::Required("the [sample] table is missing", "add [sample]"),
            read_sample,
        )
    });
    let errors = report.into_errors().iter().map(|e| format!("{}: {}; {}", e.key, e.problem, e.fix)).collect();
    (sample, errors)
}

#[test]
fn absent_keys_take_their_defaults() {
    let (sample, errors) = read("[sample]\nlisten = \"127.0.0.1:25\"\n");
    assert!(errors.is_empty(), "{errors:?}");
    let listen = Some("127.0.0.1:25".parse().unwrap());
    assert_eq!(sample, Some(Sample { listen, ..DEFAULTS }));
}

#[test]
fn values_in_every_form_are_read() {
    let (sample, errors) = read(
        "[sample]\nlisten = \"[::1]:25\"\ntimeout = \"2m\"\nsize = \"1KiB\"\ncount = 100\nenabled = false\n\
         colour = \"blue\"\nname = \"n\"\n[sample.inner]\ndepth = 9\n[[sample.item]]\nweight = 2\n[[sample.item]]\n",
    );
    assert!(errors.is_empty(), "{errors:?}");
    let sample = sample.unwrap();
    assert_eq!((sample.timeout, sample.size, sample.count), (Duration::from_secs(120), 1024, 100));
    assert_eq!((sample.enabled, sample.colour, sample.name.as_deref()), (false, Colour::Blue, Some("n")));
    assert_eq!((sample.inner_depth, sample.items), (9, vec![2, 1]));
    let (sample, _) = read("[sample]\nlisten = \"127.0.0.1:25\"\ntimeout = 90\nsize = 2048\n");
    assert_eq!(sample.map(|s| (s.timeout, s.size)), Some((Duration::from_secs(90), 2048)));
}

#[test]
fn each_problem_names_the_key_what_is_wrong_and_the_fix() {
    let base = "[sample]\nlisten = \"127.0.0.1:25\"\n";
    for (line, expected) in [
        ("timeout = \"soon\"", "sample.timeout: \"soon\" is not a duration; write seconds (300)"),
        ("timeout = 0", "sample.timeout: must be a positive duration, not an integer; write seconds"),
        ("timeout = true", "sample.timeout: must be a positive duration, not a boolean; write seconds"),
        ("size = \"lots\"", "sample.size: \"lots\" is not a size; write bytes (10240000)"),
        ("size = -1", "sample.size: must be a positive size, not an integer; write bytes"),
        ("count = 0", "sample.count: 0 is out of range; use a whole number from 1 to 100"),
        ("count = 101", "sample.count: 101 is out of range; use a whole number from 1 to 100"),
        ("count = 70000", "sample.count: 70000 is out of range; use a whole number from 1 to 100"),
        ("count = \"7\"", "sample.count: must be a whole number, not a string; write it like count = 1"),
        ("count = 1.5", "sample.count: must be a whole number, not a number; write it like count = 1"),
        ("enabled = \"yes\"", "sample.enabled: must be true or false, not a string; write it like enabled = true"),
        (
            "colour = \"green\"",
            "sample.colour: \"green\" is not one of \"red\", \"blue\"; use one of \"red\", \"blue\"",
        ),
        ("colour = 1", "sample.colour: must be a string, not an integer; write it like colour = \"red\""),
        ("name = []", "sample.name: must be a string, not a list; write it like name = \"x\""),
        ("inner = 1", "sample.inner: must be a table, not an integer; write it like [sample.inner]"),
        ("item = 1", "sample.item: must be a list of tables, not an integer; write it like [[sample.item]]"),
        ("item = [1]", "sample.item[1]: must be a table, not an integer; write it like [[sample.item]]"),
        ("inner = { depth = 10 }", "sample.inner.depth: 10 is out of range; use a whole number from 1 to 9"),
        ("item = [{ weight = 0 }]", "sample.item[1].weight: 0 is out of range; use a whole number from 1 to 9"),
    ] {
        let (_, errors) = read(&format!("{base}{line}\n"));
        assert_eq!(errors.len(), 1, "{line}: {errors:?}");
        assert!(errors[0].starts_with(expected), "{line}:\n  got      {}\n  expected {expected}", errors[0]);
    }
}

#[test]
fn a_missing_key_or_table_says_what_to_add() {
    let (sample, errors) = read("[sample]\n");
    assert_eq!(sample, None, "a required key has no default");
    assert_eq!(errors, ["sample.listen: missing; add listen = \"IP:port\""]);
    let (_, errors) = read("[sample]\nlisten = \"localhost\"\n");
    assert_eq!(errors, ["sample.listen: \"localhost\" is not an IP address and port; write listen = \"127.0.0.1:25\""]);
    let (_, errors) = read("other = 1\n");
    assert_eq!(errors[0], "sample: the [sample] table is missing; add [sample]");
    assert!(errors.contains(&"sample.listen: missing; add listen = \"IP:port\"".to_owned()), "{errors:?}");
}

#[test]
fn keys_no_reader_asked_for_are_unknown_with_a_suggestion() {
    let (_, errors) = read(
        "typo_at_top = 1\n[sample]\nlisten = \"127.0.0.1:25\"\ntimout = 5\nsomething_else = 1\n\
         [sample.inner]\ndepht = 2\n[[sample.item]]\nwieght = 2\n",
    );
    let expected = [
        "sample.inner.depht: unknown key; did you mean `depth`? Known keys here: depth",
        "sample.item[1].wieght: unknown key; did you mean `weight`? Known keys here: weight",
        "sample.timout: unknown key; did you mean `timeout`? Known keys here: listen, timeout, size, count, \
         enabled, colour, name, inner, item",
        "sample.something_else: unknown key; remove it; known keys here: listen, timeout, size, count, enabled, \
         colour, name, inner, item",
        "typo_at_top: unknown key; remove it; known keys here: sample",
    ];
    let mut errors = errors;
    errors.sort();
    let mut expected = expected.map(str::to_owned).to_vec();
    expected.sort();
    assert_eq!(errors, expected);
}

#[test]
fn a_wrong_key_does_not_hide_the_next_problem() {
    let (_, errors) =
        read("[sample]\nlisten = 25\ntimeout = \"x\"\ncount = 0\ncolour = \"green\"\n[sample.inner]\ndepth = 0\n");
    let keys: Vec<&str> = errors.iter().map(|e| e.split(':').next().unwrap()).collect();
    assert_eq!(keys, ["sample.listen", "sample.timeout", "sample.count", "sample.colour", "sample.inner.depth"]);
}

#[test]
fn edit_distance_counts_swaps_as_one() {
    for (a, b, distance) in
        [("domains", "domains", 0), ("domian", "domain", 1), ("timout", "timeout", 1), ("", "ab", 2)]
    {
        assert_eq!(edit_distance(a, b), distance, "{a} {b}");
    }
    assert_eq!(suggestion("stat_dir", &["state_dir", "batv"]), Some("state_dir"));
    assert_eq!(suggestion("zzz", &["state_dir", "batv"]), None);
}
