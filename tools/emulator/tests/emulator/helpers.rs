//! What the emulator's tests share: the fixtures and a way to wait on the emulator.

use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use local_lambda::{Emulator, InvocationReport};

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
