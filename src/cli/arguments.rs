//! The command line as clap reads it: every subcommand, flag and default,
//! and the help text with examples. The names here are an interface admins'
//! scripts rely on: extend, never rename.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use super::EXAMPLES;
use crate::config::DEFAULT_CONFIG_PATH;
use crate::logging::LogFormat;

#[derive(Debug, Parser)]
#[command(
    name = "batv-proxy",
    version,
    about = "SMTP proxy that stops backscatter with BATV (prvs=) bounce address tags",
    long_about = "batv-proxy sits in front of your MTA. On outbound listeners it rewrites the \
envelope sender of your domains to a signed prvs= address; on inbound listeners it rejects, \
during the SMTP dialogue, bounces whose recipient does not carry a valid tag, and strips valid \
tags before the mail reaches your MTA.",
    after_help = EXAMPLES
)]
pub(super) struct Arguments {
    #[command(subcommand)]
    pub(super) command: Command,
}

#[derive(Debug, Subcommand)]
pub(super) enum Command {
    /// Run the proxy: bind every listener and relay SMTP sessions to the upstream MTA.
    Run {
        /// Configuration file.
        #[arg(long, short, default_value = DEFAULT_CONFIG_PATH)]
        config: PathBuf,
        /// Log format; `auto` is human-readable on a terminal and JSON otherwise.
        #[arg(long, value_enum, default_value_t = LogFormat::Auto)]
        log_format: LogFormat,
    },
    /// Validate the configuration and the files it names; print every problem.
    CheckConfig {
        #[arg(long, short, default_value = DEFAULT_CONFIG_PATH)]
        config: PathBuf,
        /// Also connect to the ledger's Redis (with its TLS and credentials) and write and
        /// read a test key, so a wrong password or certificate shows before the deploy.
        #[arg(long)]
        connect: bool,
    },
    /// Print the tagged (prvs=) form of an address, as the outbound listener would write it.
    Sign {
        #[arg(long, short, default_value = DEFAULT_CONFIG_PATH)]
        config: PathBuf,
        /// Sign as if on this day (YYYY-MM-DD, UTC); default today.
        #[arg(long)]
        date: Option<String>,
        /// The address to sign, e.g. alice@example.com.
        address: String,
    },
    /// Check a tagged address: print the original address and exit 0 when the tag is
    /// valid; print the reason on stderr and exit 1 otherwise.
    Verify {
        #[arg(long, short, default_value = DEFAULT_CONFIG_PATH)]
        config: PathBuf,
        /// Verify as if on this day (YYYY-MM-DD, UTC); default today.
        #[arg(long)]
        date: Option<String>,
        /// The tagged address, e.g. prvs=3789abcdef=alice@example.com.
        address: String,
    },
    /// Write a fresh random key. Given an existing key file, put the new key on top (a
    /// running proxy signs with it once reloaded) and keep the old ones for verification.
    Keygen {
        /// Key file to create or extend (written with mode 0600).
        #[arg(long, short)]
        output: PathBuf,
        /// Key number 0-9 for the new key; default the next free number.
        #[arg(long, value_parser = clap::value_parser!(u8).range(0..=9))]
        key_id: Option<u8>,
        /// Do nothing when the file already exists (for first-start scripts).
        #[arg(long)]
        if_missing: bool,
        /// Make a secret of letters and digits, which Exim's configuration can hold as a
        /// literal string (for hash = "sha1" keys shared with Exim's ${prvs}).
        #[arg(long)]
        printable: bool,
        /// Stage the key: it signs from this time on (RFC 3339, e.g. 2026-03-01T00:00:00Z),
        /// on every host that has loaded the file by then; until then it only verifies.
        #[arg(long, value_name = "RFC3339")]
        activate_at: Option<String>,
    },
    /// Look at the keys: `keys status` lists each key's id, fingerprint, role and activation.
    Keys {
        #[arg(long, short, global = true, default_value = DEFAULT_CONFIG_PATH)]
        config: PathBuf,
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Read one message (a file, or - for standard input) and print one JSON object: its
    /// kind ("dsn", "autoreply" or "none"), the Message-ID of the message it answers, and
    /// why. Check a sample from your own mailbox against what the proxy would decide.
    Inspect {
        /// The message, as a file (e.g. saved .eml) or - for standard input.
        file: PathBuf,
    },
    /// What would the proxy do with this mail? Runs the real policy, with the real keys,
    /// exemptions and ledger (only read), on an envelope and optionally a message (a file,
    /// or - for standard input); prints the verdicts as JSON: per recipient, and for the
    /// message after DATA. Exit 0 if the mail would be taken, 1 if refused.
    Judge {
        #[arg(long, short, default_value = DEFAULT_CONFIG_PATH)]
        config: PathBuf,
        /// MAIL FROM, e.g. '' for a bounce or bob@remote.example.
        #[arg(long)]
        from: String,
        /// RCPT TO; repeat for several recipients.
        #[arg(long, required = true)]
        rcpt: Vec<String>,
        /// The client's address, for exemptions by network.
        #[arg(long, default_value = crate::judge::DEFAULT_CLIENT)]
        client: std::net::IpAddr,
        /// The listener to judge on (role@address); default the first inbound one.
        #[arg(long)]
        listener: Option<String>,
        /// Judge as if on this day (YYYY-MM-DD, UTC); default today.
        #[arg(long)]
        date: Option<String>,
        /// The message, as a file (e.g. a saved .eml) or - for standard input.
        message: Option<PathBuf>,
    },
    /// Ask a running proxy's /healthz (from [metrics] listen) whether every upstream MTA
    /// answers; exit 0 if so, 1 otherwise. For container health checks.
    Health {
        #[arg(long, short, default_value = DEFAULT_CONFIG_PATH)]
        config: PathBuf,
    },
    /// What happened to an email? Ask a running proxy (through [metrics] listen) for its
    /// recent verdicts on a queue id, session, Message-ID, address or client address, or
    /// on NAME=VALUE pairs (queue_id, session, message_id, rcpt, client), and print each
    /// transaction found, newest first. Exit 0 if some were found, 1 if none.
    Explain {
        #[arg(long, short, default_value = DEFAULT_CONFIG_PATH)]
        config: PathBuf,
        /// Print the proxy's JSON answer instead of text.
        #[arg(long)]
        json: bool,
        /// e.g. 4bXyZ12abc, '<1234@mx.example.com>', alice@example.com, 192.0.2.7,
        /// or rcpt=alice@example.com&client=192.0.2.7
        query: String,
    },
    /// Print a shell completion script for batv-proxy on standard output.
    #[command(after_help = "\
Examples:
  bash: batv-proxy completions bash > /etc/bash_completion.d/batv-proxy
  zsh:  batv-proxy completions zsh > /usr/local/share/zsh/site-functions/_batv-proxy
  fish: batv-proxy completions fish > ~/.config/fish/completions/batv-proxy.fish

The Debian package installs all three.")]
    Completions {
        /// The shell: bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Write the manual pages, batv-proxy(1) and one per command, into a directory
    /// (for packagers; the Debian package ships them).
    #[command(hide = true)]
    Man {
        /// Directory to write the pages into; created if missing.
        #[arg(long, short)]
        output: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub(super) enum KeysCommand {
    /// List every key of the key file (and of each [[batv.keys]] set): number, fingerprint
    /// (a short hash, never the secret), role now (signing, verifying, staged) and activation.
    /// Compare the output of two hosts to see that they sign alike.
    Status,
}
