//! Replacing secret byte ranges with `[REDACTED:<kind>]`.
//!
//! Ranges come from a scan of the same string, but they are treated as untrusted anyway: a
//! stale finding (event edited after the scan) or an operator pattern must never make the
//! sensor panic on a slice, and must never leave part of a secret behind. Hence ranges are
//! clamped, widened to char boundaries (redacting a few bytes too many beats cutting a
//! multibyte char or leaking a byte), and overlapping or touching ranges are merged first.

use super::Finding;
use crate::event::Event;

/// Redact `ranges` of `s`, each replaced by `[REDACTED:<label>]`. Overlapping and adjacent
/// ranges collapse into one marker; out-of-range ends are clamped; reversed ranges are
/// swapped.
pub fn redact_str(s: &str, ranges: &[(usize, usize)], label: &str) -> String {
    let labelled: Vec<(usize, usize, &str)> = ranges.iter().map(|&(a, b)| (a, b, label)).collect();
    redact_labelled(s, &labelled)
}

/// One span to cut, with the labels of every finding merged into it.
struct Span<'a> {
    start: usize,
    end: usize,
    labels: Vec<&'a str>,
}

/// The workhorse behind [`redact_str`] and [`redact_event`]: ranges with their own labels.
pub(crate) fn redact_labelled(s: &str, ranges: &[(usize, usize, &str)]) -> String {
    let mut spans: Vec<Span<'_>> = ranges
        .iter()
        .filter_map(|&(a, b, label)| {
            let (a, b) = if a <= b { (a, b) } else { (b, a) };
            // Empty before widening: an empty range inside a multibyte char names no bytes
            // and must not grow into that char.
            if a.min(s.len()) == b.min(s.len()) {
                return None;
            }
            let (a, b) = (floor_boundary(s, a), ceil_boundary(s, b));
            (a < b).then(|| Span {
                start: a,
                end: b,
                labels: vec![label],
            })
        })
        .collect();
    if spans.is_empty() {
        return s.to_owned();
    }
    spans.sort_by_key(|sp| (sp.start, sp.end));

    let mut merged: Vec<Span<'_>> = Vec::with_capacity(spans.len());
    for sp in spans {
        match merged.last_mut() {
            // Touching spans merge too: two markers back to back would reveal where one
            // secret ends, and `[REDACTED:a][REDACTED:b]` reads as two fields.
            Some(last) if sp.start <= last.end => {
                last.end = last.end.max(sp.end);
                for l in sp.labels {
                    if !last.labels.contains(&l) {
                        last.labels.push(l);
                    }
                }
            }
            _ => merged.push(sp),
        }
    }

    let mut out = String::with_capacity(s.len() + merged.len() * 16);
    let mut at = 0;
    for sp in &merged {
        out.push_str(&s[at..sp.start]);
        out.push_str("[REDACTED:");
        out.push_str(&sp.labels.join("+"));
        out.push(']');
        at = sp.end;
    }
    out.push_str(&s[at..]);
    out
}

fn floor_boundary(s: &str, i: usize) -> usize {
    let mut i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil_boundary(s: &str, i: usize) -> usize {
    let mut i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i += 1;
    }
    i
}

/// The string of `event` a finding's `field` names, if the event has it. Only string
/// fields that can carry attacker- or admin-typed text are addressable; the command line
/// (`process.args[i]`) is the one that matters today.
fn field_mut<'e>(event: &'e mut Event, field: &str) -> Option<&'e mut String> {
    if let Some(i) = index_of(field, "process.args") {
        return event.process.args.get_mut(i);
    }
    if let Some(i) = index_of(field, "syscall.strings") {
        return event.syscall.as_mut()?.strings.get_mut(i);
    }
    match field {
        "process.name" => Some(&mut event.process.name),
        "process.executable" => event.process.executable.as_mut(),
        "process.working_directory" => event.process.working_directory.as_mut(),
        "process.parent.name" => event.process.parent.as_mut()?.name.as_mut(),
        "process.parent.executable" => event.process.parent.as_mut()?.executable.as_mut(),
        "file.path" => event.file.as_mut()?.path.as_mut(),
        "file.target_path" => event.file.as_mut()?.target_path.as_mut(),
        _ => None,
    }
}

/// `prefix[<n>]` → n.
fn index_of(field: &str, prefix: &str) -> Option<usize> {
    field
        .strip_prefix(prefix)?
        .strip_prefix('[')?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// Redact every finding in the event field it names, all findings of a field in one pass
/// over the original string (so ranges stay valid however many hit the same arg). Returns
/// how many findings were applied: those whose field exists in this event and whose range
/// is non-empty. Findings for fields the event does not carry (`file.content` from
/// [`super::Scanner::scan_text`]) are the caller's to apply with [`redact_str`].
pub fn redact_event(event: &mut Event, findings: &[Finding]) -> usize {
    let mut applied = 0;
    let mut fields: Vec<&str> = findings.iter().map(|f| f.field.as_str()).collect();
    fields.sort_unstable();
    fields.dedup();
    for field in fields {
        let Some(value) = field_mut(event, field) else {
            continue;
        };
        let ranges: Vec<(usize, usize, &str)> = findings
            .iter()
            .filter(|f| {
                let (a, b) = (f.start.min(f.end), f.start.max(f.end));
                f.field == field && a < value.len() && a < b
            })
            .map(|f| (f.start, f.end, f.kind))
            .collect();
        if ranges.is_empty() {
            continue;
        }
        applied += ranges.len();
        *value = redact_labelled(value, &ranges);
    }
    applied
}
