//! What the emulator's tests share: the fixtures, a way to wait on the emulator, temporary
//! folders, and an AWS Signature Version 4 signer.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hmac::{Hmac, KeyInit as _, Mac as _};
use http::Request;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use local_lambda::{Emulator, InvocationReport};
use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;

/// `tests/fixtures`: a bash runtime that misbehaves on request, and the templates serving it.
pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// GET `path` from the emulator: (status, body), failing the test after `timeout`.
pub async fn get_text(emulator: &Emulator, path: &str, timeout: Duration) -> (u16, String) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let uri = format!("{}{path}", emulator.base_url()).parse().expect("a URI");
    let response = tokio::time::timeout(timeout, client.get(uri))
        .await
        .unwrap_or_else(|_| panic!("an answer within {timeout:?}"))
        .expect("an HTTP answer");
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.expect("a body").to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// The invocation reports, once `count` invocations have ended.
pub async fn reports(emulator: &Emulator, count: usize) -> Vec<InvocationReport> {
    eventually("the invocation reports", Duration::from_secs(10), || async {
        let reports = emulator.invocations();
        (reports.len() >= count).then_some(reports)
    })
    .await
}

/// Polls `check` until it yields `Some`, failing the test after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Sends `request` to the emulator as is (hyper's client adds a `host` header only when there is
/// none): (status, body).
pub async fn send(request: Request<Full<Bytes>>) -> (u16, String) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let response = tokio::time::timeout(Duration::from_secs(30), client.request(request))
        .await
        .expect("an answer within 30 s")
        .expect("an HTTP answer");
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.expect("a body").to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// A folder of its own under the system's temporary directory, removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("local-lambda-test-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("a temporary folder");
        Self(dir)
    }

    /// Writes `contents` to `relative`, making its folders; its path.
    pub fn write(&self, relative: &str, contents: &str) -> PathBuf {
        let file = self.0.join(relative);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, contents).unwrap();
        file
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Signs requests for API Gateway (`execute-api`, us-east-1) with AWS Signature Version 4, as
/// an SDK does. Written from the specification for the tests, apart from the emulator's
/// verifier: the path is sent already percent-encoded, and the query in canonical form.
pub struct Signer {
    pub access_key: String,
    pub secret: String,
}

impl Signer {
    pub fn new(access_key: &str, secret: &str) -> Self {
        Self { access_key: access_key.to_owned(), secret: secret.to_owned() }
    }

    /// The `x-amz-date` and `authorization` headers of a request to `host` signed at `at`; `headers`
    /// (lower-case names) are signed too.
    pub fn sign(
        &self,
        method: &str,
        host: &str,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        at: OffsetDateTime,
    ) -> Vec<(String, String)> {
        let amz_date = format!(
            "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
            at.year(),
            u8::from(at.month()),
            at.day(),
            at.hour(),
            at.minute(),
            at.second()
        );
        let day = &amz_date[..8];
        let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
        let mut signed: Vec<(String, String)> =
            vec![("host".into(), host.into()), ("x-amz-date".into(), amz_date.clone())];
        signed.extend(headers.iter().map(|(name, value)| ((*name).to_owned(), value.trim().to_owned())));
        signed.sort();
        let mut pairs: Vec<&str> = query.split('&').filter(|pair| !pair.is_empty()).collect();
        pairs.sort_by_key(|pair| pair.split_once('=').unwrap_or((*pair, "")));
        let canonical_headers: String =
            signed.iter().map(|(name, value)| format!("{name}:{value}\n")).collect();
        let signed_names = signed.iter().map(|(name, _)| name.as_str()).collect::<Vec<_>>().join(";");
        let canonical_request = format!(
            "{method}\n{}\n{}\n{canonical_headers}\n{signed_names}\n{}",
            uri_encode(path),
            pairs.join("&"),
            hex(&Sha256::digest(body))
        );
        let scope = format!("{day}/us-east-1/execute-api/aws4_request");
        let string_to_sign = format!(
            "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
            hex(&Sha256::digest(canonical_request.as_bytes()))
        );
        let mut key = hmac(format!("AWS4{}", self.secret).as_bytes(), day);
        for part in ["us-east-1", "execute-api", "aws4_request"] {
            key = hmac(&key, part);
        }
        let signature = hex(&hmac(&key, &string_to_sign));
        vec![
            ("x-amz-date".into(), amz_date),
            (
                "authorization".into(),
                format!(
                    "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_names}, Signature={signature}",
                    self.access_key
                ),
            ),
        ]
    }
}

fn hmac(key: &[u8], message: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    mac.update(message.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Each byte but `A-Z a-z 0-9 - _ . ~ /` as `%XX`: a path already encoded is encoded again.
fn uri_encode(path: &str) -> String {
    path.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                char::from(byte).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}
