//! Exemptions by source: mail from a partner's relays, a mailing list's
//! fixed return path or a known reporting MTA is let through (or sent
//! unsigned) by name, the standard fix for out-of-office and calendar false
//! positives and for lists that key on a fixed envelope sender. Every
//! criterion an exemption names must match; each says what it exempts.

use std::net::IpAddr;

use crate::labels::label_enum;
use crate::smtp::address::{ForwardPath, ReversePath};

use super::pattern::{AddressPattern, ClientNetwork};

label_enum! {
    /// What an exemption exempts.
    pub enum Scope {
        /// Untagged bounces pass without judgement.
        UntaggedBounce => "untagged_bounce",
        /// Automatic replies to untagged addresses pass without judgement.
        AutoReply => "auto_reply",
        /// The sender is not signed.
        Signing => "signing",
    }
}

/// One `[[policy.exemption]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exemption {
    /// For logs and metrics.
    pub name: String,
    pub scopes: Vec<Scope>,
    /// Listener names (`role@address`) it holds on; all when empty.
    pub listeners: Vec<String>,
    pub clients: Vec<ClientNetwork>,
    /// Host names, exact or `.suffix` / `*.suffix`, matched against the
    /// client's forward-confirmed reverse name.
    pub client_names: Vec<String>,
    pub senders: Vec<AddressPattern>,
    /// Host names, as for `client_names`, matched against a DSN's Reporting-MTA.
    pub reporting_mtas: Vec<String>,
    /// Signing only: recipients' domains that must not see a tagged sender.
    pub recipient_domains: Vec<AddressPattern>,
}

/// What is known about where mail comes from when an exemption is checked.
#[derive(Debug, Clone, Copy, Default)]
pub struct Source<'a> {
    pub listener: &'a str,
    pub client: Option<IpAddr>,
    /// The client's forward-confirmed reverse name, if it has one.
    pub client_name: Option<&'a str>,
    pub sender: Option<&'a ReversePath>,
    /// A DSN's Reporting-MTA, once the message is read.
    pub reporting_mta: Option<&'a str>,
    pub recipient: Option<&'a ForwardPath>,
}

/// Whether `name` is `pattern` or, for `.suffix` and `*.suffix`, under it.
fn host_matches(pattern: &str, name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    match pattern.strip_prefix("*.").or_else(|| pattern.strip_prefix('.')) {
        Some(suffix) => name.ends_with(&format!(".{suffix}")),
        None => name == pattern,
    }
}

impl Exemption {
    /// Whether any criterion is named at all (one naming none would exempt everything).
    pub fn has_criteria(&self) -> bool {
        !(self.clients.is_empty()
            && self.client_names.is_empty()
            && self.senders.is_empty()
            && self.reporting_mtas.is_empty()
            && self.recipient_domains.is_empty())
    }

    /// Whether it can only be decided once the message is read.
    pub fn needs_content(&self) -> bool {
        !self.reporting_mtas.is_empty()
    }

    /// Whether it exempts `scope` for mail from `source`: every criterion it
    /// names must match, and an unknown fact matches nothing.
    pub fn applies(&self, scope: Scope, source: &Source<'_>) -> bool {
        let named = |names: &[String], value: Option<&str>| {
            names.is_empty() || value.is_some_and(|value| names.iter().any(|name| host_matches(name, value)))
        };
        self.scopes.contains(&scope)
            && (self.listeners.is_empty() || self.listeners.iter().any(|listener| listener == source.listener))
            && (self.clients.is_empty()
                || source.client.is_some_and(|ip| self.clients.iter().any(|network| network.contains(ip))))
            && named(&self.client_names, source.client_name)
            && (self.senders.is_empty()
                || source
                    .sender
                    .and_then(ReversePath::mailbox)
                    .is_some_and(|sender| self.senders.iter().any(|pattern| pattern.matches(sender))))
            && named(&self.reporting_mtas, source.reporting_mta)
            && (self.recipient_domains.is_empty()
                || source
                    .recipient
                    .and_then(ForwardPath::mailbox)
                    .is_some_and(|recipient| self.recipient_domains.iter().any(|pattern| pattern.matches(recipient))))
    }
}

