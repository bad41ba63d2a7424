//! `dsn::inspect` on any bytes; the properties are
//! `dsn_properties::inspection_properties`.

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../dsn_properties.rs"]
mod dsn_properties;

fuzz_target!(|message: &[u8]| dsn_properties::inspection_properties(message));
