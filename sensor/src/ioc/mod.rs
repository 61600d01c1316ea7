//! Indicators of compromise: executable hashes and IP addresses/networks, from plain lists,
//! CSV and STIX 2.1 bundles. IP indicators are also loaded into kernel LPM tries, so only a
//! connect or accept that hits one costs userspace work.

pub mod hashes;

use std::{
    collections::HashMap,
    net::IpAddr,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum IocError {
    #[error("cannot read indicator file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Parse {
        path: String,
        line: usize,
        message: String,
    },
    #[error("{path}: {message}")]
    Stix { path: String, message: String },
}

/// Where an indicator came from, for the alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IocMeta {
    pub indicator: String,
    pub source: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

/// An IP network indicator (`prefix` bits of `addr`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpIndicator {
    pub addr: IpAddr,
    pub prefix: u8,
    pub meta: IocMeta,
}

#[derive(Debug, Clone, Default)]
pub struct IocSet {
    pub hashes: HashMap<[u8; 32], IocMeta>,
    pub ips: Vec<IpIndicator>,
}

pub(crate) fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    // from_str_radix alone would take a sign (`+f`).
    if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(s.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}

fn parse_ip(s: &str) -> Option<(IpAddr, u8)> {
    let (addr, prefix) = match s.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (s, None),
    };
    let addr: IpAddr = addr.parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max)?,
        None => max,
    };
    Some((addr, prefix))
}

