//! tests/workload/webapp.py, the loopback service the baseline and profile tests learn.

use std::{
    io::{Read, Write},
    net::TcpStream,
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// Its workload key: the interpreter and the script it runs, as root (the tests set
/// `roots = ["/usr/bin/python3*"]` so that it starts its own workload under `cargo test`).
pub fn workload() -> String {
    format!(
        "exe:/usr/bin/python3 {}@root",
        sensor::baseline::generalize::path(&script().display().to_string())
    )
}

pub fn script() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("workload/webapp.py")
}

pub struct Service {
    child: Child,
    pub port: u16,
}

/// A port p with p + 1 free too (the service's backend).
pub fn free_port_pair() -> u16 {
    loop {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let p = l.local_addr().unwrap().port();
        if p < u16::MAX && std::net::TcpListener::bind(("127.0.0.1", p + 1)).is_ok() {
            return p;
        }
    }
}

impl Service {
    /// Start it on `port` with its files in `dir`, optionally behind a wrapper command
    /// (`sensor exec --profile F --`).
    pub fn start(dir: &Path, port: u16, wrapper: &[&str]) -> Service {
        let script = script();
        let mut argv: Vec<String> = wrapper.iter().map(|s| s.to_string()).collect();
        argv.extend(["/usr/bin/python3", "-I", "-S"].map(String::from));
        argv.push(script.display().to_string());
        argv.push(dir.display().to_string());
        argv.push(port.to_string());
        let log = std::fs::File::create(dir.join("service.log")).unwrap();
        let child = Command::new(&argv[0])
            .args(&argv[1..])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start webapp.py");
        let mut s = Service { child, port };
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = s.child.try_wait() {
                panic!(
                    "webapp exited ({status}): {}",
                    std::fs::read_to_string(dir.join("service.log")).unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "webapp did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        s
    }

    /// GET `path`; the whole response (status line, headers, body).
    pub fn get(&self, path: &str) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(s, "GET {path} HTTP/1.0\r\n\r\n").unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    }

    /// The normal requests the baselines learn.
    pub fn exercise(&self) {
        for p in ["/page", "/report", "/data"] {
            let r = self.get(p);
            assert!(r.starts_with("HTTP/1.0 200"), "{p}: {r}");
        }
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop();
    }
}
