//! Byte streams to receivers: TCP, or TLS over TCP, with connect timeouts, plus the
//! address parsing every sink shares.

use std::{
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
};
use tokio_rustls::{TlsConnector, client::TlsStream};

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("{address}: connect timed out after {secs} s")]
    ConnectTimeout { address: String, secs: u64 },
    #[error("{address}: {source}")]
    Connect { address: String, source: io::Error },
    #[error("{address}: TLS handshake: {source}")]
    Handshake { address: String, source: io::Error },
    #[error("{0:?} is not a valid TLS server name")]
    ServerName(String),
}

/// `host:port` (or `[v6]:port`) split into its parts.
pub fn split_address(address: &str) -> Option<(String, u16)> {
    let (host, port) = address.rsplit_once(':')?;
    let port: u16 = port.parse().ok().filter(|p| *p != 0)?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    (!host.is_empty() && !host.contains(|c: char| c.is_whitespace() || c == '/'))
        .then(|| (host.to_owned(), port))
}

pub enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => s.get_ref().0,
        }
    }

    /// Whether the peer has closed or reset the connection, without blocking. Checked before
    /// reusing a connection, so a receiver that went away is noticed before we write into a
    /// dead socket (whose first write would still succeed).
    pub fn peer_gone(&self) -> bool {
        let mut buf = [0u8; 1];
        match nix::sys::socket::recv(
            std::os::fd::AsRawFd::as_raw_fd(self.tcp()),
            &mut buf,
            nix::sys::socket::MsgFlags::MSG_PEEK | nix::sys::socket::MsgFlags::MSG_DONTWAIT,
        ) {
            Err(nix::errno::Errno::EAGAIN) => false,
            // Our receivers never talk first; data here is a TLS close_notify or an error.
            Ok(n) => n == 0 || matches!(self, Stream::Tls(_)),
            Err(_) => true,
        }
    }

    pub async fn upgrade(
        self,
        tls: Arc<rustls::ClientConfig>,
        host: &str,
        address: &str,
        timeout: Duration,
    ) -> Result<Stream, TransportError> {
        let tcp = match self {
            Stream::Plain(s) => s,
            tls_already => return Ok(tls_already),
        };
        let name = super::tls::server_name(host)
            .ok_or_else(|| TransportError::ServerName(host.to_owned()))?;
        let handshake = TlsConnector::from(tls).connect(name, tcp);
        match tokio::time::timeout(timeout, handshake).await {
            Ok(Ok(s)) => Ok(Stream::Tls(Box::new(s))),
            Ok(Err(source)) => Err(TransportError::Handshake {
                address: address.to_owned(),
                source,
            }),
            Err(_) => Err(TransportError::ConnectTimeout {
                address: address.to_owned(),
                secs: timeout.as_secs(),
            }),
        }
    }
}

/// Connects to `host:port`; with `tls`, completes the handshake (the certificate valid for
/// `server_name`).
pub async fn connect(
    host: &str,
    port: u16,
    tls: Option<(Arc<rustls::ClientConfig>, &str)>,
    timeout: Duration,
) -> Result<Stream, TransportError> {
    let address = format!("{host}:{port}");
    let tcp = match tokio::time::timeout(timeout, TcpStream::connect((host, port))).await {
        Ok(Ok(s)) => s,
        Ok(Err(source)) => return Err(TransportError::Connect { address, source }),
        Err(_) => {
            return Err(TransportError::ConnectTimeout {
                address,
                secs: timeout.as_secs(),
            });
        }
    };
    let _ = tcp.set_nodelay(true);
    let plain = Stream::Plain(tcp);
    match tls {
        Some((config, name)) => plain.upgrade(config, name, &address, timeout).await,
        None => Ok(plain),
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(
            split_address("127.0.0.1:514"),
            Some(("127.0.0.1".into(), 514))
        );
        assert_eq!(split_address("[::1]:6514"), Some(("::1".into(), 6514)));
        assert_eq!(
            split_address("siem.example:6514"),
            Some(("siem.example".into(), 6514))
        );
        for bad in [
            "",
            "host",
            "host:",
            ":514",
            "host:0",
            "host:70000",
            "a b:1",
            "h/x:1",
        ] {
            assert_eq!(split_address(bad), None, "{bad}");
        }
    }
}
