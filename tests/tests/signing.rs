//! Signed bundles through the command line: keygen, sign, verify and their refusals; the
//! agent and `sensor exec` refusing unsigned or tampered bundles when signing is required
//! (checked before anything touches the kernel, so no root).

use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Command, Output},
};

use sensor_tests::sensor_bin;

fn sensor(args: &[&str]) -> Output {
    Command::new(sensor_bin()).args(args).output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[track_caller]
fn fails_with(o: &Output, says: &[&str]) {
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(o), stderr(o));
    let e = stderr(o);
    for part in says {
        assert!(e.contains(part), "expected {part:?} in: {e}");
    }
}

const RULE: &str = r#"- rule:
    id: SIGNED-001
    name: Signed marker
    description: test rule
    severity: low
    mitre: {tactics: [execution], techniques: [T1059.004]}
    condition: evt.type = exec and proc.args contains signed-marker
    output: "marker %proc.cmdline"
    tests:
      match:
        - {evt.type: exec, proc.exe: /bin/true, proc.args: [signed-marker]}
      no_match:
        - {evt.type: exec, proc.exe: /bin/true, proc.args: [other]}
"#;

struct Keys {
    secret: PathBuf,
    public: PathBuf,
}

fn keygen(dir: &Path) -> Keys {
    let o = sensor(&["bundle", "keygen", "--out", s(dir)]);
    assert!(o.status.success(), "{}", stderr(&o));
    Keys {
        secret: dir.join("bundle-signing.pk8"),
        public: dir.join("bundle-signing.pub"),
    }
}

fn sign(dir: &Path, key: &Path, kind: &str, version: &str) -> Output {
    sensor(&[
        "bundle",
        "sign",
        s(dir),
        "--key",
        s(key),
        "--kind",
        kind,
        "--name",
        "corp",
        "--version",
        version,
    ])
}

fn verify(dir: &Path, key: &Path) -> Output {
    sensor(&["bundle", "verify", s(dir), "--key", s(key)])
}

