//! Regex detectors (token formats, headers, URLs, `NAME=value` assignments), the naming
//! heuristics shared with the argv walk, and path classification.
//!
//! All word boundaries are ASCII (`(?-u:\b)`): a Unicode `\b` makes the lazy DFA give up
//! on non-ASCII haystacks and fall back to the slow engine, and every token alphabet here
//! is ASCII anyway.

use std::sync::{LazyLock, Mutex};

use regex::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};

use super::entropy::{is_hex_digest, is_uuid, looks_random, shannon_entropy};
use super::{Classification, DlpError, Hit};

use Classification::{Confidential, Restricted};

/// What to verify about a regex match before it becomes a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    /// The format is the proof.
    Plain,
    /// `sk_test_` keys reach only Stripe's test mode: confidential, not restricted.
    Stripe,
    /// The token after `Bearer` must look generated, or prose ("bearer authentication")
    /// would match.
    Bearer,
    /// `Basic <b64>` must decode to `user:pass` or follow an `Authorization` header name.
    Basic,
    /// `scheme://user:pass@`: group 2 is the password, group 1 the user (reported too when
    /// it is a token, as in `https://<token>:x-oauth-basic@github.com`).
    UrlPassword,
    /// `name = value` / `name: value`: the name decides, see [`classify_name`].
    Assign,
    /// Operator pattern: group 1 if it has one, else the whole match.
    Custom,
}

struct Pattern {
    kind: &'static str,
    class: Classification,
    confidence: f32,
    spec: u8,
    re: Regex,
    check: Check,
}

/// (kind, classification, confidence, specificity, prefilter or "" for the regex itself,
/// regex, check).
type Builtin = (
    &'static str,
    Classification,
    f32,
    u8,
    &'static str,
    &'static str,
    Check,
);

/// Crypt(3) hashes as in `/etc/shadow` and `useradd -p`: md5crypt, bcrypt, sha256/512-crypt,
/// yescrypt/gost-yescrypt/scrypt. Exact field shapes, so shell text like `$1$HOME` is not one.
const CRYPT: &str = r"\$1\$[./0-9A-Za-z]{1,8}\$[./0-9A-Za-z]{22}|\$2[abxy]?\$[0-9]{2}\$[./0-9A-Za-z]{53}|\$[56]\$(?:rounds=[0-9]+\$)?[./0-9A-Za-z]{1,16}\$[./0-9A-Za-z]{43,86}|\$(?:y|gy|7)\$[./0-9A-Za-z]+\$[./0-9A-Za-z]{1,86}\$[./0-9A-Za-z]{43}";

