//! The CLI side of the control socket (blocking: the CLI has nothing else to do).

use std::{
    io::{BufRead, BufReader, Write},
    os::unix::net::UnixStream,
    path::Path,
};

use super::{ApiError, Request, Response};

pub struct Client {
    lines: std::io::Lines<BufReader<UnixStream>>,
}

impl Client {
    pub fn send(socket: &Path, req: &Request) -> Result<Client, ApiError> {
        let mut stream = UnixStream::connect(socket).map_err(|source| ApiError::Connect {
            path: socket.display().to_string(),
            source,
        })?;
        let mut line = serde_json::to_vec(req).map_err(|e| ApiError::Protocol {
            side: "client",
            message: e.to_string(),
        })?;
        line.push(b'\n');
        // A refused peer is told why and disconnected before its request is read: the
        // write then fails with EPIPE, but the reason waits to be read.
        if let Err(e) = stream.write_all(&line)
            && e.kind() != std::io::ErrorKind::BrokenPipe
        {
            return Err(e.into());
        }
        Ok(Client {
            lines: BufReader::new(stream).lines(),
        })
    }
}

impl Client {
    /// Send `req` and take its one answer (a refusal is an error).
    pub fn ask(socket: &Path, req: &Request) -> Result<Response, ApiError> {
        Client::send(socket, req)?
            .next()
            .unwrap_or(Err(ApiError::NoAnswer))
    }
}

/// Response lines; ends when the agent closes the stream.
impl Iterator for Client {
    type Item = Result<Response, ApiError>;

    fn next(&mut self) -> Option<Result<Response, ApiError>> {
        let line = match self.lines.next()? {
            Ok(l) => l,
            Err(e) => return Some(Err(e.into())),
        };
        Some(
            serde_json::from_str::<Response>(&line)
                .map_err(|e| ApiError::Protocol {
                    side: "agent",
                    message: e.to_string(),
                })
                .and_then(|r| match r {
                    Response::Error(e) => Err(ApiError::Refused(e)),
                    other => Ok(other),
                }),
        )
    }
}
