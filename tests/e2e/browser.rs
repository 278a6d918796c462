//! The passkey page (`dev/app/passkeys.html`) in a real headless Chromium, against the real
//! binaries behind the emulator: the browser's own WebAuthn, with DevTools' virtual
//! authenticator (a platform authenticator with user verification, holding discoverable
//! credentials), creates a passkey from our creation options, and signs in with it from our
//! request options, and we accept what it made. Chromium is Debian's (`scripts/install-chromium`,
//! run by `make test`), or `CHROMIUM`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

use crate::helpers::{TestApi, eventually};

/// A headless Chromium, its DevTools socket, and one page attached to it.
struct Browser {
    _process: Child,
    _profile: TempDir,
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    session: String,
    next_id: u64,
}

/// A folder removed when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Browser {
    async fn launch() -> Self {
        let binary = std::env::var("CHROMIUM").unwrap_or_else(|_| "chromium".to_owned());
        let profile =
            TempDir(std::env::temp_dir().join(format!("chromium-{}", uuid::Uuid::new_v4().simple())));
        std::fs::create_dir_all(&profile.0).unwrap();
        let process = Command::new(&binary)
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.0.display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|error| {
                panic!("{binary} does not start ({error}): run scripts/install-chromium")
            });
        let endpoint =
            eventually("Chromium's DevTools port", Duration::from_secs(30), || devtools_endpoint(&profile.0))
                .await;
        let (socket, _) = connect_async(endpoint.as_str()).await.expect("the DevTools socket");
        let mut browser =
            Self { _process: process, _profile: profile, socket, session: String::new(), next_id: 0 };
        let target = browser.send("Target.createTarget", json!({ "url": "about:blank" })).await;
        let attached = browser
            .send("Target.attachToTarget", json!({ "targetId": target["targetId"], "flatten": true }))
            .await;
        browser.session = attached["sessionId"].as_str().unwrap().to_owned();
        browser
    }

    /// Sends a DevTools command (to the page once one is attached, else to the browser) and
    /// waits for its answer, passing over the events in between.
    async fn send(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut command = json!({ "id": id, "method": method, "params": params });
        if !self.session.is_empty() {
            command["sessionId"] = json!(self.session);
        }
        self.socket.send(Message::text(command.to_string())).await.expect("a DevTools command");
        loop {
            let message = self.socket.next().await.expect("the DevTools socket is open").expect("a message");
            let Message::Text(text) = message else { continue };
            let answer: Value = serde_json::from_str(&text).expect("DevTools answers JSON");
            if answer["id"] == id {
                assert!(answer.get("error").is_none(), "{method}: {answer}");
                return answer["result"].clone();
            }
        }
    }

    async fn page(&mut self, method: &str, params: Value) -> Value {
        self.send(method, params).await
    }

    /// Waits until `condition` (a script) holds in the page.
    async fn until(&mut self, condition: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while self.evaluate(condition).await != true {
            assert!(tokio::time::Instant::now() < deadline, "waiting for {condition}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Runs `script` in the page and returns its value (a promise awaited).
    async fn evaluate(&mut self, script: &str) -> Value {
        let result = self
            .page(
                "Runtime.evaluate",
                json!({ "expression": script, "awaitPromise": true, "returnByValue": true }),
            )
            .await;
        assert!(result.get("exceptionDetails").is_none(), "{script}: {result}");
        result["result"]["value"].clone()
    }

    /// Waits until the page's status line says something with `expected` in it (or fails with
    /// what it says instead).
    async fn outcome(&mut self, expected: &str) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let outcome = self.evaluate("document.getElementById('outcome').textContent").await;
            let outcome = outcome.as_str().unwrap_or_default().to_owned();
            if outcome.contains(expected) {
                return outcome;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "waiting for {expected:?}, the page says {outcome:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The browser's DevTools socket, once Chromium wrote where it listens.
async fn devtools_endpoint(profile: &Path) -> Option<String> {
    let written = tokio::fs::read_to_string(profile.join("DevToolsActivePort")).await.ok()?;
    let mut lines = written.lines();
    let (port, path) = (lines.next()?, lines.next()?);
    Some(format!("ws://127.0.0.1:{port}{path}"))
}

/// A port free now, for an origin that must be known before the emulator starts.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[tokio::test]
async fn the_passkey_page_registers_and_signs_in_with_chromiums_own_webauthn() {
    let port = free_port();
    let origin = format!("http://localhost:{port}");
    let api = TestApi::start_with(|config| {
        config.port = port;
        config.static_dir = Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../dev/app"));
        config.env_overrides.set_for_all("APP_URL", origin.clone());
    })
    .await;
    let mut browser = Browser::launch().await;
    browser.page("WebAuthn.enable", json!({})).await;
    let options = json!({
        "protocol": "ctap2", "transport": "internal", "hasResidentKey": true,
        "hasUserVerification": true, "isUserVerified": true, "automaticPresenceSimulation": true,
    });
    let authenticator = browser.page("WebAuthn.addVirtualAuthenticator", json!({ "options": options })).await;
    browser.page("Page.enable", json!({})).await;
    browser.page("Page.navigate", json!({ "url": format!("{origin}/passkeys") })).await;
    browser.until("document.readyState === 'complete' && !!document.getElementById('sign-up')").await;
    let address = crate::helpers::email();
    let sign_up = format!(
        "document.getElementById('email').value = {address:?};
         document.getElementById('password').value = {password:?};
         document.getElementById('sign-up').click();",
        password = test_support::PASSWORD,
    );
    browser.evaluate(&sign_up).await;
    browser.outcome("Account created").await;
    browser.evaluate("document.getElementById('add').click()").await;
    browser.outcome("Passkey \"This browser\" added.").await;
    browser.evaluate("document.getElementById('sign-out').click()").await;
    browser.evaluate("document.getElementById('passkey-sign-in').click()").await;
    let signed_in = browser.outcome("Signed in with a passkey").await;

    assert!(signed_in.contains("(aal2, hwk user)") || signed_in.contains("(aal2, swk user)"), "{signed_in}");
    let credentials = browser
        .page("WebAuthn.getCredentials", json!({ "authenticatorId": authenticator["authenticatorId"] }))
        .await;
    let credentials = credentials["credentials"].as_array().unwrap();
    assert_eq!(credentials.len(), 1, "{credentials:?}");
    assert_eq!(credentials[0]["isResidentCredential"], true, "a discoverable credential: {credentials:?}");
    let used: Option<bool> = sqlx::query_scalar("select last_used_at is not null from passkeys")
        .fetch_optional(&api.db.pool)
        .await
        .unwrap();
    assert_eq!(used, Some(true), "the passkey is stored and its sign-in recorded");
}
