//! The dashboard in a real headless Chromium, served by the real agent over HTTPS, while a
//! process whose command line is markup runs: the page shows the text literally, no script
//! runs, no dialog opens, and the CSP is never even needed (no violation is logged). A
//! screenshot is kept in target/test-artifacts/dashboard.png.

use std::{
    path::PathBuf,
    process::{Command, Stdio},
    time::Duration,
};

use sensor::config::DEFAULT_TOML;
use sensor_tests::{
    Agent, receivers::free_port, require_root, tls_init, webdriver::Driver, with_tls_api,
};

const IMG: &str = "<img src=x onerror=alert(1)>";
const SCRIPT: &str = "</script><script>window.__pwned=1</script>";

const RULE: &str = r#"
- rule:
    id: TEST-MARKUP-001
    name: Markup in a command line (dashboard test)
    description: A process whose arguments carry HTML, to check the dashboard renders text.
    severity: high
    mitre:
      tactics: [execution]
      techniques: [T1059.004]
    condition: is_exec and proc.args regex "onerror=alert"
    output: "markup in a command line: %proc.cmdline"
"#;

/// The markup alert also asks for approval to freeze the tree: the page's Approve button runs it.
const PLAYBOOK: &str = r#"playbooks:
  - id: ask
    mode: approve
    trigger: {rules: [TEST-MARKUP-001]}
    steps: [{freeze: tree}]
"#;

fn artifacts() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let dir = target.join("test-artifacts");
    std::fs::create_dir_all(&dir).expect("artifacts dir");
    dir
}

/// The test's hostile process. Dropped (also when an assertion fails): killed, and a
/// containment cgroup the approval moved it into is removed once empty.
struct Hostile(std::process::Child);

