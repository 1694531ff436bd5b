//! Authentication and TLS through the real component, in wasmtime, against nats-server
//! processes configured for each mode: operator mode with a memory resolver (JWTs minted
//! here), token, users, nkeys, TLS with a custom CA, and mutual TLS. Each mode is tested
//! succeeding (init, then a stream created with the same settings and a publish acknowledged)
//! and failing (init fails with one line that says which credential failed and why). Every
//! failure's error text, and every log line of the process, is searched for the secrets.

mod support;

use std::path::{Path, PathBuf};

use jetstream_pubsub_host::nats_server::{NatsServer, ServerOptions};
use jetstream_pubsub_host::provision::{self, Storage, StreamSpec};
use jetstream_pubsub_host::{Error, Runtime};
use support::certs::{self, Ca};
use support::{capture, jwt};

/// A server started with `config` (written to a file in `dir`).
fn server_with(dir: &Path, config: &str) -> NatsServer {
    let path = dir.join("server.conf");
    std::fs::write(&path, config).expect("write the server config");
    ServerOptions::jetstream()
        .config_file(&path)
        .start()
        .expect("nats-server starts with the test config")
}

fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("jetstream-pubsub-auth-")
        .tempdir()
        .expect("temp dir")
}

fn metadata(url: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut pairs = vec![("natsURL".to_string(), url.to_string())];
    pairs.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    pairs
}

/// Init succeeds, a stream is created with the component's own connection settings, and a
/// publish through the component is acknowledged by it.
async fn assert_connects_and_publishes(url: &str, extra: &[(&str, &str)], stream: &str) {
    capture::install();
    let runtime = Runtime::new().expect("the embedded component loads");
    let md = metadata(url, extra);
    let pubsub = runtime
        .pubsub(md.clone())
        .await
        .unwrap_or_else(|err| panic!("init with {:?} failed: {err}", keys(extra)));
    let settings = runtime
        .connection_settings(&md)
        .await
        .expect("connection settings");
    let subject = format!("{}.created", stream.to_lowercase());
    provision::add_stream(
        &settings,
        &StreamSpec {
            name: stream.to_string(),
            subjects: vec![subject.clone()],
            storage: Storage::Memory,
            replicas: 1,
        },
    )
    .await
    .unwrap_or_else(|err| panic!("stream with {:?}: {err}", keys(extra)));
    let ack = pubsub
        .publish(&subject, b"hello".to_vec())
        .await
        .expect("publish acknowledged");
    assert_eq!((ack.stream.as_str(), ack.sequence), (stream, 1));
    pubsub.close().await.expect("close");
    runtime.shutdown().await;
}

fn keys<'a>(extra: &[(&'a str, &str)]) -> Vec<&'a str> {
    extra.iter().map(|(k, _)| *k).collect()
}

/// Init fails; returns the error text after checking that it is one line, and that neither it
/// nor any log line so far contains one of `secrets`.
async fn init_error(url: &str, extra: &[(&str, &str)], secrets: &[&str]) -> String {
    capture::install();
    let runtime = Runtime::new().expect("the embedded component loads");
    let result = runtime.pubsub(metadata(url, extra)).await;
    runtime.shutdown().await;
    let err: Error = match result {
        Ok(_) => panic!("init with {:?} succeeded", keys(extra)),
        Err(err) => err,
    };
    let text = err.to_string();
    assert!(!text.contains('\n'), "one line: {text}");
    assert_secret_free(&text, secrets);
    text
}

/// Neither `text` nor anything logged so far contains a secret, nor a telling part of one
/// (a PEM key's body line, the middle of a seed or JWT).
fn assert_secret_free(text: &str, secrets: &[&str]) {
    let logs = capture::text();
    for secret in secrets {
        let mut needles = vec![secret.to_string()];
        if secret.len() > 24 {
            needles.push(secret[secret.len() / 2 - 8..secret.len() / 2 + 8].to_string());
        }
        // Every base64 line of a PEM body.
        needles.extend(
            secret
                .lines()
                .filter(|l| !l.starts_with("-----") && l.len() > 16)
                .map(str::to_string),
        );
        for needle in &needles {
            assert!(!text.contains(needle.as_str()), "secret in error: {text}");
            if let Some(line) = logs.lines().find(|l| l.contains(needle.as_str())) {
                panic!(
                    "secret in the logs: {}",
                    line.replace(needle.as_str(), "<SECRET>")
                );
            }
        }
    }
}

// ---- Decentralised auth: operator mode, memory resolver ----

struct Operator {
    _dir: tempfile::TempDir,
    server: NatsServer,
    account: jwt::Identity,
}

