//! The command line: arguments are validated into typed values here, and
//! the rest of the program never sees raw flags.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use crate::assemble::{Assembly, StartError, assemble};
use crate::batv::{Codec, Day, KeyId, Moment, keys};
use crate::config::{Config, ConfigErrors};
use crate::keyfile;
use crate::logging::{self, LogFormat};
use crate::smtp::address::Mailbox;

mod arguments;

use arguments::{Arguments, Command, KeysCommand};

/// Exit status for configuration errors, so systemd's
/// `RestartPreventExitStatus=2` stops a crash loop.
pub const EXIT_CONFIG: u8 = 2;
/// Exit status for an invalid tag (`verify`) or a runtime failure.
pub const EXIT_FAILURE: u8 = 1;
/// `explain`: the running proxy could not be asked.
pub const EXIT_UNREACHABLE: u8 = 3;

pub(super) const EXAMPLES: &str = "\
Examples:
  Create a key file (mode 0600, in the state directory the unit gives the
  service user), then check the configuration:
    runuser -u batv-proxy -- batv-proxy keygen --printable --output /var/lib/batv-proxy/keys
    batv-proxy check-config --config /etc/batv-proxy/batv-proxy.toml

  Run the proxy in the foreground:
    batv-proxy run --config /etc/batv-proxy/batv-proxy.toml

  See what the proxy would put in MAIL FROM, and check a bounce address:
    batv-proxy sign --config batv-proxy.toml alice@example.com
    batv-proxy verify --config batv-proxy.toml prvs=3789abcdef=alice@example.com

  See how the proxy reads a bounce or auto-reply saved from a mailbox:
    batv-proxy inspect bounce.eml

  Rotate keys: after the reload the new key signs, old tags keep verifying:
    runuser -u batv-proxy -- batv-proxy keygen --printable --output /var/lib/batv-proxy/keys --key-id 4
    systemctl reload batv-proxy

  Rotate keys on many hosts at one second: stage the key, copy the file, reload:
    runuser -u batv-proxy -- batv-proxy keygen --printable --output /var/lib/batv-proxy/keys --activate-at 2026-03-01T00:00:00Z
    batv-proxy keys status --config /etc/batv-proxy/batv-proxy.toml

Exit status: 0 success; 1 invalid tag or runtime failure; 2 configuration error.";

pub fn main() -> ExitCode {
    let arguments = Arguments::parse();
    match arguments.command {
        Command::Run { config, log_format } => run(config, log_format),
        Command::CheckConfig { config, connect } => check_config(config, connect),
        Command::Sign { config, date, address } => sign(config, date, address),
        Command::Verify { config, date, address } => verify(config, date, address),
        Command::Keygen { output, key_id, if_missing, printable, activate_at } => {
            keygen(output, key_id, if_missing, printable, activate_at)
        }
        Command::Keys { config, command: KeysCommand::Status } => keys_status(config),
        Command::Health { config } => health(config),
        Command::Explain { config, json, query } => explain(config, json, &query),
        Command::Inspect { file } => inspect(file),
        Command::Completions { shell } => completions(shell),
        Command::Man { output } => man_pages(&output),
        Command::Judge { config, from, rcpt, client, listener, date, message } => judge(
            config,
            crate::judge::Question { listener, from, recipients: rcpt, client, message: None },
            date,
            message,
        ),
    }
}

/// The command-line definition, for completions and manual pages.
pub fn command() -> clap::Command {
    Arguments::command()
}

fn completions(shell: clap_complete::Shell) -> ExitCode {
    clap_complete::generate(shell, &mut command(), "batv-proxy", &mut std::io::stdout());
    ExitCode::SUCCESS
}