impl IocSet {
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty() && self.ips.is_empty()
    }

    pub fn len(&self) -> usize {
        self.hashes.len() + self.ips.len()
    }

    /// One indicator value of any supported kind; `Err` names what it is not.
    fn add(&mut self, value: &str, meta: IocMeta) -> Result<(), String> {
        let v = value.trim();
        if let Some(h) = parse_hex32(&v.to_ascii_lowercase()) {
            self.hashes.insert(h, meta);
            return Ok(());
        }
        if let Some((addr, prefix)) = parse_ip(v) {
            self.ips.push(IpIndicator { addr, prefix, meta });
            return Ok(());
        }
        Err(format!(
            "{v:?} is not a SHA-256 (64 hex digits), an IPv4/IPv6 address or a CIDR"
        ))
    }

    /// Load every file (all or nothing: one bad line refuses the whole set).
    pub fn load(paths: &[PathBuf]) -> Result<IocSet, IocError> {
        let mut set = IocSet::default();
        // A directory means every regular file in it (sorted, not recursive).
        let mut files = Vec::new();
        for p in paths {
            if p.is_dir() {
                let mut inner: Vec<PathBuf> = std::fs::read_dir(p)
                    .map_err(|source| IocError::Read {
                        path: p.display().to_string(),
                        source,
                    })?
                    .flatten()
                    .map(|e| e.path())
                    // A signed bundle's manifest and signature are not indicators.
                    .filter(|f| f.is_file() && !crate::signing::bundle::is_bundle_file(f))
                    .collect();
                inner.sort();
                files.extend(inner);
            } else {
                files.push(p.clone());
            }
        }
        for p in &files {
            let text = std::fs::read_to_string(p).map_err(|source| IocError::Read {
                path: p.display().to_string(),
                source,
            })?;
            let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
            match ext {
                "json" => set.load_stix(p, &text)?,
                "csv" => set.load_csv(p, &text)?,
                _ => set.load_plain(p, &text)?,
            }
        }
        Ok(set)
    }

    fn load_plain(&mut self, path: &Path, text: &str) -> Result<(), IocError> {
        for (i, line) in text.lines().enumerate() {
            let value = line.split('#').next().unwrap_or("").trim();
            if value.is_empty() {
                continue;
            }
            let meta = IocMeta {
                indicator: value.to_owned(),
                source: path.display().to_string(),
                description: line
                    .split_once('#')
                    .map(|(_, c)| c.trim().to_owned())
                    .unwrap_or_default(),
            };
            self.add(value, meta).map_err(|message| IocError::Parse {
                path: path.display().to_string(),
                line: i + 1,
                message,
            })?;
        }
        Ok(())
    }

    /// CSV with a header; the indicator column is `indicator`, `value` or `ioc` (else the
    /// first), an optional `description`/`comment` column describes it. Quoted fields with
    /// commas are supported; embedded newlines are not.
    fn load_csv(&mut self, path: &Path, text: &str) -> Result<(), IocError> {
        let mut lines = text.lines().enumerate();
        let Some((_, header)) = lines.next() else {
            return Ok(());
        };
        let cols: Vec<String> = split_csv(header)
            .into_iter()
            .map(|c| c.to_ascii_lowercase())
            .collect();
        let vi = cols
            .iter()
            .position(|c| c == "indicator" || c == "value" || c == "ioc")
            .unwrap_or(0);
        let di = cols
            .iter()
            .position(|c| c == "description" || c == "comment");
        for (i, line) in lines {
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let fields = split_csv(line);
            let err = |message: String| IocError::Parse {
                path: path.display().to_string(),
                line: i + 1,
                message,
            };
            let value = fields
                .get(vi)
                .ok_or_else(|| err(format!("no column {} in this row", vi + 1)))?;
            let meta = IocMeta {
                indicator: value.trim().to_owned(),
                source: path.display().to_string(),
                description: di.and_then(|d| fields.get(d)).cloned().unwrap_or_default(),
            };
            self.add(value, meta).map_err(err)?;
        }
        Ok(())
    }

    /// STIX 2.1 bundle: `indicator` objects whose `pattern` compares `file:hashes.'SHA-256'`,
    /// `ipv4-addr:value` or `ipv6-addr:value` (several comparisons joined with OR are all
    /// taken). Other objects are ignored; an indicator with none of these is reported.
    fn load_stix(&mut self, path: &Path, text: &str) -> Result<(), IocError> {
        let stix_err = |message: String| IocError::Stix {
            path: path.display().to_string(),
            message,
        };
        let v: serde_json::Value =
            serde_json::from_str(text).map_err(|e| stix_err(format!("not JSON: {e}")))?;
        let objects = v
            .get("objects")
            .and_then(|o| o.as_array())
            .ok_or_else(|| stix_err("not a STIX bundle: no `objects` array".into()))?;
        let re = regex::Regex::new(
            r"(?i)(file:hashes\.(?:'SHA-256'|sha256|'sha256')|ipv4-addr:value|ipv6-addr:value)\s*=\s*'([^']+)'",
        )
        .map_err(|e| stix_err(e.to_string()))?;
        for (i, o) in objects.iter().enumerate() {
            if o.get("type").and_then(|t| t.as_str()) != Some("indicator") {
                continue;
            }
            let pattern = o
                .get("pattern")
                .and_then(|p| p.as_str())
                .ok_or_else(|| stix_err(format!("objects[{i}]: indicator without a pattern")))?;
            let name = o
                .get("name")
                .or_else(|| o.get("description"))
                .and_then(|n| n.as_str())
                .unwrap_or("")
                .to_owned();
            let mut found = 0;
            for c in re.captures_iter(pattern) {
                let value = &c[2];
                let meta = IocMeta {
                    indicator: value.to_owned(),
                    source: format!(
                        "{}#{}",
                        path.display(),
                        o.get("id").and_then(|x| x.as_str()).unwrap_or("")
                    ),
                    description: name.clone(),
                };
                self.add(value, meta)
                    .map_err(|m| stix_err(format!("objects[{i}]: {m}")))?;
                found += 1;
            }
            if found == 0 {
                return Err(stix_err(format!(
                    "objects[{i}]: pattern {pattern:?} has no file SHA-256 or IP comparison this sensor can match"
                )));
            }
        }
        Ok(())
    }

    /// The most specific IP indicator containing `ip`.
    pub fn match_ip(&self, ip: IpAddr) -> Option<&IocMeta> {
        self.ips
            .iter()
            .filter(|i| contains(i.addr, i.prefix, ip))
            .max_by_key(|i| i.prefix)
            .map(|i| &i.meta)
    }

    pub fn match_hash(&self, sha256: &[u8; 32]) -> Option<&IocMeta> {
        self.hashes.get(sha256)
    }
}

