//! Secret detection (DLP) for command lines and sampled file content.
//!
//! Two jobs: raise a [`Finding`] when a credential shows up where it should not (a command
//! line is world-readable through `/proc/<pid>/cmdline`, and it ends up in shell history,
//! audit logs and our own alert stream), and give the output path the byte ranges to
//! [`redact_event`] so that the alert log and every SIEM downstream never store the secret.
//!
//! Detection has three layers, from most to least certain:
//! - token formats that identify themselves (`AKIA…`, `ghp_…`, `glpat-…`, PEM blocks, JWTs),
//!   checked against every argument and text ([`patterns`]);
//! - context: a flag that takes a password for this particular program (`mysql -pX`,
//!   `sshpass -p X`, `curl -u user:X`), a `NAME=value` whose name says secret, a
//!   `user:pass@` URL, an `Authorization:` header ([`argv`], [`patterns`]);
//! - a weak keyword (`key`, `auth`, `api`) next to a value that looks generated
//!   ([`entropy`]); this is the only layer that looks at randomness, because a password
//!   after `--password` is a password however guessable it is.
//!
//! Cost: every argument goes through one `RegexSet` pass (a lazy DFA over a few dozen bytes);
//! only the patterns the set reports are then run for positions. The argv walk is string
//! compares on the tokens. Typical commands (`ls -la`, `git status`) find nothing in the set
//! and cost well under a microsecond per argument.

mod argv;
pub mod entropy;
mod patterns;
pub(crate) mod redact;
#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};

pub use redact::{redact_event, redact_str};

/// How bad a leak of this data would be. Ordered: `Public < Internal < Confidential <
/// Restricted`, so the worst of several findings is their `max()`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum Classification {
    /// Nothing sensitive known.
    #[default]
    Public,
    /// Host configuration and layout: useful to an attacker mapping the host, not a key.
    Internal,
    /// Limited-scope or indirect credentials: password hashes, key ids, session tokens,
    /// files that usually hold secrets.
    Confidential,
    /// A credential that grants access as it stands: passwords, API tokens, private keys.
    Restricted,
}

impl Classification {
    pub fn as_str(self) -> &'static str {
        match self {
            Classification::Public => "public",
            Classification::Internal => "internal",
            Classification::Confidential => "confidential",
            Classification::Restricted => "restricted",
        }
    }
}

/// One secret found: what it is, how sensitive, and where (a byte range of one field).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// The secret type (`github_token`, `password_flag`, ...; or an operator pattern's kind).
    pub kind: &'static str,
    pub classification: Classification,
    /// The event field, ECS-style with an index: `process.args[3]`; for
    /// [`Scanner::scan_text`] whatever the caller named it.
    pub field: String,
    /// Byte range of the secret itself (not its flag or keyword) within that field, on char
    /// boundaries.
    pub start: usize,
    pub end: usize,
    /// 0..=1: how sure the match is a real credential (a self-identifying token format is
    /// near 1; keyword plus entropy is around 0.6).
    pub confidence: f32,
}

#[derive(Debug, thiserror::Error)]
pub enum DlpError {
    #[error("custom DLP pattern {kind:?}: invalid regex {pattern:?}: {source}")]
    BadRegex {
        kind: String,
        pattern: String,
        #[source]
        source: Box<regex::Error>,
    },
    #[error(
        "custom DLP pattern kind {0:?}: must be 1-64 chars of [a-z0-9_] (it is used in redaction markers and alert fields)"
    )]
    BadKind(String),
    #[error("custom DLP pattern {kind:?}: regex {pattern:?} matches the empty string")]
    EmptyMatch { kind: String, pattern: String },
    #[error("DLP patterns together exceed the compiled size limit: {0}")]
    TooLarge(Box<regex::Error>),
}

/// A match before it is tied to a field name: `field` is the argument index (0 for text).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Hit {
    pub field: usize,
    pub start: usize,
    pub end: usize,
    pub kind: &'static str,
    pub class: Classification,
    pub confidence: f32,
    /// How specific the detector is: 3 token format or operator pattern, 2 context
    /// (flag, assignment, URL, header), 1 keyword plus entropy. When two findings cover the
    /// same bytes the more specific one names them.
    pub spec: u8,
}