const BUILTINS: &[Builtin] = &[
    // Long-term (AKIA) and STS (ASIA) key ids. The id alone opens nothing, but it names the
    // account and it is half of the pair.
    (
        "aws_access_key_id",
        Confidential,
        0.9,
        3,
        "",
        r"(?-u:\b)(?:AKIA|ASIA)[A-Z0-9]{16}(?-u:\b)",
        Check::Plain,
    ),
    (
        "github_token",
        Restricted,
        0.99,
        3,
        "",
        r"(?-u:\b)(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})",
        Check::Plain,
    ),
    (
        "gitlab_token",
        Restricted,
        0.99,
        3,
        "",
        r"(?-u:\b)(?:glpat|gldt|glrt|glptt|glft|glsoat|glimt|gloas|glcbt)-[A-Za-z0-9_\-]{20,}",
        Check::Plain,
    ),
    // Bot/user/app tokens and incoming-webhook URLs (the URL is the credential).
    (
        "slack_token",
        Restricted,
        0.97,
        3,
        "",
        r"(?-u:\b)xox[abposre]-[A-Za-z0-9\-]{10,}|https://hooks\.slack\.com/(?:services|workflows)/[A-Za-z0-9+/_\-]{20,}",
        Check::Plain,
    ),
    // Secret and restricted keys only: `pk_` publishable keys are meant to be public.
    (
        "stripe_key",
        Restricted,
        0.97,
        3,
        "",
        r"(?-u:\b)(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}",
        Check::Stripe,
    ),
    // Often shipped in web pages on purpose, restricted by referrer: confidential.
    (
        "google_api_key",
        Confidential,
        0.9,
        3,
        "",
        r"(?-u:\b)AIza[0-9A-Za-z_\-]{35}",
        Check::Plain,
    ),
    // The key file's id; its private key is caught as private_key_block. Escaped quotes too,
    // for JSON passed through a command line.
    (
        "gcp_service_account_key",
        Restricted,
        0.95,
        3,
        "",
        r#"\\?"private_key_id\\?"[ \t]*:[ \t]*\\?"([0-9a-f]{40})\\?""#,
        Check::Plain,
    ),
    (
        "azure_storage_key",
        Restricted,
        0.95,
        3,
        "",
        r"(?i)AccountKey=([A-Za-z0-9+/]{86}==)",
        Check::Plain,
    ),
    // A PEM/OpenSSH/PGP private key; an unterminated block (truncated sample) runs to the
    // end so the partial key is still redacted.
    (
        "private_key_block",
        Restricted,
        0.99,
        3,
        "",
        r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----(?s:.)*?(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|\z)",
        Check::Plain,
    ),
    // Usually short-lived session tokens whose claims anyone can read: confidential.
    (
        "jwt",
        Confidential,
        0.9,
        3,
        "",
        r"(?-u:\b)eyJ[A-Za-z0-9_\-]{5,}\.eyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]*",
        Check::Plain,
    ),
    // Needs cracking before it opens anything: confidential.
    (
        "password_hash",
        Confidential,
        0.9,
        3,
        "",
        CRYPT,
        Check::Plain,
    ),
    (
        "bearer_token",
        Restricted,
        0.85,
        2,
        "",
        r"(?i)(?-u:\b)bearer[ \t]+([A-Za-z0-9\-._~+/]{8,}=*)",
        Check::Bearer,
    ),
    (
        "basic_auth_header",
        Restricted,
        0.9,
        2,
        "",
        r"(?i)(?-u:\b)basic[ \t]+([A-Za-z0-9+/]{4,}={0,2})",
        Check::Basic,
    ),
    // The password excludes `/` so `http://host:8080/x@y` is not `host` / `8080/x`; an
    // unencoded `/` in a password is invalid in a URL anyway.
    (
        "password_in_url",
        Restricted,
        0.95,
        2,
        "",
        r"(?i)(?-u:\b)[a-z][a-z0-9+.\-]{1,15}://([^\s:/@?#]+):([^\s@/]+)@",
        Check::UrlPassword,
    ),
    // `NAME=value`, `name: value`, `"name": "value"`, `?token=value`. The prefilter needs a
    // keyword right before the separator, so the common `--output=json`, `host:port` never
    // reach the (costlier) name analysis.
    (
        "password_env",
        Restricted,
        0.85,
        2,
        r#"(?i)(?:pass|pwd|secret|token|key|auth|api|credential|bearer|psk)[A-Za-z0-9_.\-]*["']?[ \t]*[:=]"#,
        r#"([A-Za-z_][A-Za-z0-9_.\-]*)(["']?)[ \t]*([:=])[ \t]*"#,
        Check::Assign,
    ),
];

/// Upper bound for one compiled operator regex: a pattern that needs more is almost
/// certainly a mistake, and this runs on every exec.
const CUSTOM_SIZE_LIMIT: usize = 1 << 20;

pub(super) struct Patterns {
    list: Vec<Pattern>,
    set: RegexSet,
}

impl Patterns {
    pub(super) fn builtin() -> Patterns {
        // The built-in table is a constant covered by the tests: failing to compile it is a
        // programming error, not an input error.
        Patterns::build(Vec::new()).expect("built-in DLP patterns compile")
    }

    pub(super) fn with_custom(
        custom: &[(String, String, Classification)],
    ) -> Result<Patterns, DlpError> {
        let mut extra = Vec::with_capacity(custom.len());
        for (kind, pattern, class) in custom {
            let valid_kind = !kind.is_empty()
                && kind.len() <= 64
                && kind
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !valid_kind {
                return Err(DlpError::BadKind(kind.clone()));
            }
            let re = RegexBuilder::new(pattern)
                .size_limit(CUSTOM_SIZE_LIMIT)
                .build()
                .map_err(|e| DlpError::BadRegex {
                    kind: kind.clone(),
                    pattern: pattern.clone(),
                    source: Box::new(e),
                })?;
            // An empty match would redact nothing and report noise at every offset.
            if re.is_match("") {
                return Err(DlpError::EmptyMatch {
                    kind: kind.clone(),
                    pattern: pattern.clone(),
                });
            }
            extra.push(Pattern {
                kind: intern(kind),
                class: *class,
                confidence: 0.9,
                spec: 3,
                re,
                check: Check::Custom,
            });
        }
        Patterns::build(extra)
    }

