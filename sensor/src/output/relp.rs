//! RELP, rsyslog's Reliable Event Logging Protocol: every syslog message is acknowledged by
//! the receiver, so a message counts as delivered only once the receiver has taken it. Plain
//! TCP syslog cannot tell what a receiver that went away had read; here an unanswered message
//! is sent again (at-least-once; the alert id lets receivers drop the repeat).
//!
//! A frame is `TXNR SP COMMAND SP DATALEN [SP DATA] LF`. The client opens with `open`, sends
//! `syslog` frames (a window of them before reading the answers), and the server answers each
//! with `rsp` and a status (`200 OK`); it may end the session at any time with `serverclose`.

use std::{collections::HashSet, time::Duration};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::transport::Stream;

#[derive(Debug, thiserror::Error)]
pub enum RelpError {
    #[error("RELP: {0}")]
    Io(#[from] std::io::Error),
    #[error("RELP: the receiver closed the session")]
    Closed,
    #[error("RELP: malformed frame from the receiver: {0}")]
    Protocol(String),
    #[error("RELP: the receiver refused message {txnr}: {status}")]
    Refused { txnr: u32, status: String },
    #[error("RELP: no answer within {0} s")]
    Timeout(u64),
}

/// Messages sent before their answers are read (rsyslog's imrelp window is 128 by default).
pub const WINDOW: usize = 128;
/// Transaction numbers run 1..=999 999 999 and wrap.
const TXNR_MAX: u32 = 999_999_999;
/// Largest answer accepted (answers are a status line and a few offers).
const MAX_DATA: usize = 64 * 1024;

const OFFERS: &str = "relp_version=0\nrelp_software=sensor\ncommands=syslog";

/// One frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub txnr: u32,
    pub command: String,
    pub data: Vec<u8>,
}

pub fn encode(txnr: u32, command: &str, data: &[u8]) -> Vec<u8> {
    let mut out = format!("{txnr} {command} {}", data.len()).into_bytes();
    if !data.is_empty() {
        out.push(b' ');
        out.extend_from_slice(data);
    }
    out.push(b'\n');
    out
}

/// The first frame in `buf` and its length, `None` when more bytes are needed.
pub fn decode(buf: &[u8]) -> Result<Option<(Frame, usize)>, RelpError> {
    let bad = |m: &str| RelpError::Protocol(m.to_owned());
    // The header is at most "999999999 " + a 32-letter command + " 999999999 ".
    let mut fields = Vec::with_capacity(3);
    let mut start = 0;
    let mut pos = 0;
    // After the loop `pos` is the separator that ended the length: a space or the LF.
    loop {
        if pos > 64 {
            return Err(bad("header too long"));
        }
        let Some(&b) = buf.get(pos) else {
            return Ok(None);
        };
        if b == b' ' || (fields.len() == 2 && b == b'\n') {
            fields.push(&buf[start..pos]);
            start = pos + 1;
            if fields.len() == 3 {
                break;
            }
        }
        pos += 1;
    }
    let number = |f: &[u8], what: &str| -> Result<usize, RelpError> {
        if f.is_empty() || f.len() > 9 || !f.iter().all(u8::is_ascii_digit) {
            return Err(RelpError::Protocol(format!("{what} is not a number")));
        }
        std::str::from_utf8(f)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| RelpError::Protocol(format!("{what} is not a number")))
    };
    let txnr = number(fields[0], "the transaction number")? as u32;
    let command = fields[1];
    if command.is_empty() || command.len() > 32 || !command.iter().all(u8::is_ascii_alphabetic) {
        return Err(bad("the command is not a word"));
    }
    let len = number(fields[2], "the data length")?;
    if len > MAX_DATA {
        return Err(bad("the data is too long"));
    }
    let ended_header = buf[pos] == b'\n';
    let (data_start, end) = if len == 0 {
        // `... 0\n` (or a stray space before the LF).
        if ended_header {
            (pos + 1, pos + 1)
        } else {
            match buf.get(pos + 1) {
                None => return Ok(None),
                Some(b'\n') => (pos + 2, pos + 2),
                Some(_) => return Err(bad("no LF after an empty frame")),
            }
        }
    } else {
        if ended_header {
            return Err(bad("data announced but the frame ended"));
        }
        (pos + 1, pos + 1 + len + 1)
    };
    if buf.len() < end {
        return Ok(None);
    }
    if buf[end - 1] != b'\n' {
        return Err(bad("the frame does not end with LF"));
    }
    let data = if len == 0 {
        Vec::new()
    } else {
        buf[data_start..data_start + len].to_vec()
    };
    Ok(Some((
        Frame {
            txnr,
            command: String::from_utf8_lossy(command).into_owned(),
            data,
        },
        end,
    )))
}