#[test]
fn keygen_sign_verify_and_every_refusal() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = keygen(&tmp.path().join("keys"));
    let mode = std::fs::metadata(&keys.secret)
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    fails_with(
        &sensor(&["bundle", "keygen", "--out", s(&tmp.path().join("keys"))]),
        &["bundle-signing.pk8", "refusing to overwrite"],
    );

    let rules = tmp.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    std::fs::write(rules.join("local.yaml"), RULE).unwrap();
    std::fs::write(rules.join("more.yaml"), "[]\n").unwrap();
    let o = sign(&rules, &keys.secret, "rules", "2");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("signed rules bundle corp version 2 (2 files)"));

    let o = verify(&rules, &keys.public);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("ok: rules bundle corp version 2 (2 files)"),
        "{out}"
    );
    assert!(
        out.contains("local.yaml") && out.contains("more.yaml"),
        "{out}"
    );
    fails_with(
        &sensor(&[
            "bundle",
            "verify",
            s(&rules),
            "--key",
            s(&keys.public),
            "--kind",
            "ioc",
        ]),
        &["a rules bundle, used here as ioc"],
    );

    // Versions only go up, unless forced.
    fails_with(
        &sign(&rules, &keys.secret, "rules", "2"),
        &["already at version 2", "--force"],
    );
    fails_with(
        &sign(&rules, &keys.secret, "rules", "1"),
        &["must be greater"],
    );
    let o = sensor(&[
        "bundle",
        "sign",
        s(&rules),
        "--key",
        s(&keys.secret),
        "--kind",
        "rules",
        "--name",
        "corp",
        "--version",
        "1",
        "--force",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(sign(&rules, &keys.secret, "rules", "3").status.success());

    // Wrong key.
    let other = keygen(&tmp.path().join("other"));
    fails_with(&verify(&rules, &other.public), &["not trusted"]);
    // Tampered, added and removed files, an edited manifest, a missing signature.
    let local = rules.join("local.yaml");
    std::fs::write(&local, RULE.replace("severity: low", "severity: info")).unwrap();
    fails_with(
        &verify(&rules, &keys.public),
        &["local.yaml", "differs from the signed manifest"],
    );
    std::fs::write(&local, RULE).unwrap();
    assert!(verify(&rules, &keys.public).status.success());
    std::fs::write(rules.join("extra.yaml"), "[]\n").unwrap();
    fails_with(
        &verify(&rules, &keys.public),
        &["extra.yaml", "not listed in the signed manifest"],
    );
    std::fs::remove_file(rules.join("extra.yaml")).unwrap();
    std::fs::remove_file(rules.join("more.yaml")).unwrap();
    fails_with(
        &verify(&rules, &keys.public),
        &["more.yaml", "listed in the signed manifest but missing"],
    );
    std::fs::write(rules.join("more.yaml"), "[]\n").unwrap();
    let manifest = rules.join("sensor-bundle.json");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, text.replace("\"version\": 3", "\"version\": 4")).unwrap();
    fails_with(
        &verify(&rules, &keys.public),
        &["sensor-bundle.json", "changed after signing"],
    );
    std::fs::write(&manifest, &text).unwrap();
    std::fs::remove_file(rules.join("sensor-bundle.json.sig")).unwrap();
    fails_with(&verify(&rules, &keys.public), &["missing signature"]);

    // Bad input to the commands themselves.
    fails_with(
        &sign(&rules, &keys.public, "rules", "9"),
        &["bundle-signing.pub"],
    );
    fails_with(
        &verify(&rules, &keys.secret),
        &["bundle-signing.pk8", "malformed key"],
    );
    let o = sensor(&["bundle", "verify", s(&rules)]);
    assert_eq!(o.status.code(), Some(2), "--key is required");
    let o = sign(&rules, &keys.secret, "playbooks", "9");
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("rules, ioc, profiles"),
        "{}",
        stderr(&o)
    );
}

/// A config file `out` requiring signed bundles, with `rules` as the rules path and `ioc` (if
/// any) as the IOC path.
fn config(out: &Path, key: &Path, rules: &Path, ioc: Option<&Path>) -> PathBuf {
    let mut text = sensor::config::DEFAULT_TOML
        .replacen("paths = []", &format!("paths = [{:?}]", s(rules)), 1)
        .replace("builtin = true", "builtin = false");
    if let Some(ioc) = ioc {
        text = text.replacen("paths = []", &format!("paths = [{:?}]", s(ioc)), 1);
    }
    text.push_str(&format!(
        "\n[signing]\nrequire = true\ntrusted_keys = [{:?}]\n",
        s(key)
    ));
    std::fs::write(out, text).unwrap();
    out.to_owned()
}

