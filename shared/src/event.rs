//! The raw event, made safe for `lambda_http` before it becomes a `Request`.
//!
//! lambda_http builds a request's URI with `Url::parse(..).unwrap()` and decodes a base64 body
//! with `expect`: a raw query string holding a space or a quote, a `Host` that is no host, an
//! `x-forwarded-proto` that is no scheme, or a body flagged base64 that does not decode would
//! panic before any handler runs, and the front door would answer a bare 500 or 502 (upstream:
//! aws-lambda-rust-runtime#515). A header value with a byte HTTP forbids makes the whole event
//! read as no front door's. Clients reach all of these through a front door, so they are made
//! plain here: no handler reads the query string, so it goes; a header that is no valid HTTP
//! header goes, and so do a `Host` or scheme lambda_http cannot use; a body that does not
//! decode is handed over as the text it is (the handler answers 400 `malformed_json`).

use std::str::FromStr as _;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::header::{HeaderName, HeaderValue};
use http::uri::Authority;
use serde_json::Value;

/// Makes `event` safe to convert, in place. The query string goes unless `keep_query` (a
/// function that reads one, `Needs::query`): then an HTTP API's raw query string is written
/// again, every name and value percent-encoded, and a REST API's or a load balancer's parameters
/// are kept (lambda_http encodes them itself). Anything that is not a front door's event (a
/// schedule, a direct invocation) is left as it is.
pub fn sanitize(event: &mut Value, keep_query: bool) {
    let Some(object) = event.as_object_mut() else { return };
    if !keep_query {
        for query in ["queryStringParameters", "multiValueQueryStringParameters"] {
            object.remove(query);
        }
    }
    if let Some(raw) = object.get_mut("rawQueryString") {
        let encoded = match raw.as_str() {
            Some(query) if keep_query => reencoded(query),
            _ => String::new(),
        };
        *raw = Value::String(encoded);
    }
    for path in ["rawPath", "path"] {
        if let Some(Value::String(path)) = object.get_mut(path)
            && !path.starts_with('/')
        {
            path.insert(0, '/');
        }
    }
    if let Some(Value::Object(headers)) = object.get_mut("headers") {
        headers.retain(|name, value| value.as_str().is_some_and(|value| usable(name, value)));
    }
    if let Some(Value::Object(headers)) = object.get_mut("multiValueHeaders") {
        headers.retain(|name, values| {
            values.as_array().is_some_and(|values| {
                values.iter().all(|value| value.as_str().is_some_and(|value| usable(name, value)))
            })
        });
    }
    if let Some(Value::String(domain)) =
        object.get("requestContext").and_then(|context| context.get("domainName"))
        && Authority::from_str(domain).is_err()
    {
        object["requestContext"].as_object_mut().expect("an object").remove("domainName");
    }
    let undecodable = object.get("isBase64Encoded") == Some(&Value::Bool(true))
        && object.get("body").and_then(Value::as_str).is_some_and(|body| STANDARD.decode(body).is_err());
    if undecodable {
        object.insert("isBase64Encoded".into(), Value::Bool(false));
    }
}

/// A raw query string as a URI may hold it: its pairs decoded as a browser's form would be, and
/// written again with every byte outside the unreserved set percent-encoded.
fn reencoded(query: &str) -> String {
    let pairs = url::form_urlencoded::parse(query.as_bytes());
    url::form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish()
}

/// A header lambda_http can carry: a valid name and value, and for `Host` and
/// `x-forwarded-proto` (which become the URI) a host and a scheme.
fn usable(name: &str, value: &str) -> bool {
    let valid = HeaderName::from_str(name).is_ok() && HeaderValue::from_str(value).is_ok();
    valid
        && match name.to_ascii_lowercase().as_str() {
            "host" => Authority::from_str(value).is_ok(),
            "x-forwarded-proto" => value.eq_ignore_ascii_case("http") || value.eq_ignore_ascii_case("https"),
            _ => true,
        }
}

#[cfg(test)]
mod tests {
    use lambda_http::RequestExt as _;
    use serde_json::json;

    use super::*;

    /// lambda_http's conversion, as the runtime runs it; `None` if it panicked.
    fn convert(event: Value) -> Option<lambda_http::Request> {
        convert_keeping(event, false)
    }

    /// [`convert`], for a function that reads the query string or not.
    fn convert_keeping(mut event: Value, keep_query: bool) -> Option<lambda_http::Request> {
        sanitize(&mut event, keep_query);
        let text = event.to_string();
        std::panic::catch_unwind(move || lambda_http::request::from_str(&text).ok()).ok().flatten()
    }

    fn http_api(query: &str, headers: Value, body: &str, base64: bool) -> Value {
        json!({
            "version": "2.0", "routeKey": "POST /auth/login", "rawPath": "/auth/login",
            "rawQueryString": query, "headers": headers, "body": body, "isBase64Encoded": base64,
            "requestContext": {"apiId": "a1", "stage": "$default", "domainName": "a1.example.com",
                               "http": {"method": "POST", "path": "/auth/login"}},
        })
    }