/// An operator-mode server with a JetStream-enabled account and a system account.
fn operator_server() -> Operator {
    let dir = temp_dir();
    let operator = jwt::operator("OP");
    let system = jwt::account(&operator, "SYS", false);
    let account = jwt::account(&operator, "APP", true);
    let config = jwt::operator_config(&operator, &system, &[&system, &account]);
    let server = server_with(dir.path(), &config);
    Operator {
        _dir: dir,
        server,
        account,
    }
}

#[tokio::test]
async fn jwt_with_its_seed_connects_and_publishes() {
    let op = operator_server();
    let user = jwt::user(&op.account, "app-user", Some(jwt::now() + 3600));
    let seed = user.seed();
    assert_connects_and_publishes(
        &op.server.url(),
        &[("jwt", &user.jwt), ("seedKey", &seed)],
        "JWTAUTH",
    )
    .await;
}

#[tokio::test]
async fn jwt_with_another_seed_is_refused() {
    let op = operator_server();
    let user = jwt::user(&op.account, "app-user", None);
    let other = jwt::user(&op.account, "other", None).seed();
    let err = init_error(
        &op.server.url(),
        &[("jwt", &user.jwt), ("seedKey", &other)],
        &[&other, &user.seed(), &user.jwt],
    )
    .await;
    assert!(
        err.contains(
            "the user JWT and seed: the seed does not belong to the JWT's user (its public key is not the JWT subject)"
        ),
        "{err}"
    );
}

#[tokio::test]
async fn user_jwt_of_another_account_is_refused_by_the_server() {
    let op = operator_server();
    // Signed by an account the server's operator never issued, with the user's own seed.
    let stranger = jwt::account(&jwt::operator("OTHER"), "STRANGER", true);
    let user = jwt::user(&stranger, "intruder", None);
    let seed = user.seed();
    let err = init_error(
        &op.server.url(),
        &[("jwt", &user.jwt), ("seedKey", &seed)],
        &[&seed, &user.jwt],
    )
    .await;
    assert!(
        err.starts_with(&format!(
            "cannot connect to {}: the server refused the user JWT and seed: ",
            op.server.url()
        )),
        "{err}"
    );
    assert!(
        err.to_lowercase().contains("authorization violation"),
        "{err}"
    );
}

#[tokio::test]
async fn expired_jwt_is_refused_with_its_expiry() {
    let op = operator_server();
    let expires = jwt::now() - 60;
    let user = jwt::user(&op.account, "late", Some(expires));
    let seed = user.seed();
    let err = init_error(
        &op.server.url(),
        &[("jwt", &user.jwt), ("seedKey", &seed)],
        &[&seed, &user.jwt],
    )
    .await;
    assert!(
        err.contains(&format!(
            "the user JWT and seed: the user JWT has expired (exp {expires}, "
        )),
        "{err}"
    );
}

#[tokio::test]
async fn creds_file_connects_as_path_and_inline_and_unknown_account_is_refused() {
    let op = operator_server();
    let dir = temp_dir();
    let user = jwt::user(&op.account, "creds-user", None);
    let path = certs::write(dir.path(), "user.creds", &jwt::creds(&user));
    let path = path.to_str().expect("utf-8 temp path");
    assert_connects_and_publishes(&op.server.url(), &[("credsFile", path)], "CREDSPATH").await;
    let inline = jwt::creds(&user);
    assert_connects_and_publishes(&op.server.url(), &[("credsFile", &inline)], "CREDSINLINE").await;

    let stranger = jwt::user(
        &jwt::account(&jwt::operator("OTHER"), "STRANGER", true),
        "x",
        None,
    );
    let creds = jwt::creds(&stranger);
    let err = init_error(
        &op.server.url(),
        &[("credsFile", &creds)],
        &[&stranger.seed(), &stranger.jwt],
    )
    .await;
    assert!(
        err.contains("the server refused the credentials file"),
        "{err}"
    );
    let missing = dir.path().join("missing.creds");
    let missing = missing.to_str().expect("utf-8 temp path");
    let err = init_error(&op.server.url(), &[("credsFile", missing)], &[]).await;
    assert_eq!(
        err,
        format!("cannot read the credentials file at {missing:?}: entity not found")
    );
}

// ---- Token, users, nkeys ----

#[tokio::test]
async fn token_connects_and_a_wrong_token_is_refused() {
    let dir = temp_dir();
    let token = "tok-7Yq2-secret-Zk91";
    let server = server_with(
        dir.path(),
        &format!("authorization {{ token: \"{token}\" }}\n"),
    );
    assert_connects_and_publishes(&server.url(), &[("token", token)], "TOKEN").await;
    let wrong = "tok-wrong-Hh3k-secret";
    let err = init_error(&server.url(), &[("token", wrong)], &[wrong, token]).await;
    assert!(
        err.starts_with(&format!(
            "cannot connect to {}: the server refused the token: ",
            server.url()
        )),
        "{err}"
    );
    // The token in the URL (`token@host`), as nats.go and async-nats read it.
    let with_token = server.url().replace("nats://", &format!("nats://{token}@"));
    assert_connects_and_publishes(&with_token, &[], "URLTOKEN").await;
    assert_secret_free("", &[token, wrong]);
}