    fn build(extra: Vec<Pattern>) -> Result<Patterns, DlpError> {
        let mut list = Vec::with_capacity(BUILTINS.len() + extra.len());
        let mut prefilters: Vec<String> = Vec::with_capacity(list.capacity());
        for &(kind, class, confidence, spec, prefilter, re, check) in BUILTINS {
            let re = Regex::new(re).map_err(|e| DlpError::TooLarge(Box::new(e)))?;
            prefilters.push(if prefilter.is_empty() {
                re.as_str().to_owned()
            } else {
                prefilter.to_owned()
            });
            list.push(Pattern {
                kind,
                class,
                confidence,
                spec,
                re,
                check,
            });
        }
        for p in extra {
            prefilters.push(p.re.as_str().to_owned());
            list.push(p);
        }
        let set = RegexSetBuilder::new(&prefilters)
            .size_limit(CUSTOM_SIZE_LIMIT * 16)
            .build()
            .map_err(|e| DlpError::TooLarge(Box::new(e)))?;
        Ok(Patterns { list, set })
    }

    /// Run the detectors the prefilter selects over `text`. `argv` says `text` is one
    /// argument (not a script or a file), so an unquoted `NAME=value` runs to its end.
    pub(super) fn scan(&self, field: usize, text: &str, argv: bool, hits: &mut Vec<Hit>) {
        let matched = self.set.matches(text);
        if !matched.matched_any() {
            return;
        }
        for idx in matched.iter() {
            let Some(p) = self.list.get(idx) else {
                continue;
            };
            let mut push = |start: usize, end: usize, kind, class, confidence: f32| {
                if start < end {
                    hits.push(Hit {
                        field,
                        start,
                        end,
                        kind,
                        class,
                        confidence,
                        spec: p.spec,
                    });
                }
            };
            if p.check == Check::Assign {
                scan_assignments(&p.re, text, argv, &mut push);
                continue;
            }
            for caps in p.re.captures_iter(text) {
                let Some(whole) = caps.get(0) else { continue };
                // Group 1 is the secret where the pattern has one; alternations may leave
                // it unset, then the whole match is.
                let m = caps.get(1).unwrap_or(whole);
                let v = m.as_str();
                match p.check {
                    Check::Plain | Check::Custom => {
                        push(m.start(), m.end(), p.kind, p.class, p.confidence)
                    }
                    Check::Stripe => {
                        let class = if v.contains("_test_") {
                            Confidential
                        } else {
                            p.class
                        };
                        push(m.start(), m.end(), p.kind, class, p.confidence)
                    }
                    Check::Bearer => {
                        if !is_placeholder(v) && looks_random(v, 8, 2.5) {
                            push(m.start(), m.end(), p.kind, p.class, p.confidence)
                        }
                    }
                    Check::Basic => {
                        let decoded_pair = base64_decode(v)
                            .and_then(|b| String::from_utf8(b).ok())
                            .is_some_and(|s| s.contains(':') && !s.chars().any(char::is_control));
                        let after_header = text[..whole.start()]
                            .trim_end_matches([' ', '\t', ':', '"', '\''])
                            .to_ascii_lowercase()
                            .ends_with("authorization");
                        if decoded_pair || after_header {
                            let conf = if decoded_pair { 0.95 } else { 0.8 };
                            push(m.start(), m.end(), p.kind, p.class, conf)
                        }
                    }
                    Check::UrlPassword => {
                        let Some(pass) = caps.get(2) else { continue };
                        if !is_placeholder(pass.as_str()) {
                            push(pass.start(), pass.end(), p.kind, p.class, p.confidence)
                        }
                        if looks_random(m.as_str(), 20, 3.5) {
                            push(m.start(), m.end(), p.kind, p.class, 0.7)
                        }
                    }
                    Check::Assign => {}
                }
            }
        }
    }
}

