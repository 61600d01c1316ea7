//! SMTP submission for the email sink: implicit TLS or STARTTLS (required, never
//! opportunistic), AUTH PLAIN, one message per digest. 4xx replies are retried, 5xx are
//! final. Header values are built from escaped text only, so alert content cannot inject
//! headers or end the DATA section.

use std::{sync::Arc, time::Duration};

use base64::Engine as _;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use super::transport::{self, Stream, TransportError};

#[derive(Debug, thiserror::Error)]
pub enum SmtpError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("SMTP {0}: {1}")]
    Io(String, std::io::Error),
    #[error("SMTP {0}: timed out")]
    Timeout(String),
    /// The server's reply, with its code (4xx: try again later; 5xx: refused).
    #[error("SMTP {step}: server replied {code} {text}")]
    Reply {
        step: String,
        code: u16,
        text: String,
    },
    #[error("SMTP server does not offer STARTTLS, and plaintext was not allowed")]
    NoStartTls,
}

impl SmtpError {
    pub fn permanent(&self) -> bool {
        matches!(self, SmtpError::Reply { code, .. } if *code >= 500)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Security {
    /// TLS from the first byte (port 465).
    Tls,
    /// Plain connect, then STARTTLS, refused if the server does not offer it (port 587).
    Starttls,
    /// No TLS: only with `allow_plaintext`.
    None,
}

pub struct Server<'a> {
    pub host: &'a str,
    pub port: u16,
    pub security: Security,
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub credentials: Option<(&'a str, &'a str)>,
    pub helo: &'a str,
    pub timeout: Duration,
}

pub struct Message<'a> {
    pub from: &'a str,
    pub to: &'a [String],
    pub subject: &'a str,
    pub body: &'a str,
    pub message_id: &'a str,
}

struct Conn {
    reader: BufReader<Stream>,
}

impl Conn {
    async fn reply(&mut self, step: &str) -> Result<(u16, Vec<String>), SmtpError> {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            let n = (&mut self.reader)
                .take(4096)
                .read_line(&mut line)
                .await
                .map_err(|e| SmtpError::Io(step.into(), e))?;
            if n == 0 {
                return Err(SmtpError::Io(
                    step.into(),
                    std::io::ErrorKind::UnexpectedEof.into(),
                ));
            }
            let line = line.trim_end();
            let code = line.get(..3).and_then(|c| c.parse::<u16>().ok());
            let Some(code) = code else {
                return Err(SmtpError::Reply {
                    step: step.into(),
                    code: 0,
                    text: crate::escape::escape_str(line, 200),
                });
            };
            lines.push(line.get(4..).unwrap_or("").to_owned());
            if line.as_bytes().get(3) != Some(&b'-') || lines.len() > 100 {
                return Ok((code, lines));
            }
        }
    }

    async fn send(&mut self, step: &str, line: &str) -> Result<(), SmtpError> {
        let s = self.reader.get_mut();
        s.write_all(line.as_bytes())
            .await
            .map_err(|e| SmtpError::Io(step.into(), e))?;
        s.write_all(b"\r\n")
            .await
            .map_err(|e| SmtpError::Io(step.into(), e))?;
        s.flush().await.map_err(|e| SmtpError::Io(step.into(), e))
    }

    async fn command(
        &mut self,
        step: &str,
        line: &str,
        ok: &[u16],
    ) -> Result<Vec<String>, SmtpError> {
        self.send(step, line).await?;
        self.expect(step, ok).await
    }

    async fn expect(&mut self, step: &str, ok: &[u16]) -> Result<Vec<String>, SmtpError> {
        let (code, lines) = self.reply(step).await?;
        if ok.contains(&code) {
            Ok(lines)
        } else {
            Err(SmtpError::Reply {
                step: step.into(),
                code,
                text: crate::escape::escape_str(&lines.join(" / "), 300),
            })
        }
    }
}

pub async fn send(server: &Server<'_>, msg: &Message<'_>) -> Result<(), SmtpError> {
    let step_timeout = server.timeout;
    let work = async {
        let tls_first = match server.security {
            Security::Tls => server.tls.clone().map(|t| (t, server.host)),
            _ => None,
        };
        let stream = transport::connect(server.host, server.port, tls_first, step_timeout).await?;
        let mut c = Conn {
            reader: BufReader::new(stream),
        };
        c.expect("greeting", &[220]).await?;
        let ehlo = format!("EHLO {}", server.helo);
        let mut caps = c.command("EHLO", &ehlo, &[250]).await?;
        if server.security == Security::Starttls {
            if !caps.iter().any(|l| l.eq_ignore_ascii_case("STARTTLS")) {
                return Err(SmtpError::NoStartTls);
            }
            c.command("STARTTLS", "STARTTLS", &[220]).await?;
            let Some(tls) = server.tls.clone() else {
                return Err(SmtpError::NoStartTls);
            };
            // Nothing may be buffered past the 220 (a server pipelining plaintext would be an
            // injection attempt): take the raw stream and upgrade it.
            if !c.reader.buffer().is_empty() {
                return Err(SmtpError::Reply {
                    step: "STARTTLS".into(),
                    code: 0,
                    text: "data after the STARTTLS reply".into(),
                });
            }
            let raw = c.reader.into_inner();
            let address = format!("{}:{}", server.host, server.port);
            let stream = raw
                .upgrade(tls, server.host, &address, step_timeout)
                .await?;
            c = Conn {
                reader: BufReader::new(stream),
            };
            caps = c.command("EHLO", &ehlo, &[250]).await?;
        }
        let _ = caps;
        if let Some((user, password)) = server.credentials {
            let token =
                base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"));
            // The line holds the credentials: its text is never logged, only the reply.
            c.command("AUTH", &format!("AUTH PLAIN {token}"), &[235])
                .await?;
        }
        c.command("MAIL FROM", &format!("MAIL FROM:<{}>", msg.from), &[250])
            .await?;
        for to in msg.to {
            c.command("RCPT TO", &format!("RCPT TO:<{to}>"), &[250, 251])
                .await?;
        }
        c.command("DATA", "DATA", &[354]).await?;
        let data = render(msg, server.helo);
        let s = c.reader.get_mut();
        s.write_all(data.as_bytes())
            .await
            .map_err(|e| SmtpError::Io("DATA".into(), e))?;
        c.command("end of DATA", ".", &[250]).await?;
        let _ = c.command("QUIT", "QUIT", &[221]).await;
        Ok(())
    };
    match tokio::time::timeout(step_timeout * 4, work).await {
        Ok(r) => r,
        Err(_) => Err(SmtpError::Timeout(format!(
            "{}:{}",
            server.host, server.port
        ))),
    }
}

