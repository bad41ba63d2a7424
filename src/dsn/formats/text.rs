//! The part of a notification's text the sentences are looked for in.

use super::prose::FORWARD_MARKERS;

/// Bytes of text read for the region; a notification says what happened
/// in its first few kilobytes, before any returned copy.
const MAX_SOURCE_BYTES: usize = 4 * 1024;

/// Bytes of region kept.
const MAX_REGION_BYTES: usize = 3 * 1024;

/// Fields that start the header section of a pasted copy: past them is
/// the returned message, not the notification.
const COPY_STARTS: &[&str] = &["received:", "return-path:", "dkim-signature:", "message-id:"];

/// Line endings that introduce a quoted message ("On Monday Alice wrote:").
const ATTRIBUTION_ENDINGS: &[&str] =
    &["wrote:", "schrieb:", "a écrit :", "a écrit:", "escribió:", "ha scritto:", "escreveu:", "schreef:", "пишет:"];

/// `text` lower-cased with every run of white space as one space, for
/// matching sentences wherever a template wraps its lines.
pub(super) fn normalise(text: &str) -> String {
    let mut normalised = Vec::with_capacity(text.len());
    append_normalised(text, &mut normalised);
    let mut normalised = into_string(normalised);
    normalised.truncate(normalised.trim_end().len());
    normalised
}

/// Appends `text` normalised to `out`, whole characters only, so `out`
/// stays UTF-8; it is checked once, when the caller is done with it.
fn append_normalised(text: &str, out: &mut Vec<u8>) {
    let mut rest = text;
    while !rest.is_empty() {
        // The ASCII that makes up most of any text, a run at a time.
        let ascii = rest.bytes().position(|byte| !byte.is_ascii()).unwrap_or(rest.len());
        let run = &rest.as_bytes()[..ascii];
        let mut at = out.len();
        out.resize(at + run.len(), 0);
        for &byte in run {
            if byte.is_ascii_whitespace() {
                if at > 0 && out[at - 1] != b' ' {
                    out[at] = b' ';
                    at += 1;
                }
            } else {
                out[at] = byte.to_ascii_lowercase();
                at += 1;
            }
        }
        out.truncate(at);
        rest = &rest[ascii..];
        let Some(character) = rest.chars().next() else { break };
        rest = &rest[character.len_utf8()..];
        let mut buffer = [0; 4];
        if character.is_whitespace() {
            if !out.is_empty() && out.last() != Some(&b' ') {
                out.push(b' ');
            }
        } else if character == '\u{2019}' {
            // Typographic apostrophes, as Exchange Online writes them.
            out.push(b'\'');
        } else {
            for lower in character.to_lowercase() {
                out.extend_from_slice(lower.encode_utf8(&mut buffer).as_bytes());
            }
        }
    }
}

/// Only whole characters are ever appended, so this never loses anything;
/// the lossy branch is there so that a mistake costs a replacement
/// character, not a panic.
fn into_string(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|error| String::from_utf8_lossy(error.as_bytes()).into_owned())
}

/// The start of `text` as the message's own words: normalised, without
/// `>`-quoted lines, ending where a forwarded or quoted message begins.
pub(super) fn region(text: &str) -> String {
    let source = &text[..floor_char_boundary(text, MAX_SOURCE_BYTES)];
    let mut region = Vec::with_capacity(source.len().min(MAX_REGION_BYTES) + 64);
    for line in source.split('\n') {
        let trimmed = line.trim();
        if trimmed.starts_with('>') || trimmed.starts_with('|') {
            continue;
        }
        if starts_quoted_message(trimmed) || starts_copy(line) {
            break;
        }
        let room = MAX_REGION_BYTES.saturating_sub(region.len());
        append_normalised(&line[..floor_char_boundary(line, room)], &mut region);
        region.push(b' ');
        if region.len() >= MAX_REGION_BYTES {
            break;
        }
    }
    into_string(region)
}

fn starts_quoted_message(line: &str) -> bool {
    FORWARD_MARKERS.iter().any(|marker| {
        line.len() >= marker.len()
            && line.is_char_boundary(marker.len())
            && line[..marker.len()].eq_ignore_ascii_case(marker)
    }) || (line.len() < 200 && ATTRIBUTION_ENDINGS.iter().any(|ending| line.ends_with(ending)))
}

fn starts_copy(line: &str) -> bool {
    COPY_STARTS.iter().any(|field| line.get(..field.len()).is_some_and(|start| start.eq_ignore_ascii_case(field)))
}

/// The largest index at most `at` that is a character boundary.
fn floor_char_boundary(text: &str, at: usize) -> usize {
    if at >= text.len() {
        return text.len();
    }
    (0..=at).rev().find(|&index| text.is_char_boundary(index)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions() {
        let cases: &[(&str, &str, &str)] = &[
            ("wrapped", "Your message could not\n   be Delivered.", "your message could not be delivered. "),
            ("quoted lines left out", "Look:\n> could not be delivered\nok", "look: ok "),
            ("forward ends it", "FYI\n-----Original Message-----\nundeliverable", "fyi "),
            ("attribution ends it", "Sure.\nOn Monday Bob wrote:\nundeliverable", "sure. "),
            ("non-ascii lower-cased", "ÉCHEC de la remise", "échec de la remise "),
            (
                "a pasted copy ends it",
                "Sorry.\n--- Below this line\nReceived: x\nundeliverable",
                "sorry. --- below this line ",
            ),
        ];
        for (name, text, expected) in cases {
            assert_eq!(region(text), *expected, "{name}");
        }
        assert!(region(&"word ".repeat(10_000)).len() <= MAX_REGION_BYTES + 8);
    }
}
