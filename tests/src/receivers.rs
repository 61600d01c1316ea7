//! Real receivers on loopback for the output tests: rsyslog (TCP, TLS, UDP), an HTTP(S)
//! webhook receiver and an SMTP server (aiosmtpd), plus a throwaway CA made with openssl.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// A free TCP port on loopback (also free for UDP in practice: nothing else binds here).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Waits until something accepts TCP connections on `port`.
pub fn wait_port(port: u16, within: Duration) -> bool {
    wait_for(within, || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    })
    .is_some()
}

fn sh(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, a server certificate for localhost/127.0.0.1 and a client certificate, all P-256.
pub struct Certs {
    pub dir: PathBuf,
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// base64 SHA-256 of the server certificate's SubjectPublicKeyInfo, computed by openssl.
    pub server_pin: String,
}

impl Certs {
    pub fn generate(dir: &Path) -> Certs {
        let p = |n: &str| dir.join(n);
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        sh(Command::new("openssl")
            .args(["req", "-x509"])
            .args(ec)
            .args(["-days", "2", "-subj", "/CN=sensor-test-ca"])
            .args(["-addext", "basicConstraints=critical,CA:TRUE"])
            .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"])
            .arg("-keyout")
            .arg(p("ca.key"))
            .arg("-out")
            .arg(p("ca.pem")));
        for (name, cn, ext) in [
            (
                "server",
                "localhost",
                "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
            ),
            (
                "client",
                "sensor-client",
                "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
            ),
        ] {
            std::fs::write(p(&format!("{name}.ext")), ext).unwrap();
            sh(Command::new("openssl")
                .arg("req")
                .args(ec)
                .args(["-subj", &format!("/CN={cn}")])
                .arg("-keyout")
                .arg(p(&format!("{name}.key")))
                .arg("-out")
                .arg(p(&format!("{name}.csr"))));
            sh(Command::new("openssl")
                .args(["x509", "-req", "-days", "2", "-CAcreateserial"])
                .arg("-in")
                .arg(p(&format!("{name}.csr")))
                .arg("-CA")
                .arg(p("ca.pem"))
                .arg("-CAkey")
                .arg(p("ca.key"))
                .arg("-extfile")
                .arg(p(&format!("{name}.ext")))
                .arg("-out")
                .arg(p(&format!("{name}.pem"))));
        }
        let pin = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "openssl x509 -in {} -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64",
                p("server.pem").display()
            ))
            .output()
            .expect("openssl pin");
        Certs {
            dir: dir.to_owned(),
            ca: p("ca.pem"),
            server_cert: p("server.pem"),
            server_key: p("server.key"),
            client_cert: p("client.pem"),
            client_key: p("client.key"),
            server_pin: String::from_utf8_lossy(&pin.stdout).trim().to_owned(),
        }
    }
}

/// A child process killed (and reaped) on drop.
pub struct Proc(pub Option<Child>);

impl Proc {
    pub fn stop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// rsyslogd in the foreground with its own config: raw messages from each input to a file.
pub struct Rsyslog {
    pub proc: Proc,
    pub tcp_port: u16,
    pub tls_port: u16,
    pub udp_port: u16,
    pub relp_port: u16,
    pub relp_tls_port: u16,
    pub dir: PathBuf,
}

impl Rsyslog {
    pub fn start(dir: &Path, certs: &Certs) -> Rsyslog {
        let (tcp_port, tls_port, udp_port, relp_port, relp_tls_port) = (
            free_port(),
            free_port(),
            free_port(),
            free_port(),
            free_port(),
        );
        let d = dir.display();
        let conf = format!(
            r#"global(workDirectory="{d}"
  maxMessageSize="64k"
  DefaultNetstreamDriverCAFile="{ca}"
  DefaultNetstreamDriverCertFile="{cert}"
  DefaultNetstreamDriverKeyFile="{key}")
module(load="imtcp")
module(load="imudp")
module(load="imrelp")
template(name="raw" type="string" string="%rawmsg%\n")
ruleset(name="tcp") {{ action(type="omfile" file="{d}/tcp.log" template="raw") }}
ruleset(name="tls") {{ action(type="omfile" file="{d}/tls.log" template="raw") }}
ruleset(name="udp") {{ action(type="omfile" file="{d}/udp.log" template="raw") }}
ruleset(name="relp") {{ action(type="omfile" file="{d}/relp.log" template="raw") }}
ruleset(name="relptls") {{ action(type="omfile" file="{d}/relptls.log" template="raw") }}
input(type="imtcp" address="127.0.0.1" port="{tcp_port}" ruleset="tcp")
input(type="imtcp" address="127.0.0.1" port="{tls_port}" ruleset="tls"
  streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon")
input(type="imudp" address="127.0.0.1" port="{udp_port}" ruleset="udp")
input(type="imrelp" address="127.0.0.1" port="{relp_port}" ruleset="relp")
input(type="imrelp" address="127.0.0.1" port="{relp_tls_port}" ruleset="relptls" tls="on"
  tls.caCert="{ca}" tls.myCert="{cert}" tls.myPrivKey="{key}" tls.authMode="certvalid")
"#,
            ca = certs.ca.display(),
            cert = certs.server_cert.display(),
            key = certs.server_key.display(),
        );
        std::fs::write(dir.join("rsyslog.conf"), conf).unwrap();
        let mut r = Rsyslog {
            proc: Proc(None),
            tcp_port,
            tls_port,
            udp_port,
            relp_port,
            relp_tls_port,
            dir: dir.to_owned(),
        };
        r.spawn();
        r
    }

