//! `AWS_IAM` routes through the emulator, as API Gateway guards them: the fixture's
//! `ANY /admin/{proxy+}` (whose function answers with the event it received) takes only
//! requests signed with the `--iam-credentials` key, and tells the function who signed. The
//! requests are signed by the tests' own signer (helpers.rs) and, through `scripts/admin`, by
//! botocore.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use local_lambda::iam::{MISSING_SIGNATURE, SIGNATURE_MISMATCH, UNKNOWN_ACCESS_KEY};
use local_lambda::{Emulator, EmulatorConfig, IamCredentials, Log};
use serde_json::Value;
use time::OffsetDateTime;

use crate::helpers::{Signer, TempDir, fixtures, get_text, send};

const ACCESS_KEY: &str = "AKIAEMULATORTEST0001";
const SECRET: &str = "emulator/secret+key/for/tests/0123456789";
const USER_ARN: &str = "arn:aws:iam::210987654321:user/ops/alice";

fn credentials_json() -> String {
    serde_json::json!({ "access_key_id": ACCESS_KEY, "secret_access_key": SECRET, "user_arn": USER_ARN })
        .to_string()
}

async fn start(credentials: Option<IamCredentials>) -> Emulator {
    let mut config = EmulatorConfig::new(fixtures().join("template.yaml"), fixtures());
    config.sandbox_limits = false;
    config.iam_credentials = credentials;
    config.log = Log::captured();
    Emulator::start(config).await.expect("the emulator starts")
}

async fn start_with_credentials() -> Emulator {
    start(Some(IamCredentials::parse(&credentials_json()).expect("the credentials"))).await
}

/// A request to the emulator, signed (or not) in one of the ways a client gets it right or
/// wrong.
struct Call {
    method: &'static str,
    target: &'static str,
    body: &'static [u8],
    content_type: Option<&'static str>,
    signer: Option<Signer>,
    /// The host the signature is for, when not the emulator's address.
    signed_host: Option<&'static str>,
    /// The `Host` header sent, when not the emulator's address.
    sent_host: Option<&'static str>,
    /// The body the signature is for, when not the one sent.
    signed_body: Option<&'static [u8]>,
    signed_at: OffsetDateTime,
    authorization: Option<&'static str>,
}

impl Call {
    fn new(method: &'static str, target: &'static str) -> Self {
        Self {
            method,
            target,
            body: b"",
            content_type: None,
            signer: Some(Signer::new(ACCESS_KEY, SECRET)),
            signed_host: None,
            sent_host: None,
            signed_body: None,
            signed_at: OffsetDateTime::now_utc(),
            authorization: None,
        }
    }

    fn json(mut self, body: &'static str) -> Self {
        self.body = body.as_bytes();
        self.content_type = Some("application/json");
        self
    }

    fn unsigned(mut self) -> Self {
        self.signer = None;
        self
    }

    fn signed_by(mut self, access_key: &str, secret: &str) -> Self {
        self.signer = Some(Signer::new(access_key, secret));
        self
    }

    async fn send(&self, emulator: &Emulator) -> (u16, String) {
        let address = emulator.local_addr().to_string();
        let host = self.sent_host.map_or(address, str::to_owned);
        let mut request = Request::builder()
            .method(self.method)
            .uri(format!("{}{}", emulator.base_url(), self.target))
            .header("host", &host);
        let mut signed_headers = Vec::new();
        if let Some(content_type) = self.content_type {
            request = request.header("content-type", content_type);
            signed_headers.push(("content-type", content_type));
        }
        if let Some(signer) = &self.signer {
            let signed = signer.sign(
                self.method,
                self.signed_host.unwrap_or(&host),
                self.target,
                &signed_headers,
                self.signed_body.unwrap_or(self.body),
                self.signed_at,
            );
            for (name, value) in signed {
                request = request.header(name, value);
            }
        }
        if let Some(authorization) = self.authorization {
            request = request.header("authorization", authorization);
        }
        send(request.body(Full::new(Bytes::from_static(self.body))).expect("a request")).await
    }
}

fn message(body: &str) -> String {
    let body: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("a JSON body: {body}"));
    body["message"].as_str().expect("a message").to_owned()
}

