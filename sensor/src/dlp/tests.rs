//! Scanner and redaction tests. Fake secrets only, and the token-shaped ones are assembled
//! with `concat!` so secret scanners on this repository do not flag the test file.

use super::*;
use crate::event::{Cgroup, Event, EventMeta, Kind, Process, User};

const GH: &str = concat!("ghp_", "1a2B3c4D5e6F7g8H9i0J", "kLmNoPqRsTuVwXyZ12");
const GL: &str = concat!("glpat-", "xYz12AbC34dEf56GhI78");
const SLACK: &str = concat!(
    "xoxb-",
    "123456789012-1234567890123-",
    "AbCdEfGhIjKlMnOpQrStUvWx"
);
const STRIPE_LIVE: &str = concat!("sk_", "live_", "4eC39HqLyjWDarjtT1zdp7dc");
const STRIPE_TEST: &str = concat!("sk_", "test_", "4eC39HqLyjWDarjtT1zdp7dc");
const GOOGLE: &str = concat!("AIza", "SyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q");
const AWS_ID: &str = concat!("AKIA", "IOSFODNN7EXAMPLE");
const AWS_SECRET: &str = concat!("wJalrXUtnFEMI/K7MDENG/", "bPxRfiCYEXAMPLEKEY");
const JWT: &str = concat!(
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.",
    "eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.",
    "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
);
const PEM: &str = concat!(
    "-----BEGIN RSA ",
    "PRIVATE KEY-----\n",
    "MIIEowIBAAKCAQEAfakefakefakefakefakefakefakefakefake\n",
    "bm90IGEgcmVhbCBrZXksIGp1c3QgdGVzdCBkYXRh\n",
    "-----END RSA ",
    "PRIVATE KEY-----"
);