    /// Start rsyslogd (again) on the same ports and wait until it listens.
    pub fn spawn(&mut self) {
        self.proc.stop();
        let dir = &self.dir;
        let log = std::fs::File::create(dir.join("rsyslogd.out")).unwrap();
        let child = Command::new("rsyslogd")
            .arg("-n")
            .arg("-f")
            .arg(dir.join("rsyslog.conf"))
            .arg("-i")
            .arg(dir.join("rsyslogd.pid"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("rsyslogd (apt packages rsyslog and rsyslog-relp, installed by `cargo xtask setup`)");
        self.proc = Proc(Some(child));
        assert!(
            wait_port(self.tcp_port, Duration::from_secs(20))
                && wait_port(self.tls_port, Duration::from_secs(5))
                && wait_port(self.relp_port, Duration::from_secs(5))
                && wait_port(self.relp_tls_port, Duration::from_secs(5)),
            "rsyslogd did not listen:\n{}",
            std::fs::read_to_string(dir.join("rsyslogd.out")).unwrap_or_default()
        );
    }

    /// Lines rsyslog wrote for one input (`tcp`, `tls`, `udp`, `relp`, `relptls`).
    pub fn lines(&self, input: &str) -> Vec<String> {
        std::fs::read_to_string(self.dir.join(format!("{input}.log")))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

fn python(script: &str) -> Command {
    let mut c = Command::new("/usr/bin/python3");
    c.arg("-I").arg(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("receivers")
            .join(script),
    );
    c
}

/// The webhook receiver: every POST is one JSON line in `out`.
pub struct HttpReceiver {
    pub proc: Proc,
    pub port: u16,
    pub out: PathBuf,
}

impl HttpReceiver {
    /// `tls`: serve HTTPS with the test server certificate; `mtls`: require a client
    /// certificate from the test CA.
    pub fn start(
        port: u16,
        out: &Path,
        certs: Option<(&Certs, bool)>,
        hmac_secret: Option<&str>,
    ) -> HttpReceiver {
        let mut cmd = python("http_receiver.py");
        cmd.arg("--port")
            .arg(port.to_string())
            .arg("--out")
            .arg(out);
        if let Some((c, mtls)) = certs {
            cmd.arg("--cert")
                .arg(&c.server_cert)
                .arg("--key")
                .arg(&c.server_key);
            if mtls {
                cmd.arg("--client-ca").arg(&c.ca);
            }
        }
        if let Some(s) = hmac_secret {
            cmd.arg("--hmac-secret").arg(s);
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3");
        let r = HttpReceiver {
            proc: Proc(Some(child)),
            port,
            out: out.to_owned(),
        };
        assert!(
            wait_port(port, Duration::from_secs(20)),
            "http receiver did not listen"
        );
        r
    }

    pub fn requests(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

/// aiosmtpd with STARTTLS and AUTH required; each message is a JSON file in `out`.
pub struct SmtpReceiver {
    pub proc: Proc,
    pub port: u16,
    pub out: PathBuf,
}

impl SmtpReceiver {
    pub fn start(out: &Path, certs: &Certs, password: &str) -> SmtpReceiver {
        let port = free_port();
        let child = python("smtp_receiver.py")
            .arg("--port")
            .arg(port.to_string())
            .arg("--out")
            .arg(out)
            .arg("--cert")
            .arg(&certs.server_cert)
            .arg("--key")
            .arg(&certs.server_key)
            .arg("--password")
            .arg(password)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 with aiosmtpd (apt package python3-aiosmtpd)");
        let r = SmtpReceiver {
            proc: Proc(Some(child)),
            port,
            out: out.to_owned(),
        };
        assert!(
            wait_port(port, Duration::from_secs(20)),
            "smtp receiver did not listen"
        );
        r
    }

    pub fn messages(&self) -> Vec<serde_json::Value> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.out)
            .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default();
        files.retain(|p| p.extension().is_some_and(|e| e == "json"));
        files.sort();
        files
            .iter()
            .filter_map(|p| serde_json::from_str(&std::fs::read_to_string(p).ok()?).ok())
            .collect()
    }
}

/// Polls `f` until it returns `Some`, or gives up after `within`.
pub fn wait_for<T>(within: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
