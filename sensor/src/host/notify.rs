//! systemd's notification protocol (`Type=notify`): READY=1 once the probes are attached,
//! WATCHDOG=1 while the pipeline keeps turning, STOPPING=1 on the way out.
//!
//! Spoken directly on `$NOTIFY_SOCKET` (a datagram socket, possibly abstract) so the agent
//! needs no libsystemd. Without the variable every call is a no-op.

use std::{
    io,
    os::{linux::net::SocketAddrExt, unix::net::UnixDatagram},
    time::Duration,
};

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("NOTIFY_SOCKET {path:?}: {source}")]
    Send { path: String, source: io::Error },
    #[error("NOTIFY_SOCKET {0:?} is neither a path nor an abstract name")]
    Address(String),
}

/// Where to send notifications, read once from the environment.
#[derive(Debug, Clone, Default)]
pub struct Notifier {
    socket: Option<String>,
    watchdog: Option<Duration>,
}

impl Notifier {
    pub fn from_env() -> Self {
        let socket = std::env::var("NOTIFY_SOCKET")
            .ok()
            .filter(|s| !s.is_empty());
        Self {
            socket,
            watchdog: watchdog_interval(
                std::env::var("WATCHDOG_USEC").ok().as_deref(),
                std::env::var("WATCHDOG_PID").ok().as_deref(),
                std::process::id(),
            ),
        }
    }

    pub fn enabled(&self) -> bool {
        self.socket.is_some()
    }

    /// How often to send WATCHDOG=1 (half systemd's timeout), when systemd asked for it.
    pub fn watchdog(&self) -> Option<Duration> {
        self.watchdog.filter(|_| self.enabled())
    }

    /// Sends one notification ("READY=1", "STATUS=...", ...). A no-op without a socket.
    pub fn send(&self, state: &str) -> Result<(), NotifyError> {
        let Some(path) = &self.socket else {
            return Ok(());
        };
        let err = |source| NotifyError::Send {
            path: path.clone(),
            source,
        };
        let sock = UnixDatagram::unbound().map_err(err)?;
        if let Some(name) = path.strip_prefix('@') {
            let addr =
                std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).map_err(err)?;
            sock.send_to_addr(state.as_bytes(), &addr).map_err(err)?;
        } else if path.starts_with('/') {
            sock.send_to(state.as_bytes(), path).map_err(err)?;
        } else {
            return Err(NotifyError::Address(path.clone()));
        }
        Ok(())
    }

    /// Like [`send`](Self::send), but a failure is only logged: systemd being unreachable must
    /// not stop a security sensor.
    pub fn tell(&self, state: &str) {
        if let Err(error) = self.send(state) {
            tracing::warn!(%error, state, "sd_notify failed");
        }
    }
}

/// Half of `WATCHDOG_USEC`, if the watchdog is meant for this process (`WATCHDOG_PID` unset or
/// ours) and the value is a positive number.
fn watchdog_interval(usec: Option<&str>, pid: Option<&str>, me: u32) -> Option<Duration> {
    let usec: u64 = usec?.trim().parse().ok().filter(|&u| u > 0)?;
    if let Some(pid) = pid
        && pid.trim().parse::<u32>().ok() != Some(me)
    {
        return None;
    }
    Some(Duration::from_micros(usec / 2).max(Duration::from_millis(100)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdog_interval_is_half_and_only_for_us() {
        assert_eq!(
            watchdog_interval(Some("20000000"), None, 7),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            watchdog_interval(Some("20000000"), Some("7"), 7),
            Some(Duration::from_secs(10))
        );
        assert_eq!(watchdog_interval(Some("20000000"), Some("8"), 7), None);
        assert_eq!(watchdog_interval(Some("0"), None, 7), None);
        assert_eq!(watchdog_interval(Some("-5"), None, 7), None);
        assert_eq!(watchdog_interval(Some("soon"), None, 7), None);
        assert_eq!(watchdog_interval(None, None, 7), None);
    }

    #[test]
    fn sends_datagrams_to_a_path_and_an_abstract_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let server = UnixDatagram::bind(&path).unwrap();
        let n = Notifier {
            socket: Some(path.display().to_string()),
            watchdog: None,
        };
        n.send("READY=1").unwrap();
        let mut buf = [0u8; 64];
        let len = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1");

        let name = format!("sensor-notify-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let server = UnixDatagram::bind_addr(&addr).unwrap();
        let n = Notifier {
            socket: Some(format!("@{name}")),
            watchdog: None,
        };
        n.send("WATCHDOG=1").unwrap();
        let len = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"WATCHDOG=1");
    }

    #[test]
    fn bad_addresses_are_errors_and_no_socket_is_a_no_op() {
        let n = Notifier {
            socket: Some("relative/path".into()),
            watchdog: None,
        };
        assert!(matches!(n.send("READY=1"), Err(NotifyError::Address(_))));
        let n = Notifier {
            socket: Some("/nonexistent/sensor/notify".into()),
            watchdog: Some(Duration::from_secs(1)),
        };
        assert!(matches!(n.send("READY=1"), Err(NotifyError::Send { .. })));
        let off = Notifier::default();
        assert!(!off.enabled());
        assert!(off.watchdog().is_none());
        off.send("READY=1").unwrap();
    }
}
