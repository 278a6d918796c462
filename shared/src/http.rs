//! The API Gateway HTTP API (payload format 2.0) request and response, and body parsing.
//!
//! Only the fields the handlers use are modelled; API Gateway sends more, which serde ignores.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

/// The largest request body accepted, after base64 decoding.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// An HTTP API payload 2.0 event.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRequest {
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub route_key: String,
    #[serde(default)]
    pub raw_path: String,
    #[serde(default)]
    pub raw_query_string: String,
    #[serde(default)]
    pub cookies: Vec<String>,
    /// API Gateway lower-cases header names and joins repeated headers with commas.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub is_base64_encoded: bool,
    #[serde(default)]
    pub request_context: RequestContext,
}

/// The part of `requestContext` the handlers use.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestContext {
    #[serde(default)]
    pub request_id: String,
    /// The API that invoked the function: written by API Gateway, not by the client.
    #[serde(default)]
    pub api_id: String,
    #[serde(default)]
    pub http: HttpContext,
}

/// `requestContext.http`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpContext {
    #[serde(default)]
    pub method: String,
    #[serde(default)]
    pub path: String,
    #[serde(default)]
    pub source_ip: String,
}

impl HttpRequest {
    /// A header's value, matched case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
    }

    /// The bearer token of the `Authorization` header, if there is one.
    pub fn bearer_token(&self) -> Option<&str> {
        let value = self.header("authorization")?.trim();
        let (scheme, token) = value.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
    }

    /// The body parsed as JSON into `T`, after checking its media type and size and decoding
    /// base64. Syntax errors are 400 `malformed_json`; missing fields or wrong types are 400
    /// `invalid_request`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        if !self.header("content-type").is_some_and(is_json_media_type) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let raw = self.body.as_deref().unwrap_or_default();
        let bytes = if self.is_base64_encoded {
            // Refuse before decoding: base64 grows a body by a third.
            if raw.len() > MAX_BODY_BYTES.div_ceil(3) * 4 {
                return Err(ApiError::PayloadTooLarge { limit: MAX_BODY_BYTES });
            }
            std::borrow::Cow::Owned(STANDARD.decode(raw).map_err(|_| {
                ApiError::InvalidRequest("the body is flagged base64 but does not decode".into())
            })?)
        } else {
            std::borrow::Cow::Borrowed(raw.as_bytes())
        };
        if bytes.len() > MAX_BODY_BYTES {
            return Err(ApiError::PayloadTooLarge { limit: MAX_BODY_BYTES });
        }
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::InvalidRequest("the request body is empty".into()));
        }
        serde_json::from_slice(&bytes).map_err(|error| match error.classify() {
            serde_json::error::Category::Data => ApiError::InvalidRequest(error.to_string()),
            _ => ApiError::MalformedJson(error.to_string()),
        })
    }
}

/// `application/json`, with or without parameters such as `charset`, or a `+json` type.
fn is_json_media_type(value: &str) -> bool {
    let essence = value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// An HTTP API payload 2.0 response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpResponse {
    pub status_code: u16,
    pub headers: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub body: String,
    #[serde(default)]
    pub is_base64_encoded: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cookies: Vec<String>,
}

impl HttpResponse {
    /// A JSON response that no cache may store (the default for an auth API).
    pub fn json<T: Serialize + ?Sized>(status: u16, body: &T) -> Self {
        let body = serde_json::to_string(body).expect("response bodies serialise to JSON");
        let headers = BTreeMap::from([
            ("content-type".to_owned(), "application/json".to_owned()),
            ("cache-control".to_owned(), "no-store".to_owned()),
        ]);
        Self { status_code: status, headers, body, is_base64_encoded: false, cookies: Vec::new() }
    }

    /// A response with no body.
    pub fn empty(status: u16) -> Self {
        let headers = BTreeMap::from([("cache-control".to_owned(), "no-store".to_owned())]);
        Self {
            status_code: status,
            headers,
            body: String::new(),
            is_base64_encoded: false,
            cookies: Vec::new(),
        }
    }

    /// The same response with one header set (names are lower-case).
    pub fn with_header(mut self, name: &str, value: String) -> Self {
        self.headers.insert(name.to_owned(), value);
        self
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(&name.to_ascii_lowercase()).map(String::as_str)
    }
}

