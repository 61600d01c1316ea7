//! Turning observed values into learnable shapes: the variable parts of paths and command
//! lines (pids, numbers, random names, hashes) become wildcards, so a baseline learns
//! `/proc/*/stat` once instead of a path per pid.

/// The wildcard a variable path component or token becomes.
pub const ANY: &str = "*";

/// A path with numeric and random-looking components replaced by `*`.
pub fn path(p: &str) -> String {
    let mut out = String::with_capacity(p.len());
    for (i, comp) in p.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        out.push_str(&component(comp));
    }
    out
}

/// One path component: wholly variable → `*`; a name with a variable part (`tmp.AbX91kQz`,
/// `app-3f2a9c1d.log`) keeps its stable parts.
fn component(c: &str) -> String {
    if c.is_empty() || c == "." || c == ".." {
        return c.to_owned();
    }
    if is_variable(c) {
        return ANY.to_owned();
    }
    // Split on the separators names are built with and generalize each token.
    let mut out = String::with_capacity(c.len());
    let mut token = String::new();
    let mut changed = false;
    for ch in c.chars() {
        if matches!(ch, '.' | '-' | '_' | ':' | '@' | '+' | ',') {
            changed |= push_token(&mut out, &token);
            token.clear();
            out.push(ch);
        } else {
            token.push(ch);
        }
    }
    changed |= push_token(&mut out, &token);
    if changed { out } else { c.to_owned() }
}

fn push_token(out: &mut String, token: &str) -> bool {
    // Short numbers inside a name are versions (`libc.so.6`, `python3.11`, `x86_64`).
    let short_number = token.len() < 3 && token.bytes().all(|b| b.is_ascii_digit());
    if !token.is_empty() && !short_number && is_variable(token) {
        // mkstemp names keep their fixed prefix: `tmpAbX91kQz` → `tmp*`.
        out.push_str(fixed_prefix(token));
        out.push_str(ANY);
        true
    } else {
        out.push_str(token);
        false
    }
}

/// The lowercase prefix (3+ letters) before a random tail of 6+ characters, or "".
fn fixed_prefix(token: &str) -> &str {
    let n = token.bytes().take_while(u8::is_ascii_lowercase).count();
    if n >= 3 && token.len() - n >= 6 && is_variable(&token[n..]) {
        &token[..n]
    } else {
        ""
    }
}

/// Numbers, hex strings, UUIDs and random-looking tokens: values that differ per run.
pub fn is_variable(t: &str) -> bool {
    let len = t.chars().count();
    if len == 0 {
        return false;
    }
    if t.bytes().all(|b| b.is_ascii_digit()) {
        return true;
    }
    if is_uuid(t) {
        return true;
    }
    let digits = t.bytes().filter(u8::is_ascii_digit).count();
    let upper = t.bytes().filter(u8::is_ascii_uppercase).count();
    let lower = t.bytes().filter(u8::is_ascii_lowercase).count();
    let alnum = digits + upper + lower;
    if alnum != t.len() {
        return false;
    }
    // Hex of hash or id length.
    if len >= 8 && digits > 0 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
        return true;
    }
    // mkstemp-style: mixed case and digits, or many digits among letters.
    len >= 6
        && ((upper > 0 && lower > 0 && digits > 0)
            || (digits >= 2 && upper + lower >= 2 && !digits_only_at_end(t)))
}

/// `python311`, `libc6`: a name with a version suffix is not random.
fn digits_only_at_end(t: &str) -> bool {
    let trimmed = t.trim_end_matches(|c: char| c.is_ascii_digit());
    !trimmed.bytes().any(|b| b.is_ascii_digit())
}

fn is_uuid(t: &str) -> bool {
    t.len() == 36
        && t.char_indices().all(|(i, c)| {
            if matches!(i, 8 | 13 | 18 | 23) {
                c == '-'
            } else {
                c.is_ascii_hexdigit()
            }
        })
}

/// Most arguments shown in a command shape; more become `…`.
const MAX_ARGS: usize = 12;
/// Arguments longer than this are payloads (scripts, blobs), not shape.
const MAX_ARG: usize = 64;

/// A command shape: the program's file name and its arguments with variable parts replaced
/// (`<n>` numbers, `<ip>` addresses, generalized paths, `<id>` random tokens, `<s>` long text).
pub fn command(executable: &str, args: &[String]) -> String {
    let name = executable.rsplit('/').next().unwrap_or(executable);
    let mut out = String::from(name);
    for (i, a) in args.iter().skip(1).enumerate() {
        out.push(' ');
        if i == MAX_ARGS {
            out.push('…');
            break;
        }
        out.push_str(&arg(a));
    }
    out
}

