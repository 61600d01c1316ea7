//! Terminal-safe rendering of attacker-controlled strings.
//!
//! Command lines, paths and container names come straight from the monitored
//! workload, so an attacker chooses every byte. Printing them raw would let
//! them move the cursor, rewrite earlier lines, forge a second log line or
//! reorder text with bidi overrides. Everything here renders such bytes as
//! visible, unambiguous escapes instead:
//!
//! | input                                   | output              |
//! |-----------------------------------------|---------------------|
//! | printable ASCII / printable UTF-8       | unchanged           |
//! | `\`                                     | `\\`                |
//! | LF, TAB, CR, ESC                        | `\n` `\t` `\r` `\e` |
//! | other C0 controls, DEL                  | `\xNN`              |
//! | bytes that are not valid UTF-8          | `\xNN` (NN >= 80)   |
//! | C1 controls, bidi, invisible, separators| `\u{NNNN}`          |
//!
//! Because `\` is itself escaped, every output has exactly one decoding.
//! `\xNN` always names a raw byte and `\u{..}` a code point, so a valid UTF-8
//! C1 character (`\u{85}`) never collides with a lone invalid byte (`\x85`).

use std::fmt::Write as _;

/// Longest possible truncation marker (`…[+<u64::MAX> bytes]`). Output of
/// [`escape_display`] never exceeds `max_len + MAX_SUFFIX_LEN` bytes.
pub const MAX_SUFFIX_LEN: usize = "…[+18446744073709551615 bytes]".len();

/// Renders `input` for a terminal, escaping anything that could alter the
/// display, and truncating to at most `max_len` bytes of escaped output.
///
/// When truncated, the output is cut on an escape-unit boundary (never inside
/// a UTF-8 character or an escape sequence) and ends with `…[+N bytes]`, where
/// `N` is the number of *input* bytes that were not rendered.
pub fn escape_display(input: &[u8], max_len: usize) -> String {
    let mut out = Bounded::new(max_len, input.len());
    let mut consumed = 0usize;
    let mut piece = String::with_capacity(12);
    for chunk in input.utf8_chunks() {
        for c in chunk.valid().chars() {
            piece.clear();
            escape_char(c, &mut piece);
            if !out.push(&piece) {
                return out.finish_truncated(input.len() - consumed);
            }
            consumed += c.len_utf8();
        }
        for &byte in chunk.invalid() {
            piece.clear();
            push_hex_byte(byte, &mut piece);
            if !out.push(&piece) {
                return out.finish_truncated(input.len() - consumed);
            }
            consumed += 1;
        }
    }
    out.into_string()
}

/// Convenience wrapper for already-decoded strings (e.g. fields of an alert
/// that were converted lossily from bytes earlier).
pub fn escape_str(s: &str, max_len: usize) -> String {
    escape_display(s.as_bytes(), max_len)
}

/// Output buffer that refuses pushes that would cross `max_len`, so the caller
/// can stop at a clean boundary instead of slicing an escape in half.
struct Bounded {
    out: String,
    max_len: usize,
}

impl Bounded {
    fn new(max_len: usize, input_len: usize) -> Self {
        // Cap the pre-allocation: the input may be huge while max_len is small.
        let cap = input_len.min(max_len).saturating_add(MAX_SUFFIX_LEN);
        Self {
            out: String::with_capacity(cap),
            max_len,
        }
    }

    fn push(&mut self, piece: &str) -> bool {
        if self.out.len().saturating_add(piece.len()) > self.max_len {
            return false;
        }
        self.out.push_str(piece);
        true
    }

    fn finish_truncated(mut self, omitted_bytes: usize) -> String {
        // Writing to a String cannot fail; ignoring the fmt::Result is safe.
        let _ = write!(self.out, "…[+{omitted_bytes} bytes]");
        self.out
    }

    fn into_string(self) -> String {
        self.out
    }
}