/// Compiled detectors. Build once (a few ms), share by reference across threads, call per
/// event.
pub struct Scanner {
    patterns: patterns::Patterns,
}

impl Default for Scanner {
    fn default() -> Self {
        Scanner::new()
    }
}

impl Scanner {
    /// The built-in detectors.
    pub fn new() -> Self {
        Scanner {
            patterns: patterns::Patterns::builtin(),
        }
    }

    /// Built-ins plus operator patterns `(kind, regex, classification)`. A pattern with a
    /// capture group reports group 1 as the secret (so `token=(\w+)` redacts only the
    /// value); without one, the whole match.
    pub fn with_custom(custom: &[(String, String, Classification)]) -> Result<Self, DlpError> {
        Ok(Scanner {
            patterns: patterns::Patterns::with_custom(custom)?,
        })
    }

    /// Scan an argv. Each argument is checked for token formats on its own, then the whole
    /// vector is walked for context (`-p` of `mysql`, `--password X`, shells' `-c` scripts),
    /// so a finding can sit in the argument after the flag that announced it.
    pub fn scan_args(&self, args: &[String], out: &mut Vec<Finding>) {
        let mut hits = Vec::new();
        // Context first: on a tie (same bytes, same specificity) the earlier hit names the
        // finding, and `--password=X` reads better as password_flag than password_env.
        argv::scan(args, &mut hits);
        for (i, arg) in args.iter().enumerate() {
            self.patterns.scan(i, arg, true, &mut hits);
        }
        let base = out.len();
        emit(&mut hits, |h| format!("process.args[{}]", h.field), out);
        out[base..].sort_by(|a, b| {
            field_index(&a.field)
                .cmp(&field_index(&b.field))
                .then(a.start.cmp(&b.start))
        });
    }

    /// Scan text a process read (a sampled file, an environment block). `field` names it in
    /// the findings.
    pub fn scan_text(&self, field: &str, text: &str, out: &mut Vec<Finding>) {
        let mut hits = Vec::new();
        self.patterns.scan(0, text, false, &mut hits);
        emit(&mut hits, |_| field.to_owned(), out);
    }

    /// How sensitive a file is by its path alone. See [`patterns::classify_path`].
    pub fn classify_path(&self, path: &str) -> Classification {
        patterns::classify_path(path)
    }
}

/// How sensitive a file is by its path alone.
pub fn classify_path(path: &str) -> Classification {
    patterns::classify_path(path)
}

fn field_index(field: &str) -> usize {
    field
        .rsplit_once('[')
        .and_then(|(_, n)| n.strip_suffix(']')?.parse().ok())
        .unwrap_or(0)
}

/// Drop findings another finding already explains, then convert. `b` goes when some other
/// `a` covers its bytes and is more specific, or equally specific and wider (or the same
/// range and earlier). A wider but *less* specific finding does not hide a narrower, more
/// specific one: both stay, and redaction merges their ranges.
fn emit(hits: &mut [Hit], field: impl Fn(&Hit) -> String, out: &mut Vec<Finding>) {
    hits.sort_by_key(|h| (h.field, h.start, std::cmp::Reverse(h.end)));
    let keep: Vec<bool> = (0..hits.len())
        .map(|j| {
            let b = &hits[j];
            !hits.iter().enumerate().any(|(i, a)| {
                i != j
                    && a.field == b.field
                    && a.start <= b.start
                    && a.end >= b.end
                    && (a.spec > b.spec
                        || (a.spec == b.spec
                            && ((a.end - a.start) > (b.end - b.start)
                                || ((a.start, a.end) == (b.start, b.end) && i < j))))
            })
        })
        .collect();
    for (h, keep) in hits.iter().zip(keep) {
        if keep {
            out.push(Finding {
                kind: h.kind,
                classification: h.class,
                field: field(h),
                start: h.start,
                end: h.end,
                confidence: h.confidence,
            });
        }
    }
}
