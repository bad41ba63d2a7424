//! Addresses and tags; the input layout and the properties are
//! `properties::tag_properties`.

#![no_main]

use libfuzzer_sys::fuzz_target;

// Each target uses its own part of the shared properties.
#[allow(dead_code)]
#[path = "../properties.rs"]
mod properties;

fuzz_target!(|input: &[u8]| properties::tag_properties(input));