/// An open RELP session.
pub struct Session {
    stream: Stream,
    next: u32,
    buf: Vec<u8>,
    timeout: Duration,
}

impl Session {
    /// Offer the session and wait for the receiver to accept it.
    pub async fn open(stream: Stream, timeout: Duration) -> Result<Session, RelpError> {
        let mut s = Session {
            stream,
            next: 1,
            buf: Vec::new(),
            timeout,
        };
        let txnr = s.take_txnr();
        s.write(&encode(txnr, "open", OFFERS.as_bytes())).await?;
        let rsp = s.answer().await?;
        check(txnr, &rsp, &[txnr])?;
        Ok(s)
    }

    /// Send `messages`, a window at a time; `Ok` once the receiver acknowledged every one.
    pub async fn send(&mut self, messages: &[Vec<u8>]) -> Result<(), RelpError> {
        for window in messages.chunks(WINDOW) {
            let mut frames = Vec::new();
            let mut waiting = HashSet::with_capacity(window.len());
            for m in window {
                let txnr = self.take_txnr();
                frames.extend(encode(txnr, "syslog", m));
                waiting.insert(txnr);
            }
            self.write(&frames).await?;
            while !waiting.is_empty() {
                let rsp = self.answer().await?;
                let sent: Vec<u32> = waiting.iter().copied().collect();
                check(rsp.txnr, &rsp, &sent)?;
                waiting.remove(&rsp.txnr);
            }
        }
        Ok(())
    }

    /// Whether the receiver has gone (checked before reusing the session).
    pub fn peer_gone(&self) -> bool {
        self.stream.peer_gone()
    }

    /// End the session politely (best effort).
    pub async fn close(mut self) {
        let txnr = self.take_txnr();
        let _ = self.write(&encode(txnr, "close", b"")).await;
        let _ = self.answer().await;
    }

    fn take_txnr(&mut self) -> u32 {
        let t = self.next;
        self.next = if t >= TXNR_MAX { 1 } else { t + 1 };
        t
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), RelpError> {
        let w = async {
            self.stream.write_all(bytes).await?;
            self.stream.flush().await
        };
        match tokio::time::timeout(self.timeout, w).await {
            Ok(r) => Ok(r?),
            Err(_) => Err(RelpError::Timeout(self.timeout.as_secs())),
        }
    }

