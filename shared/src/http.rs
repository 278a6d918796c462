//! Requests and responses as the handlers see them: `lambda_http`'s `Request` (whichever front
//! door sent it: an HTTP API, a REST API, a function URL or a load balancer), read through
//! [`ApiRequest`], and the JSON responses they answer with. The runtime wiring (`runtime`)
//! turns a handler's `Err` into its response with [`ApiError::into_response`], once, for every
//! function.

use std::net::IpAddr;

use http::StatusCode;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderName, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use lambda_http::RequestExt as _;
use lambda_http::request::RequestContext;
pub use lambda_http::{Body, Request};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::domain::Device;
use crate::error::ApiError;

/// The largest request body accepted (after the front door's base64 is decoded).
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// A response, in the shape every front door's conversion takes.
pub type Response = http::Response<Body>;

/// What a handler returns: its response, or the error the wiring answers with.
pub type Reply = Result<Response, ApiError>;

/// Where a request came from, as the front door (not the client) wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin<'a> {
    /// An API Gateway HTTP API (payload 2.0) or REST API (payload 1.0): the API's id and the
    /// stage the request came through (`$default`: an HTTP API's default stage).
    ApiGateway { api_id: &'a str, stage: &'a str },
    /// A Lambda function URL, or an Application Load Balancer: no API to name.
    Other,
    /// Not an HTTP request: an EventBridge schedule or a direct invocation (`pass_through`).
    Event,
}

/// Reading a request: headers, the bearer token, the JSON body, the front door it came through.
pub trait ApiRequest {
    /// A header's value, if it is present and printable.
    fn header(&self, name: &str) -> Option<&str>;

    /// The bearer token of the `Authorization` header, if there is one.
    fn bearer_token(&self) -> Option<&str> {
        let value = self.header("authorization")?.trim();
        let (scheme, token) = value.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
    }

    /// The body parsed as JSON into `T`, after checking its media type and size. Syntax errors
    /// are 400 `malformed_json`; missing fields or wrong types are 400 `invalid_request`.
    fn json<T: DeserializeOwned>(&self) -> Result<T, ApiError>;

    /// Which front door sent the request, and the API it names.
    fn origin(&self) -> Origin<'_>;

    /// The client's `User-Agent` and source address, for the session it opens. The address is
    /// the one the front door saw (its request context), never a header a client could write;
    /// behind a load balancer, the last `X-Forwarded-For` entry, the one the balancer appended.
    fn device(&self) -> Device;
}

impl ApiRequest for Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers().get(name).and_then(|value| value.to_str().ok())
    }

    fn json<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        if !self.header("content-type").is_some_and(is_json_media_type) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes: &[u8] = self.body().as_ref();
        if bytes.len() > MAX_BODY_BYTES {
            return Err(ApiError::PayloadTooLarge { limit: MAX_BODY_BYTES });
        }
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::InvalidRequest("the request body is empty".into()));
        }
        serde_json::from_slice(bytes).map_err(|error| match error.classify() {
            serde_json::error::Category::Data => ApiError::InvalidRequest(error.to_string()),
            _ => ApiError::MalformedJson(error.to_string()),
        })
    }

    fn origin(&self) -> Origin<'_> {
        match self.request_context_ref() {
            Some(RequestContext::ApiGatewayV2(context)) => {
                // A function URL sends the same payload 2.0, on its own domain.
                let url =
                    context.domain_name.as_deref().is_some_and(|domain| domain.contains(".lambda-url."));
                match (&context.apiid, url) {
                    (Some(api_id), false) => {
                        Origin::ApiGateway { api_id, stage: context.stage.as_deref().unwrap_or("$default") }
                    }
                    _ => Origin::Other,
                }
            }
            Some(RequestContext::ApiGatewayV1(context)) => match &context.apiid {
                Some(api_id) => Origin::ApiGateway { api_id, stage: context.stage.as_deref().unwrap_or("") },
                None => Origin::Other,
            },
            Some(RequestContext::PassThrough) => Origin::Event,
            _ => Origin::Other,
        }
    }

    fn device(&self) -> Device {
        let ip = match self.request_context_ref() {
            Some(RequestContext::ApiGatewayV2(context)) => address(context.http.source_ip.as_deref()),
            Some(RequestContext::ApiGatewayV1(context)) => address(context.identity.source_ip.as_deref()),
            Some(RequestContext::Alb(_)) => {
                address(self.header("x-forwarded-for").and_then(|chain| chain.rsplit(',').next()))
            }
            _ => None,
        };
        Device::new(self.header("user-agent"), ip)
    }
}

