//! `Command::parse` on any bytes; the property is
//! `properties::command_round_trips`.

#![no_main]

use libfuzzer_sys::fuzz_target;

// Each target uses its own part of the shared properties.
#[allow(dead_code)]
#[path = "../properties.rs"]
mod properties;

fuzz_target!(|line: &[u8]| properties::command_round_trips(line));