fn escape_char(c: char, out: &mut String) {
    match c {
        '\\' => out.push_str("\\\\"),
        '\n' => out.push_str("\\n"),
        '\t' => out.push_str("\\t"),
        '\r' => out.push_str("\\r"),
        '\x1b' => out.push_str("\\e"),
        // C0 and DEL are single bytes, so the byte escape is exact.
        '\0'..='\x1f' | '\x7f' => push_hex_byte(c as u8, out),
        c if is_unsafe_unicode(c) => {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        }
        c => out.push(c),
    }
}

fn push_hex_byte(byte: u8, out: &mut String) {
    let _ = write!(out, "\\x{byte:02x}");
}

/// Code points that are valid UTF-8 but control the terminal, break lines,
/// reorder text or are invisible (and thus usable to disguise a command).
pub(crate) fn is_unsafe_unicode(c: char) -> bool {
    matches!(
        c,
        // C1 controls, including NEL (U+0085) and CSI (U+009B), which some
        // terminals honour as 8-bit escape introducers.
        '\u{80}'..='\u{9f}'
        // Soft hyphen and combining grapheme joiner: invisible.
        | '\u{ad}'
        | '\u{34f}'
        // Arabic letter mark: bidi control.
        | '\u{61c}'
        // Hangul fillers: render as blank space.
        | '\u{115f}'
        | '\u{1160}'
        | '\u{3164}'
        | '\u{ffa0}'
        // Mongolian vowel separator: invisible.
        | '\u{180e}'
        // Zero-width space/non-joiner/joiner, LRM, RLM.
        | '\u{200b}'..='\u{200f}'
        // Line/paragraph separators (start a new line in many viewers) and
        // bidi embeddings/overrides U+202A..U+202E.
        | '\u{2028}'..='\u{202e}'
        // Word joiner, invisible operators, bidi isolates U+2066..U+2069 and
        // deprecated format controls.
        | '\u{2060}'..='\u{206f}'
        // Byte order mark / zero-width no-break space.
        | '\u{feff}'
        // Interlinear annotation controls.
        | '\u{fff9}'..='\u{fffb}'
        // Tag characters: invisible, used for "ASCII smuggling".
        | '\u{e0000}'..='\u{e007f}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const BIG: usize = usize::MAX / 2;

    /// Inverse of `escape_display` for untruncated output; exists only to
    /// prove that the escaping is unambiguous.
    fn unescape(s: &str) -> Vec<u8> {
        let mut out = Vec::new();
        let mut chars = s.chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                continue;
            }
            match chars.next() {
                Some('\\') => out.push(b'\\'),
                Some('n') => out.push(b'\n'),
                Some('t') => out.push(b'\t'),
                Some('r') => out.push(b'\r'),
                Some('e') => out.push(0x1b),
                Some('x') => {
                    let hex: String = chars.by_ref().take(2).collect();
                    out.push(u8::from_str_radix(&hex, 16).unwrap());
                }
                Some('u') => {
                    assert_eq!(chars.next(), Some('{'));
                    let hex: String = chars.by_ref().take_while(|&c| c != '}').collect();
                    let c = char::from_u32(u32::from_str_radix(&hex, 16).unwrap()).unwrap();
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
                other => panic!("dangling escape {other:?} in {s:?}"),
            }
        }
        out
    }

    #[test]
    fn printable_ascii_passes_through() {
        let s = "ls -la /tmp/foo_bar ~!@#$%^&*()[]{}<>?\"'";
        assert_eq!(escape_str(s, BIG), s);
    }

    #[test]
    fn printable_unicode_passes_through() {
        let s = "héllo wörld ✓ 日本語 🦀";
        assert_eq!(escape_str(s, BIG), s);
    }

    #[test]
    fn backslash_is_doubled() {
        assert_eq!(escape_str(r"C:\x41", BIG), r"C:\\x41");
    }

    #[test]
    fn named_c0_escapes() {
        assert_eq!(escape_str("a\nb\tc\rd\x1b[31m", BIG), r"a\nb\tc\rd\e[31m");
    }

    #[test]
    fn other_c0_and_del_become_hex() {
        assert_eq!(
            escape_display(b"\x00\x07\x08\x1f\x7f", BIG),
            r"\x00\x07\x08\x1f\x7f"
        );
    }

    #[test]
    fn c1_controls_become_unicode_escapes() {
        assert_eq!(escape_str("a\u{85}b\u{9b}c", BIG), r"a\u{85}b\u{9b}c");
    }

    #[test]
    fn bidi_controls_are_escaped() {
        let s = "ab\u{202a}\u{202b}\u{202c}\u{202d}\u{202e}\u{2066}\u{2067}\u{2068}\u{2069}";
        assert_eq!(
            escape_str(s, BIG),
            r"ab\u{202a}\u{202b}\u{202c}\u{202d}\u{202e}\u{2066}\u{2067}\u{2068}\u{2069}"
        );
    }

    #[test]
    fn zero_width_and_separators_are_escaped() {
        let s = "a\u{200b}b\u{200d}c\u{feff}d\u{2028}e\u{2029}f\u{e0041}";
        assert_eq!(
            escape_str(s, BIG),
            r"a\u{200b}b\u{200d}c\u{feff}d\u{2028}e\u{2029}f\u{e0041}"
        );
    }

    #[test]
    fn invalid_utf8_becomes_hex() {
        // Lone continuation byte, truncated 3-byte sequence, overlong NUL.
        assert_eq!(
            escape_display(b"a\x80b\xe2\x82c\xc0\x80", BIG),
            r"a\x80b\xe2\x82c\xc0\x80"
        );
    }

    #[test]
    fn c1_char_and_raw_byte_are_distinguishable() {
        assert_ne!(
            escape_display("\u{85}".as_bytes(), BIG),
            escape_display(b"\x85", BIG)
        );
    }

    #[test]
    fn truncation_reports_omitted_input_bytes() {
        assert_eq!(escape_str("abcdefghij", 4), "abcd…[+6 bytes]");
    }

    #[test]
    fn truncation_never_splits_a_char_or_escape() {
        // "é" is two bytes; with room for 2 bytes only "a" fits before it.
        assert_eq!(escape_str("aé", 2), "a…[+2 bytes]");
        // "\n" escapes to two bytes; it must not be cut to a lone backslash.
        assert_eq!(escape_str("a\nb", 2), "a…[+2 bytes]");
    }

    #[test]
    fn exact_fit_is_not_truncated() {
        assert_eq!(escape_str("abcd", 4), "abcd");
        assert_eq!(escape_str("", 0), "");
    }

    #[test]
    fn zero_budget_yields_only_marker() {
        assert_eq!(escape_str("abc", 0), "…[+3 bytes]");
    }

    fn assert_terminal_safe(out: &str) {
        for b in out.bytes() {
            assert!(b >= 0x20 && b != 0x7f, "control byte {b:#x} in {out:?}");
        }
        for c in out.chars() {
            assert!(!is_unsafe_unicode(c), "unsafe char {c:?} in {out:?}");
        }
    }

    proptest! {
        #[test]
        fn never_emits_control_bytes(input in proptest::collection::vec(any::<u8>(), 0..512),
                                     max_len in 0usize..600) {
            let out = escape_display(&input, max_len);
            assert_terminal_safe(&out);
            prop_assert!(out.len() <= max_len + MAX_SUFFIX_LEN);
        }

        #[test]
        fn never_emits_unsafe_chars_from_arbitrary_strings(s in any::<String>(), max_len in 0usize..300) {
            let out = escape_str(&s, max_len);
            assert_terminal_safe(&out);
            prop_assert!(out.len() <= max_len + MAX_SUFFIX_LEN);
        }

        #[test]
        fn untruncated_output_decodes_to_input(input in proptest::collection::vec(any::<u8>(), 0..256)) {
            let out = escape_display(&input, BIG);
            prop_assert_eq!(unescape(&out), input);
        }

        #[test]
        fn truncated_output_is_a_prefix_rendering(s in any::<String>(), max_len in 0usize..64) {
            let full = escape_str(&s, BIG);
            let cut = escape_str(&s, max_len);
            if full.len() <= max_len {
                prop_assert_eq!(cut, full);
            } else {
                let prefix = cut.split("…[+").next().unwrap_or_default();
                prop_assert!(full.starts_with(prefix));
                prop_assert!(prefix.len() <= max_len);
            }
        }
    }
}