/// batv-proxy.1 and batv-proxy-COMMAND.1 for every visible command.
fn man_pages(output: &Path) -> ExitCode {
    let result = std::fs::create_dir_all(output).and_then(|()| clap_mangen::generate_to(command(), output));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{}: cannot write the manual pages: {error}", output.display());
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

fn judge(
    config_path: PathBuf,
    mut question: crate::judge::Question,
    date: Option<String>,
    message: Option<PathBuf>,
) -> ExitCode {
    let result = (|| {
        let assembly = load_and_assemble(&config_path)?;
        let clock: std::sync::Arc<dyn crate::listener::Clock> = match date {
            Some(_) => std::sync::Arc::new(crate::listener::FixedClock::on(day(date)?)),
            None => std::sync::Arc::new(crate::listener::SystemClock),
        };
        if let Some(file) = message {
            question.message = Some(read_message(&file)?);
        }
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|error| {
            eprintln!("judge: {error}");
            ExitCode::from(EXIT_FAILURE)
        })?;
        runtime.block_on(async {
            let ledger = open_ledger_to_read(&assembly).await?;
            let answer = crate::judge::judge(assembly, ledger, clock, question).await.map_err(|error| {
                eprintln!("judge: {error}");
                ExitCode::from(EXIT_FAILURE)
            })?;
            let json = serde_json::json!({ "accepted": answer.accepted, "verdicts": answer.record });
            let _ = writeln!(std::io::stdout(), "{json}");
            Ok(if answer.accepted { ExitCode::SUCCESS } else { ExitCode::from(EXIT_FAILURE) })
        })
    })();
    result.unwrap_or_else(|code| code)
}

/// The ledger, opened only to look Message-IDs up, beside the running
/// proxy that writes it. A file no proxy has made yet is made empty.
async fn open_ledger_to_read(assembly: &Assembly) -> Result<std::sync::Arc<crate::ledger::Ledger>, ExitCode> {
    let settings = &assembly.config.ledger;
    let missing = matches!(&settings.store, crate::config::LedgerStore::File(path) if !path.exists());
    if missing {
        return assembly.open_ledger(Default::default()).await.map_err(|error| {
            eprintln!("judge: the ledger: {error}");
            ExitCode::from(EXIT_FAILURE)
        });
    }
    crate::ledger::Ledger::open_to_read(settings).await.map_err(|error| {
        eprintln!("judge: the ledger: {error}");
        ExitCode::from(EXIT_FAILURE)
    })
}

/// A message from a file, or standard input for `-`, at most 64 MiB.
fn read_message(file: &Path) -> Result<Vec<u8>, ExitCode> {
    use std::io::Read;
    const LIMIT: u64 = 64 * 1024 * 1024;
    let mut message = Vec::new();
    let read = if file.as_os_str() == "-" {
        std::io::stdin().take(LIMIT).read_to_end(&mut message)
    } else {
        std::fs::File::open(file).and_then(|f| f.take(LIMIT).read_to_end(&mut message))
    };
    read.map(|_| message).map_err(|error| {
        eprintln!("{}: {error}", file.display());
        ExitCode::from(EXIT_FAILURE)
    })
}

fn load(path: &Path) -> Result<Config, ExitCode> {
    Config::load(path).map_err(|errors| report(path, errors))
}

/// Reads the file and builds what it describes: what `check-config`
/// checks is what `run` runs.
fn load_and_assemble(path: &Path) -> Result<Assembly, ExitCode> {
    Config::load(path).and_then(assemble).map_err(|errors| report(path, errors))
}

fn report(path: &Path, errors: ConfigErrors) -> ExitCode {
    let count = errors.0.len();
    eprintln!("{errors}");
    eprintln!("{count} configuration error{} in {}", if count == 1 { "" } else { "s" }, path.display());
    ExitCode::from(EXIT_CONFIG)
}