fn args(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn scan(v: &[&str]) -> Vec<Finding> {
    let mut out = Vec::new();
    Scanner::new().scan_args(&args(v), &mut out);
    out
}

fn text(t: &str) -> Vec<Finding> {
    let mut out = Vec::new();
    Scanner::new().scan_text("file.content", t, &mut out);
    out
}

/// The secret substrings the findings point at.
fn secrets(v: &[&str], found: &[Finding]) -> Vec<String> {
    found
        .iter()
        .map(|f| {
            let i = f.field["process.args[".len()..f.field.len() - 1]
                .parse::<usize>()
                .unwrap();
            v[i][f.start..f.end].to_string()
        })
        .collect()
}

/// Exactly one finding of `kind`, covering exactly `secret`.
#[track_caller]
fn expect_one(v: &[&str], kind: &str, secret: &str) -> Finding {
    let found = scan(v);
    let got: Vec<_> = found.iter().filter(|f| f.kind == kind).collect();
    assert_eq!(got.len(), 1, "{v:?}: want one {kind}, got {found:?}");
    assert_eq!(
        secrets(v, &found)[found.iter().position(|f| f.kind == kind).unwrap()],
        secret,
        "{v:?}"
    );
    got[0].clone()
}

#[track_caller]
fn expect_none(v: &[&str]) {
    let found = scan(v);
    assert!(found.is_empty(), "{v:?}: false positive {found:?}");
}

#[track_caller]
fn text_one(t: &str, kind: &str, secret: &str) -> Finding {
    let found = text(t);
    let got: Vec<_> = found.iter().filter(|f| f.kind == kind).collect();
    assert_eq!(got.len(), 1, "{t:?}: want one {kind}, got {found:?}");
    assert_eq!(&t[got[0].start..got[0].end], secret);
    got[0].clone()
}

// ---------------------------------------------------------------- positives, one per kind

#[test]
fn aws_access_key_id() {
    let f = expect_one(&["aws", "--profile", AWS_ID], "aws_access_key_id", AWS_ID);
    assert_eq!(f.classification, Classification::Confidential);
}

#[test]
fn aws_secret_access_key_in_sh_c_export() {
    let cmd = format!("export AWS_SECRET_ACCESS_KEY={AWS_SECRET} && aws s3 ls");
    let f = expect_one(&["sh", "-c", &cmd], "aws_secret_access_key", AWS_SECRET);
    assert_eq!(f.classification, Classification::Restricted);
    assert_eq!(f.field, "process.args[2]");
    assert!(f.confidence >= 0.9);
}

#[test]
fn aws_secret_access_key_via_aws_configure_and_credentials_file() {
    expect_one(
        &[
            "aws",
            "configure",
            "set",
            "aws_secret_access_key",
            AWS_SECRET,
        ],
        "aws_secret_access_key",
        AWS_SECRET,
    );
    let file =
        format!("[default]\naws_access_key_id = {AWS_ID}\naws_secret_access_key = {AWS_SECRET}\n");
    text_one(&file, "aws_secret_access_key", AWS_SECRET);
    text_one(&file, "aws_access_key_id", AWS_ID);
}

#[test]
fn github_token_after_token_flag() {
    let f = expect_one(&["gh", "auth", "login", "--token", GH], "github_token", GH);
    assert_eq!(f.classification, Classification::Restricted);
    // The flag rule saw the same bytes; the more specific name wins, once.
    assert_eq!(scan(&["gh", "auth", "login", "--token", GH]).len(), 1);
}

#[test]
fn gitlab_token_in_header() {
    let h = format!("PRIVATE-TOKEN: {GL}");
    expect_one(
        &[
            "curl",
            "-H",
            &h,
            "https://gitlab.example.com/api/v4/projects",
        ],
        "gitlab_token",
        GL,
    );
}

#[test]
fn slack_token_and_webhook() {
    expect_one(&["slackcat", "--token", SLACK], "slack_token", SLACK);
    let hook = concat!(
        "https://hooks.slack.com/services/",
        "T00000000/B00000000/",
        "XXXXabcdXXXXabcdXXXXabcd"
    );
    expect_one(&["curl", "-X", "POST", hook], "slack_token", hook);
}

#[test]
fn stripe_live_is_restricted_test_is_confidential() {
    let f = expect_one(
        &["stripe", "--api-key", STRIPE_LIVE],
        "stripe_key",
        STRIPE_LIVE,
    );
    assert_eq!(f.classification, Classification::Restricted);
    let f = text_one(&format!("STRIPE={STRIPE_TEST}"), "stripe_key", STRIPE_TEST);
    assert_eq!(f.classification, Classification::Confidential);
}

#[test]
fn google_api_key_in_url_query() {
    let url = format!("https://maps.googleapis.com/maps/api/geocode/json?address=x&key={GOOGLE}");
    let f = expect_one(&["curl", &url], "google_api_key", GOOGLE);
    assert_eq!(f.classification, Classification::Confidential);
}

#[test]
fn gcp_service_account_key_file() {
    let json = format!(
        "{{\n  \"type\": \"service_account\",\n  \"project_id\": \"demo\",\n  \"private_key_id\": \"{}\",\n  \"private_key\": \"{}\"\n}}",
        "0123456789abcdef0123456789abcdef01234567",
        PEM.replace('\n', "\\n")
    );
    text_one(
        &json,
        "gcp_service_account_key",
        "0123456789abcdef0123456789abcdef01234567",
    );
    let found = text(&json);
    assert!(
        found.iter().any(|f| f.kind == "private_key_block"),
        "{found:?}"
    );
}

#[test]
fn azure_storage_key_in_connection_string() {
    let key = format!("{}Ab==", "Xy3+/k".repeat(14));
    let conn = format!(
        "DefaultEndpointsProtocol=https;AccountName=demo;AccountKey={key};EndpointSuffix=core.windows.net"
    );
    expect_one(
        &[
            "az",
            "storage",
            "blob",
            "list",
            "--connection-string",
            &conn,
        ],
        "azure_storage_key",
        &key,
    );
}

#[test]
fn private_key_block_in_text_and_truncated() {
    let f = text_one(
        &format!("some config\n{PEM}\nmore"),
        "private_key_block",
        PEM,
    );
    assert_eq!(f.classification, Classification::Restricted);
    // A sample cut mid-key: the rest of the text is redacted with it.
    let cut = &PEM[..60];
    text_one(&format!("x\n{cut}"), "private_key_block", cut);
}

#[test]
fn jwt_behind_bearer_is_one_jwt_finding() {
    let h = format!("Authorization: Bearer {JWT}");
    let v = ["curl", "-H", h.as_str(), "https://api.example.com"];
    let f = expect_one(&v, "jwt", JWT);
    assert_eq!(f.classification, Classification::Confidential);
    assert_eq!(scan(&v).len(), 1, "{:?}", scan(&v));
}

#[test]
fn opaque_bearer_token() {
    expect_one(
        &[
            "curl",
            "-H",
            "Authorization: Bearer 8f3kLq92ZxPm4TvW1nR7",
            "https://x",
        ],
        "bearer_token",
        "8f3kLq92ZxPm4TvW1nR7",
    );
}

#[test]
fn basic_auth_header() {
    // admin:hunter2
    expect_one(
        &[
            "curl",
            "-H",
            "Authorization: Basic YWRtaW46aHVudGVyMg==",
            "https://x",
        ],
        "basic_auth_header",
        "YWRtaW46aHVudGVyMg==",
    );
    expect_one(
        &[
            "git",
            "-c",
            "http.extraHeader=Authorization: Basic YWRtaW46aHVudGVyMg==",
            "clone",
            "https://x",
        ],
        "basic_auth_header",
        "YWRtaW46aHVudGVyMg==",
    );
}

#[test]
fn password_in_url() {
    let f = expect_one(
        &[
            "git",
            "clone",
            "https://deploy:S3cr3tPass@git.example.com/repo.git",
        ],
        "password_in_url",
        "S3cr3tPass",
    );
    assert_eq!(f.classification, Classification::Restricted);
    expect_one(
        &["psql", "postgresql://app:pa55word@db:5432/app"],
        "password_in_url",
        "pa55word",
    );
    expect_one(
        &[
            "curl",
            "https://api.example.com/login?user=bob&password=hunter2&x=1",
        ],
        "password_in_url",
        "hunter2",
    );
}

#[test]
fn password_flags() {
    expect_one(
        &["mysql", "-u", "root", "-pS3cret", "prod"],
        "password_flag",
        "S3cret",
    );
    expect_one(
        &["mysqldump", "--password=S3cret", "prod"],
        "password_flag",
        "S3cret",
    );
    expect_one(
        &["curl", "-u", "admin:hunter2", "https://x"],
        "password_flag",
        "hunter2",
    );
    expect_one(
        &["curl", "-uadmin:hunter2", "https://x"],
        "password_flag",
        "hunter2",
    );
    expect_one(
        &["sshpass", "-p", "hunter2", "ssh", "-p", "22", "host"],
        "password_flag",
        "hunter2",
    );
    expect_one(
        &["tool", "--password", "hunter2"],
        "password_flag",
        "hunter2",
    );
    expect_one(&["tool", "--password=hunter2"], "password_flag", "hunter2");
    expect_one(&["consul", "-token=hunter2x"], "password_flag", "hunter2x");
    expect_one(
        &[
            "docker",
            "login",
            "-u",
            "bob",
            "-p",
            "hunter2",
            "reg.example.com",
        ],
        "password_flag",
        "hunter2",
    );
    expect_one(
        &["redis-cli", "-h", "cache", "-a", "hunter2"],
        "password_flag",
        "hunter2",
    );
    expect_one(
        &["ldapsearch", "-x", "-D", "cn=admin", "-w", "hunter2"],
        "password_flag",
        "hunter2",
    );
    expect_one(
        &["sqlcmd", "-S", "db", "-U", "sa", "-P", "hunter2"],
        "password_flag",
        "hunter2",
    );
    expect_one(
        &["smbclient", "//srv/share", "-U", "bob%hunter2"],
        "password_flag",
        "hunter2",
    );
    expect_one(&["sqlplus", "scott/tiger@orcl"], "password_flag", "tiger");
    expect_one(
        &["htpasswd", "-b", "/etc/nginx/.htpasswd", "bob", "hunter2"],
        "password_flag",
        "hunter2",
    );
    expect_one(
        &["openssl", "rsa", "-in", "k.pem", "-passin", "pass:hunter2"],
        "password_flag",
        "hunter2",
    );
    expect_one(
        &[
            "keytool",
            "-list",
            "-keystore",
            "k.jks",
            "-storepass",
            "hunter2",
        ],
        "password_flag",
        "hunter2",
    );
    expect_one(
        &["xfreerdp", "/v:host", "/u:bob", "/p:hunter2"],
        "password_flag",
        "hunter2",
    );
    expect_one(
        &["7z", "x", "-phunter2", "a.7z"],
        "password_flag",
        "hunter2",
    );
    expect_one(
        &["psexec.py", "corp/admin:hunter2@10.0.0.5"],
        "password_flag",
        "hunter2",
    );
    expect_one(
        &["nxc", "smb", "10.0.0.0/24", "-u", "admin", "-p", "hunter2"],
        "password_flag",
        "hunter2",
    );
    expect_one(
        &["ssh-keygen", "-t", "ed25519", "-N", "hunter2", "-f", "k"],
        "password_flag",
        "hunter2",
    );
    expect_one(
        &[
            "kubectl",
            "create",
            "secret",
            "generic",
            "db",
            "--from-literal=password=hunter2",
        ],
        "password_env",
        "hunter2",
    );
}

#[test]
fn password_flag_through_wrappers_and_shells() {
    expect_one(
        &["sudo", "-u", "backup", "mysqldump", "-pS3cret", "db"],
        "password_flag",
        "S3cret",
    );
    expect_one(
        &["kubectl", "exec", "db-0", "--", "mysql", "-pS3cret"],
        "password_flag",
        "S3cret",
    );
    expect_one(
        &["bash", "-lc", "cd /srv && mysql -u root -p'S3 cret' db"],
        "password_flag",
        "S3 cret",
    );
    expect_one(
        &["ssh", "db1", "mysql -pS3cret -e 'show databases'"],
        "password_flag",
        "S3cret",
    );
    expect_one(
        &["sh", "-c", "sshpass -p \"hunter2\" scp a host:"],
        "password_flag",
        "hunter2",
    );
}

#[test]
fn password_env() {
    let f = expect_one(
        &["env", "DB_PASSWORD=hunter2", "./server"],
        "password_env",
        "hunter2",
    );
    assert_eq!(f.classification, Classification::Restricted);
    expect_one(
        &["docker", "run", "-e", "MYSQL_ROOT_PASSWORD=S3cret", "mysql"],
        "password_env",
        "S3cret",
    );
    // In argv (no shell) `;` is part of the value.
    expect_one(
        &["env", "API_TOKEN=ab;cd|ef", "x"],
        "password_env",
        "ab;cd|ef",
    );
    expect_one(
        &["sh", "-c", "export API_TOKEN='a b c'; ./run"],
        "password_env",
        "a b c",
    );
    // A `-D` property is a flag to the argv walk; either name is fine, one finding is not.
    expect_one(
        &[
            "java",
            "-Djavax.net.ssl.keyStorePassword=changeit",
            "-jar",
            "a.jar",
        ],
        "password_flag",
        "changeit",
    );
    text_one(
        "spring.datasource.password=changeit\n",
        "password_env",
        "changeit",
    );
    text_one(
        "DB_HOST=db\nDB_PASSWORD=hunter2\n",
        "password_env",
        "hunter2",
    );
    text_one(
        "database:\n  password: hunter2\n",
        "password_env",
        "hunter2",
    );
    text_one(
        r#"{"client_secret": "abc123xyz"}"#,
        "password_env",
        "abc123xyz",
    );
    expect_one(
        &[
            "mount",
            "-t",
            "cifs",
            "-o",
            "username=bob,password=hunter2,uid=0",
            "//s/x",
            "/mnt",
        ],
        "password_env",
        "hunter2",
    );
}

#[test]
fn secrets_in_everyday_admin_commands() {
    for (v, secret) in [
        (
            &["gpg", "--batch", "--passphrase", "hunter2", "-d", "f.gpg"][..],
            "hunter2",
        ),
        (
            &["terraform", "apply", "-var", "db_password=hunter2"],
            "hunter2",
        ),
        (
            &["helm", "install", "x", "--set", "auth.rootPassword=hunter2"],
            "hunter2",
        ),
        (
            &[
                "ansible-playbook",
                "-e",
                "ansible_become_pass=hunter2",
                "site.yml",
            ],
            "hunter2",
        ),
        (
            &["vault", "kv", "put", "secret/db", "password=hunter2"],
            "hunter2",
        ),
        (
            &[
                "curl",
                "-d",
                "{\"password\":\"hunter2\"}",
                "https://x/login",
            ],
            "hunter2",
        ),
        (
            &[
                "curl",
                "-d",
                "grant_type=client_credentials&client_secret=hunter2&scope=x",
                "https://x",
            ],
            "hunter2",
        ),
        (
            &[
                "az",
                "login",
                "--service-principal",
                "-u",
                "app",
                "-p",
                "hunter2",
                "--tenant",
                "t",
            ],
            "hunter2",
        ),
    ] {
        let found = scan(v);
        assert_eq!(secrets(v, &found), [secret], "{v:?}: {found:?}");
    }
    let url = format!("https://oauth2:{GL}@gitlab.example.com/x.git");
    expect_one(&["git", "clone", &url], "gitlab_token", GL);
    assert_eq!(scan(&["git", "clone", &url]).len(), 1);
}

#[test]
fn no_false_positives_in_everyday_admin_commands() {
    for v in [
        &["gpg", "--batch", "--passphrase-file", "p", "-d", "f.gpg"][..],
        &[
            "kubectl",
            "get",
            "secret",
            "db",
            "-o",
            "jsonpath={.data.password}",
        ],
        &[
            "kubectl", "create", "secret", "tls", "x", "--key", "tls.key", "--cert", "tls.crt",
        ],
        &[
            "docker",
            "build",
            "--secret",
            "id=npmrc,src=/home/u/.npmrc",
            ".",
        ],
        &[
            "gcloud",
            "auth",
            "activate-service-account",
            "--key-file=k.json",
        ],
        &["ssh", "-o", "PasswordAuthentication=no", "host"],
        &[
            "aws",
            "sts",
            "assume-role",
            "--role-arn",
            "arn:aws:iam::1:role/x",
            "--role-session-name",
            "s",
        ],
        &[
            "openssl",
            "req",
            "-new",
            "-key",
            "server.key",
            "-out",
            "server.csr",
        ],
        &["nmap", "-p", "1-65535", "host"],
        &["python3", "-c", "import os; print(os.environ['API_KEY'])"],
        &["systemctl", "restart", "secrets-agent.service"],
    ] {
        expect_none(v);
    }
}

#[test]
fn generic_api_key_needs_weak_keyword_and_entropy() {
    let f = expect_one(
        &[
            "curl",
            "https://api.example.com/v1/x?key=q8Zr2LmX0vT4nB7kW1sY",
        ],
        "generic_api_key",
        "q8Zr2LmX0vT4nB7kW1sY",
    );
    assert_eq!(f.classification, Classification::Confidential);
    assert!(f.confidence < 0.9);
    text_one(
        "X-Auth: Zq8r2LmX0vT4nB7kW1sYa\n",
        "generic_api_key",
        "Zq8r2LmX0vT4nB7kW1sYa",
    );
    // Same keyword, a word for a value.
    assert!(text("auth: required-for-all-endpoints\n").is_empty());
}

#[test]
fn useradd_hash_is_confidential_plaintext_is_restricted() {
    let hash = format!(
        "$6$Zq8aB1cD${}",
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789./ab"
    );
    let f = expect_one(
        &["useradd", "-m", "-p", &hash, "eve"],
        "password_hash",
        &hash,
    );
    assert_eq!(f.classification, Classification::Confidential);
    let f = expect_one(
        &["useradd", "-p", "hunter2", "eve"],
        "password_flag",
        "hunter2",
    );
    assert_eq!(f.classification, Classification::Restricted);
    let shadow = format!("root:{hash}:19000:0:99999:7:::\n");
    text_one(&shadow, "password_hash", &hash);
}

#[test]
fn nt_hash_pass_the_hash_is_restricted() {
    let f = expect_one(
        &[
            "evil-winrm",
            "-i",
            "10.0.0.5",
            "-u",
            "admin",
            "-H",
            "32ed87bdb5fdc5e9cba88547376818d4",
        ],
        "password_hash",
        "32ed87bdb5fdc5e9cba88547376818d4",
    );
    assert_eq!(f.classification, Classification::Restricted);
}

// ---------------------------------------------------------------- false-positive traps

#[test]
fn no_false_positives_on_common_commands() {
    let sha = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    let pull = format!("alpine@sha256:{sha}");
    let cases: Vec<Vec<&str>> = vec![
        vec![
            "git",
            "checkout",
            "3f786850e387550fdab836ed7e6dc881de23001b",
        ],
        vec!["git", "log", "--format=%H", "-n", "1"],
        vec!["docker", "pull", &pull],
        vec!["docker", "run", "--rm", "-p", "8080:80", "nginx"],
        vec![
            "docker",
            "login",
            "--password-stdin",
            "-u",
            "bob",
            "reg.example.com",
        ],
        vec!["go", "get", "example.com/mod@v1.2.3"],
        vec!["mysql", "-u", "root", "-p", "mydb"],
        vec!["mysql", "-p"],
        vec!["mysql", "--password", "mydb"],
        vec!["psql", "--password", "-U", "app", "appdb"],
        vec!["ssh", "-p", "22", "admin@host"],
        vec!["scp", "-P", "2222", "f", "host:/tmp"],
        vec!["tar", "-p", "-xzf", "a.tgz"],
        vec!["tar", "-pxzf", "a.tgz"],
        vec!["cp", "-p", "a", "b"],
        vec!["mkdir", "-p", "/tmp/x/y"],
        vec!["grep", "-P", "\\d+ secret", "f"],
        vec!["curl", "-u", "admin", "https://x"],
        vec!["openssl", "enc", "-aes256", "-pass", "env:PASS", "-in", "f"],
        vec!["mysql", "-p\"$DB_PASS\"", "db"],
        vec![
            "sh",
            "-c",
            "curl -H \"Authorization: Bearer $TOKEN\" https://x",
        ],
        vec!["sh", "-c", "echo $1$HOMEDIRECTORY"],
        vec!["uuidgen"],
        vec![
            "kubectl",
            "get",
            "pod",
            "-l",
            "uid=550e8400-e29b-41d4-a716-446655440000",
        ],
        vec![
            "make",
            "--cache-key=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        ],
        vec!["api-server", "--api-key-file=/etc/keys/api"],
        vec![
            "docker",
            "run",
            "-e",
            "PASSWORD_FILE=/run/secrets/db",
            "app",
        ],
        vec!["docker", "run", "-v", "secrets:/run/secrets", "app"],
        vec!["docker", "pull", "myorg/token-service:1.2"],
        vec![
            "env",
            "PWD=/home/me",
            "OLDPWD=/tmp",
            "TOKENIZERS_PARALLELISM=false",
            "BYPASS_CACHE=1",
        ],
        vec!["git", "-c", "credential.helper=store", "push"],
        vec!["openvpn", "--auth-user-pass", "/etc/openvpn/creds"],
        vec!["ssh-keygen", "-t", "ed25519", "-N", "", "-f", "k"],
        vec!["echo", "aGVsbG8gd29ybGQ=", "|", "base64", "-d"],
        vec![
            "git",
            "commit",
            "-m",
            "Basic configuration for the bearer authentication docs",
        ],
        vec!["useradd", "-m", "-s", "/bin/bash", "eve"],
        vec!["curl", "http://host:8080/path@v2"],
        vec!["git", "clone", "git@github.com:org/repo.git"],
        vec!["ls", "-la", "--color=auto"],
        vec!["npm", "install", "--save-dev", "typescript@5.4.2"],
        vec![
            "python3",
            "-m",
            "http.server",
            "--bind",
            "127.0.0.1",
            "8000",
        ],
    ];
    for c in cases {
        expect_none(&c);
    }
}

#[test]
fn no_false_positives_in_text() {
    for t in [
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  ubuntu.iso\n",
        "commit 3f786850e387550fdab836ed7e6dc881de23001b\nAuthor: x\n",
        "id: 550e8400-e29b-41d4-a716-446655440000\n",
        "image: registry.example.com/token-service:1.2\n",
        "Bearer authentication is described in RFC 6750.\n",
        "password_min_length = 12\npassword_policy: strict\n",
        "PASSWORD=\nTOKEN=${TOKEN}\nSECRET=<your secret here>\nAPI_KEY=changeme_xxx_placeholder_is_fine?\n",
    ] {
        let found = text(t);
        // The last line is deliberately mixed: only the literal value may be reported.
        let found: Vec<_> = found
            .iter()
            .filter(|f| &t[f.start..f.end] != "changeme_xxx_placeholder_is_fine?")
            .collect();
        assert!(found.is_empty(), "{t:?}: {found:?}");
    }
}

// ---------------------------------------------------------------- classification

#[test]
fn classification_orders_by_sensitivity() {
    use Classification::*;
    assert!(Public < Internal && Internal < Confidential && Confidential < Restricted);
    assert_eq!(
        [Internal, Restricted, Public].into_iter().max(),
        Some(Restricted)
    );
    assert_eq!(
        serde_json::to_string(&Confidential).unwrap(),
        "\"confidential\""
    );
    assert_eq!(
        serde_json::from_str::<Classification>("\"restricted\"").unwrap(),
        Restricted
    );
    assert_eq!(Restricted.as_str(), "restricted");
}

#[test]
fn classifies_paths() {
    use Classification::*;
    let s = Scanner::new();
    for (p, want) in [
        ("/etc/shadow", Restricted),
        ("/etc/gshadow-", Restricted),
        ("/home/bob/.ssh/id_rsa", Restricted),
        ("/home/bob/.ssh/id_ed25519", Restricted),
        ("/srv/tls/server.pem", Restricted),
        ("/srv/tls/server.KEY", Restricted),
        ("/etc/ssh/ssh_host_ed25519_key", Restricted),
        (
            "/var/run/secrets/kubernetes.io/serviceaccount/token",
            Restricted,
        ),
        ("/proc/1234/mem", Restricted),
        ("/root/.git-credentials", Restricted),
        ("/app/.env", Confidential),
        ("/app/.env.production", Confidential),
        ("/home/bob/.aws/credentials", Confidential),
        ("/home/bob/.kube/config", Confidential),
        ("/etc/rancher/k3s/kubeconfig", Confidential),
        ("/home/bob/.docker/config.json", Confidential),
        ("/proc/1/environ", Confidential),
        ("/app/.env.example", Internal.min(Public)),
        ("/etc/ssh/ssh_host_ed25519_key.pub", Internal),
        ("/etc/passwd", Internal),
        ("/etc/nginx/nginx.conf", Internal),
        ("/home/bob/.ssh/id_rsa.pub", Public),
        ("/usr/bin/ls", Public),
        ("", Public),
    ] {
        assert_eq!(s.classify_path(p), want, "{p}");
    }
}

// ---------------------------------------------------------------- custom patterns

#[test]
fn custom_pattern_reports_group_one() {
    let s = Scanner::with_custom(&[(
        "acme_token".into(),
        r"acme_([a-z0-9]{12})\b".into(),
        Classification::Restricted,
    )])
    .unwrap();
    let v = args(&["deploy", "--x", "acme_abcdef123456"]);
    let mut out = Vec::new();
    s.scan_args(&v, &mut out);
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].kind, "acme_token");
    assert_eq!(&v[2][out[0].start..out[0].end], "abcdef123456");
    // Built-ins still work alongside.
    out.clear();
    s.scan_args(&args(&["mysql", "-pS3cret"]), &mut out);
    assert_eq!(out.len(), 1);
}

