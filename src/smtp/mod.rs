//! SMTP wire types, parsed once at the edge.

pub mod address;