fn run(config_path: PathBuf, log_format: LogFormat) -> ExitCode {
    let assembly = match load_and_assemble(&config_path) {
        Ok(assembly) => assembly,
        Err(code) => return code,
    };
    logging::init(log_format);
    for warning in assembly.warnings() {
        tracing::warn!(warning, "check the configuration");
    }
    match crate::server::run(config_path.clone(), assembly) {
        Ok(()) => ExitCode::SUCCESS,
        Err(StartError::Configuration(errors)) => report(&config_path, errors),
        Err(StartError::Runtime(error)) => {
            tracing::error!(error = format!("{error:#}"), "batv-proxy stopped");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

fn check_config(config_path: PathBuf, connect: bool) -> ExitCode {
    match load_and_assemble(&config_path) {
        Ok(assembly) => {
            let config = &assembly.config;
            let now = Moment::from(std::time::SystemTime::now());
            println!(
                "{}: ok ({} listener{}, {} domain entr{}, signing key {})",
                config_path.display(),
                config.listeners.len(),
                if config.listeners.len() == 1 { "" } else { "s" },
                config.batv.domains.len(),
                if config.batv.domains.len() == 1 { "y" } else { "ies" },
                config.keys.signing_key_at(now)
            );
            for warning in assembly.warnings() {
                eprintln!("warning: {warning}");
            }
            if connect {
                return match crate::ledger::connect_check(&config.ledger) {
                    Ok(Some(line)) => {
                        println!("{line}");
                        ExitCode::SUCCESS
                    }
                    Ok(None) => ExitCode::SUCCESS,
                    Err(error) => report(&config_path, ConfigErrors(vec![error.config_error(&config.file)])),
                };
            }
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

fn keys_status(config_path: PathBuf) -> ExitCode {
    let config = match load(&config_path) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let now = Moment::from(std::time::SystemTime::now());
    print!("{}", crate::key_status::table(&codec(&config), now));
    ExitCode::SUCCESS
}

fn codec(config: &Config) -> Codec {
    crate::assemble::codec(config)
}

fn day(date: Option<String>) -> Result<Day, ExitCode> {
    match date {
        None => Ok(crate::listener::today()),
        Some(text) => Day::parse(&text).ok_or_else(|| {
            eprintln!("--date {text}: not a date; write YYYY-MM-DD");
            ExitCode::from(EXIT_CONFIG)
        }),
    }
}

fn address(text: &str) -> Result<Mailbox, ExitCode> {
    let inner = text.trim().strip_prefix('<').and_then(|t| t.strip_suffix('>')).unwrap_or(text.trim());
    Mailbox::parse(inner).map_err(|error| {
        eprintln!("{text}: not an address: {error}");
        ExitCode::from(EXIT_FAILURE)
    })
}

fn sign(config_path: PathBuf, date: Option<String>, text: String) -> ExitCode {
    let result = (|| {
        let config = load(&config_path)?;
        // Without --date: now, so a key staged to activate at a time signs from that second.
        let now = match date {
            None => Moment::from(std::time::SystemTime::now()),
            Some(_) => Moment::from(day(date)?),
        };
        let mailbox = address(&text)?;
        if !config.batv.domains.contains(mailbox.domain()) {
            eprintln!("note: {} is not in batv.domains; the proxy would not sign this sender", mailbox.domain());
        }
        let signed = codec(&config).sign(&mailbox, now);
        let _ = writeln!(std::io::stdout(), "{signed}");
        Ok(())
    })();
    result.map_or_else(|code| code, |()| ExitCode::SUCCESS)
}

fn verify(config_path: PathBuf, date: Option<String>, text: String) -> ExitCode {
    let result = (|| {
        let config = load(&config_path)?;
        let today = day(date)?;
        let mailbox = address(&text)?;
        match codec(&config).verify(&mailbox, today) {
            Ok(valid) => {
                let _ = writeln!(std::io::stdout(), "{}", valid.original);
                Ok(())
            }
            Err(invalid) => {
                let key = invalid.key_id.map(|k| format!(", key {k}")).unwrap_or_default();
                eprintln!("{}: {} ({}{key})", text, invalid.reason, invalid.reason.describe());
                Err(ExitCode::from(EXIT_FAILURE))
            }
        }
    })();
    result.map_or_else(|code| code, |()| ExitCode::SUCCESS)
}

fn keygen(
    output: PathBuf,
    key_id: Option<u8>,
    if_missing: bool,
    printable: bool,
    activate_at: Option<String>,
) -> ExitCode {
    if if_missing && output.exists() {
        eprintln!("{}: exists, left as it is", output.display());
        return ExitCode::SUCCESS;
    }
    let activates = match activate_at.as_deref().map(|text| (text, Moment::parse_rfc3339(text))) {
        None => None,
        Some((_, Some(at))) => Some(at),
        Some((text, None)) => {
            eprintln!("--activate-at {text}: not an RFC 3339 time; write it like 2026-03-01T00:00:00Z");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let kind = if printable { keys::SecretKind::Printable } else { keys::SecretKind::Binary };
    let rotating = output.exists();
    match keyfile::generate(&output, key_id.and_then(KeyId::new), kind, activates) {
        Ok(id) if activates.is_some() => {
            eprintln!(
                "{}: key {id} written, staged to sign from {}; copy the file to every host and reload each \
                 (SIGHUP) before then: they all switch at that second, and every key keeps verifying",
                output.display(),
                activates.map(Moment::rfc3339).unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Ok(id) if rotating => {
            eprintln!(
                "{}: key {id} written on top; a running proxy signs with it after `systemctl reload batv-proxy` \
                 (SIGHUP), and the older keys keep verifying",
                output.display()
            );
            ExitCode::SUCCESS
        }
        Ok(id) => {
            eprintln!("{}: key {id} written", output.display());
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("{error}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// The running proxy's status endpoint, from the configuration.
fn status_address(config_path: &Path, asking_for: &str) -> Result<std::net::SocketAddr, ExitCode> {
    let config = load(config_path)?;
    match config.metrics_listen {
        Some(address) => Ok(crate::ask::reachable(address)),
        None => {
            eprintln!(
                "{}: no [metrics] listen is configured, so there is no {asking_for} to ask",
                config_path.display()
            );
            Err(ExitCode::from(EXIT_CONFIG))
        }
    }
}

fn health(config_path: PathBuf) -> ExitCode {
    let address = match status_address(&config_path, "/healthz") {
        Ok(address) => address,
        Err(code) => return code,
    };
    match crate::ask::get(address, "/healthz") {
        Ok((200, body)) => {
            print!("{body}");
            ExitCode::SUCCESS
        }
        Ok((status, body)) => {
            eprint!("unhealthy (HTTP {status}):\n{body}");
            ExitCode::from(EXIT_FAILURE)
        }
        Err(error) => {
            eprintln!("cannot reach http://{address}/healthz: {error}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

fn explain(config_path: PathBuf, json: bool, query: &str) -> ExitCode {
    let address = match status_address(&config_path, "/verdicts") {
        Ok(address) => address,
        Err(code) => return code,
    };
    let path = crate::ask::verdicts_path(query);
    let body = match crate::ask::get(address, &path) {
        Ok((200, body)) => body,
        Ok((status, body)) => {
            eprint!("http://{address}{path} answered {status}: {body}");
            return ExitCode::from(EXIT_CONFIG);
        }
        Err(error) => {
            eprintln!("cannot reach http://{address}{path}: {error}; is batv-proxy running?");
            return ExitCode::from(EXIT_UNREACHABLE);
        }
    };
    let Ok(answer) = serde_json::from_str::<serde_json::Value>(&body) else {
        eprintln!("http://{address}{path} did not answer with JSON: {body}");
        return ExitCode::from(EXIT_UNREACHABLE);
    };
    let found = answer["verdicts"].as_array().map_or(0, Vec::len);
    if json {
        println!("{answer}");
    } else if found > 0 {
        print!("{}", crate::ask::describe(&answer));
    } else {
        let kept = answer["kept"].as_u64().unwrap_or(0);
        eprintln!(
            "no verdict matches {query} among the {kept} the proxy keeps ([metrics] verdicts); \
             older ones are only in the log"
        );
    }
    if found > 0 { ExitCode::SUCCESS } else { ExitCode::from(EXIT_FAILURE) }
}

fn inspect(file: PathBuf) -> ExitCode {
    match read_message(&file) {
        Ok(message) => {
            let _ = writeln!(std::io::stdout(), "{}", crate::dsn::inspect(&message).to_json());
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}