#[test]
fn custom_pattern_errors_name_the_culprit() {
    let err = Scanner::with_custom(&[(
        "acme_token".into(),
        "acme_([a-z".into(),
        Classification::Restricted,
    )])
    .err()
    .unwrap();
    let msg = err.to_string();
    assert!(
        msg.contains("acme_token") && msg.contains("acme_([a-z"),
        "{msg}"
    );
    assert!(matches!(err, DlpError::BadRegex { .. }));
    assert!(std::error::Error::source(&err).is_some());

    let err =
        Scanner::with_custom(&[("Bad Kind".into(), "x".into(), Classification::Public)]).err();
    assert!(matches!(err, Some(DlpError::BadKind(_))));
    let err = Scanner::with_custom(&[("empty".into(), "a*".into(), Classification::Public)]).err();
    assert!(matches!(err, Some(DlpError::EmptyMatch { .. })));
    let huge = format!("(?:{}){{1000}}", "[a-z]{100}");
    let err = Scanner::with_custom(&[("huge".into(), huge, Classification::Public)]).err();
    assert!(matches!(err, Some(DlpError::BadRegex { .. })), "{err:?}");
}

// ---------------------------------------------------------------- redaction

#[test]
fn redact_str_merges_overlaps_and_clamps() {
    assert_eq!(
        redact_str("abcdef", &[(1, 4), (2, 5)], "x"),
        "a[REDACTED:x]f"
    );
    assert_eq!(
        redact_str("abcdef", &[(1, 2), (4, 5)], "x"),
        "a[REDACTED:x]cd[REDACTED:x]f"
    );
    assert_eq!(
        redact_str("abcdef", &[(1, 3), (3, 5)], "x"),
        "a[REDACTED:x]f"
    );
    assert_eq!(redact_str("abcdef", &[(4, 100)], "x"), "abcd[REDACTED:x]");
    assert_eq!(redact_str("abcdef", &[(5, 2)], "x"), "ab[REDACTED:x]f");
    assert_eq!(redact_str("abcdef", &[(3, 3), (100, 200)], "x"), "abcdef");
    assert_eq!(
        redact_str("abcdef", &[(0, 3), (0, 3), (1, 2)], "x"),
        "[REDACTED:x]def"
    );
    assert_eq!(redact_str("", &[(0, 1)], "x"), "");
    // Empty inside a multibyte char: nothing to redact.
    assert_eq!(redact_str("a€b", &[(2, 2)], "x"), "a€b");
}

