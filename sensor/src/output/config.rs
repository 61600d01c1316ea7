//! `[[outputs]]`: where alerts go besides the local log. Checked field by field, with the
//! sink named in every message; fields that do not apply to a sink's type are refused rather
//! than silently ignored.

use std::{collections::BTreeMap, path::PathBuf};

use serde::{Deserialize, Serialize};

use crate::alert::Severity;

use super::{format::Format, smtp::Security};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SinkKind {
    Stdout,
    Syslog,
    Webhook,
    Email,
}

impl SinkKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SinkKind::Stdout => "stdout",
            SinkKind::Syslog => "syslog",
            SinkKind::Webhook => "webhook",
            SinkKind::Email => "email",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyslogTransport {
    Udp,
    Tcp,
    Tls,
    /// RELP (rsyslog's `imrelp`): every message acknowledged by the receiver.
    Relp,
    #[serde(rename = "relp-tls")]
    RelpTls,
}

impl SyslogTransport {
    pub fn is_relp(self) -> bool {
        matches!(self, SyslogTransport::Relp | SyslogTransport::RelpTls)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutputConfig {
    /// Unique; names the spool directory, the metrics and the status line.
    pub name: String,
    #[serde(rename = "type")]
    pub kind: Option<SinkKind>,
    pub format: Option<Format>,
    // Which alerts.
    pub min_severity: Option<Severity>,
    /// Rule ids (globs with `*`); empty: all.
    pub rules: Vec<String>,
    pub exclude_rules: Vec<String>,
    // syslog and email
    pub address: Option<String>,
    pub transport: Option<SyslogTransport>,
    pub facility: Option<String>,
    // webhook
    pub url: Option<String>,
    pub headers: BTreeMap<String, String>,
    /// Signs each body: `X-Sensor-Signature: sha256=HMAC(secret, timestamp "." body)`.
    pub hmac_secret_file: Option<PathBuf>,
    // email
    pub security: Option<Security>,
    pub username: Option<String>,
    pub password_file: Option<PathBuf>,
    pub from: Option<String>,
    pub to: Vec<String>,
    /// At most one mail per this many seconds; alerts in between go into one digest.
    pub digest_secs: Option<u64>,
    pub max_per_mail: Option<usize>,
    // TLS
    pub ca_file: Option<PathBuf>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    /// base64 SHA-256 of the server's SubjectPublicKeyInfo; any match passes.
    pub pin_sha256: Vec<String>,
    /// Name the certificate must be valid for (default: the host of address/url).
    pub server_name: Option<String>,
    /// Required for transports without TLS (udp, tcp, http://, SMTP without TLS).
    pub allow_plaintext: bool,
    // Delivery
    pub spool_max_bytes: Option<u64>,
    pub queue_max: Option<usize>,
    pub timeout_secs: Option<u64>,
    pub retry_min_ms: Option<u64>,
    pub retry_max_secs: Option<u64>,
}

impl OutputConfig {
    pub fn kind(&self) -> SinkKind {
        self.kind.unwrap_or(SinkKind::Stdout)
    }

    pub fn format(&self) -> Format {
        self.format.unwrap_or(match self.kind() {
            SinkKind::Stdout => Format::Text,
            SinkKind::Syslog => Format::Rfc5424,
            SinkKind::Webhook | SinkKind::Email => Format::Json,
        })
    }

    pub fn facility_number(&self) -> u8 {
        self.facility
            .as_deref()
            .and_then(super::syslog::facility_number)
            .unwrap_or(10)
    }

    /// Whether the sink sends without TLS (allowed only with `allow_plaintext`).
    pub fn plaintext(&self) -> bool {
        match self.kind() {
            SinkKind::Stdout => false,
            SinkKind::Syslog => !matches!(
                self.transport,
                Some(SyslogTransport::Tls | SyslogTransport::RelpTls)
            ),
            SinkKind::Webhook => self
                .url
                .as_deref()
                .is_some_and(|u| u.starts_with("http://")),
            SinkKind::Email => self.security == Some(Security::None),
        }
    }

    pub fn uses_tls(&self) -> bool {
        self.kind() != SinkKind::Stdout && !self.plaintext()
    }

    /// Where it sends, for status and logs (never a URL path or a credential).
    pub fn destination(&self) -> String {
        match self.kind() {
            SinkKind::Stdout => "stdout".into(),
            SinkKind::Syslog => format!(
                "{}://{}",
                match self.transport {
                    Some(SyslogTransport::Udp) => "udp",
                    Some(SyslogTransport::Tcp) => "tcp",
                    Some(SyslogTransport::Relp) => "relp",
                    Some(SyslogTransport::RelpTls) => "relp+tls",
                    _ => "tls",
                },
                self.address.as_deref().unwrap_or("")
            ),
            SinkKind::Webhook => self
                .url
                .as_deref()
                .and_then(|u| super::http::Url::parse(u).ok())
                .map(|u| u.origin())
                .unwrap_or_default(),
            SinkKind::Email => format!("smtp://{}", self.address.as_deref().unwrap_or("")),
        }
    }

    /// Static checks: everything but reading files and reaching the destination.
    pub fn check(&self) -> Result<(), String> {
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            || self.name.starts_with('.')
        {
            return Err("`name` must be set, using letters, digits, `-`, `_` and `.`".into());
        }
        let Some(kind) = self.kind else {
            return Err("`type` is missing (stdout, syslog, webhook or email)".into());
        };
        let set = |present: bool, field: &str, applies: bool| -> Result<(), String> {
            if present && !applies {
                Err(format!(
                    "`{field}` does not apply to type {}",
                    kind.as_str()
                ))
            } else {
                Ok(())
            }
        };
        use SinkKind::*;
        set(
            self.address.is_some(),
            "address",
            matches!(kind, Syslog | Email),
        )?;
        set(self.transport.is_some(), "transport", kind == Syslog)?;
        set(self.facility.is_some(), "facility", kind == Syslog)?;
        set(self.url.is_some(), "url", kind == Webhook)?;
        set(!self.headers.is_empty(), "headers", kind == Webhook)?;
        set(
            self.hmac_secret_file.is_some(),
            "hmac_secret_file",
            kind == Webhook,
        )?;
        for (f, p) in [
            ("security", self.security.is_some()),
            ("username", self.username.is_some()),
            ("password_file", self.password_file.is_some()),
            ("from", self.from.is_some()),
            ("to", !self.to.is_empty()),
            ("digest_secs", self.digest_secs.is_some()),
            ("max_per_mail", self.max_per_mail.is_some()),
        ] {
            set(p, f, kind == Email)?;
        }
        // Webhooks and mail check the certificate against the host they connect to.
        set(self.server_name.is_some(), "server_name", kind == Syslog)?;
        set(self.queue_max.is_some(), "queue_max", kind == Stdout)?;
        set(
            self.spool_max_bytes.is_some(),
            "spool_max_bytes",
            kind != Stdout,
        )?;
        let allowed: &[Format] = match kind {
            Stdout => &[Format::Text, Format::Json],
            Syslog => &[Format::Rfc5424, Format::Cef, Format::Leef],
            Webhook => &[Format::Json, Format::Slack, Format::Discord, Format::Ocsf],
            Email => &[Format::Json],
        };
        if let Some(f) = self.format
            && !allowed.contains(&f)
        {
            let names: Vec<&str> = allowed.iter().map(|f| f.as_str()).collect();
            return Err(format!(
                "format {} does not apply to type {}; use one of: {}",
                f.as_str(),
                kind.as_str(),
                names.join(", ")
            ));
        }
        for (field, pattern) in self
            .rules
            .iter()
            .map(|r| ("rules", r))
            .chain(self.exclude_rules.iter().map(|r| ("exclude_rules", r)))
        {
            if pattern.is_empty() || pattern.chars().any(|c| c.is_control() || c == ' ') {
                return Err(format!(
                    "`{field}` holds an empty or malformed pattern {pattern:?}"
                ));
            }
        }
        match kind {
            Stdout => {}
            Syslog => {
                if self.transport.is_none() {
                    return Err("`transport` is missing (udp, tcp, tls, relp or relp-tls)".into());
                }
                self.need_address()?;
                if let Some(f) = &self.facility
                    && super::syslog::facility_number(f).is_none()
                {
                    return Err(format!("unknown facility {f:?} (kern .. local7, or 0-23)"));
                }
            }
            Webhook => {
                let url = self.url.as_deref().ok_or("`url` is missing")?;
                super::http::Url::parse(url)?;
                for (k, v) in &self.headers {
                    let token = !k.is_empty()
                        && k.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b));
                    if !token {
                        return Err(format!("header name {k:?} is not a token"));
                    }
                    if v.chars().any(|c| c.is_control()) {
                        return Err(format!("header {k}: control characters in the value"));
                    }
                    if ["host", "content-length", "connection", "transfer-encoding"]
                        .contains(&k.to_ascii_lowercase().as_str())
                    {
                        return Err(format!("header {k} is set by the sensor"));
                    }
                }
            }
            Email => {
                self.need_address()?;
                let from = self.from.as_deref().ok_or("`from` is missing")?;
                if !super::smtp::valid_mailbox(from) {
                    return Err(format!("`from` {from:?} is not a mailbox (user@domain)"));
                }
                if self.to.is_empty() {
                    return Err("`to` is empty: name at least one recipient".into());
                }
                if let Some(bad) = self.to.iter().find(|t| !super::smtp::valid_mailbox(t)) {
                    return Err(format!("`to` {bad:?} is not a mailbox (user@domain)"));
                }
                if self.username.is_some() != self.password_file.is_some() {
                    return Err("`username` and `password_file` go together".into());
                }
                if self.max_per_mail == Some(0) {
                    return Err("`max_per_mail` must be at least 1".into());
                }
            }
        }
        if self.plaintext() && !self.allow_plaintext {
            return Err(format!(
                "{} sends without TLS; set allow_plaintext = true to accept that, or use TLS",
                self.destination()
            ));
        }
        let tls_fields = [
            ("ca_file", self.ca_file.is_some()),
            ("client_cert", self.client_cert.is_some()),
            ("client_key", self.client_key.is_some()),
            ("pin_sha256", !self.pin_sha256.is_empty()),
            ("server_name", self.server_name.is_some()),
        ];
        for (f, present) in tls_fields {
            if present && !self.uses_tls() {
                return Err(format!("`{f}` needs a TLS transport"));
            }
        }
        if self.client_cert.is_some() != self.client_key.is_some() {
            return Err("`client_cert` and `client_key` go together".into());
        }
        for p in &self.pin_sha256 {
            super::tls::parse_pin(p).map_err(|e| e.to_string())?;
        }
        if self.spool_max_bytes.is_some_and(|b| b < 64 * 1024) {
            return Err("`spool_max_bytes` must be at least 65536".into());
        }
        if self.timeout_secs == Some(0) || self.queue_max == Some(0) {
            return Err("`timeout_secs` and `queue_max` must be at least 1".into());
        }
        Ok(())
    }

