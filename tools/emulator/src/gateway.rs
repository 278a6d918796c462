//! What an API Gateway HTTP API does around a Lambda integration: route selection, the payload
//! format 2.0 event, the mapping of the function's answer back to HTTP, and the gateway's own
//! error answers. (`AWS_IAM` authorization, between route selection and the event, is `iam`'s.)
//!
//! The error answers are those of a real HTTP API (not of a REST API or `sam local`):
//! - no route matches (unknown path, or a known path with another method): 404 `Not Found`;
//! - the function failed, timed out, crashed or answered something unparseable: 500
//!   `Internal Server Error`;
//! - the 30-second integration timeout passed: 503 `Service Unavailable`.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http::HeaderMap;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use crate::iam::Caller;
use crate::template::{ACCOUNT_ID, RouteSpec};

/// An HTTP answer the gateway sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayResponse {
    pub status: u16,
    /// Header names in lower case, in order; `set-cookie` may repeat.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl GatewayResponse {
    /// An error answer of the gateway itself: `{"message": ...}`.
    pub fn error(status: u16, message: &str) -> Self {
        Self {
            status,
            headers: vec![("content-type".to_owned(), "application/json".to_owned())],
            body: Bytes::from(json!({ "message": message }).to_string()),
        }
    }

    /// 404 for a request that matches no route.
    pub fn not_found() -> Self {
        Self::error(404, "Not Found")
    }

    /// 500 for a function error, crash, timeout or malformed response.
    pub fn internal_server_error() -> Self {
        Self::error(500, "Internal Server Error")
    }

    /// 503 when the integration timeout passes before the function answers.
    pub fn service_unavailable() -> Self {
        Self::error(503, "Service Unavailable")
    }

    /// 413 for a request body over the HTTP API limit.
    pub fn payload_too_large() -> Self {
        Self::error(413, "Request Entity Too Large")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Variable(String),
    Greedy(String),
}

#[derive(Debug, Clone)]
struct CompiledRoute {
    key: String,
    /// `None` for `ANY`.
    method: Option<String>,
    /// `None` for `$default`.
    segments: Option<Vec<Segment>>,
    function: usize,
    iam: bool,
}

/// A matched route: which function, its route key, the path variables, and whether the route
/// needs `AWS_IAM` authorization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch {
    pub function: usize,
    pub route_key: String,
    pub path_parameters: BTreeMap<String, String>,
    pub iam: bool,
}

/// The routes of every function, selected the way HTTP APIs select them: the most specific path
/// wins (literal segments over variables over greedy variables), an explicit method over `ANY`,
/// and `$default` only when nothing else matches.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    routes: Vec<CompiledRoute>,
}

impl RouteTable {
    /// Adds a function's route; `iam`: requests must be signed by an IAM principal.
    pub fn add(&mut self, route: &RouteSpec, function: usize, iam: bool) {
        let compiled = match route {
            RouteSpec::Default => {
                CompiledRoute { key: route.key(), method: None, segments: None, function, iam }
            }
            RouteSpec::Route { method, path } => CompiledRoute {
                key: route.key(),
                method: (method != "ANY").then(|| method.clone()),
                segments: Some(split(path).map(parse_segment).collect()),
                function,
                iam,
            },
        };
        self.routes.push(compiled);
    }

    /// The route a request goes to, if any.
    pub fn find(&self, method: &str, path: &str) -> Option<RouteMatch> {
        let mut best: Option<((usize, usize, bool), RouteMatch)> = None;
        let mut default = None;
        for route in &self.routes {
            if route.method.as_deref().is_some_and(|m| !m.eq_ignore_ascii_case(method)) {
                continue;
            }
            let Some(segments) = &route.segments else {
                default.get_or_insert_with(|| RouteMatch {
                    function: route.function,
                    route_key: route.key.clone(),
                    path_parameters: BTreeMap::new(),
                    iam: route.iam,
                });
                continue;
            };
            let Some(parameters) = match_path(segments, path) else { continue };
            let literals = segments.iter().filter(|s| matches!(s, Segment::Literal(_))).count();
            let not_greedy = usize::from(!segments.iter().any(|s| matches!(s, Segment::Greedy(_))));
            let score = (not_greedy, literals, route.method.is_some());
            if best.as_ref().is_none_or(|(current, _)| score > *current) {
                let found = RouteMatch {
                    function: route.function,
                    route_key: route.key.clone(),
                    path_parameters: parameters,
                    iam: route.iam,
                };
                best = Some((score, found));
            }
        }
        best.map(|(_, found)| found).or(default)
    }

