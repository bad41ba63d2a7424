//! EHLO capabilities: what the upstream offers, and the filtered list the
//! proxy passes on to its client.

use super::reply::Reply;

/// Extensions the proxy relays end to end. Anything else the upstream
/// offers is hidden: CHUNKING/BINARYMIME (the proxy speaks DATA only),
/// XCLIENT/XFORWARD (they would let a client claim any identity), ETRN,
/// and the upstream's STARTTLS (TLS to the client is the proxy's own).
const RELAYED: &[&str] = &["PIPELINING", "SIZE", "8BITMIME", "SMTPUTF8", "DSN", "ENHANCEDSTATUSCODES", "VRFY", "AUTH"];

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// Keyword lines as the upstream wrote them, greeting line excluded.
    lines: Vec<String>,
}

impl Capabilities {
    pub fn from_ehlo(reply: &Reply) -> Self {
        Capabilities { lines: reply.lines().into_iter().skip(1).map(|l| l.trim().to_owned()).collect() }
    }

    fn line(&self, keyword: &str) -> Option<&str> {
        self.lines.iter().map(String::as_str).find(|line| {
            let word = line.split([' ', '=']).next().unwrap_or("");
            word.eq_ignore_ascii_case(keyword)
        })
    }

    pub fn has(&self, keyword: &str) -> bool {
        self.line(keyword).is_some()
    }

    /// Arguments of an extension (`AUTH PLAIN LOGIN` → `["PLAIN", "LOGIN"]`).
    pub fn arguments(&self, keyword: &str) -> Option<Vec<String>> {
        self.line(keyword)
            .map(|line| line.split([' ', '=']).skip(1).filter(|w| !w.is_empty()).map(str::to_owned).collect())
    }

    /// The upstream's SIZE limit; `Some(0)` means it declared none.
    pub fn size(&self) -> Option<u64> {
        self.arguments("SIZE").map(|args| args.first().and_then(|n| n.parse().ok()).unwrap_or(0))
    }
}

/// What the proxy may add or must withhold when answering EHLO.
#[derive(Debug, Clone, Copy)]
pub struct Offer {
    pub max_message_size: u64,
    pub auth: bool,
    pub starttls: bool,
}

/// The EHLO reply for the client: the proxy's host name, then the
/// upstream's relayable extensions in the upstream's order, SIZE lowered
/// to the proxy's own limit.
pub fn client_ehlo_reply(hostname: &str, upstream: &Capabilities, offer: Offer) -> Reply {
    let mut lines = vec![hostname.to_owned()];
    let mut has_size = false;
    for line in &upstream.lines {
        let keyword = line.split([' ', '=']).next().unwrap_or("").to_ascii_uppercase();
        if !RELAYED.contains(&keyword.as_str()) || (keyword == "AUTH" && !offer.auth) {
            continue;
        }
        if keyword == "SIZE" {
            has_size = true;
            let theirs = upstream.size().unwrap_or(0);
            let size = if theirs == 0 { offer.max_message_size } else { theirs.min(offer.max_message_size) };
            lines.push(format!("SIZE {size}"));
        } else if !lines.iter().any(|existing| existing.eq_ignore_ascii_case(line)) {
            lines.push(line.clone());
        }
    }
    if !has_size {
        lines.push(format!("SIZE {}", offer.max_message_size));
    }
    if offer.starttls {
        lines.push("STARTTLS".into());
    }
    Reply::from_lines(250, lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn postfix_like() -> Reply {
        Reply::from_lines(
            250,
            [
                "mx.internal",
                "PIPELINING",
                "SIZE 10240000",
                "VRFY",
                "ETRN",
                "STARTTLS",
                "AUTH PLAIN LOGIN",
                "AUTH=PLAIN LOGIN",
                "ENHANCEDSTATUSCODES",
                "8BITMIME",
                "DSN",
                "SMTPUTF8",
                "CHUNKING",
                "XCLIENT NAME ADDR PROTO HELO REVERSE_NAME PORT LOGIN DESTADDR DESTPORT",
                "XFORWARD NAME ADDR PROTO HELO",
            ]
            .map(String::from)
            .to_vec(),
        )
    }

    #[test]
    fn reads_upstream_extensions() {
        let caps = Capabilities::from_ehlo(&postfix_like());
        assert!(caps.has("xclient") && caps.has("PIPELINING") && !caps.has("BINARYMIME"));
        assert_eq!(caps.size(), Some(10_240_000));
        assert_eq!(caps.arguments("XCLIENT").unwrap()[..2], ["NAME".to_string(), "ADDR".to_string()]);
        // smtp-sink ends its EHLO reply with an empty "250 " line.
        let sink = Reply::from_lines(250, vec!["sink".into(), "PIPELINING".into(), "".into()]);
        assert!(Capabilities::from_ehlo(&sink).has("PIPELINING"));
    }

    #[test]
    fn filters_what_the_client_sees() {
        let caps = Capabilities::from_ehlo(&postfix_like());
        let reply = client_ehlo_reply(
            "mx.example.com",
            &caps,
            Offer { max_message_size: 5_000_000, auth: false, starttls: false },
        );
        assert_eq!(
            reply.lines(),
            [
                "mx.example.com",
                "PIPELINING",
                "SIZE 5000000",
                "VRFY",
                "ENHANCEDSTATUSCODES",
                "8BITMIME",
                "DSN",
                "SMTPUTF8"
            ]
        );
        let with_auth =
            client_ehlo_reply("mx", &caps, Offer { max_message_size: 50_000_000, auth: true, starttls: true });
        let lines = with_auth.lines();
        assert!(lines.contains(&"AUTH PLAIN LOGIN".to_string()) && lines.contains(&"SIZE 10240000".to_string()));
        assert_eq!(lines.last().unwrap(), "STARTTLS");
        assert!(!lines.iter().any(|l| l.contains("XCLIENT") || l.contains("CHUNKING") || l.contains("XFORWARD")));
    }
}
