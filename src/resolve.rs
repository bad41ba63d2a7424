//! The client's host name, as an MTA that saw the client itself would
//! find it: reverse lookup, then forward confirmation, through the system
//! resolver, bounded in time.

use std::net::IpAddr;
use std::time::Duration;

const NAME_LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);

/// The client's host names as Postfix's XCLIENT wants them.
pub struct ClientName {
    /// Forward-confirmed (the name resolves back to the address), or a
    /// `[UNAVAILABLE]` / `[TEMPUNAVAIL]` placeholder.
    pub verified: String,
    /// What the PTR record says, unconfirmed.
    pub reverse: String,
}

impl ClientName {
    pub fn unavailable() -> Self {
        ClientName { verified: "[UNAVAILABLE]".into(), reverse: "[UNAVAILABLE]".into() }
    }

    fn temporarily_unavailable() -> Self {
        ClientName { verified: "[TEMPUNAVAIL]".into(), reverse: "[TEMPUNAVAIL]".into() }
    }
}

/// Reverse lookup, then forward confirmation, as Postfix's smtpd does
/// when it sees the client itself; through the system resolver.
pub async fn client_name(ip: IpAddr) -> ClientName {
    let lookup = tokio::task::spawn_blocking(move || {
        let temporary = |error: &dns_lookup::LookupError| matches!(error.kind(), dns_lookup::LookupErrorKind::Again);
        let reverse = match dns_lookup::lookup_addr(&ip) {
            Ok(name) => name,
            Err(error) if temporary(&error) => return ClientName::temporarily_unavailable(),
            Err(_) => return ClientName::unavailable(),
        };
        let verified = match dns_lookup::lookup_host(&reverse) {
            Ok(addresses) => {
                let confirmed = addresses.into_iter().any(|address| address == ip);
                if confirmed { reverse.clone() } else { "[UNAVAILABLE]".into() }
            }
            Err(error) if temporary(&error) => "[TEMPUNAVAIL]".into(),
            Err(_) => "[UNAVAILABLE]".into(),
        };
        ClientName { verified, reverse }
    });
    match tokio::time::timeout(NAME_LOOKUP_TIMEOUT, lookup).await {
        Ok(Ok(name)) => name,
        _ => ClientName::temporarily_unavailable(),
    }
}

impl ClientName {
    /// The forward-confirmed name, if there is one.
    pub fn confirmed(&self) -> Option<&str> {
        (!self.verified.starts_with('[')).then_some(self.verified.as_str())
    }
}
