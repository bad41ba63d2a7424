//! SMTP wire types, parsed once at the edge.

pub mod address;
pub mod capabilities;
pub mod command;
pub mod data;
pub mod header;
pub mod line;
pub mod reply;