fn arg(a: &str) -> String {
    if a.chars().count() > MAX_ARG {
        return "<s>".into();
    }
    if a.parse::<f64>().is_ok() {
        return "<n>".into();
    }
    if a.parse::<std::net::IpAddr>().is_ok() || a.parse::<std::net::SocketAddr>().is_ok() {
        return "<ip>".into();
    }
    if a.starts_with('/') {
        return path(a);
    }
    // `--port=8080`, `-n5`: keep the flag, generalize the value.
    if let Some((flag, value)) = a.split_once('=')
        && flag.starts_with('-')
    {
        return format!("{flag}={}", arg(value));
    }
    if is_variable(a) {
        return "<id>".into();
    }
    a.to_owned()
}

/// A network peer: `ip:port` (IPv6 in brackets) or `unix:PATH`.
pub fn peer(ip: Option<&str>, port: Option<u16>, address: Option<&str>) -> Option<String> {
    match (ip, port, address) {
        (Some(ip), Some(port), _) if ip.contains(':') => Some(format!("[{ip}]:{port}")),
        (Some(ip), Some(port), _) => Some(format!("{ip}:{port}")),
        (_, _, Some(a)) => Some(format!("unix:{}", path(a))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_lose_their_variable_parts() {
        assert_eq!(path("/proc/1234/stat"), "/proc/*/stat");
        assert_eq!(path("/proc/self/maps"), "/proc/self/maps");
        assert_eq!(path("/tmp/tmp.AbX91kQz"), "/tmp/tmp.*");
        assert_eq!(path("/tmp/.tmpAbX91kQz/x"), "/tmp/.tmp*/x");
        assert_eq!(
            path("/tmp/sensor-runc-Qw3rT9yZ/rootfs"),
            "/tmp/sensor-runc-*/rootfs"
        );
        assert_eq!(path("/var/lib/x/3f2a9c1d8e7b/data"), "/var/lib/x/*/data");
        assert_eq!(
            path("/run/containerd/123e4567-e89b-12d3-a456-426614174000/x"),
            "/run/containerd/*/x"
        );
        assert_eq!(path("/var/log/app-2024.log"), "/var/log/app-*.log");
        // Names with versions are not random.
        assert_eq!(path("/usr/bin/python3.11"), "/usr/bin/python3.11");
        assert_eq!(
            path("/usr/lib/x86_64-linux-gnu/libc.so.6"),
            "/usr/lib/x86_64-linux-gnu/libc.so.6"
        );
        assert_eq!(path("/etc/nginx/nginx.conf"), "/etc/nginx/nginx.conf");
        assert_eq!(path(""), "");
        assert_eq!(path("relative/7/x"), "relative/*/x");
    }

    #[test]
    fn randomness_is_recognised() {
        for v in ["12345", "deadbeef01", "aZ3kQ9", "x7k2m9p4"] {
            assert!(is_variable(v), "{v}");
        }
        for v in ["nginx", "python311", "libc6", "config", "x86", "README"] {
            assert!(!is_variable(v), "{v}");
        }
    }

    #[test]
    fn command_shapes_keep_flags_and_drop_values() {
        let args: Vec<String> = ["curl", "-s", "--max-time=5", "http://x/y", "10.0.0.1", "42"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            command("/usr/bin/curl", &args),
            "curl -s --max-time=<n> http://x/y <ip> <n>"
        );
        let long = vec!["sh".to_owned(), "-c".to_owned(), "x".repeat(200)];
        assert_eq!(command("/bin/sh", &long), "sh -c <s>");
        let many: Vec<String> = (0..40).map(|i| format!("a{i}")).collect();
        assert!(command("/bin/x", &many).ends_with('…'));
        // Hostile bytes are kept as data, never interpreted.
        let weird = vec!["x".to_owned(), "a\nb\u{1b}[31m".to_owned()];
        assert_eq!(command("x", &weird), "x a\nb\u{1b}[31m");
    }

    #[test]
    fn peers_are_rendered_per_family() {
        assert_eq!(
            peer(Some("10.0.0.1"), Some(443), None).as_deref(),
            Some("10.0.0.1:443")
        );
        assert_eq!(
            peer(Some("::1"), Some(80), None).as_deref(),
            Some("[::1]:80")
        );
        assert_eq!(
            peer(None, None, Some("/run/app/123.sock")).as_deref(),
            Some("unix:/run/app/*.sock")
        );
        assert_eq!(peer(None, None, None), None);
    }
}