    fn need_address(&self) -> Result<(), String> {
        let a = self
            .address
            .as_deref()
            .ok_or("`address` is missing (host:port)")?;
        super::transport::split_address(a)
            .map(|_| ())
            .ok_or_else(|| format!("`address` {a:?} is not host:port"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml_text: &str) -> Result<(), String> {
        let c: OutputConfig = toml::from_str(toml_text).map_err(|e| e.to_string())?;
        c.check()
    }

    #[test]
    fn good_sinks_pass() {
        for ok in [
            "name = \"out\"\ntype = \"stdout\"",
            "name = \"siem\"\ntype = \"syslog\"\ntransport = \"tls\"\naddress = \"siem:6514\"\nformat = \"cef\"",
            "name = \"u\"\ntype = \"syslog\"\ntransport = \"udp\"\naddress = \"127.0.0.1:514\"\nallow_plaintext = true",
            "name = \"r\"\ntype = \"syslog\"\ntransport = \"relp\"\naddress = \"127.0.0.1:2514\"\nallow_plaintext = true",
            "name = \"rt\"\ntype = \"syslog\"\ntransport = \"relp-tls\"\naddress = \"siem:2514\"\nca_file = \"/ca.pem\"",
            "name = \"hook\"\ntype = \"webhook\"\nurl = \"https://h.example/x\"\nformat = \"slack\"\nheaders = { Authorization = \"Bearer t\" }",
            "name = \"mail\"\ntype = \"email\"\naddress = \"smtp.example:587\"\nfrom = \"s@example.com\"\nto = [\"soc@example.com\"]",
        ] {
            assert_eq!(parse(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn bad_sinks_say_what_is_wrong() {
        for (bad, needle) in [
            ("type = \"stdout\"", "`name`"),
            ("name = \"x\"", "`type` is missing"),
            ("name = \"x\"\ntype = \"kafka\"", "unknown variant"),
            (
                "name = \"x\"\ntype = \"stdout\"\nformat = \"cef\"",
                "format cef does not apply",
            ),
            (
                "name = \"x\"\ntype = \"syslog\"\naddress = \"h:1\"",
                "`transport` is missing",
            ),
            (
                "name = \"x\"\ntype = \"syslog\"\ntransport = \"tcp\"\naddress = \"h:1\"",
                "allow_plaintext",
            ),
            (
                "name = \"x\"\ntype = \"syslog\"\ntransport = \"tls\"\naddress = \"nohost\"",
                "not host:port",
            ),
            (
                "name = \"x\"\ntype = \"syslog\"\ntransport = \"relp\"\naddress = \"h:1\"",
                "allow_plaintext",
            ),
            (
                "name = \"x\"\ntype = \"syslog\"\ntransport = \"relp\"\naddress = \"h:1\"\nallow_plaintext = true\nca_file = \"/ca.pem\"",
                "needs a TLS transport",
            ),
            (
                "name = \"x\"\ntype = \"syslog\"\ntransport = \"relp+tls\"\naddress = \"h:1\"",
                "unknown variant",
            ),
            (
                "name = \"x\"\ntype = \"stdout\"\nurl = \"https://a\"",
                "`url` does not apply",
            ),
            (
                "name = \"x\"\ntype = \"webhook\"\nurl = \"ftp://a\"",
                "https://",
            ),
            (
                "name = \"x\"\ntype = \"webhook\"\nurl = \"https://a\"\nheaders = { \"X-A\" = \"v\\r\\nX-B: y\" }",
                "control",
            ),
            (
                "name = \"x\"\ntype = \"webhook\"\nurl = \"http://a\"\nallow_plaintext = true\nca_file = \"/x\"",
                "needs a TLS",
            ),
            (
                "name = \"x\"\ntype = \"webhook\"\nurl = \"https://a\"\npin_sha256 = [\"zz\"]",
                "pin_sha256",
            ),
            (
                "name = \"x\"\ntype = \"email\"\naddress = \"h:25\"\nfrom = \"a@b.c\"",
                "`to` is empty",
            ),
            (
                "name = \"x\"\ntype = \"email\"\naddress = \"h:25\"\nfrom = \"a@b.c\"\nto = [\"x\"]",
                "not a mailbox",
            ),
            (
                "name = \"x\"\ntype = \"syslog\"\ntransport = \"tls\"\naddress = \"h:1\"\nfacility = \"mars\"",
                "unknown facility",
            ),
            (
                "name = \"x\"\ntype = \"stdout\"\nbogus = 1",
                "unknown field",
            ),
        ] {
            let err = parse(bad).unwrap_err();
            assert!(err.contains(needle), "{bad}: {err}");
        }
    }
}
