//! batv-proxy: an SMTP proxy that stops backscatter with BATV `prvs=` tags.
//!
//! Modules stand above what they use: `cli` → `server` → `assemble` →
//! `session` → `policy` → `config` → `keyfile` → `batv` → `smtp`;
//! `logging` serves `cli`. `batv`, `policy` and `dsn` do no file or
//! network I/O.

pub mod ask;
pub mod assemble;
pub mod batv;
pub mod cli;
pub mod cluster_metrics;
pub mod config;
pub mod connection;
pub mod deadline;
pub mod domains;
pub mod dsn;
pub mod health;
pub mod judge;
pub mod key_status;
pub mod keyfile;
mod labels;
pub mod ledger;
pub mod ledger_status;
pub mod listener;
pub mod logging;
pub mod metrics;
pub mod policy;
pub mod proxy_protocol;
pub mod resolve;
pub mod server;
pub mod session;
pub mod smtp;
pub mod status;
pub mod tls;
pub mod upstream;
pub mod verdicts;