/// Operator kinds must be `&'static str` like the built-ins. Leaking each distinct name
/// once keeps that bounded however often the configuration is reloaded.
fn intern(kind: &str) -> &'static str {
    static NAMES: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());
    let mut names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(&k) = names.iter().find(|&&k| k == kind) {
        return k;
    }
    let k: &'static str = Box::leak(kind.to_owned().into_boxed_str());
    names.push(k);
    k
}

type Push<'a> = dyn FnMut(usize, usize, &'static str, Classification, f32) + 'a;

/// The `NAME=value` family. The regex finds `name` + separator; the name and the value are
/// judged here because the rules (name parts, quoting, what ends a value) do not fit a regex.
fn scan_assignments(re: &Regex, text: &str, argv: bool, push: &mut Push<'_>) {
    let whole_arg = argv && !text.bytes().any(|b| b.is_ascii_whitespace());
    for caps in re.captures_iter(text) {
        let (Some(all), Some(name), Some(sep)) = (caps.get(0), caps.get(1), caps.get(3)) else {
            continue;
        };
        let quoted_name = caps.get(2).is_some_and(|q| !q.is_empty());
        // `name:value` without a space is a tag, a port or a user (`image:tag`,
        // `host:443`, `admin:pw` for curl); YAML and headers put a space, JSON quotes.
        if sep.as_str() == ":" && !quoted_name && all.end() == sep.end() {
            continue;
        }
        assignment(
            text,
            name.start(),
            name.as_str(),
            all.end(),
            whole_arg,
            push,
        );
    }
}

/// Judge one `name` + value starting at `at`.
fn assignment(
    text: &str,
    name_start: usize,
    name: &str,
    at: usize,
    whole_arg: bool,
    push: &mut Push<'_>,
) {
    let class = classify_name(name);
    if class == NameClass::Not {
        return;
    }
    let in_query = name_start > 0
        && matches!(text.as_bytes()[name_start - 1], b'?' | b'&')
        && text[..name_start].contains("://");
    let env_style = name
        .bytes()
        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
    let Some((vs, ve)) = value_at(text, at, whole_arg, env_style, in_query) else {
        return;
    };
    let v = &text[vs..ve];
    if is_placeholder(v) {
        return;
    }
    let aws = name.len() >= 17
        && name.as_bytes()[name.len() - 17..].eq_ignore_ascii_case(b"secret_access_key");
    match class {
        NameClass::Password | NameClass::Secret => {
            // A key *file* path after `PRIVATE_KEY=` is not the key; a password that starts
            // with `/` is rare enough to accept the miss for password-named values only.
            if class == NameClass::Secret && is_path_like(v) {
                return;
            }
            let (kind, conf) = if aws {
                (
                    "aws_secret_access_key",
                    if v.len() == 40 { 0.95 } else { 0.8 },
                )
            } else if in_query {
                ("password_in_url", 0.9)
            } else {
                ("password_env", 0.85)
            };
            push(vs, ve, kind, Restricted, conf);
        }
        NameClass::Weak => {
            if weak_value_is_key(v) {
                let conf = (0.5 + 0.1 * (shannon_entropy(v) - 3.2)).clamp(0.5, 0.8);
                push(vs, ve, "generic_api_key", Confidential, conf);
            }
        }
        NameClass::Not => {}
    }
}

/// Next to a weak keyword (`key`, `auth`, `api`), only a generated-looking value counts,
/// and digests and UUIDs are identifiers (cache keys, request ids, image digests).
pub(super) fn weak_value_is_key(v: &str) -> bool {
    // Punctuation does not count as a class here: `required-for-all-endpoints` mixes
    // letters and dashes and is prose; generated keys mix case or digits.
    let alnum_classes = [
        v.bytes().any(|b| b.is_ascii_lowercase()),
        v.bytes().any(|b| b.is_ascii_uppercase()),
        v.bytes().any(|b| b.is_ascii_digit()),
    ]
    .iter()
    .filter(|&&x| x)
    .count();
    alnum_classes >= 2
        && looks_random(v, 16, 3.2)
        && !is_hex_digest(v)
        && !is_uuid(v)
        && !v.contains("://")
        && !v.contains("sha256:")
        && !v.contains("sha512:")
        && !is_path_like(v)
}