#[tokio::test]
async fn user_and_password_in_the_url_and_as_keys() {
    let dir = temp_dir();
    let password = "pw-Lq83-secret-xR2";
    let server = server_with(
        dir.path(),
        &format!("authorization {{ users = [ {{ user: alice, password: \"{password}\" }} ] }}\n"),
    );
    let in_url = server
        .url()
        .replace("nats://", &format!("nats://alice:{password}@"));
    assert_connects_and_publishes(&in_url, &[], "USERURL").await;
    assert_connects_and_publishes(
        &server.url(),
        &[("user", "alice"), ("password", password)],
        "USERKEYS",
    )
    .await;

    let wrong = "pw-wrong-Jd72-secret";
    let err = init_error(
        &server.url(),
        &[("user", "alice"), ("password", wrong)],
        &[wrong, password],
    )
    .await;
    assert!(
        err.contains("the server refused the user and password"),
        "{err}"
    );
    let wrong_url = server
        .url()
        .replace("nats://", &format!("nats://alice:{wrong}@"));
    let err = init_error(&wrong_url, &[], &[wrong, password]).await;
    assert!(
        err.starts_with(&format!(
            "cannot connect to nats://***@127.0.0.1:{}: the server refused the credentials in the server URL: ",
            server.port()
        )),
        "{err}"
    );
    let err = init_error(&server.url(), &[("user", "alice")], &[]).await;
    assert_eq!(err, "invalid metadata: missing password (user is set)");
    assert_secret_free("", &[password, wrong]);
}

#[tokio::test]
async fn nkey_connects_and_an_unknown_nkey_is_refused() {
    let dir = temp_dir();
    let user = nkeys::KeyPair::new_user();
    let seed = user.seed().expect("seed");
    let server = server_with(
        dir.path(),
        &format!(
            "authorization {{ users = [ {{ nkey: {} }} ] }}\n",
            user.public_key()
        ),
    );
    assert_connects_and_publishes(&server.url(), &[("nkey", &seed)], "NKEY").await;
    let other = nkeys::KeyPair::new_user().seed().expect("seed");
    let err = init_error(&server.url(), &[("nkey", &other)], &[&other, &seed]).await;
    assert!(err.contains("the server refused the nkey seed"), "{err}");
    let account_seed = nkeys::KeyPair::new_account().seed().expect("seed");
    let err = init_error(&server.url(), &[("nkey", &account_seed)], &[&account_seed]).await;
    assert_eq!(
        err,
        "invalid metadata: invalid nkey: not an nkey user seed (expected a seed starting with SU; the value is not shown)"
    );
}

// ---- TLS ----

struct Tls {
    dir: tempfile::TempDir,
    server: NatsServer,
    ca: Ca,
}

impl Tls {
    /// `tls://` URL of the server.
    fn tls_url(&self) -> String {
        self.server.url().replace("nats://", "tls://")
    }

    fn file(&self, name: &str, text: &str) -> String {
        path_string(certs::write(self.dir.path(), name, text))
    }
}

fn path_string(path: PathBuf) -> String {
    path.to_str().expect("utf-8 temp path").to_string()
}

/// A server requiring TLS with a certificate of a fresh CA; with `verify`, clients must
/// present a certificate of that CA.
fn tls_server(verify: bool) -> Tls {
    let dir = temp_dir();
    let ca = Ca::new("test CA");
    let leaf = ca.server();
    let ca_file = path_string(certs::write(dir.path(), "ca.pem", &ca.cert_pem));
    let cert_file = path_string(certs::write(dir.path(), "server.pem", &leaf.cert_pem));
    let key_file = path_string(certs::write(dir.path(), "server-key.pem", &leaf.key_pem));
    let config = format!(
        "tls {{\n  cert_file: \"{cert_file}\"\n  key_file: \"{key_file}\"\n  ca_file: \"{ca_file}\"\n  verify: {verify}\n  timeout: 5\n}}\n"
    );
    let server = server_with(dir.path(), &config);
    Tls { dir, server, ca }
}