    /// Whether no route is defined.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

fn split(path: &str) -> impl Iterator<Item = &str> {
    path.strip_prefix('/').unwrap_or(path).split('/')
}

fn parse_segment(segment: &str) -> Segment {
    match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
        Some(name) => match name.strip_suffix('+') {
            Some(greedy) => Segment::Greedy(greedy.to_owned()),
            None => Segment::Variable(name.to_owned()),
        },
        None => Segment::Literal(segment.to_owned()),
    }
}

fn match_path(segments: &[Segment], path: &str) -> Option<BTreeMap<String, String>> {
    let parts: Vec<&str> = split(path).collect();
    let mut parameters = BTreeMap::new();
    for (index, segment) in segments.iter().enumerate() {
        match segment {
            Segment::Literal(literal) => {
                if parts.get(index) != Some(&literal.as_str()) {
                    return None;
                }
            }
            Segment::Variable(name) => {
                let part = parts.get(index).filter(|p| !p.is_empty())?;
                parameters.insert(name.clone(), percent_decode(part));
            }
            Segment::Greedy(name) => {
                let rest = parts.get(index..).filter(|rest| !rest.is_empty() && !rest[0].is_empty())?;
                parameters.insert(name.clone(), percent_decode(&rest.join("/")));
                return Some(parameters);
            }
        }
    }
    (parts.len() == segments.len()).then_some(parameters)
}

/// An HTTP request as the gateway received it.
#[derive(Debug, Clone)]
pub struct IncomingRequest<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
    pub source_ip: String,
    pub protocol: &'a str,
}

/// Identifies the API, the request and, on an `AWS_IAM` route, its signer in `requestContext`.
#[derive(Debug, Clone)]
pub struct RequestContext<'a> {
    pub api_id: &'a str,
    pub request_id: &'a str,
    pub region: &'a str,
    pub now: OffsetDateTime,
    pub caller: Option<&'a Caller>,
}

/// The payload format 2.0 event of a request.
pub fn build_event(request: &IncomingRequest<'_>, route: &RouteMatch, context: &RequestContext<'_>) -> Value {
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    let mut cookies = Vec::new();
    for (name, value) in request.headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        if name == http::header::COOKIE {
            cookies.extend(value.split(';').map(str::trim).filter(|c| !c.is_empty()).map(str::to_owned));
            continue;
        }
        headers
            .entry(name.as_str().to_owned())
            .and_modify(|joined| {
                joined.push(',');
                joined.push_str(&value);
            })
            .or_insert(value);
    }
    let domain_name = headers.get("host").cloned().unwrap_or_else(|| "localhost".to_owned());
    let domain_prefix = domain_name.split('.').next().unwrap_or_default().to_owned();
    let user_agent = headers.get("user-agent").cloned().unwrap_or_default();

    let mut event = Map::new();
    event.insert("version".into(), json!("2.0"));
    event.insert("routeKey".into(), json!(route.route_key));
    event.insert("rawPath".into(), json!(request.path));
    event.insert("rawQueryString".into(), json!(request.query.unwrap_or_default()));
    if !cookies.is_empty() {
        event.insert("cookies".into(), json!(cookies));
    }
    event.insert("headers".into(), json!(headers));
    let query = query_parameters(request.query.unwrap_or_default());
    if !query.is_empty() {
        event.insert("queryStringParameters".into(), json!(query));
    }
    if !route.path_parameters.is_empty() {
        event.insert("pathParameters".into(), json!(route.path_parameters));
    }
    event.insert(
        "requestContext".into(),
        json!({
            "accountId": ACCOUNT_ID,
            "apiId": context.api_id,
            "domainName": domain_name,
            "domainPrefix": domain_prefix,
            "http": {
                "method": request.method,
                "path": request.path,
                "protocol": request.protocol,
                "sourceIp": request.source_ip,
                "userAgent": user_agent,
            },
            "requestId": context.request_id,
            "routeKey": route.route_key,
            "stage": "$default",
            "time": clf_time(context.now),
            "timeEpoch": i64::try_from(context.now.unix_timestamp_nanos() / 1_000_000).unwrap_or_default(),
        }),
    );
    if let Some(caller) = context.caller {
        event["requestContext"]["authorizer"] = json!({ "iam": caller.authorizer_iam() });
    }
    let (body, is_base64) = event_body(request);
    if let Some(body) = body {
        event.insert("body".into(), json!(body));
    }
    event.insert("isBase64Encoded".into(), json!(is_base64));
    Value::Object(event)
}

