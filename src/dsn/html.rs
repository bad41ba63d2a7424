//! The text of an HTML part, for the few bounces (webmail, some gateways)
//! that explain themselves only in HTML. Not a renderer: markup is dropped,
//! block elements become line breaks, a few entities are decoded, and the
//! contents of `<style>`, `<script>` and `<head>` are skipped. One pass.

/// Appends the text of `html` to `text`.
pub(super) fn append_text(html: &str, text: &mut String) {
    let mut rest = html;
    while let Some(open) = rest.find('<') {
        append_decoded(&rest[..open], text);
        let tag_and_after = &rest[open + 1..];
        let Some(close) = tag_and_after.find('>') else {
            return;
        };
        let tag = &tag_and_after[..close];
        rest = &tag_and_after[close + 1..];
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|character| character.is_ascii_alphanumeric())
            .map(|character| character.to_ascii_lowercase())
            .collect();
        if !tag.starts_with('/') && matches!(name.as_str(), "style" | "script" | "head" | "title") {
            let closing = format!("</{name}");
            match find_ignoring_case(rest, &closing) {
                Some(at) => rest = &rest[at..],
                None => return,
            }
            continue;
        }
        if matches!(name.as_str(), "br" | "p" | "div" | "tr" | "li" | "table" | "h1" | "h2" | "h3" | "pre" | "hr") {
            text.push('\n');
        }
    }
    append_decoded(rest, text);
}

/// `haystack`'s first occurrence of the ASCII `needle`, in any case.
fn find_ignoring_case(haystack: &str, needle: &str) -> Option<usize> {
    let needle = needle.as_bytes();
    haystack.as_bytes().windows(needle.len()).position(|window| window.eq_ignore_ascii_case(needle))
}

fn append_decoded(chunk: &str, text: &mut String) {
    let mut rest = chunk;
    while let Some(amp) = rest.find('&') {
        text.push_str(&rest[..amp]);
        let after = &rest[amp..];
        let entities: &[(&str, &str)] = &[
            ("&nbsp;", " "),
            ("&lt;", "<"),
            ("&gt;", ">"),
            ("&amp;", "&"),
            ("&quot;", "\""),
            ("&#39;", "'"),
            ("&apos;", "'"),
        ];
        match entities.iter().find(|(entity, _)| after.starts_with(entity)) {
            Some((entity, replacement)) => {
                text.push_str(replacement);
                rest = &after[entity.len()..];
            }
            None => {
                text.push('&');
                rest = &after[1..];
            }
        }
    }
    text.push_str(rest);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_of_html() {
        let cases: &[(&str, &str)] = &[
            ("<p>Delivery&nbsp;failed</p><br>to &lt;a@x&gt;", "\nDelivery failed\n\nto <a@x>"),
            ("<html><head><title>t</title><style>p{}</style></head><body>x</body>", "x"),
            ("<STYLE>p{}</style>y", "y"),
            ("unclosed <b", "unclosed "),
            ("a & b", "a & b"),
        ];
        for (html, expected) in cases {
            let mut text = String::new();
            append_text(html, &mut text);
            assert_eq!(text, *expected, "{html}");
        }
    }
}