    /// The next `rsp` frame; `serverclose` or end of stream is [`RelpError::Closed`].
    async fn answer(&mut self) -> Result<Frame, RelpError> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            if let Some((frame, used)) = decode(&self.buf)? {
                self.buf.drain(..used);
                match frame.command.as_str() {
                    "rsp" => return Ok(frame),
                    "serverclose" => return Err(RelpError::Closed),
                    other => {
                        return Err(RelpError::Protocol(format!("unexpected command {other:?}")));
                    }
                }
            }
            let mut chunk = [0u8; 4096];
            let n = match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
                Ok(r) => r?,
                Err(_) => return Err(RelpError::Timeout(self.timeout.as_secs())),
            };
            if n == 0 {
                return Err(RelpError::Closed);
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// An answer must be `200` for a transaction we are waiting on.
fn check(txnr: u32, rsp: &Frame, waiting: &[u32]) -> Result<(), RelpError> {
    if !waiting.contains(&rsp.txnr) {
        return Err(RelpError::Protocol(format!(
            "an answer for transaction {} that was not sent",
            rsp.txnr
        )));
    }
    let status: String = String::from_utf8_lossy(&rsp.data)
        .lines()
        .next()
        .unwrap_or("")
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect();
    if status.starts_with("200") {
        Ok(())
    } else {
        Err(RelpError::Refused { txnr, status })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    #[test]
    fn frames_round_trip_and_bad_ones_are_refused() {
        let f = encode(7, "syslog", b"<14>1 a\nb");
        assert_eq!(f, b"7 syslog 9 <14>1 a\nb\n");
        let (frame, used) = decode(&f).unwrap().unwrap();
        assert_eq!(used, f.len());
        assert_eq!(frame.txnr, 7);
        assert_eq!(frame.data, b"<14>1 a\nb");
        // Empty data, with and without the optional space.
        assert_eq!(decode(b"3 rsp 0\n").unwrap().unwrap().1, 8);
        assert_eq!(decode(b"0 serverclose 0 \n").unwrap().unwrap().1, 17);
        // Partial frames wait for more.
        for cut in 1..f.len() {
            assert!(decode(&f[..cut]).unwrap().is_none(), "{cut}");
        }
        for bad in [
            &b"x rsp 6 200 OK\n"[..],
            b"1 r$p 6 200 OK\n",
            b"1 rsp 6 200 OKX",
            b"1 rsp 99999999 ",
            b"1 rsp 5\n",
            b"1234567890 rsp 0\n",
            b"1 rsp 0 x",
        ] {
            assert!(decode(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        assert!(decode(&[b'1'; 100]).is_err());
    }

    /// A loopback receiver: accepts the session, answers each message with `status(n)` (the
    /// n-th message), or closes after `close_after` messages.
    async fn receiver(
        status: fn(usize) -> &'static str,
        close_after: Option<usize>,
    ) -> (u16, tokio::task::JoinHandle<Vec<Vec<u8>>>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let h = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = Vec::new();
            let mut got = Vec::new();
            loop {
                let mut chunk = [0u8; 4096];
                let n = s.read(&mut chunk).await.unwrap_or(0);
                if n == 0 {
                    return got;
                }
                buf.extend_from_slice(&chunk[..n]);
                while let Some((f, used)) = decode(&buf).unwrap() {
                    buf.drain(..used);
                    let answer = match f.command.as_str() {
                        "open" => encode(f.txnr, "rsp", b"200 OK\nrelp_version=0"),
                        "syslog" => {
                            if close_after == Some(got.len()) {
                                let _ = s.write_all(&encode(0, "serverclose", b"")).await;
                                return got;
                            }
                            got.push(f.data);
                            encode(f.txnr, "rsp", status(got.len()).as_bytes())
                        }
                        _ => encode(f.txnr, "rsp", b"200 OK"),
                    };
                    s.write_all(&answer).await.unwrap();
                }
            }
        });
        (port, h)
    }

    async fn session(port: u16) -> Session {
        let stream =
            super::super::transport::connect("127.0.0.1", port, None, Duration::from_secs(5))
                .await
                .unwrap();
        Session::open(stream, Duration::from_secs(5)).await.unwrap()
    }

    #[tokio::test]
    async fn every_message_is_acknowledged_across_windows() {
        let (port, h) = receiver(|_| "200 OK", None).await;
        let mut s = session(port).await;
        let msgs: Vec<Vec<u8>> = (0..300).map(|i| format!("m{i}\nx").into_bytes()).collect();
        s.send(&msgs).await.unwrap();
        s.close().await;
        assert_eq!(h.await.unwrap(), msgs);
    }

    #[tokio::test]
    async fn a_refusal_or_a_server_close_fails_the_batch() {
        let (port, _h) = receiver(|n| if n == 3 { "500 full" } else { "200 OK" }, None).await;
        let mut s = session(port).await;
        let msgs: Vec<Vec<u8>> = (0..5).map(|i| vec![b'a' + i]).collect();
        let e = s.send(&msgs).await.unwrap_err();
        assert!(
            matches!(&e, RelpError::Refused { status, .. } if status == "500 full"),
            "{e}"
        );
        let (port, h) = receiver(|_| "200 OK", Some(2)).await;
        let mut s = session(port).await;
        let e = s.send(&msgs).await.unwrap_err();
        assert!(matches!(e, RelpError::Closed), "{e}");
        assert_eq!(h.await.unwrap().len(), 2);
    }
}