/// The header CloudFront adds to every request it forwards, with the origin secret.
pub const ORIGIN_VERIFY_HEADER: &str = "x-origin-verify";

/// The header where CloudFront gives the viewer's address and port (`198.51.100.10:46532`,
/// `2001:db8::1:46532`).
pub const VIEWER_ADDRESS_HEADER: &str = "cloudfront-viewer-address";

/// Behind CloudFront every request's source is an edge's address. With origin `secrets`
/// configured, CloudFront adds one of them in `X-Origin-Verify` to every request it forwards:
/// such a request came through CloudFront, and its one `CloudFront-Viewer-Address` becomes its
/// source address (the request context's, which [`ApiRequest::device`] reads). A front door's
/// request without a configured secret went around the distribution (and its WAF): refused, 403
/// `origin_required`. Without configured secrets the headers mean nothing and the front door's
/// address stands. The secret's header is removed either way, so that nothing after this sees it.
pub fn through_origin(request: &mut Request, secrets: &[secrecy::SecretString]) -> Result<(), ApiError> {
    use secrecy::ExposeSecret as _;
    let presented = request.headers_mut().remove(ORIGIN_VERIFY_HEADER);
    if secrets.is_empty() {
        return Ok(());
    }
    let front_door = matches!(
        request.request_context_ref(),
        Some(RequestContext::ApiGatewayV2(_) | RequestContext::ApiGatewayV1(_) | RequestContext::Alb(_))
    );
    // Every secret is compared, in constant time.
    let genuine = presented.is_some_and(|presented| {
        secrets.iter().fold(false, |found, secret| {
            let equal = aws_lc_rs::constant_time::verify_slices_are_equal(
                presented.as_bytes(),
                secret.expose_secret().as_bytes(),
            )
            .is_ok();
            found | equal
        })
    });
    if !genuine {
        return if front_door { Err(ApiError::OriginRequired) } else { Ok(()) };
    }
    // One value, one address: several headers (or values a front door joined with commas) are
    // not CloudFront's.
    let mut values = request.headers().get_all(VIEWER_ADDRESS_HEADER).iter();
    let viewer = match (values.next(), values.next()) {
        (Some(value), None) => {
            value.to_str().ok().filter(|value| !value.contains(',')).and_then(viewer_address)
        }
        _ => None,
    };
    let Some(viewer) = viewer else {
        tracing::warn!(
            "a request with the origin secret has no single CloudFront-Viewer-Address: it counts as the \
             edge's address (forward that header in the distribution's origin request policy)"
        );
        return Ok(());
    };
    let viewer = viewer.to_string();
    match request.extensions_mut().get_mut::<RequestContext>() {
        Some(RequestContext::ApiGatewayV2(context)) => context.http.source_ip = Some(viewer),
        Some(RequestContext::ApiGatewayV1(context)) => context.identity.source_ip = Some(viewer),
        // Behind a balancer the address is the last `X-Forwarded-For` entry: the edge's, here.
        Some(RequestContext::Alb(_)) => {
            if let Ok(value) = viewer.parse() {
                request.headers_mut().insert("x-forwarded-for", value);
            }
        }
        _ => {}
    }
    Ok(())
}

/// The address of a `CloudFront-Viewer-Address` value: what precedes its last `:` (the port).
fn viewer_address(value: &str) -> Option<IpAddr> {
    let (address, port) = value.trim().rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    address.trim_start_matches('[').trim_end_matches(']').parse().ok()
}

/// A source address as a front door writes it; anything else is no address.
fn address(raw: Option<&str>) -> Option<IpAddr> {
    raw?.trim().parse().ok()
}