    #[test]
    fn hostile_query_strings_hosts_and_schemes_reach_the_handler() {
        let json = json!({"content-type": "application/json"});
        for query in ["a=\"x\"", "q=a b", "%%%", "x=<script>"] {
            let request = convert(http_api(query, json.clone(), "{}", false));
            assert!(request.is_some_and(|r| r.uri().query().is_none()), "{query}");
        }
        for (name, value) in [("host", "exa mple"), ("host", "a/b"), ("x-forwarded-proto", "evil scheme")] {
            let request = convert(http_api(
                "",
                json!({ name: value, "content-type": "application/json" }),
                "{}",
                false,
            ));
            let request = request.unwrap_or_else(|| panic!("{name}: {value}"));
            assert!(request.headers().get(name).is_none(), "{name} dropped");
            assert_eq!(request.headers()["content-type"], "application/json");
        }
        let alb = json!({
            "requestContext": {"elb": {"targetGroupArn": "arn:aws:elasticloadbalancing:eu-west-1:1:targetgroup/a/b"}},
            "httpMethod": "GET", "path": "/health", "queryStringParameters": {"a b": "\"x\""},
            "headers": {"host": "exa mple"}, "body": "", "isBase64Encoded": false,
        });
        assert!(convert(alb).is_some_and(|r| r.method() == "GET"));
    }

    #[test]
    fn a_function_that_reads_the_query_gets_every_pair_of_a_hostile_one() {
        let json = json!({"content-type": "application/json"});
        let cases = [
            ("a=\"x\"", ("a", "\"x\"")),
            ("q=a b", ("q", "a b")),
            ("cursor=%%%", ("cursor", "%%%")),
            ("x=<script>&limit=5", ("x", "<script>")),
            ("cursor=a%2Bb%3D", ("cursor", "a+b=")),
        ];
        for (query, (name, value)) in cases {
            let request = convert_keeping(http_api(query, json.clone(), "{}", false), true)
                .unwrap_or_else(|| panic!("{query}"));
            assert_eq!(request.query_string_parameters().first(name), Some(value), "{query}");
        }
        let rest = json!({
            "resource": "/auth/me/security-events", "path": "/auth/me/security-events", "httpMethod": "GET",
            "queryStringParameters": {"a b": "\"x\" <y>"}, "multiValueQueryStringParameters": {"a b": ["\"x\" <y>"]},
            "headers": {}, "body": null, "isBase64Encoded": false,
            "requestContext": {"resourcePath": "/auth/me/security-events", "httpMethod": "GET", "stage": "prod",
                               "identity": {"sourceIp": "192.0.2.1"}},
        });
        let request = convert_keeping(rest, true).expect("a REST API's request converts");
        assert_eq!(request.query_string_parameters().first("a b"), Some("\"x\" <y>"));
        let alb = json!({
            "requestContext": {"elb": {"targetGroupArn": "arn:aws:elasticloadbalancing:eu-west-1:1:targetgroup/a/b"}},
            "httpMethod": "GET", "path": "/auth/me/security-events", "queryStringParameters": {"a%20b": "%22x%22"},
            "headers": {}, "body": "", "isBase64Encoded": false,
        });
        let request = convert_keeping(alb, true).expect("a load balancer's request converts");
        assert_eq!(request.query_string_parameters().first("a b"), Some("\"x\""));
    }

    #[test]
    fn a_body_that_does_not_decode_is_handed_over_as_text() {
        let request =
            convert(http_api("", json!({"content-type": "application/json"}), "%%%", true)).unwrap();
        assert_eq!(request.body().as_ref(), b"%%%");
        let encoded = STANDARD.encode("{\"a\":1}");
        let request =
            convert(http_api("", json!({"content-type": "application/json"}), &encoded, true)).unwrap();
        assert_eq!(request.body().as_ref(), b"{\"a\":1}");
    }

    #[test]
    fn a_header_http_forbids_goes_and_the_event_stays_an_http_request() {
        let request = convert(http_api(
            "",
            json!({"x-bad": "a\u{7f}b", "content-type": "application/json"}),
            "{}",
            false,
        ));
        let request = request.expect("converted");
        assert!(request.headers().get("x-bad").is_none());
        assert!(request.request_context_ref().is_some_and(|context| {
            matches!(context, lambda_http::request::RequestContext::ApiGatewayV2(_))
        }));
    }

    #[test]
    fn a_schedule_is_left_as_it_is() {
        let schedule = json!({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}});
        for keep_query in [false, true] {
            let mut sanitized = schedule.clone();
            sanitize(&mut sanitized, keep_query);
            assert_eq!(sanitized, schedule);
        }
    }
}