#[test]
fn redact_str_widens_to_char_boundaries() {
    let s = "pässwörd=€geheim€!";
    // 'ä' is bytes 1..3: a range starting inside it takes the whole char.
    assert_eq!(
        redact_str(s, &[(2, 3)], "x"),
        "p[REDACTED:x]sswörd=€geheim€!"
    );
    // A range ending inside '€' (3 bytes) takes all of it.
    let eq = s.find('=').unwrap();
    let r = redact_str(s, &[(eq + 2, eq + 11)], "x");
    assert_eq!(r, "pässwörd=[REDACTED:x]!");
}

#[test]
fn redacts_several_findings_in_one_arg() {
    let cmd = format!("mysql -pS3cret db; curl -u bob:hunter2 https://x; export GH={GH}");
    let v = ["sh", "-c", cmd.as_str()];
    let found = scan(&v);
    assert_eq!(found.len(), 3, "{found:?}");
    let mut ev = event(&v);
    assert_eq!(redact_event(&mut ev, &found), 3);
    assert_eq!(
        ev.process.args[2],
        "mysql -p[REDACTED:password_flag] db; curl -u bob:[REDACTED:password_flag] https://x; export GH=[REDACTED:github_token]"
    );
    assert_eq!(ev.process.args[..2], ["sh".to_string(), "-c".to_string()]);
}