/// `application/json`, with or without parameters such as `charset`, or a `+json` type.
fn is_json_media_type(value: &str) -> bool {
    let essence = value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// A JSON response that no cache may store (the default for an auth API).
pub fn json<T: Serialize + ?Sized>(status: u16, body: &T) -> Response {
    let body = serde_json::to_string(body).expect("response bodies serialise to JSON");
    let mut response = empty(status);
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    *response.body_mut() = Body::Text(body);
    response
}

/// A response with no body, that no cache may store.
pub fn empty(status: u16) -> Response {
    let mut response = http::Response::new(Body::Empty);
    *response.status_mut() = StatusCode::from_u16(status).expect("the handlers' statuses are valid");
    response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Sets one header on a response.
pub fn with_header(mut response: Response, name: HeaderName, value: &str) -> Response {
    let value = HeaderValue::from_str(value).expect("the handlers' header values are printable");
    response.headers_mut().insert(name, value);
    response
}

impl ApiError {
    /// The error as the client sees it. Server-side failures are logged here, with their whole
    /// cause chain, and never leak into the body.
    pub fn into_response(self) -> Response {
        match &self {
            Self::Unexpected(cause) => tracing::error!(error = ?cause, "request failed"),
            Self::Unavailable(cause) => tracing::warn!(error = ?cause, "dependency unavailable"),
            _ => {}
        }
        let mut body = serde_json::json!({ "error": self.code(), "message": self.to_string() });
        if let Self::StepUpRequired { required } = &self {
            body["required"] = serde_json::json!(required);
        }
        let response = json(self.status(), &body);
        match self {
            Self::MissingToken => with_header(response, WWW_AUTHENTICATE, "Bearer"),
            Self::InvalidToken => with_header(response, WWW_AUTHENTICATE, r#"Bearer error="invalid_token""#),
            Self::Unavailable(_) => with_header(response, RETRY_AFTER, "1"),
            Self::TooManyAttempts { retry_after } => {
                with_header(response, RETRY_AFTER, &retry_after.to_string())
            }
            _ => response,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    #[derive(Debug, Deserialize)]
    struct Probe {
        #[allow(dead_code)]
        name: String,
    }

    /// A payload 2.0 event, read by lambda_http as the runtime reads it.
    fn request(content_type: Option<&str>, body: &str) -> Request {
        let mut headers = serde_json::Map::new();
        if let Some(value) = content_type {
            headers.insert("content-type".into(), value.into());
        }
        let event = json!({
            "version": "2.0", "rawPath": "/auth/login", "headers": headers, "body": body,
            "isBase64Encoded": false,
            "requestContext": {"apiId": "a1b2c3", "stage": "$default", "http": {"method": "POST"}},
        });
        lambda_http::request::from_str(&event.to_string()).expect("a payload 2.0 event")
    }

    fn code(result: Result<Probe, ApiError>) -> &'static str {
        result.expect_err("the body should be rejected").code()
    }

    #[test]
    fn a_viewer_address_is_read_without_its_port() {
        assert_eq!(viewer_address("198.51.100.10:46532"), Some([198, 51, 100, 10].into()));
        assert_eq!(viewer_address("2001:db8::1:46532"), "2001:db8::1".parse().ok());
        assert_eq!(viewer_address("[2001:db8::1]:443"), "2001:db8::1".parse().ok());
        for malformed in ["198.51.100.10", "198.51.100.10:port", "a host:80", ""] {
            assert_eq!(viewer_address(malformed), None, "{malformed}");
        }
    }

    #[test]
    fn the_origin_secret_header_never_reaches_a_handler() {
        let secrets = [secrecy::SecretString::from("x".repeat(40))];
        for (configured, presented) in
            [(&secrets[..], "x".repeat(40)), (&secrets[..], "y".into()), (&[][..], "z".into())]
        {
            let mut request = request(None, "");
            request.headers_mut().insert(ORIGIN_VERIFY_HEADER, presented.parse().unwrap());
            let _ = through_origin(&mut request, configured);
            assert!(request.header(ORIGIN_VERIFY_HEADER).is_none());
        }
    }

    #[test]
    fn with_origin_secrets_a_front_doors_request_without_one_is_refused_and_either_secret_admits() {
        let (current, previous) = ("c".repeat(40), "p".repeat(40));
        let secrets =
            [secrecy::SecretString::from(current.clone()), secrecy::SecretString::from(previous.clone())];
        let through = |presented: Option<&str>, viewers: &[&str]| {
            let mut request = request(None, "");
            if let Some(presented) = presented {
                request.headers_mut().insert(ORIGIN_VERIFY_HEADER, presented.parse().unwrap());
            }
            for viewer in viewers {
                request.headers_mut().append(VIEWER_ADDRESS_HEADER, viewer.parse().unwrap());
            }
            through_origin(&mut request, &secrets).map(|()| request.device().ip)
        };

        assert_eq!(through(None, &[]).unwrap_err().code(), "origin_required");
        assert_eq!(through(Some("a guess"), &["192.0.2.1:1"]).unwrap_err().code(), "origin_required");
        assert_eq!(through(Some(&current), &["192.0.2.1:1"]).unwrap(), Some([192, 0, 2, 1].into()));
        assert_eq!(through(Some(&previous), &["192.0.2.2:1"]).unwrap(), Some([192, 0, 2, 2].into()));
        // Not one address: the front door's own (none in this event) stands.
        assert_eq!(through(Some(&current), &["192.0.2.1:1", "192.0.2.9:1"]).unwrap(), None);
        assert_eq!(through(Some(&current), &["192.0.2.1:1, 192.0.2.9:1"]).unwrap(), None);
        assert_eq!(through(Some(&current), &[]).unwrap(), None);
    }

    #[test]
    fn behind_a_balancer_the_viewer_replaces_the_edge_as_the_last_forwarded_address() {
        let secret = "s".repeat(40);
        let event = json!({
            "requestContext": {"elb": {"targetGroupArn": "arn:aws:elasticloadbalancing:eu-west-1:1:targetgroup/t/1"}},
            "httpMethod": "POST", "path": "/auth/login", "body": "", "isBase64Encoded": false,
            "headers": {"x-forwarded-for": "203.0.113.5, 130.176.0.1", "x-origin-verify": secret,
                        "cloudfront-viewer-address": "198.51.100.10:46532"},
        });
        let mut request = lambda_http::request::from_str(&event.to_string()).expect("an ALB event");

        through_origin(&mut request, &[secrecy::SecretString::from(secret)]).unwrap();

        assert_eq!(request.device().ip, Some([198, 51, 100, 10].into()));
    }

    #[test]
    fn json_media_types_with_parameters_are_accepted() {
        for content_type in ["application/json", "Application/JSON; charset=utf-8", "application/merge+json"]
        {
            let parsed: Result<Probe, _> = request(Some(content_type), r#"{"name":"a"}"#).json();
            assert!(parsed.is_ok(), "{content_type} should be accepted");
        }
    }

    #[test]
    fn a_body_that_is_not_json_typed_is_unsupported() {
        assert_eq!(code(request(Some("text/plain"), "{}").json()), "unsupported_media_type");
        assert_eq!(code(request(None, "{}").json()), "unsupported_media_type");
    }

    #[test]
    fn syntax_errors_and_shape_errors_get_different_codes() {
        let json = Some("application/json");
        assert_eq!(code(request(json, "{\"name\":").json()), "malformed_json");
        assert_eq!(code(request(json, "{}").json()), "invalid_request");
        assert_eq!(code(request(json, r#"{"name":5}"#).json()), "invalid_request");
        assert_eq!(code(request(json, "  ").json()), "invalid_request");
    }

    #[test]
    fn bodies_over_the_limit_are_refused() {
        let big = format!(r#"{{"name":"{}"}}"#, "a".repeat(MAX_BODY_BYTES));
        assert_eq!(code(request(Some("application/json"), &big).json()), "payload_too_large");
    }

    #[test]
    fn bearer_tokens_are_read_case_insensitively() {
        let mut request = request(None, "");
        let headers = request.headers_mut();
        headers.insert("authorization", HeaderValue::from_static("bearer abc.def"));
        assert_eq!(request.bearer_token(), Some("abc.def"));
        request.headers_mut().insert("authorization", HeaderValue::from_static("Basic abc"));
        assert_eq!(request.bearer_token(), None);
    }

    #[test]
    fn the_origin_names_the_api_and_its_stage_and_nothing_for_a_function_url() {
        assert_eq!(request(None, "").origin(), Origin::ApiGateway { api_id: "a1b2c3", stage: "$default" });
        let url = json!({
            "version": "2.0", "rawPath": "/auth/me", "headers": {},
            "requestContext": {"apiId": "urlid", "domainName": "urlid.lambda-url.eu-west-1.on.aws",
                               "stage": "$default", "http": {"method": "GET"}},
        });
        let url = lambda_http::request::from_str(&url.to_string()).unwrap();
        assert_eq!(url.origin(), Origin::Other);
    }

    #[test]
    fn an_error_carries_its_code_and_its_headers() {
        let response = ApiError::TooManyAttempts { retry_after: 7 }.into_response();
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()["retry-after"], "7");
        assert_eq!(response.headers()["cache-control"], "no-store");
        let Body::Text(body) = response.body() else { panic!("a text body") };
        assert_eq!(serde_json::from_str::<serde_json::Value>(body).unwrap()["error"], "too_many_attempts");
    }
}