impl Drop for Hostile {
    fn drop(&mut self) {
        let cgroup = std::fs::read_to_string(format!("/proc/{}/cgroup", self.0.id()))
            .ok()
            .and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("0::").map(str::to_owned))
            });
        let _ = self.0.kill();
        let _ = self.0.wait();
        let Some(path) = cgroup.filter(|p| p.starts_with("/sensor.contain/")) else {
            return;
        };
        let rel = path.trim_start_matches('/');
        let dir = ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
            .iter()
            .map(|root| PathBuf::from(root).join(rel))
            .find(|d| d.exists());
        if let Some(dir) = dir {
            // The sleep child is in there too: kill what is left, then remove the cgroup.
            let _ = std::fs::write(dir.join("cgroup.kill"), "1");
            for _ in 0..50 {
                if std::fs::remove_dir(&dir).is_ok() || !dir.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// A JS expression's value, as a bool.
fn truthy(d: &Driver, script: &str) -> bool {
    d.execute(script, &[])
        .unwrap_or_default()
        .as_bool()
        .unwrap_or(false)
}

#[test]
fn dashboard_renders_hostile_command_lines_as_text() {
    if !require_root("dashboard_renders_hostile_command_lines_as_text") {
        return;
    }
    // `cargo xtask test` installs Chromium; without it this test fails rather than skips.
    assert!(
        Driver::available(),
        "chromium and chromedriver are missing: `cargo xtask test` installs them (apt chromium chromium-driver)"
    );
    let certs = tls_init(&["127.0.0.1"]);
    let rules = tempfile::tempdir().expect("rules dir");
    std::fs::write(rules.path().join("markup.yaml"), RULE).expect("rule");
    let playbooks = tempfile::tempdir().expect("playbooks dir");
    let playbook = playbooks.path().join("ask.yaml");
    std::fs::write(&playbook, PLAYBOOK).expect("playbook");
    let port = free_port();
    let base = DEFAULT_TOML
        .replacen(
            "paths = []",
            &format!("paths = [{:?}]", rules.path().display().to_string()),
            1,
        )
        .replace(
            "playbooks = []",
            &format!("playbooks = [{:?}]", playbook.display().to_string()),
        );
    let text = with_tls_api(&base, port, certs.path(), "");
    let agent = Agent::start(Some(&text));
    let token = agent.cli_json(&[
        "token", "create", "--name", "browser", "--scope", "respond", "--json",
    ])["token"]
        .as_str()
        .expect("token")
        .to_owned();

    let d = Driver::start().expect("start chromium");
    let url = format!("https://127.0.0.1:{port}/");
    d.goto(&url).expect("load dashboard");
    let input = d
        .wait_css("#token", Duration::from_secs(10))
        .expect("sign-in field");
    d.send_keys(&input, &token).expect("type token");
    let button = d
        .wait_css("#signin-btn", Duration::from_secs(5))
        .expect("sign-in button");
    d.click(&button).expect("sign in");
    assert!(
        d.wait_until(
            Duration::from_secs(15),
            "return document.querySelector('#conn')?.dataset.state === 'live'"
        ),
        "the stream never went live: {}",
        d.console_logs().unwrap_or_default().join("\n")
    );

    // The hostile process runs while the page is open.
    let hostile = Command::new("sh")
        .args(["-c", "sleep 20", IMG, SCRIPT])
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn hostile process");
    let _hostile = Hostile(hostile);
    let shown = d.wait_until(
        Duration::from_secs(15),
        "return [...document.querySelectorAll('#alerts-body tr.alert-row .cmdline')].some(c => c.textContent.includes('onerror=alert(1)'))",
    );
    let shot = artifacts().join("dashboard.png");
    d.screenshot(&shot).expect("screenshot");
    assert!(
        shown,
        "the alert never reached the page (screenshot {})",
        shot.display()
    );

    let check = |when: &str| {
        let cmdline = d
            .execute(
                "return [...document.querySelectorAll('#alerts-body tr.alert-row .cmdline')].map(c => c.textContent).find(t => t.includes('onerror')) || ''",
                &[],
            )
            .expect("read command line");
        let cmdline = cmdline.as_str().unwrap_or_default();
        assert!(
            cmdline.contains(IMG) && cmdline.contains(SCRIPT),
            "{when}: shown as {cmdline:?}"
        );
        assert!(
            truthy(
                &d,
                "return document.querySelectorAll('#alerts-body img, #alerts-body script, #alerts-body svg, #alerts-body iframe').length === 0"
            ),
            "{when}: markup became elements"
        );
        assert!(
            truthy(&d, "return window.__pwned === undefined"),
            "{when}: injected script ran"
        );
        assert_eq!(
            d.alert_text().expect("query dialog"),
            None,
            "{when}: a dialog opened"
        );
        let csp: Vec<String> = d
            .console_logs()
            .unwrap_or_default()
            .into_iter()
            .filter(|l| l.contains("Content Security Policy") || l.contains("Refused to"))
            .collect();
        assert!(
            csp.is_empty(),
            "{when}: the page tried to run something: {csp:?}"
        );
    };
    check("live");
    // The counts and rates panels are filled from the same data.
    assert!(truthy(
        &d,
        "return Number(document.querySelector('#count-high')?.textContent) >= 1"
    ));

    // After a reload the alerts come from the paged endpoint, not the stream: same result.
    d.refresh().expect("reload");
    assert!(d.wait_until(
        Duration::from_secs(15),
        "return [...document.querySelectorAll('#alerts-body .cmdline')].some(c => c.textContent.includes('onerror'))",
    ));
    check("reloaded");
    d.screenshot(&artifacts().join("dashboard-reloaded.png"))
        .expect("screenshot");

    // The playbook waits for approval; the page lists the run and its button runs it.
    assert!(
        d.wait_until(
            Duration::from_secs(15),
            "return document.querySelectorAll('#pending-body tr.pending-row').length > 0"
        ),
        "no pending run on the page"
    );
    let approve = d
        .wait_css("button.approve-btn", Duration::from_secs(5))
        .expect("approve button");
    d.click(&approve).expect("approve");
    let done = d.wait_until(
        Duration::from_secs(15),
        "return document.querySelector('#approve-reply')?.dataset.outcome === 'done'",
    );
    let reply = d
        .execute(
            "return document.querySelector('#approve-reply')?.textContent || ''",
            &[],
        )
        .unwrap_or_default();
    assert!(done, "approval failed: {reply}");
    let list = agent.cli_json(&["contain", "list", "--json"]);
    let active = list["listing"]["active"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let frozen = active
        .iter()
        .find(|c| c["kind"] == "freeze")
        .unwrap_or_else(|| panic!("no freeze in force: {list}"));
    assert_eq!(frozen["actor"], "playbook:ask");
    // The audit trail names the token and the address that approved it.
    let approved_by = agent
        .audit_entries()
        .into_iter()
        .find(|e| e["action"] == "approve" && e["run"] == frozen["run"])
        .map(|e| e["actor"].as_str().unwrap_or_default().to_owned());
    assert!(
        approved_by
            .as_deref()
            .is_some_and(|a| a.starts_with("api:token=") && a.ends_with("@127.0.0.1")),
        "approval audited as {approved_by:?}"
    );
    assert!(
        d.wait_until(
            Duration::from_secs(10),
            "return document.querySelectorAll('#active-body tr.containment-row').length > 0"
        ),
        "the containment is not shown"
    );
    d.screenshot(&artifacts().join("dashboard-approved.png"))
        .expect("screenshot");
    agent.cli_ok(&["release", frozen["id"].as_str().expect("containment id")]);
}
