//! Closed sets of label values. Metrics, log fields and control flow use
//! the same enums, so a value that steers the program is one the
//! dashboards know, and a typo is a compile error, not a new time series.

/// Declares a `Copy` enum whose variants each carry their stable
/// snake_case label, with `as_str`, `ALL` (every value, for series that
/// must exist at zero and for documentation checks) and `Display`.
macro_rules! label_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$variant_meta:meta])* $variant:ident => $label:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis enum $name {
            $( $(#[$variant_meta])* $variant, )+
        }

        impl $name {
            /// Every value, in declaration order.
            #[allow(dead_code)]
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The label: stable, for metrics, logs and scripts.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $label, )+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str(self.as_str())
            }
        }
    };
}

pub(crate) use label_enum;

label_enum! {
    /// How a client session ended (`outcome` of `batv_proxy_sessions_total`),
    /// refusals before the session began included.
    pub enum SessionOutcome {
        Completed => "completed",
        ClientClosed => "client_closed",
        ClientTimeout => "client_timeout",
        UpstreamUnavailable => "upstream_unavailable",
        UpstreamLost => "upstream_lost",
        UpstreamRefusedIdentity => "upstream_refused_identity",
        TooManyErrors => "too_many_errors",
        TlsFailed => "tls_failed",
        Shutdown => "shutdown",
        NotAllowed => "not_allowed",
        LimitTotal => "limit_total",
        LimitPerIp => "limit_per_ip",
    }
}

label_enum! {
    /// What became of a message (`outcome` of `batv_proxy_messages_total`).
    pub enum MessageOutcome {
        Accepted => "accepted",
        RefusedUpstream => "refused_upstream",
        Rejected => "rejected",
        FailedUpstream => "failed_upstream",
    }
}

label_enum! {
    /// What went wrong with the upstream MTA (`outcome` of
    /// `batv_proxy_upstream_errors_total`).
    pub enum UpstreamError {
        Connect => "connect",
        Greeting => "greeting",
        Tls => "tls",
        Timeout => "timeout",
        Closed => "closed",
        Garbage => "garbage",
        ClosedIdle => "closed_idle",
        NoFinalReply => "no_final_reply",
    }
}

label_enum! {
    /// A TLS handshake with a client (`outcome` of `batv_proxy_tls_handshakes_total`).
    pub enum TlsHandshake {
        Ok => "ok",
        Failed => "failed",
        Timeout => "timeout",
    }
}

label_enum! {
    /// A configuration reload (`outcome` of `batv_proxy_reloads_total`).
    pub enum ReloadOutcome {
        Applied => "applied",
        Refused => "refused",
    }
}

label_enum! {
    /// The commands whose added latency is measured apart (`command` of
    /// `batv_proxy_command_added_latency_seconds`); the rest are `other`.
    pub enum CommandLabel {
        Ehlo => "EHLO",
        Helo => "HELO",
        Mail => "MAIL",
        Rcpt => "RCPT",
        Data => "DATA",
        Rset => "RSET",
        Noop => "NOOP",
        Other => "other",
    }
}