/// The byte range of a value starting at `at`: a quoted string's inside, else up to a
/// character that ends a value in shell or config text. When the text is one argument with
/// no whitespace, the shell is out of the picture and the value is the rest of the argument
/// (a `;` in `PASSWORD=a;b` is part of the password).
fn value_at(
    text: &str,
    at: usize,
    whole_arg: bool,
    env_style: bool,
    in_query: bool,
) -> Option<(usize, usize)> {
    let b = text.as_bytes();
    let first = *b.get(at)?;
    if first == b'"' || first == b'\'' {
        let mut i = at + 1;
        while i < b.len() && b[i] != first {
            if first == b'"' && b[i] == b'\\' {
                i += 1;
            }
            i += 1;
        }
        return Some((at + 1, i.min(b.len())));
    }
    let ends = |c: u8| {
        (in_query && matches!(c, b'&' | b'#'))
            // Option strings (`username=u,password=p,uid=0`) and form bodies
            // (`client_secret=x&scope=y`) separate with commas and ampersands; env variables
            // do not.
            || (!env_style && matches!(c, b',' | b'&'))
            || (!whole_arg
                && (c.is_ascii_whitespace()
                    || matches!(c, b';' | b'&' | b'|' | b'"' | b'\'' | b'`' | b')' | b'}')))
    };
    let end = b[at..]
        .iter()
        .position(|&c| ends(c))
        .map_or(b.len(), |n| at + n);
    (end > at).then_some((at, end))
}

/// How much a variable, flag or key name says about its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum NameClass {
    Not,
    /// Contains a keyword but could be anything (`key`, `auth`, `api_url_key_prefix`):
    /// needs a generated-looking value.
    Weak,
    /// Names a token, secret or key.
    Secret,
    /// Names a password.
    Password,
}

const PASSWORDISH: &[&str] = &[
    "password",
    "passwd",
    "pass",
    "pwd",
    "passphrase",
    "passcode",
    "passwords",
];
const SECRETISH: &[&str] = &[
    "secret",
    "secrets",
    "token",
    "tokens",
    "apikey",
    "credential",
    "credentials",
    "psk",
    "privatekey",
    "secretkey",
    "accesskey",
    "apitoken",
    "authtoken",
    "accountkey",
    "clientsecret",
    "accesstoken",
];
/// `<X>_KEY` names that are keys rather than, say, `SORT_KEY`.
const KEY_QUALIFIERS: &[&str] = &[
    "api",
    "access",
    "private",
    "secret",
    "account",
    "master",
    "encryption",
    "signing",
    "shared",
    "client",
    "app",
    "auth",
    "license",
    "session",
    "hmac",
];
/// Names whose first word makes them a switch about the secret, not the secret:
/// `--no-password`, `--ask-pass`, `--use-token`.
const NEG_FIRST: &[&str] = &[
    "no", "skip", "ask", "prompt", "require", "force", "enable", "disable", "allow", "use", "show",
    "print", "hide", "without", "empty", "read",
];
/// Names whose last word says the value is about the secret, not the secret:
/// `PASSWORD_FILE`, `--password-stdin`, `TOKEN_URL`, `AWS_ACCESS_KEY_ID`,
/// `credential.helper`.
const EXCLUDED_LAST: &[&str] = &[
    "file",
    "files",
    "path",
    "dir",
    "directory",
    "url",
    "uri",
    "endpoint",
    "host",
    "port",
    "name",
    "user",
    "username",
    "id",
    "ids",
    "type",
    "length",
    "len",
    "expiry",
    "expires",
    "expiration",
    "ttl",
    "timeout",
    "header",
    "prompt",
    "stdin",
    "fd",
    "env",
    "var",
    "policy",
    "mode",
    "format",
    "enabled",
    "disabled",
    "required",
    "min",
    "max",
    "count",
    "size",
    "helper",
    "provider",
    "source",
    "kind",
    "method",
    "algorithm",
    "alg",
    "scope",
    "scopes",
    "audience",
    "issuer",
    "location",
    "ref",
    "namespace",
    "region",
    "hint",
    "field",
    "param",
    "command",
    "cmd",
    "server",
    "service",
    "limit",
    "version",
    "prefix",
    "suffix",
    "pattern",
    "label",
    "encoding",
    "strength",
    "age",
    "history",
    "interval",
    "days",
    "sock",
    "socket",
    "agent",
    "backend",
    "manager",
    "store",
];
const WEAK_KEYWORDS: &[&str] = &[
    "key",
    "token",
    "secret",
    "pass",
    "pwd",
    "auth",
    "api",
    "credential",
    "bearer",
];

