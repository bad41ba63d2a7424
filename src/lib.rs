//! batv-proxy: an SMTP proxy that stops backscatter with BATV `prvs=` tags.
//!
//! Modules stand above what they use: `cli` → `server` → `session` →
//! `policy` → `config` → `batv` → `smtp`. `batv`, `policy` and `dsn` do no
//! I/O.

pub mod batv;
pub mod cli;
pub mod config;
pub mod connection;
pub mod dsn;
pub mod health;
mod labels;
pub mod ledger;
pub mod listener;
pub mod metrics;
pub mod policy;
pub mod proxy_protocol;
pub mod server;
pub mod session;
pub mod smtp;
pub mod status;
pub mod tls;
pub mod upstream;
