//! The CloudFormation custom-resource protocol: the request CloudFormation sends a function
//! named as a custom resource's `ServiceToken`, and the answer the function PUTs to the
//! presigned `ResponseURL` (CloudFormation waits for it, up to an hour, not for the function's
//! return value).

use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How long the answer's PUT may take, connection included.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);

/// CloudFormation refuses an answer larger than 4096 bytes; the reason is the only part that
/// can grow.
const MAX_REASON_CHARS: usize = 1024;

/// What CloudFormation asks of the resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum RequestType {
    Create,
    Update,
    Delete,
}

/// A custom-resource request, as CloudFormation sends it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    pub request_type: RequestType,
    #[serde(rename = "ResponseURL")]
    pub response_url: String,
    pub stack_id: String,
    pub request_id: String,
    pub logical_resource_id: String,
    /// Absent on `Create`: the function names the resource in its answer.
    #[serde(default)]
    pub physical_resource_id: Option<String>,
    #[serde(default)]
    pub resource_properties: Value,
    /// The properties before an `Update`.
    #[serde(default)]
    pub old_resource_properties: Option<Value>,
}

impl Request {
    /// Whether `event` is a custom-resource request (rather than a direct invocation).
    pub fn is_one(event: &Value) -> bool {
        event.get("RequestType").is_some() && event.get("ResponseURL").is_some()
    }
}

/// The outcome CloudFormation is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    Success,
    Failed,
}

/// The answer PUT to the request's `ResponseURL`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Response {
    pub status: Status,
    /// Shown in the stack's events; required when the status is `FAILED`.
    pub reason: String,
    pub physical_resource_id: String,
    pub stack_id: String,
    pub request_id: String,
    pub logical_resource_id: String,
    /// Readable with `!GetAtt Resource.Key`.
    pub data: Value,
}

impl Response {
    /// The answer to `request`, keeping its physical id (a changed id would make CloudFormation
    /// replace the resource and send a `Delete` for the old one) or, on `Create`, `created_id`.
    pub fn to(request: &Request, status: Status, reason: &str, created_id: &str, data: Value) -> Self {
        Self {
            status,
            reason: truncate(reason, MAX_REASON_CHARS),
            physical_resource_id: request
                .physical_resource_id
                .clone()
                .unwrap_or_else(|| created_id.to_owned()),
            stack_id: request.stack_id.clone(),
            request_id: request.request_id.clone(),
            logical_resource_id: request.logical_resource_id.clone(),
            data,
        }
    }
}

fn truncate(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_owned(),
    }
}

/// PUTs `response` to `url` (a presigned S3 URL; `http://` is accepted for tests). The request
/// carries no `Content-Type`: the URL is signed for an empty one.
pub async fn send(url: &str, response: &Response) -> anyhow::Result<()> {
    let body = serde_json::to_vec(response).context("serialising the answer")?;
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_native_roots()
        .context("reading the system's root certificates")?
        .https_or_http()
        .enable_http1()
        .build();
    let client =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build(connector);
    let request = http::Request::put(url)
        .header(http::header::CONTENT_LENGTH, body.len())
        .body(Full::new(Bytes::from(body)))
        .context("the ResponseURL is not a valid URL")?;
    let exchange = async {
        let answer = client.request(request).await.context("sending the answer")?;
        let status = answer.status();
        let text = answer.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        anyhow::ensure!(
            status.is_success(),
            "the ResponseURL answered {status}: {}",
            String::from_utf8_lossy(&text).chars().take(300).collect::<String>()
        );
        Ok(())
    };
    tokio::time::timeout(RESPONSE_TIMEOUT, exchange)
        .await
        .with_context(|| format!("no answer from the ResponseURL within {RESPONSE_TIMEOUT:?}"))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(physical: Option<&str>) -> Request {
        let mut event = json!({
            "RequestType": "Update",
            "ResponseURL": "https://cloudformation-custom-resource-response-euwest1.s3.amazonaws.com/x",
            "StackId": "arn:aws:cloudformation:eu-west-1:123456789012:stack/auth/1",
            "RequestId": "r-1",
            "LogicalResourceId": "Migration",
            "ResourceType": "Custom::Migration",
            "ResourceProperties": {"ServiceToken": "arn:aws:lambda:eu-west-1:123456789012:function:m"},
        });
        if let Some(id) = physical {
            event["PhysicalResourceId"] = json!(id);
        }
        assert!(Request::is_one(&event));
        serde_json::from_value(event).unwrap()
    }

    #[test]
    fn an_answer_keeps_the_physical_id_and_echoes_the_request_ids() {
        let answer = Response::to(&request(Some("kept")), Status::Success, "", "new", json!({}));
        let body = serde_json::to_value(&answer).unwrap();

        assert_eq!(body["Status"], "SUCCESS");
        assert_eq!(body["PhysicalResourceId"], "kept");
        assert_eq!(body["RequestId"], "r-1");
        assert_eq!(body["LogicalResourceId"], "Migration");
        assert_eq!(body["StackId"], "arn:aws:cloudformation:eu-west-1:123456789012:stack/auth/1");
        let created = Response::to(&request(None), Status::Failed, "no", "new", json!({}));
        assert_eq!(created.physical_resource_id, "new");
        assert_eq!(serde_json::to_value(&created).unwrap()["Status"], "FAILED");
    }

    #[test]
    fn a_long_reason_is_cut_so_the_answer_stays_under_cloudformations_limit() {
        let reason = "é".repeat(5000);
        let answer = Response::to(&request(None), Status::Failed, &reason, "id", json!({}));

        assert!(serde_json::to_vec(&answer).unwrap().len() < 4096);
    }

    #[test]
    fn a_direct_invocation_is_not_a_custom_resource_request() {
        assert!(!Request::is_one(&json!({})));
        assert!(!Request::is_one(&json!({"RequestType": "Create"})));
    }
}