/// Split a name into words: at non-alphanumerics, camelCase humps, acronym ends
/// (`APIKey` → `API`, `Key`) and letter/digit changes. At most 16 words are kept (names are
/// short; a 2 KB "name" is not one).
fn name_parts(name: &str) -> ([&str; 16], usize) {
    let mut parts = [""; 16];
    let mut n = 0;
    let b = name.as_bytes();
    let mut start: Option<usize> = None;
    let mut flush = |s: usize, e: usize, n: &mut usize| {
        if s < e && *n < parts.len() {
            parts[*n] = &name[s..e];
            *n += 1;
        }
    };
    for i in 0..b.len() {
        let c = b[i];
        if !c.is_ascii_alphanumeric() {
            if let Some(s) = start.take() {
                flush(s, i, &mut n);
            }
            continue;
        }
        if let Some(s) = start {
            let p = b[i - 1];
            let hump = p.is_ascii_lowercase() && c.is_ascii_uppercase();
            let acronym_end = p.is_ascii_uppercase()
                && c.is_ascii_uppercase()
                && b.get(i + 1).is_some_and(|x| x.is_ascii_lowercase());
            let digit_change = p.is_ascii_digit() != c.is_ascii_digit();
            if hump || acronym_end || digit_change {
                flush(s, i, &mut n);
                start = Some(i);
            }
        } else {
            start = Some(i);
        }
    }
    if let Some(s) = start {
        flush(s, b.len(), &mut n);
    }
    (parts, n)
}

fn one_of(word: &str, set: &[&str]) -> bool {
    set.iter().any(|s| word.eq_ignore_ascii_case(s))
}

