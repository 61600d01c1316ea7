//! Randomness heuristics for "is this value a key or a word?".
//!
//! A keyword alone (`key=`, `auth:`) says little: `key=value`, `auth=none` and cache keys are
//! everywhere. What separates a credential is that it was generated: long, high Shannon
//! entropy, several character classes. Hex digests and UUIDs are generated too, which is why
//! they get their own recognisers: they are identifiers far more often than secrets.

/// Shannon entropy in bits per byte. Bytes, not chars: candidates are ASCII token alphabets
/// and a byte histogram needs no allocation.
pub fn shannon_entropy(s: &str) -> f32 {
    let bytes = s.as_bytes();
    if bytes.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for &b in bytes {
        counts[b as usize] += 1;
    }
    let len = bytes.len() as f32;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f32 / len;
            -p * p.log2()
        })
        .sum()
}

/// How many of lowercase, uppercase, digit and other-printable occur.
pub fn char_classes(s: &str) -> u8 {
    let (mut lo, mut up, mut dig, mut other) = (false, false, false, false);
    for b in s.bytes() {
        match b {
            b'a'..=b'z' => lo = true,
            b'A'..=b'Z' => up = true,
            b'0'..=b'9' => dig = true,
            _ => other = true,
        }
    }
    lo as u8 + up as u8 + dig as u8 + other as u8
}

/// A hex string of a digest length (MD5, SHA-1, SHA-224, SHA-256, SHA-384, SHA-512): git
/// object names, `sha256sum` output, image digests.
pub fn is_hex_digest(s: &str) -> bool {
    matches!(s.len(), 32 | 40 | 56 | 64 | 96 | 128) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `8-4-4-4-12` hex: request ids, container ids, Kubernetes UIDs.
pub fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, &c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// Generated-looking: at least `min_len` bytes, `min_bits` of entropy per byte and two
/// character classes (a long all-lowercase word is not a key however varied its letters).
pub fn looks_random(s: &str, min_len: usize, min_bits: f32) -> bool {
    s.len() >= min_len && char_classes(s) >= 2 && shannon_entropy(s) >= min_bits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entropy_bounds() {
        assert_eq!(shannon_entropy(""), 0.0);
        assert_eq!(shannon_entropy("aaaa"), 0.0);
        assert!((shannon_entropy("ab") - 1.0).abs() < 1e-6);
        assert!(shannon_entropy("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY") > 4.0);
    }

    #[test]
    fn digests_and_uuids() {
        assert!(is_hex_digest("3f786850e387550fdab836ed7e6dc881de23001b"));
        assert!(!is_hex_digest("3f786850e387550fdab836ed7e6dc881de23001g"));
        assert!(is_uuid("550e8400-e29b-41d4-a716-446655440000"));
        assert!(!is_uuid("550e8400e29b41d4a716446655440000xxxx"));
        assert_eq!(char_classes("aA1-"), 4);
        assert!(!looks_random("passwordpassword", 16, 3.0));
        assert!(looks_random("q8Zr2LmX0vT4nB7kW1sY", 16, 3.0));
    }
}
