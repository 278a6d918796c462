//! The admin API through the emulator as the template declares it (AdminApi, every route
//! `AWS_IAM`): `scripts/admin` signs with botocore, the emulator verifies the signature as API
//! Gateway would, and the function reads the signer from the request context. Unsigned and
//! wrongly signed requests never reach a function.

use std::path::{Path, PathBuf};

use http::Method;
use local_lambda::IamCredentials;
use serde_json::{Value, json};

use crate::helpers::{TestApi, email};

const ACCESS_KEY: &str = "AKIAE2EADMINTESTKEY0";
const SECRET: &str = "e2e/admin+secret/0123456789abcdefghijklm";
const OPERATOR: &str = "arn:aws:iam::123456789012:user/oncall";
/// The API's region, which a signature's scope names.
const REGION: &str = "us-east-1";

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A credentials file as `make run` writes it, with `secret`.
fn credentials_file(secret: &str) -> tempfile_path::TempFile {
    let json = json!({ "access_key_id": ACCESS_KEY, "secret_access_key": secret, "user_arn": OPERATOR });
    tempfile_path::TempFile::with(&json.to_string())
}

/// A file of the test's own under the system's temporary directory, removed when dropped.
mod tempfile_path {
    pub struct TempFile(pub std::path::PathBuf);

    impl TempFile {
        pub fn with(text: &str) -> Self {
            let path = std::env::temp_dir().join(format!("admin-credentials-{}.json", uuid::Uuid::new_v4()));
            std::fs::write(&path, text).expect("writing the credentials");
            Self(path)
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

async fn start() -> TestApi {
    TestApi::start_with(|config| {
        let mut credentials = IamCredentials::new(ACCESS_KEY, SECRET);
        credentials.user_arn = OPERATOR.to_owned();
        config.iam_credentials = Some(credentials);
        config.region = REGION.to_owned();
    })
    .await
}

/// `scripts/admin METHOD PATH` against `api`, signed with `credentials`: (exit code, status line
/// on stderr, the body).
async fn admin(api: &TestApi, credentials: &Path, method: &str, path: &str) -> (i32, String, Value) {
    let python = repository().join(".venv/bin/python");
    assert!(python.exists(), "{} is missing: run `make venv`", python.display());
    let output = tokio::process::Command::new(&python)
        .arg(repository().join("scripts/admin"))
        .args(["--url", &api.emulator.base_url(), "--region", REGION, "--credentials"])
        .arg(credentials)
        .args([method, path])
        .output()
        .await
        .expect("scripts/admin runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let body =
        if stdout.trim().is_empty() { Value::Null } else { serde_json::from_str(&stdout).expect("JSON") };
    (output.status.code().unwrap_or(-1), String::from_utf8_lossy(&output.stderr).into_owned(), body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_finds_disables_and_enables_a_user_with_signed_requests() {
    let api = start().await;
    let credentials = credentials_file(SECRET);
    let address = email();
    let signup = api.post_signup(&address).await;
    assert_eq!(signup.status, 201, "{}", signup.text);
    let id = signup.body["user"]["id"].as_str().unwrap().to_owned();

    let prefix = &address[..address.find('@').unwrap()];
    let (code, _, found) =
        admin(&api, &credentials.0, "GET", &format!("/admin/users?email_prefix={prefix}")).await;
    assert_eq!(code, 0);
    assert_eq!(found["users"][0]["id"], id.as_str(), "{found}");
    let (code, status, _) = admin(&api, &credentials.0, "POST", &format!("/admin/users/{id}/disable")).await;
    assert_eq!(code, 0, "{status}");
    let refused = api.post_login(&address).await;
    assert_eq!((refused.status, refused.body["error"].as_str()), (403, Some("account_disabled")));
    assert_eq!(api.post_refresh(&signup.refresh_token()).await.status, 401);
    let (_, _, read) = admin(&api, &credentials.0, "GET", &format!("/admin/users/{id}")).await;
    let disabled = read["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|event| event["type"] == "account_disabled")
        .unwrap_or_else(|| panic!("{read}"));
    assert_eq!(disabled["detail"]["by"], OPERATOR, "the signer, as the gateway verified it");
    let (code, _, _) = admin(&api, &credentials.0, "POST", &format!("/admin/users/{id}/enable")).await;
    assert_eq!(code, 0);
    assert_eq!(api.post_login(&address).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_and_wrongly_signed_requests_never_reach_a_function() {
    let api = start().await;
    let address = email();
    let id = api.post_signup(&address).await.body["user"]["id"].as_str().unwrap().to_owned();
    let disable = format!("/admin/users/{id}/disable");

    let unsigned = api.request(Method::POST, &disable, &[], None).await;
    let bearer = api.bearer(Method::POST, &disable, "not-a-signature", None).await;
    let wrong = credentials_file("not/the/secret/at/all/0123456789abcdefgh");
    let (code, status, body) = admin(&api, &wrong.0, "POST", &disable).await;

    assert_eq!((unsigned.status, &unsigned.body), (403, &json!({ "message": "Forbidden" })));
    assert_eq!(bearer.status, 403);
    assert_eq!(code, 1);
    assert!(status.contains("403"), "{status}");
    assert!(body["message"].as_str().unwrap().starts_with("The request signature we calculated"), "{body}");
    assert_eq!(api.post_login(&address).await.status, 200, "the user was never disabled");
    assert!(api.emulator.sandboxes("admin-disable").unwrap().is_empty(), "no sandbox ever started");
}