impl ApiError {
    /// The error as the client sees it. Server-side failures are logged here, with their whole
    /// cause chain, and never leak into the body.
    pub fn into_response(self) -> HttpResponse {
        match &self {
            Self::Unexpected(cause) => tracing::error!(error = ?cause, "request failed"),
            Self::Unavailable(cause) => tracing::warn!(error = ?cause, "dependency unavailable"),
            _ => {}
        }
        let body = serde_json::json!({ "error": self.code(), "message": self.to_string() });
        let mut response = HttpResponse::json(self.status(), &body);
        match self {
            Self::MissingToken => {
                response = response.with_header("www-authenticate", "Bearer".to_owned());
            }
            Self::InvalidToken => {
                response =
                    response.with_header("www-authenticate", r#"Bearer error="invalid_token""#.to_owned());
            }
            Self::Unavailable(_) => {
                response = response.with_header("retry-after", "1".to_owned());
            }
            Self::TooManyAttempts { retry_after } => {
                response = response.with_header("retry-after", retry_after.to_string());
            }
            _ => {}
        }
        response
    }
}

/// Turns a handler's result into its response: `Ok` with the success status, `Err` through
/// [`ApiError::into_response`].
pub fn respond<T: Serialize>(status: u16, result: Result<T, ApiError>) -> HttpResponse {
    match result {
        Ok(body) => HttpResponse::json(status, &body),
        Err(error) => error.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Probe {
        #[allow(dead_code)]
        name: String,
    }

    fn request(content_type: Option<&str>, body: &str, base64: bool) -> HttpRequest {
        let mut headers = BTreeMap::new();
        if let Some(value) = content_type {
            headers.insert("content-type".to_owned(), value.to_owned());
        }
        HttpRequest {
            headers,
            body: Some(body.to_owned()),
            is_base64_encoded: base64,
            ..HttpRequest::default()
        }
    }

    fn code(result: Result<Probe, ApiError>) -> &'static str {
        result.expect_err("the body should be rejected").code()
    }

    #[test]
    fn json_media_types_with_parameters_are_accepted() {
        for content_type in ["application/json", "Application/JSON; charset=utf-8", "application/merge+json"]
        {
            let parsed: Result<Probe, _> = request(Some(content_type), r#"{"name":"a"}"#, false).json();
            assert!(parsed.is_ok(), "{content_type} should be accepted");
        }
    }

    #[test]
    fn a_body_that_is_not_json_typed_is_unsupported() {
        assert_eq!(code(request(Some("text/plain"), "{}", false).json()), "unsupported_media_type");
        assert_eq!(code(request(None, "{}", false).json()), "unsupported_media_type");
    }

    #[test]
    fn syntax_errors_and_shape_errors_get_different_codes() {
        let json = Some("application/json");
        assert_eq!(code(request(json, "{\"name\":", false).json()), "malformed_json");
        assert_eq!(code(request(json, "{}", false).json()), "invalid_request");
        assert_eq!(code(request(json, r#"{"name":5}"#, false).json()), "invalid_request");
        assert_eq!(code(request(json, "  ", false).json()), "invalid_request");
    }

    #[test]
    fn base64_bodies_are_decoded_and_bad_base64_is_a_client_error() {
        let json = Some("application/json");
        let encoded = STANDARD.encode(r#"{"name":"a"}"#);
        assert!(request(json, &encoded, true).json::<Probe>().is_ok());
        assert_eq!(code(request(json, "%%%", true).json()), "invalid_request");
    }

    #[test]
    fn bodies_over_the_limit_are_refused_plain_or_encoded() {
        let json = Some("application/json");
        let big = format!(r#"{{"name":"{}"}}"#, "a".repeat(MAX_BODY_BYTES));
        assert_eq!(code(request(json, &big, false).json()), "payload_too_large");
        assert_eq!(code(request(json, &STANDARD.encode(&big), true).json()), "payload_too_large");
    }

    #[test]
    fn bearer_tokens_are_read_case_insensitively() {
        let mut req = HttpRequest::default();
        req.headers.insert("Authorization".into(), "bearer abc.def".into());
        assert_eq!(req.bearer_token(), Some("abc.def"));
        req.headers.insert("Authorization".into(), "Basic abc".into());
        assert_eq!(req.bearer_token(), None);
    }
}