/// The message as sent after DATA: headers, a base64 UTF-8 body (so no line of the body can
/// be a lone `.`), CRLF line ends.
pub fn render(msg: &Message<'_>, host: &str) -> String {
    let date = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc2822)
        .unwrap_or_default();
    let b64 = base64::engine::general_purpose::STANDARD.encode(msg.body.as_bytes());
    let mut out = String::new();
    out.push_str(&format!("From: {}\r\n", msg.from));
    out.push_str(&format!("To: {}\r\n", msg.to.join(", ")));
    out.push_str(&format!("Subject: {}\r\n", encode_header(msg.subject)));
    out.push_str(&format!("Date: {date}\r\n"));
    out.push_str(&format!(
        "Message-ID: <{}@{}>\r\n",
        msg.message_id,
        header_safe(host)
    ));
    out.push_str("MIME-Version: 1.0\r\n");
    out.push_str("Content-Type: text/plain; charset=utf-8\r\n");
    out.push_str("Content-Transfer-Encoding: base64\r\n\r\n");
    for chunk in b64.as_bytes().chunks(76) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or(""));
        out.push_str("\r\n");
    }
    out
}

fn header_safe(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_graphic())
        .take(200)
        .collect()
}

/// A header value: ASCII as is (controls removed), anything else as RFC 2047 encoded words.
pub fn encode_header(s: &str) -> String {
    let clean: String = s.chars().filter(|c| !c.is_control()).collect();
    if clean.is_ascii() {
        return clean;
    }
    // Encoded words of at most 45 input bytes each (75 chars encoded), split on char bounds.
    let mut words = Vec::new();
    let mut start = 0;
    while start < clean.len() {
        let mut end = (start + 45).min(clean.len());
        while !clean.is_char_boundary(end) {
            end -= 1;
        }
        words.push(format!(
            "=?UTF-8?B?{}?=",
            base64::engine::general_purpose::STANDARD.encode(&clean[start..end])
        ));
        start = end;
    }
    words.join("\r\n ")
}

/// A plausible mailbox for config checks: `local@domain`, no spaces, brackets or controls.
pub fn valid_mailbox(s: &str) -> bool {
    let ok_chars = !s
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || "<>,;\"".contains(c));
    matches!(s.split_once('@'), Some((l, d)) if !l.is_empty() && d.contains('.') || d == "localhost")
        && ok_chars
        && s.matches('@').count() == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_cannot_be_injected() {
        let subject = "alert\r\nBcc: victim@example.com\r\n\r\n.\r\nMAIL FROM:<x>";
        let msg = Message {
            from: "sensor@example.com",
            to: &["soc@example.com".into()],
            subject,
            body: "line\r\n.\r\nQUIT\r\n",
            message_id: "id-1",
        };
        let out = render(&msg, "host");
        let (head, body) = out.split_once("\r\n\r\n").unwrap();
        assert_eq!(head.lines().filter(|l| l.starts_with("Bcc")).count(), 0);
        assert!(head.contains("Subject: alertBcc: victim@example.com.MAIL FROM:<x>"));
        assert!(body.lines().all(|l| l != "."), "no line ends DATA early");
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(body.replace("\r\n", ""))
            .unwrap();
        assert_eq!(decoded, msg.body.as_bytes());
    }

    #[test]
    fn non_ascii_subjects_are_encoded_words() {
        let e = encode_header(&"é".repeat(40));
        assert!(e.starts_with("=?UTF-8?B?"));
        assert!(e.split("\r\n ").all(|w| w.len() <= 75), "{e}");
    }

    #[test]
    fn mailboxes() {
        assert!(valid_mailbox("soc@example.com"));
        assert!(valid_mailbox("root@localhost"));
        for bad in [
            "",
            "x",
            "a@b@c.d",
            "a b@c.d",
            "<a@b.c>",
            "a@b.c\r\nRCPT TO:<x@y.z>",
        ] {
            assert!(!valid_mailbox(bad), "{bad}");
        }
    }
}