/// The repository's root, two folders above this crate's.
fn repository() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(2).expect("tools/emulator is two folders down")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_request_reaches_the_function_with_its_signer_in_the_event() {
    let emulator = start_with_credentials().await;

    let (get_status, get_body) =
        Call::new("GET", "/admin/users?email_prefix=ali&b=x%20y").send(&emulator).await;
    let (post_status, post_body) =
        Call::new("POST", "/admin/users/42/disable").json(r#"{"reason":"spam"}"#).send(&emulator).await;

    assert_eq!(get_status, 200, "{get_body}");
    let event: Value = serde_json::from_str(&get_body).expect("the event");
    let iam = &event["requestContext"]["authorizer"]["iam"];
    assert_eq!(iam["accessKey"], ACCESS_KEY);
    assert_eq!(iam["userArn"], USER_ARN);
    assert_eq!(iam["accountId"], "210987654321");
    assert_eq!(iam["callerId"], iam["userId"]);
    assert_eq!(event["queryStringParameters"]["b"], "x y");
    let request = lambda_http::request::from_str(&get_body).expect("lambda_http reads the event");
    let lambda_http::request::RequestContext::ApiGatewayV2(context) =
        lambda_http::RequestExt::request_context(&request)
    else {
        panic!("an HTTP API event");
    };
    let user_arn = context.authorizer.and_then(|authorizer| authorizer.iam).and_then(|iam| iam.user_arn);
    assert_eq!(user_arn.as_deref(), Some(USER_ARN));
    assert_eq!(post_status, 200, "{post_body}");
    let event: Value = serde_json::from_str(&post_body).expect("the event");
    assert_eq!(event["body"], r#"{"reason":"spam"}"#);
    assert_eq!(event["requestContext"]["authorizer"]["iam"]["userArn"], USER_ARN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_wrongly_signed_expired_and_tampered_requests_are_refused_403_before_the_function() {
    let emulator = start_with_credentials().await;
    let get = || Call::new("GET", "/admin/users");
    let post = || Call::new("POST", "/admin/users/42/disable").json(r#"{"reason":"spam"}"#);

    let cases = [
        ("unsigned", get().unsigned(), "Forbidden"),
        ("signed with another secret", get().signed_by(ACCESS_KEY, "not the secret"), SIGNATURE_MISMATCH),
        ("signed with an unknown key", get().signed_by("AKIAUNKNOWNKEY000001", SECRET), UNKNOWN_ACCESS_KEY),
        (
            "signed for another host",
            Call { signed_host: Some("admin.example.com"), ..get() },
            SIGNATURE_MISMATCH,
        ),
        (
            "sent and signed for another host",
            Call { signed_host: Some("admin.example.com"), sent_host: Some("admin.example.com"), ..get() },
            MISSING_SIGNATURE,
        ),
        (
            "signed over another body",
            Call { signed_body: Some(br#"{"reason":"other"}"#), ..post() },
            SIGNATURE_MISMATCH,
        ),
        (
            "signed ten minutes ago",
            Call { signed_at: OffsetDateTime::now_utc() - time::Duration::minutes(10), ..get() },
            "Signature expired: ",
        ),
        (
            "with a bearer token",
            Call { authorization: Some("Bearer token"), ..get().unsigned() },
            "Authorization header requires 'Credential' parameter.",
        ),
    ];
    for (what, call, expected) in cases {
        let (status, body) = call.send(&emulator).await;

        assert_eq!(status, 403, "{what}: {body}");
        let said = message(&body);
        assert!(said.starts_with(expected), "{what}: {said}");
    }
    assert!(emulator.invocations().is_empty(), "no refused request reached the function");
    let lines = emulator.log().lines();
    assert!(lines.iter().any(|line| line.contains("ANY /admin/{proxy+}: refused: Forbidden")), "{lines:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_iam_credentials_every_request_to_an_iam_route_is_refused() {
    let emulator = start(None).await;

    let (unsigned, unsigned_body) = Call::new("GET", "/admin/users").unsigned().send(&emulator).await;
    let (signed, signed_body) = Call::new("GET", "/admin/users").send(&emulator).await;

    assert_eq!((unsigned, message(&unsigned_body).as_str()), (403, "Forbidden"));
    assert_eq!((signed, message(&signed_body).as_str()), (403, UNKNOWN_ACCESS_KEY));
    let lines = emulator.log().lines();
    assert!(
        lines
            .iter()
            .any(|line| line.contains("no --iam-credentials, so every request to them is refused 403")),
        "one line says so at start: {lines:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_without_iam_ignores_the_authorization_header() {
    let emulator = start_with_credentials().await;

    let garbage =
        Call { authorization: Some("AWS4-HMAC-SHA256 nonsense"), ..Call::new("GET", "/ok").unsigned() };
    let wrongly_signed = Call::new("GET", "/ok").signed_by(ACCESS_KEY, "not the secret");

    assert_eq!(garbage.send(&emulator).await, (200, "ok".to_owned()));
    assert_eq!(wrongly_signed.send(&emulator).await, (200, "ok".to_owned()));
    assert_eq!(get_text(&emulator, "/ok", Duration::from_secs(30)).await, (200, "ok".to_owned()));
}

/// Runs `scripts/admin ARGS` against the emulator with the python of `ADMIN_PYTHON` (default: the
/// repository's `.venv/bin/python`, which has botocore): (exit code, stdout, stderr).
async fn admin(emulator: &Emulator, credentials: &Path, args: &[&str]) -> (i32, String, String) {
    let python =
        std::env::var_os("ADMIN_PYTHON").map_or_else(|| repository().join(".venv/bin/python"), PathBuf::from);
    assert!(
        python.exists(),
        "{} does not exist: scripts/admin needs a python with botocore; run `make venv`, or set \
         ADMIN_PYTHON (e.g. ADMIN_PYTHON=/path/to/checkout/.venv/bin/python)",
        python.display()
    );
    let output = tokio::process::Command::new(&python)
        .arg(repository().join("scripts/admin"))
        .arg("--url")
        .arg(emulator.base_url())
        // The emulator's region (EmulatorConfig's default), which the scope must name; the
        // script's own default is the caller's AWS_REGION.
        .args(["--region", "us-east-1"])
        .arg("--credentials")
        .arg(credentials)
        .args(args)
        .output()
        .await
        .expect("scripts/admin runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_admin_signs_with_botocore_as_the_emulator_verifies() {
    let emulator = start_with_credentials().await;
    let folder = TempDir::new();
    let credentials = folder.write("admin-credentials.json", &credentials_json());

    let get =
        admin(&emulator, &credentials, &["GET", "/admin/caf\u{e9} x/~y?b=%2F&a=x y&a=~&email_prefix=ali"])
            .await;
    let post =
        admin(&emulator, &credentials, &["post", "/admin/users/42/disable", r#"{"reason": "spam"}"#]).await;

    let (code, stdout, stderr) = get;
    assert_eq!(code, 0, "{stderr}{stdout}");
    assert_eq!(stderr.trim(), "200 OK");
    let event: Value = serde_json::from_str(&stdout).expect("the event, as JSON");
    assert_eq!(event["requestContext"]["authorizer"]["iam"]["userArn"], USER_ARN);
    assert_eq!(event["rawPath"], "/admin/caf%C3%A9%20x/~y");
    assert_eq!(event["queryStringParameters"]["a"], "x y,~");
    assert_eq!(event["queryStringParameters"]["b"], "/");
    let (code, stdout, stderr) = post;
    assert_eq!(code, 0, "{stderr}{stdout}");
    let event: Value = serde_json::from_str(&stdout).expect("the event, as JSON");
    assert_eq!(
        (event["requestContext"]["http"]["method"].as_str(), event["body"].as_str()),
        (Some("POST"), Some(r#"{"reason": "spam"}"#))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_admin_prints_a_refusal_and_exits_1() {
    let emulator = start_with_credentials().await;
    let folder = TempDir::new();
    let wrong = serde_json::json!({ "access_key_id": ACCESS_KEY, "secret_access_key": "not the secret" });
    let credentials = folder.write("wrong-credentials.json", &wrong.to_string());

    let (code, stdout, stderr) = admin(&emulator, &credentials, &["GET", "/admin/users"]).await;

    assert_eq!(code, 1, "{stderr}{stdout}");
    assert_eq!(stderr.trim(), "403 Forbidden");
    assert_eq!(message(&stdout), SIGNATURE_MISMATCH);
    assert!(stdout.starts_with("{\n  \"message\""), "indented JSON: {stdout}");
}