#[test]
fn redacts_overlapping_findings_once_with_both_labels() {
    let mut ev = event(&["x", "abcdefghij"]);
    let f = |kind, start, end| Finding {
        kind,
        classification: Classification::Restricted,
        field: "process.args[1]".into(),
        start,
        end,
        confidence: 1.0,
    };
    let n = redact_event(&mut ev, &[f("a", 1, 5), f("b", 3, 8), f("a", 100, 200)]);
    assert_eq!(n, 2);
    assert_eq!(ev.process.args[1], "a[REDACTED:a+b]ij");
}

#[test]
fn redact_event_leaves_other_fields_and_counts_only_applied() {
    let v = ["curl", "-u", "bob:hunter2", "https://x"];
    let found = scan(&v);
    let mut ev = event(&v);
    let before = ev.clone();
    let mut extra = found.clone();
    extra.push(Finding {
        field: "file.content".into(),
        ..found[0].clone()
    });
    extra.push(Finding {
        field: "process.args[9]".into(),
        ..found[0].clone()
    });
    assert_eq!(redact_event(&mut ev, &extra), 1);
    assert_eq!(ev.process.args[2], "bob:[REDACTED:password_flag]");
    assert_eq!(ev.process.args[3], before.process.args[3]);
    assert_eq!(ev.process.pid, before.process.pid);
    let json = serde_json::to_string(&ev).unwrap();
    assert!(!json.contains("hunter2"));
}

