//! The two exposition formats of `/metrics` and the choice between them
//! by the scraper's Accept header.

/// The two exposition formats `/metrics` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0.0: counters as `# TYPE name counter` over `name_total`
    /// samples, `# EOF` at the end.
    OpenMetrics,
    /// Prometheus' classic text format 0.0.4, which `promtool check metrics`
    /// and older scrapers read.
    Classic,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Classic => "text/plain; version=0.0.4; charset=utf-8",
        }
    }

    /// The format an `Accept` header asks for: the supported media type with
    /// the highest q-value, OpenMetrics on a tie; the classic format without
    /// a header, for `*/*`, or when nothing supported is named (as
    /// Prometheus' own client libraries do).
    pub fn negotiate(accept: Option<&str>) -> Format {
        let Some(accept) = accept else { return Format::Classic };
        let mut best: Option<(f32, Format)> = None;
        for range in accept.split(',') {
            let mut parts = range.split(';').map(str::trim);
            let media_type = parts.next().unwrap_or_default().to_ascii_lowercase();
            let (mut quality, mut version) = (1.0_f32, None);
            for parameter in parts {
                if let Some((name, value)) = parameter.split_once('=') {
                    let value = value.trim().trim_matches('"');
                    match name.trim().to_ascii_lowercase().as_str() {
                        "q" => quality = value.parse().unwrap_or(0.0),
                        "version" => version = Some(value.to_owned()),
                        _ => {}
                    }
                }
            }
            let format = match (media_type.as_str(), version.as_deref()) {
                ("application/openmetrics-text", None | Some("1.0.0" | "0.0.1")) => Format::OpenMetrics,
                ("text/plain", None | Some("0.0.4")) => Format::Classic,
                _ => continue,
            };
            let better = match best {
                None => true,
                Some((q, chosen)) => quality > q || (quality == q && format == Format::OpenMetrics && chosen != format),
            };
            if quality > 0.0 && better {
                best = Some((quality, format));
            }
        }
        best.map_or(Format::Classic, |(_, format)| format)
    }
}

/// Rewrites OpenMetrics text as the classic text format: a counter family
/// is named after its `_total` samples, an info family after its `_info`
/// sample and typed gauge, and `# UNIT` and `# EOF` go.
pub(super) fn classic_from_openmetrics(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut help: Option<&str> = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            help = Some(rest);
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "untyped"));
            let (name, kind) = match kind {
                "counter" => (format!("{name}_total"), "counter"),
                "info" => (format!("{name}_info"), "gauge"),
                "gauge" | "histogram" | "summary" => (name.to_owned(), kind),
                _ => (name.to_owned(), "untyped"),
            };
            if let Some(help) = help.take() {
                let text = help.split_once(' ').map_or("", |(_, text)| text);
                out.push_str(&format!("# HELP {name} {text}\n"));
            }
            out.push_str(&format!("# TYPE {name} {kind}\n"));
        } else if line.starts_with("# UNIT ") || line == "# EOF" {
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}