/// The event's body and its base64 flag, as every front door sends it: none for an empty body,
/// the text for a textual media type, base64 otherwise.
pub(crate) fn event_body(request: &IncomingRequest<'_>) -> (Option<String>, bool) {
    if request.body.is_empty() {
        return (None, false);
    }
    let content_type = request.headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    match std::str::from_utf8(request.body) {
        Ok(text) if content_type.is_some_and(is_text_media_type) => (Some(text.to_owned()), false),
        _ => (Some(STANDARD.encode(request.body)), true),
    }
}

/// Whether a body of this media type is passed as text rather than base64.
fn is_text_media_type(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence.starts_with("text/")
        || matches!(essence.as_str(), "application/json" | "application/xml" | "application/javascript")
        || (essence.starts_with("application/") && (essence.ends_with("+json") || essence.ends_with("+xml")))
}

/// `queryStringParameters`: decoded, repeated keys joined with commas.
fn query_parameters(raw: &str) -> BTreeMap<String, String> {
    let mut parameters: BTreeMap<String, String> = BTreeMap::new();
    for pair in raw.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_decode(value);
        parameters
            .entry(percent_decode(name))
            .and_modify(|joined| {
                joined.push(',');
                joined.push_str(&value);
            })
            .or_insert(value);
    }
    parameters
}