#[test]
fn finding_serializes_for_the_alert_log() {
    let found = scan(&["mysql", "-pS3cret"]);
    let j = serde_json::to_value(&found[0]).unwrap();
    assert_eq!(j["kind"], "password_flag");
    assert_eq!(j["classification"], "restricted");
    assert_eq!(j["field"], "process.args[1]");
    assert_eq!((j["start"].as_u64(), j["end"].as_u64()), (Some(2), Some(8)));
}

#[test]
fn scanner_is_shareable() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Scanner>();
}

fn event(args: &[&str]) -> Event {
    Event {
        timestamp: "2025-01-01T00:00:00.000000000Z".into(),
        event: EventMeta {
            kind: Kind::Exec,
            action: "exec".into(),
            outcome: None,
            sequence: 1,
            boot_ns: 1,
        },
        process: Process {
            pid: 42,
            tid: 42,
            name: args.first().copied().unwrap_or("").into(),
            args: args.iter().map(|s| s.to_string()).collect(),
            ..Process::default()
        },
        user: User::default(),
        container: None,
        service: None,
        cgroup: Cgroup::default(),
        file: None,
        source: None,
        destination: None,
        network: None,
        syscall: None,
    }
}

// ---------------------------------------------------------------- properties

mod props {
    use super::*;
    use proptest::prelude::*;