fn contains(net: IpAddr, prefix: u8, ip: IpAddr) -> bool {
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            let mask = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - prefix as u32)
            };
            u32::from(n) & mask == u32::from(a) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => {
            let mask = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - prefix as u32)
            };
            u128::from(n) & mask == u128::from(a) & mask
        }
        _ => false,
    }
}

fn split_csv(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn loads_plain_csv_and_stix() {
        let d = tempfile::tempdir().unwrap();
        let plain = write(
            d.path(),
            "list.txt",
            &format!("# bad hosts\n203.0.113.7  # c2\n198.51.100.0/24\n{SHA}\n2001:db8::/32\n"),
        );
        let csv = write(
            d.path(),
            "feed.csv",
            "type,value,description\nip,192.0.2.10,\"miner pool, eu\"\n",
        );
        let stix = write(
            d.path(),
            "bundle.json",
            &format!(
                r#"{{"type":"bundle","objects":[{{"type":"identity","id":"x"}},{{"type":"indicator","id":"indicator--1","name":"evil binary","pattern":"[file:hashes.'SHA-256' = '{}'] OR [ipv4-addr:value = '192.0.2.99/32']"}}]}}"#,
                SHA.to_uppercase()
            ),
        );
        let set = IocSet::load(&[plain, csv, stix]).unwrap();
        assert_eq!(set.hashes.len(), 1);
        assert_eq!(set.ips.len(), 5);
        let m = set.match_ip("198.51.100.42".parse().unwrap()).unwrap();
        assert_eq!(m.indicator, "198.51.100.0/24");
        assert_eq!(
            set.match_ip("192.0.2.10".parse().unwrap())
                .unwrap()
                .description,
            "miner pool, eu"
        );
        assert!(set.match_ip("192.0.2.11".parse().unwrap()).is_none());
        assert!(set.match_ip("2001:db8::1".parse().unwrap()).is_some());
        assert_eq!(
            set.match_hash(&parse_hex32(SHA).unwrap())
                .unwrap()
                .description,
            "evil binary"
        );
    }

    #[test]
    fn bad_lines_are_located_and_refuse_the_set() {
        let d = tempfile::tempdir().unwrap();
        let p = write(d.path(), "list.txt", "10.0.0.1\nnot-an-ioc\n");
        let e = IocSet::load(&[p]).unwrap_err().to_string();
        assert!(e.contains("list.txt:2:") && e.contains("not-an-ioc"), "{e}");
        let p = write(d.path(), "c.txt", "10.0.0.0/33\n");
        assert!(IocSet::load(&[p]).is_err());
        let p = write(
            d.path(),
            "b.json",
            r#"{"objects":[{"type":"indicator","pattern":"[domain-name:value = 'x.com']"}]}"#,
        );
        let e = IocSet::load(&[p]).unwrap_err().to_string();
        assert!(e.contains("objects[0]"), "{e}");
        let p = write(d.path(), "g.json", "{garbage");
        assert!(IocSet::load(&[p]).is_err());
    }

    /// A signed IOC directory loads: its manifest and signature are not indicator files.
    #[test]
    fn a_signed_directory_skips_its_manifest_and_signature() {
        use crate::signing::bundle;
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("ips.txt"), "10.0.0.1\n").unwrap();
        std::fs::write(d.path().join(bundle::MANIFEST), "{\"format\": 1}").unwrap();
        std::fs::write(d.path().join(bundle::SIGNATURE), "{}").unwrap();
        let set = IocSet::load(&[d.path().to_owned()]).unwrap();
        assert_eq!(set.len(), 1);
        // Any other JSON file is still read as STIX (and this one is not).
        std::fs::write(d.path().join("bundle.json"), "{\"format\": 1}").unwrap();
        assert!(IocSet::load(&[d.path().to_owned()]).is_err());
    }

    #[test]
    fn csv_quotes() {
        assert_eq!(split_csv(r#"a,"b,c","d""e""#), vec!["a", "b,c", "d\"e"]);
    }
}