/// `sensor run`, expected to stop by itself: killed (and failed) if it keeps running, as it
/// would (as root) if a refusal were missed.
fn run(state: &Path, config: &Path) -> Output {
    let mut child = Command::new(sensor_bin())
        .args(["--state-dir", s(state), "--config", s(config), "run"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let o = child.wait_with_output().unwrap();
            panic!("the agent started instead of refusing:\n{}", stderr(&o));
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn agent_refuses_unsigned_or_tampered_bundles_when_signing_is_required() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = keygen(&tmp.path().join("keys"));
    let rules = tmp.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    std::fs::write(rules.join("local.yaml"), RULE).unwrap();
    let state = tmp.path().join("state");
    let cfg = config(&tmp.path().join("a.toml"), &keys.public, &rules, None);

    // Unsigned.
    fails_with(
        &run(&state, &cfg),
        &[s(&rules), "not in a signed bundle", "require = true"],
    );
    // Signed, then a file changed and one dropped in.
    assert!(sign(&rules, &keys.secret, "rules", "1").status.success());
    std::fs::write(rules.join("local.yaml"), RULE.replace("low", "high")).unwrap();
    fails_with(&run(&state, &cfg), &["local.yaml", "differs"]);
    std::fs::write(rules.join("local.yaml"), RULE).unwrap();
    std::fs::write(rules.join("dropped.yaml"), "[]\n").unwrap();
    fails_with(&run(&state, &cfg), &["dropped.yaml", "not listed"]);
    std::fs::remove_file(rules.join("dropped.yaml")).unwrap();
    // Signed by a key the config does not trust.
    let other = keygen(&tmp.path().join("other"));
    let wrong = config(&tmp.path().join("b.toml"), &other.public, &rules, None);
    fails_with(
        &run(&state, &wrong),
        &["sensor-bundle.json.sig", "not trusted"],
    );
    // The rules bundle used as indicators.
    let cfg2 = tmp.path().join("c.toml");
    let ioc_cfg = config(&cfg2, &keys.public, &rules, Some(&rules));
    fails_with(
        &run(&state, &ioc_cfg),
        &["a rules bundle, used here as ioc"],
    );
    // An unsigned IOC list next to signed rules.
    let ioc = tmp.path().join("ioc");
    std::fs::create_dir(&ioc).unwrap();
    std::fs::write(ioc.join("bad.txt"), "10.0.0.1\n").unwrap();
    let ioc_cfg = config(&cfg2, &keys.public, &rules, Some(&ioc));
    fails_with(&run(&state, &ioc_cfg), &[s(&ioc), "not in a signed bundle"]);

    // require = true needs a key; a missing key file is named.
    let text = std::fs::read_to_string(&cfg).unwrap();
    let no_keys = tmp.path().join("no-keys.toml");
    std::fs::write(
        &no_keys,
        text.replace(&format!("[{:?}]", s(&keys.public)), "[]"),
    )
    .unwrap();
    fails_with(&run(&state, &no_keys), &["signing.trusted_keys"]);
    let gone = tmp.path().join("gone.toml");
    std::fs::write(&gone, text.replace(s(&keys.public), "/nonexistent/k.pub")).unwrap();
    fails_with(&run(&state, &gone), &["/nonexistent/k.pub"]);
}

#[test]
fn exec_refuses_an_unsigned_or_tampered_profile_when_signing_is_required() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = keygen(&tmp.path().join("keys"));
    let profiles = tmp.path().join("profiles");
    std::fs::create_dir(&profiles).unwrap();
    let profile = profiles.join("app.v1.profile.json");
    std::fs::write(&profile, "{}\n").unwrap();
    let cfg = tmp.path().join("sensor.toml");
    std::fs::write(
        &cfg,
        format!(
            "{}\n[signing]\nrequire = true\ntrusted_keys = [{:?}]\n",
            sensor::config::DEFAULT_TOML,
            s(&keys.public)
        ),
    )
    .unwrap();
    let state = tmp.path().join("state");
    let exec = || {
        sensor(&[
            "--state-dir",
            s(&state),
            "--config",
            s(&cfg),
            "exec",
            "--profile",
            s(&profile),
            "--",
            "/bin/true",
        ])
    };
    fails_with(&exec(), &["app.v1.profile.json", "not in a signed bundle"]);
    assert!(sign(&profiles, &keys.secret, "rules", "1").status.success());
    fails_with(&exec(), &["a rules bundle, used here as profiles"]);
    assert!(
        sign(&profiles, &keys.secret, "profiles", "2")
            .status
            .success()
    );
    std::fs::write(&profile, "{\"format\": 1}\n").unwrap();
    fails_with(&exec(), &["app.v1.profile.json", "differs"]);
    // Once the signature passes, the profile itself is checked as before (this one is empty).
    assert!(
        sign(&profiles, &keys.secret, "profiles", "3")
            .status
            .success()
    );
    let o = exec();
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(e.contains("signed bundle verified"), "{e}");
    assert!(
        !e.contains("refused") && e.contains("app.v1.profile.json"),
        "{e}"
    );
}
