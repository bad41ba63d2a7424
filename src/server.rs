//! Listeners, connection limits, graceful shutdown.

use std::path::PathBuf;

use crate::cli::LogFormat;
use crate::config::Config;

pub fn init_logging(_format: LogFormat) {}

pub fn run(_path: PathBuf, _config: Config) -> anyhow::Result<()> {
    anyhow::bail!("not yet")
}