#[tokio::test]
async fn tls_server_with_a_custom_ca() {
    let tls = tls_server(false);
    let ca_path = tls.file("client-ca.pem", &tls.ca.cert_pem);
    // `tls://` URL, CA as a path.
    assert_connects_and_publishes(&tls.tls_url(), &[("tls_ca", &ca_path)], "TLSPATH").await;
    // `nats://` URL to a server that requires TLS, CA inline.
    assert_connects_and_publishes(
        &tls.server.url(),
        &[("tls_ca", &tls.ca.cert_pem)],
        "TLSINLINE",
    )
    .await;

    // A CA that did not sign the server's certificate.
    let other = Ca::new("another CA");
    let err = init_error(&tls.tls_url(), &[("tls_ca", &other.cert_pem)], &[]).await;
    assert!(
        err.starts_with(&format!(
            "cannot connect to {}: TLS failed: ",
            tls.tls_url()
        )) && err.ends_with("(the server certificate is not signed by the configured CA)"),
        "{err}"
    );
    // No CA: the system roots do not know the test CA.
    let err = init_error(&tls.tls_url(), &[], &[]).await;
    assert!(err.contains("TLS failed"), "{err}");
    // A CA path that cannot be read.
    let missing = path_string(tls.dir.path().join("missing-ca.pem"));
    let err = init_error(&tls.tls_url(), &[("tls_ca", &missing)], &[]).await;
    assert_eq!(
        err,
        format!("cannot read the TLS CA at {missing:?}: entity not found")
    );
}

#[tokio::test]
async fn mutual_tls_with_paths_and_inline_pem() {
    let tls = tls_server(true);
    let client = tls.ca.client("dapr");
    let ca = tls.file("client-ca.pem", &tls.ca.cert_pem);
    let cert = tls.file("client.pem", &client.cert_pem);
    let key = tls.file("client-key.pem", &client.key_pem);
    assert_connects_and_publishes(
        &tls.tls_url(),
        &[
            ("tls_ca", &ca),
            ("tls_client_cert", &cert),
            ("tls_client_key", &key),
        ],
        "MTLSPATH",
    )
    .await;
    // Inline PEM, and a `nats://` URL: the client certificate makes TLS required.
    assert_connects_and_publishes(
        &tls.server.url(),
        &[
            ("tls_ca", &tls.ca.cert_pem),
            ("tls_client_cert", &client.cert_pem),
            ("tls_client_key", &client.key_pem),
        ],
        "MTLSINLINE",
    )
    .await;

    // Without a client certificate the server ends the handshake.
    let err = init_error(&tls.tls_url(), &[("tls_ca", &ca)], &[]).await;
    assert!(
        err.starts_with(&format!("cannot connect to {}: ", tls.tls_url())),
        "{err}"
    );
    // A client certificate of another CA is refused too, and its key never printed.
    let stranger = Ca::new("stranger CA").client("intruder");
    let err = init_error(
        &tls.tls_url(),
        &[
            ("tls_ca", &ca),
            ("tls_client_cert", &stranger.cert_pem),
            ("tls_client_key", &stranger.key_pem),
        ],
        &[&stranger.key_pem, &client.key_pem],
    )
    .await;
    assert!(
        err.starts_with(&format!("cannot connect to {}: ", tls.tls_url())),
        "{err}"
    );
    // An unreadable certificate path names the certificate; a key path is never echoed.
    let missing = path_string(tls.dir.path().join("missing.pem"));
    let err = init_error(
        &tls.tls_url(),
        &[
            ("tls_ca", &ca),
            ("tls_client_cert", &missing),
            ("tls_client_key", &key),
        ],
        &[&client.key_pem],
    )
    .await;
    assert_eq!(
        err,
        format!("cannot read the TLS client certificate at {missing:?}: entity not found")
    );
    let err = init_error(
        &tls.tls_url(),
        &[
            ("tls_ca", &ca),
            ("tls_client_cert", &cert),
            ("tls_client_key", &missing),
        ],
        &[&client.key_pem],
    )
    .await;
    assert_eq!(
        err,
        "cannot read the TLS client key at the path given (not shown): entity not found"
    );
}

// ---- Precedence ----

#[tokio::test]
async fn two_credentials_connect_with_the_first_and_warn_naming_both_keys() {
    let dir = temp_dir();
    let token = "tok-prec-Mm21-secret";
    let password = "pw-prec-Qz55-secret";
    let server = server_with(
        dir.path(),
        &format!("authorization {{ token: \"{token}\" }}\n"),
    );
    // The reference's order puts token before our user/password: the token is used.
    assert_connects_and_publishes(
        &server.url(),
        &[("token", token), ("user", "bob"), ("password", password)],
        "PRECEDENCE",
    )
    .await;
    let logs = capture::text();
    assert!(
        logs.contains(
            "two credentials are configured, token and user/password: token is used, user/password is ignored"
        ),
        "{logs}"
    );
    assert_secret_free("", &[token, password]);
}