fn contains_ignore_case(hay: &str, needle: &str) -> bool {
    hay.as_bytes()
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

/// What a name (`DB_PASSWORD`, `--api-key`, `keyStorePassword`, `X-Auth`) says about its
/// value. Word-based, so `PASS` in `BYPASS_CACHE` or `TOKEN` in `TOKENIZERS_PARALLELISM` is
/// no password or token.
pub(super) fn classify_name(name: &str) -> NameClass {
    if name.eq_ignore_ascii_case("pwd") || name.eq_ignore_ascii_case("oldpwd") {
        // The shell's working directory, not a password.
        return NameClass::Not;
    }
    let (parts, n) = name_parts(name);
    let parts = &parts[..n];
    let (Some(first), Some(last)) = (parts.first(), parts.last()) else {
        return NameClass::Not;
    };
    if (n > 1 && one_of(first, NEG_FIRST)) || one_of(last, EXCLUDED_LAST) {
        return NameClass::Not;
    }
    // `pass` names a password only as the last word (`DB_PASS`, `--pass`), not in
    // `pass-through`, `pass_fds` or `-plugin-opt=-pass-through=-lgcc`.
    if parts
        .iter()
        .any(|p| one_of(p, PASSWORDISH) && (!p.eq_ignore_ascii_case("pass") || p == last))
    {
        return NameClass::Password;
    }
    if parts.iter().any(|p| one_of(p, SECRETISH))
        || parts
            .windows(2)
            .any(|w| w[1].eq_ignore_ascii_case("key") && one_of(w[0], KEY_QUALIFIERS))
    {
        return NameClass::Secret;
    }
    if parts
        .iter()
        .any(|p| WEAK_KEYWORDS.iter().any(|k| contains_ignore_case(p, k)))
    {
        return NameClass::Weak;
    }
    NameClass::Not
}

/// A value that stands for a secret rather than being one: variable references (the
/// secret stays in the environment), templates, masks, booleans, `-` for stdin.
pub(super) fn is_placeholder(v: &str) -> bool {
    let v = v.trim();
    if v.is_empty() || v == "-" || v.starts_with('$') || v.starts_with("{{") {
        return true;
    }
    if v.starts_with("[REDACTED") || v == "%s" || v.starts_with("%(") {
        return true;
    }
    // `<your secret here>`, possibly cut at its first space by the value scanner.
    if v.starts_with('<') {
        return true;
    }
    if v.len() >= 3
        && v.bytes().all(|b| matches!(b, b'*' | b'x' | b'X' | b'.'))
        && !v.bytes().all(|b| b == b'.')
    {
        return true;
    }
    [
        "true",
        "false",
        "yes",
        "no",
        "on",
        "off",
        "null",
        "none",
        "nil",
        "undefined",
        "required",
        "optional",
        "prompt",
        "stdin",
    ]
    .iter()
    .any(|w| v.eq_ignore_ascii_case(w))
}

/// A filesystem path rather than a value.
pub(super) fn is_path_like(v: &str) -> bool {
    v.starts_with('/') || v.starts_with("~/") || v.starts_with("./") || v.starts_with("../")
}

/// A whole value in crypt(3) format (`useradd -p '$6$…'`).
pub(super) fn is_crypt_hash(v: &str) -> bool {
    static RE: LazyLock<Regex> = LazyLock::new(|| {
        // A constant covered by the tests.
        Regex::new(&format!("^(?:{CRYPT})$")).expect("crypt pattern compiles")
    });
    RE.is_match(v)
}

/// Standard or URL-safe base64, padding optional. `None` when it is not base64.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.trim_end_matches('=').bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// How sensitive a file is by its path alone (the sensor decides from this which opens to
/// report and which files to sample). Restricted: key material and password databases;
/// confidential: files that usually hold credentials; internal: the rest of `/etc` and
/// `/root`; public: everything else.
pub(super) fn classify_path(path: &str) -> Classification {
    let path = path.trim_end_matches('/');
    let base = path.rsplit('/').next().unwrap_or(path);
    let base_l = base.to_ascii_lowercase();
    let path_l = path.to_ascii_lowercase();
    let ext = base_l.rsplit_once('.').map(|(_, e)| e).unwrap_or("");

    let restricted = matches!(
        path,
        "/etc/shadow" | "/etc/shadow-" | "/etc/gshadow" | "/etc/gshadow-" | "/etc/security/opasswd"
    ) || matches!(
        base_l.as_str(),
        "id_rsa"
            | "id_dsa"
            | "id_ecdsa"
            | "id_ed25519"
            | "id_ecdsa_sk"
            | "id_ed25519_sk"
            | "identity"
            | ".git-credentials"
            | ".netrc"
            | "_netrc"
            | ".pgpass"
            | ".vault-token"
            | ".my.cnf"
            | "master.key"
    ) || matches!(
        ext,
        "pem" | "key" | "p12" | "pfx" | "jks" | "keystore" | "kdbx" | "ppk"
    ) || (base_l.starts_with("ssh_host_") && base_l.ends_with("_key"))
        || path_l.contains("/serviceaccount/token")
        || path_l.starts_with("/run/secrets/")
        || path_l.starts_with("/var/run/secrets/")
        // Another process's memory holds whatever keys it has loaded.
        || (path_l.starts_with("/proc/") && base_l == "mem");
    if restricted {
        return Restricted;
    }

    let template = [".example", ".sample", ".template", ".dist"]
        .iter()
        .any(|s| base_l.ends_with(s));
    let confidential = (base_l == ".env" || base_l.starts_with(".env.") || ext == "env")
        && !template
        || matches!(
            base_l.as_str(),
            "credentials"
                | "credentials.json"
                | "credentials.yaml"
                | "credentials.yml"
                | "credentials.xml"
                | "kubeconfig"
                | ".npmrc"
                | ".pypirc"
                | ".htpasswd"
                | "secrets.yaml"
                | "secrets.yml"
                | "secrets.json"
                | "secrets.toml"
                | "terraform.tfstate"
                | "terraform.tfstate.backup"
                | ".bash_history"
                | ".zsh_history"
                | ".sh_history"
                | ".mysql_history"
                | ".psql_history"
                | ".python_history"
                | "wp-config.php"
        )
        || ext == "ovpn"
        || path_l.ends_with("/.kube/config")
        || path_l.ends_with("/.docker/config.json")
        || (path_l.starts_with("/proc/") && base_l == "environ");
    if confidential {
        return Confidential;
    }
    if path_l.starts_with("/etc/") || path_l.starts_with("/root/") || path_l == "/root" {
        return Classification::Internal;
    }
    Classification::Public
}