/// Every configured exemption, in file order: the first that applies is named.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Exemptions(pub Vec<Exemption>);

impl Exemptions {
    /// The first exemption of `scope` that applies to `source`.
    pub fn find(&self, scope: Scope, source: &Source<'_>) -> Option<&Exemption> {
        self.0.iter().find(|exemption| exemption.applies(scope, source))
    }

    /// Whether any exemption needs the client's name (a DNS lookup per session).
    pub fn need_client_names(&self) -> bool {
        self.0.iter().any(|exemption| !exemption.client_names.is_empty())
    }

    /// Whether signing may depend on the recipients (MAIL is then held).
    pub fn depend_on_recipients(&self) -> bool {
        self.0
            .iter()
            .any(|exemption| exemption.scopes.contains(&Scope::Signing) && !exemption.recipient_domains.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exemption() -> Exemption {
        Exemption {
            name: "partner".into(),
            scopes: vec![Scope::UntaggedBounce],
            listeners: vec![],
            clients: vec![ClientNetwork::parse("192.0.2.0/24").unwrap()],
            client_names: vec![".partner.example".into()],
            senders: vec![],
            reporting_mtas: vec![],
            recipient_domains: vec![],
        }
    }

    #[test]
    fn every_named_criterion_must_match() {
        let exemption = exemption();
        let source = Source {
            listener: "inbound@0.0.0.0:25",
            client: Some("192.0.2.9".parse().unwrap()),
            client_name: Some("mx1.partner.example."),
            ..Source::default()
        };
        assert!(exemption.applies(Scope::UntaggedBounce, &source));
        assert!(!exemption.applies(Scope::AutoReply, &source), "another scope");
        let elsewhere = Source { client: Some("198.51.100.1".parse().unwrap()), ..source };
        assert!(!exemption.applies(Scope::UntaggedBounce, &elsewhere));
        let unnamed = Source { client_name: None, ..source };
        assert!(!exemption.applies(Scope::UntaggedBounce, &unnamed), "an unknown name matches nothing");
        let lookalike = Source { client_name: Some("mx1.notpartner.example"), ..source };
        assert!(!exemption.applies(Scope::UntaggedBounce, &lookalike));
        let scoped = Exemption { listeners: vec!["inbound@0.0.0.0:2525".into()], ..exemption.clone() };
        assert!(!scoped.applies(Scope::UntaggedBounce, &source), "another listener");
    }

    #[test]
    fn senders_reporting_mtas_and_recipient_domains() {
        let sender = ReversePath::parse("calendar@partner.example").unwrap();
        let recipient = ForwardPath::parse("list@lists.example.net").unwrap();
        let by_sender = Exemption {
            clients: vec![],
            client_names: vec![],
            senders: vec![AddressPattern::new("*@partner.example")],
            scopes: vec![Scope::AutoReply],
            ..exemption()
        };
        let source = Source { sender: Some(&sender), recipient: Some(&recipient), ..Source::default() };
        assert!(by_sender.applies(Scope::AutoReply, &source));
        let by_mta = Exemption {
            clients: vec![],
            client_names: vec![],
            reporting_mtas: vec!["mx.partner.example".into()],
            ..exemption()
        };
        assert!(by_mta.needs_content());
        assert!(!by_mta.applies(Scope::UntaggedBounce, &source), "not known before the content");
        let read = Source { reporting_mta: Some("MX.partner.example"), ..source };
        assert!(by_mta.applies(Scope::UntaggedBounce, &read));
        let by_domain = Exemption {
            clients: vec![],
            client_names: vec![],
            recipient_domains: vec![AddressPattern::new("lists.example.net")],
            scopes: vec![Scope::Signing],
            ..exemption()
        };
        assert!(by_domain.applies(Scope::Signing, &source));
        assert!(Exemptions(vec![by_domain]).depend_on_recipients());
        assert!(!Exemption { clients: vec![], client_names: vec![], ..exemption() }.has_criteria());
    }
}