    fn any_arg() -> impl Strategy<Value = String> {
        prop_oneof![
            "\\PC{0,40}",
            "[ -~]{0,40}",
            // Fragments of what the detectors look for, to reach the deep paths.
            "(-p|--password|=|:|@|https://|Bearer |Basic |ghp_|eyJ|\\$6\\$|'|\"|;| |sh|-c|mysql|curl|-u|[A-Za-z0-9]{1,8}|é|€){0,12}",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn scan_and_redact_never_panic(v in prop::collection::vec(any_arg(), 0..8)) {
            let s = Scanner::new();
            let mut out = Vec::new();
            s.scan_args(&v, &mut out);
            for f in &out {
                let i = field_index(&f.field);
                prop_assert!(f.start < f.end && f.end <= v[i].len());
                prop_assert!(v[i].is_char_boundary(f.start) && v[i].is_char_boundary(f.end));
            }
            let joined = v.join("\n");
            s.scan_text("t", &joined, &mut out);
            let refs: Vec<&str> = v.iter().map(String::as_str).collect();
            let mut ev = event(&refs);
            redact_event(&mut ev, &out);
        }

        #[test]
        fn redact_str_never_panics(s in "\\PC{0,40}", r in prop::collection::vec((0usize..64, 0usize..64), 0..6)) {
            let out = redact_str(&s, &r, "k");
            prop_assert!(r.iter().any(|&(a, b)| a.min(b) < s.len() && a != b) || out == s);
        }

        #[test]
        fn redacted_range_never_keeps_the_secret(
            pre in "\\PC{0,20}",
            secret in "Zq9[A-Za-z0-9]{8,20}",
            post in "\\PC{0,20}",
            noise in prop::collection::vec((0usize..80, 0usize..80), 0..4),
        ) {
            prop_assume!(!pre.contains(&secret) && !post.contains(&secret));
            let s = format!("{pre}{secret}{post}");
            let mut r = noise.clone();
            r.push((pre.len(), pre.len() + secret.len()));
            prop_assert!(!redact_str(&s, &r, "k").contains(&secret));
        }

        #[test]
        fn scanned_secrets_are_gone_after_redaction(
            before in prop::collection::vec("[ -~]{0,16}|\\PC{0,16}", 0..3),
            after in prop::collection::vec("[ -~]{0,16}|\\PC{0,16}", 0..3),
            secret in "Zq9[A-Za-z0-9]{8,20}",
            form in 0usize..8,
        ) {
            let ctx: Vec<String> = match form {
                0 => vec!["mysql".into(), format!("-p{secret}")],
                1 => vec!["tool".into(), format!("--password={secret}")],
                2 => vec!["curl".into(), "-u".into(), format!("admin:{secret}")],
                3 => vec!["git".into(), "clone".into(), format!("https://u:{secret}@host/r")],
                4 => vec!["env".into(), format!("DB_PASSWORD={secret}")],
                5 => vec!["sh".into(), "-c".into(), format!("sshpass -p {secret} ssh h")],
                6 => vec!["gh".into(), format!("ghp_{secret}{}", "A".repeat(36))],
                _ => vec!["sh".into(), "-c".into(), format!("export API_TOKEN={secret}; run")],
            };
            let mut v: Vec<String> = before.clone();
            v.extend(ctx);
            v.extend(after.clone());
            prop_assume!(!before.iter().chain(after.iter()).any(|a| a.contains(&secret)));
            let mut out = Vec::new();
            Scanner::new().scan_args(&v, &mut out);
            let refs: Vec<&str> = v.iter().map(String::as_str).collect();
            let mut ev = event(&refs);
            redact_event(&mut ev, &out);
            for a in &ev.process.args {
                prop_assert!(!a.contains(&secret), "{v:?} -> {:?}", ev.process.args);
            }
        }
    }
}

// ---------------------------------------------------------------- throughput

#[test]
#[ignore = "micro-benchmark: run with `cargo test --release -- --ignored --nocapture bench_`"]
fn bench_scan_args_throughput() {
    use std::time::Instant;
    let s = Scanner::new();
    let lines: Vec<Vec<String>> = [
        &["git", "commit", "-m", "fix typo in readme", "--amend"][..],
        &["ls", "-la", "/var/log", "--color=auto", "-h"],
        &[
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "https://example.com/health",
        ],
        &["docker", "run", "-p", "8080:80", "nginx:1.27"],
        &["python3", "-m", "pip", "install", "requests==2.32.3"],
        &["mysql", "-u", "root", "-pS3cret", "prod"],
        &["ssh", "-p", "22", "-i", "/home/u/.ssh/id_ed25519"],
        &["sh", "-c", "cd /srv && make -j4", "--", "x"],
    ]
    .iter()
    .map(|l| args(l))
    .collect();
    let mut out = Vec::with_capacity(16);
    // Warm the regex caches.
    for l in &lines {
        s.scan_args(l, &mut out);
    }
    let rounds = 50_000;
    let t = Instant::now();
    let mut found = 0;
    for _ in 0..rounds {
        for l in &lines {
            out.clear();
            s.scan_args(std::hint::black_box(l), &mut out);
            found += out.len();
        }
    }
    let secs = t.elapsed().as_secs_f64();
    let args = (rounds * lines.len() * 5) as f64;
    let cmds = (rounds * lines.len()) as f64;
    println!(
        "scan_args: {:.0} args/s, {:.0} commands/s, {:.2} us/command ({found} findings)",
        args / secs,
        cmds / secs,
        secs * 1e6 / cmds
    );
    assert_eq!(found, rounds);
    assert!(args / secs >= 200_000.0);
}

#[test]
fn linker_pass_through_options_are_not_passwords() {
    let s = Scanner::new();
    let args: Vec<String> = [
        "/usr/bin/ld",
        "-plugin-opt=-pass-through=-lgcc",
        "-plugin-opt=-pass-through=-lgcc_s",
        "-o",
        "a",
    ]
    .iter()
    .map(|x| x.to_string())
    .collect();
    let mut out = Vec::new();
    s.scan_args(&args, &mut out);
    assert!(out.is_empty(), "{out:?}");
    // A real `pass` name still counts.
    let args: Vec<String> = ["tool", "DB_PASS=Zq8pLm2VxR7tK4wN"]
        .iter()
        .map(|x| x.to_string())
        .collect();
    s.scan_args(&args, &mut out);
    assert!(!out.is_empty());
}