pub(crate) fn percent_decode(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let hex = || std::str::from_utf8(bytes.get(index + 1..index + 3)?).ok();
        match (bytes[index], hex().and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(decoded)) => {
                out.push(decoded);
                index += 3;
            }
            (byte, _) => {
                out.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `requestContext.time`: `27/Nov/2026:05:22:00 +0000`.
pub(crate) fn clf_time(now: OffsetDateTime) -> String {
    const MONTHS: [&str; 12] =
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let now = now.to_offset(time::UtcOffset::UTC);
    format!(
        "{:02}/{}/{}:{:02}:{:02}:{:02} +0000",
        now.day(),
        MONTHS[usize::from(u8::from(now.month())) - 1],
        now.year(),
        now.hour(),
        now.minute(),
        now.second()
    )
}

/// Why a function's answer could not be turned into an HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MalformedResponse(pub String);

/// Maps a function's payload format 2.0 answer to HTTP.
///
/// An object with `statusCode` is a response and must be well formed. Any other valid JSON is
/// passed through as a 200 `application/json` body, as HTTP APIs do.
pub fn map_response(payload: &[u8]) -> Result<GatewayResponse, MalformedResponse> {
    let malformed = |why: &str| MalformedResponse(why.to_owned());
    let value: Value = serde_json::from_slice(payload).map_err(|e| malformed(&format!("not JSON: {e}")))?;
    let Some(object) = value.as_object().filter(|o| o.contains_key("statusCode")) else {
        return Ok(GatewayResponse {
            status: 200,
            headers: vec![("content-type".to_owned(), "application/json".to_owned())],
            body: Bytes::copy_from_slice(payload),
        });
    };
    let status = object["statusCode"]
        .as_u64()
        .and_then(|s| u16::try_from(s).ok())
        .filter(|s| (100..=599).contains(s))
        .ok_or_else(|| malformed("statusCode is not an HTTP status"))?;
    let mut headers = Vec::new();
    if let Some(single) = present(object, "headers") {
        let single = single.as_object().ok_or_else(|| malformed("headers is not an object"))?;
        for (name, value) in single {
            let value =
                header_value(value).ok_or_else(|| malformed(&format!("header {name} is not a scalar")))?;
            headers.push((name.to_ascii_lowercase(), value));
        }
    }
    if let Some(multi) = present(object, "multiValueHeaders") {
        let multi = multi.as_object().ok_or_else(|| malformed("multiValueHeaders is not an object"))?;
        for (name, values) in multi {
            let values =
                values.as_array().ok_or_else(|| malformed("multiValueHeaders values are not arrays"))?;
            let name = name.to_ascii_lowercase();
            headers.retain(|(existing, _)| *existing != name);
            for value in values {
                let value = header_value(value)
                    .ok_or_else(|| malformed(&format!("header {name} is not a scalar")))?;
                headers.push((name.clone(), value));
            }
        }
    }
    if let Some(cookies) = present(object, "cookies") {
        let cookies = cookies.as_array().ok_or_else(|| malformed("cookies is not an array"))?;
        for cookie in cookies {
            let cookie = cookie.as_str().ok_or_else(|| malformed("a cookie is not a string"))?;
            headers.push(("set-cookie".to_owned(), cookie.to_owned()));
        }
    }
    let body = match present(object, "body") {
        None => String::new(),
        Some(Value::String(body)) => body.clone(),
        Some(_) => return Err(malformed("body is not a string")),
    };
    let is_base64 = match present(object, "isBase64Encoded") {
        None => false,
        Some(flag) => flag.as_bool().ok_or_else(|| malformed("isBase64Encoded is not a boolean"))?,
    };
    let body = if is_base64 {
        Bytes::from(STANDARD.decode(body.as_bytes()).map_err(|_| malformed("the body is not valid base64"))?)
    } else {
        Bytes::from(body)
    };
    Ok(GatewayResponse { status, headers, body })
}

fn present<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    object.get(key).filter(|v| !v.is_null())
}

fn header_value(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn table() -> RouteTable {
        let mut table = RouteTable::default();
        let route = |method: &str, path: &str| RouteSpec::Route { method: method.into(), path: path.into() };
        table.add(&route("POST", "/auth/signup"), 0, false);
        table.add(&route("GET", "/users/{id}"), 1, false);
        table.add(&route("GET", "/users/self"), 2, false);
        table.add(&route("ANY", "/files/{proxy+}"), 3, false);
        table.add(&route("DELETE", "/files/{proxy+}"), 4, false);
        table
    }

    #[test]
    fn unknown_paths_and_wrong_methods_match_no_route() {
        let table = table();
        assert_eq!(table.find("POST", "/auth/signup").unwrap().function, 0);
        assert!(table.find("GET", "/auth/signup").is_none(), "HTTP APIs route on method and path together");
        assert!(table.find("POST", "/auth/signup/").is_none());
        assert!(table.find("GET", "/nowhere").is_none());
    }

    #[test]
    fn the_most_specific_route_wins() {
        let table = table();
        assert_eq!(table.find("GET", "/users/self").unwrap().function, 2);
        let user = table.find("GET", "/users/42").unwrap();
        assert_eq!((user.function, user.path_parameters["id"].as_str()), (1, "42"));
        let file = table.find("GET", "/files/a/b%20c").unwrap();
        assert_eq!((file.function, file.route_key.as_str()), (3, "ANY /files/{proxy+}"));
        assert_eq!(file.path_parameters["proxy"], "a/b c");
        assert_eq!(table.find("DELETE", "/files/a").unwrap().function, 4);
        assert!(table.find("GET", "/files/").is_none());
    }

    #[test]
    fn the_default_route_catches_what_nothing_else_matches() {
        let mut table = table();
        table.add(&RouteSpec::Default, 9, false);
        assert_eq!(table.find("GET", "/nowhere").unwrap().route_key, "$default");
        assert_eq!(table.find("POST", "/auth/signup").unwrap().function, 0);
    }

    fn request<'a>(headers: &'a HeaderMap, body: &'a [u8], query: Option<&'a str>) -> IncomingRequest<'a> {
        IncomingRequest {
            method: "POST",
            path: "/auth/signup",
            query,
            headers,
            body,
            source_ip: "127.0.0.1".into(),
            protocol: "HTTP/1.1",
        }
    }

    fn event(request: &IncomingRequest<'_>) -> Value {
        let route = RouteMatch {
            function: 0,
            route_key: "POST /auth/signup".into(),
            path_parameters: BTreeMap::new(),
            iam: false,
        };
        let now = OffsetDateTime::from_unix_timestamp(1_764_220_920).unwrap();
        build_event(
            request,
            &route,
            &RequestContext { api_id: "local", request_id: "req-1", region: "us-east-1", now, caller: None },
        )
    }

    #[test]
    fn events_follow_payload_format_2() {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        headers.insert("host", HeaderValue::from_static("127.0.0.1:3000"));
        headers.append("x-multi", HeaderValue::from_static("a"));
        headers.append("x-multi", HeaderValue::from_static("b"));
        headers.insert("cookie", HeaderValue::from_static("a=1; b=2"));
        let body = br#"{"email":"a@b.c"}"#;
        let event = event(&request(&headers, body, Some("x=1&x=2&y=%20z")));
        assert!(event["requestContext"].get("authorizer").is_none(), "no authorizer on an open route");
        assert_eq!(event["version"], "2.0");
        assert_eq!(event["routeKey"], "POST /auth/signup");
        assert_eq!(event["rawQueryString"], "x=1&x=2&y=%20z");
        assert_eq!(event["queryStringParameters"], json!({"x": "1,2", "y": " z"}));
        assert_eq!(event["headers"]["x-multi"], "a,b");
        assert!(event["headers"].get("cookie").is_none());
        assert_eq!(event["cookies"], json!(["a=1", "b=2"]));
        assert_eq!(event["body"], r#"{"email":"a@b.c"}"#);
        assert_eq!(event["isBase64Encoded"], false);
        let context = &event["requestContext"];
        assert_eq!(context["http"]["method"], "POST");
        assert_eq!(context["http"]["sourceIp"], "127.0.0.1");
        assert_eq!(context["stage"], "$default");
        assert_eq!(context["domainName"], "127.0.0.1:3000");
        assert_eq!(context["time"], "27/Nov/2025:05:22:00 +0000");
        assert_eq!(context["timeEpoch"], 1_764_220_920_000_i64);
        let parsed =
            lambda_http::request::from_str(&event.to_string()).expect("the functions read the event");
        assert_eq!(parsed.method(), "POST");
        assert_eq!(parsed.uri().path(), "/auth/signup");
    }

    #[test]
    fn a_signed_request_s_caller_is_the_iam_authorizer_lambda_http_reads() {
        let headers = HeaderMap::new();
        let request = request(&headers, b"", None);
        let route = RouteMatch {
            function: 0,
            route_key: "GET /admin/users".into(),
            path_parameters: BTreeMap::new(),
            iam: true,
        };
        let caller = crate::iam::IamCredentials::new("AKIAEXAMPLE", "secret").caller();
        let now = OffsetDateTime::now_utc();
        let context = RequestContext {
            api_id: "local",
            request_id: "id",
            region: "us-east-1",
            now,
            caller: Some(&caller),
        };

        let event = build_event(&request, &route, &context);

        assert_eq!(event["requestContext"]["authorizer"]["iam"]["accessKey"], "AKIAEXAMPLE");
        let parsed =
            lambda_http::request::from_str(&event.to_string()).expect("the functions read the event");
        let lambda_http::request::RequestContext::ApiGatewayV2(context) =
            lambda_http::RequestExt::request_context(&parsed)
        else {
            panic!("an HTTP API event");
        };
        let iam = context.authorizer.and_then(|authorizer| authorizer.iam).expect("authorizer.iam");
        assert_eq!(iam.user_arn.as_deref(), Some("arn:aws:iam::123456789012:user/local-admin"));
        assert_eq!(iam.access_key.as_deref(), Some("AKIAEXAMPLE"));
        assert_eq!(iam.account_id.as_deref(), Some("123456789012"));
        assert_eq!(iam.user_id, iam.caller_id);
    }

    #[test]
    fn binary_bodies_are_base64_and_empty_ones_are_absent() {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/octet-stream"));
        let binary = event(&request(&headers, &[0, 159, 146, 150], None));
        assert_eq!(binary["isBase64Encoded"], true);
        assert_eq!(binary["body"], STANDARD.encode([0, 159, 146, 150]));
        assert!(binary.get("queryStringParameters").is_none());
        let empty = event(&request(&headers, b"", None));
        assert!(empty.get("body").is_none());
        assert_eq!(empty["isBase64Encoded"], false);
    }

    #[test]
    fn responses_map_status_headers_cookies_and_base64_bodies() {
        let payload = json!({
            "statusCode": 201,
            "headers": {"Content-Type": "application/json", "X-Count": 3},
            "multiValueHeaders": {"x-multi": ["a", "b"]},
            "cookies": ["a=1; HttpOnly", "b=2"],
            "body": STANDARD.encode("{\"ok\":true}"),
            "isBase64Encoded": true,
        });
        let response = map_response(payload.to_string().as_bytes()).unwrap();
        assert_eq!(response.status, 201);
        assert!(response.headers.contains(&("content-type".into(), "application/json".into())));
        assert!(response.headers.contains(&("x-count".into(), "3".into())));
        assert!(response.headers.contains(&("x-multi".into(), "b".into())));
        let cookies: Vec<_> = response.headers.iter().filter(|(n, _)| n == "set-cookie").collect();
        assert_eq!(cookies.len(), 2);
        assert_eq!(response.body, Bytes::from_static(b"{\"ok\":true}"));
    }

    #[test]
    fn lambda_http_s_payload_2_0_response_maps_back_unchanged() {
        let mut original = lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpResponse::default();
        original.status_code = 409;
        original.headers.insert("content-type", HeaderValue::from_static("application/json"));
        original.body = Some(lambda_http::Body::Text(r#"{"error":"email_taken"}"#.into()));
        let response = map_response(&serde_json::to_vec(&original).unwrap()).unwrap();
        assert_eq!(response.status, 409);
        assert!(response.headers.contains(&("content-type".into(), "application/json".into())));
        assert_eq!(response.body, Bytes::from_static(br#"{"error":"email_taken"}"#));
    }

    #[test]
    fn json_without_a_status_code_is_a_200_body() {
        let response = map_response(br#"{"hello":"world"}"#).unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(response.body, Bytes::from_static(br#"{"hello":"world"}"#));
    }

    #[test]
    fn malformed_responses_are_rejected() {
        for payload in [
            &b"not json"[..],
            br#"{"statusCode":"200"}"#,
            br#"{"statusCode":99}"#,
            br#"{"statusCode":200,"body":{"a":1}}"#,
            br#"{"statusCode":200,"headers":{"a":{"b":1}}}"#,
            br#"{"statusCode":200,"body":"%%%","isBase64Encoded":true}"#,
        ] {
            assert!(
                map_response(payload).is_err(),
                "{} should be malformed",
                String::from_utf8_lossy(payload)
            );
        }
    }

    #[test]
    fn gateway_errors_have_api_gateway_bodies() {
        assert_eq!(GatewayResponse::not_found().status, 404);
        assert_eq!(GatewayResponse::not_found().body, Bytes::from_static(br#"{"message":"Not Found"}"#));
        let error = GatewayResponse::internal_server_error();
        assert_eq!(
            (error.status, error.body),
            (500, Bytes::from_static(br#"{"message":"Internal Server Error"}"#))
        );
        let unavailable = GatewayResponse::service_unavailable();
        assert_eq!(unavailable.status, 503);
        assert_eq!(unavailable.body, Bytes::from_static(br#"{"message":"Service Unavailable"}"#));
    }
}
