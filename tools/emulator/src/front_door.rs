//! The AWS front doors a function can sit behind, and the event each one sends: an HTTP API
//! (payload format 2.0, the template's own), a REST API (payload 1.0), a function URL (2.0 on
//! the function's own domain) and an Application Load Balancer. The routes are the template's
//! `HttpApi` routes whichever the front door; only the event's shape and the answer's mapping
//! change, so one template serves a contract test through each of them.

use std::collections::BTreeMap;
use std::str::FromStr;

use serde_json::{Map, Value, json};

use crate::gateway::{self, GatewayResponse, IncomingRequest, MalformedResponse, RequestContext, RouteMatch};
use crate::iam::Caller;
use crate::template::ACCOUNT_ID;

/// The REST API stage the emulator names in its events (SAM's implicit API deploys `Prod`).
pub const REST_STAGE: &str = "Prod";

/// Which front door the emulator plays.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FrontDoor {
    /// An API Gateway HTTP API, payload format 2.0.
    #[default]
    HttpApi,
    /// An API Gateway REST API (`Api` events), payload format 1.0, stage [`REST_STAGE`], served
    /// at the root as through a custom domain's base path mapping.
    RestApi,
    /// A Lambda function URL: payload 2.0, route key `$default`, on the function's domain.
    FunctionUrl,
    /// An Application Load Balancer target group (multi-value headers off).
    Alb,
}

impl FromStr for FrontDoor {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name {
            "http-api" => Ok(Self::HttpApi),
            "rest-api" => Ok(Self::RestApi),
            "function-url" => Ok(Self::FunctionUrl),
            "alb" => Ok(Self::Alb),
            other => Err(format!("unknown front door {other:?}: http-api, rest-api, function-url or alb")),
        }
    }
}

impl FrontDoor {
    /// The event this front door sends for `request`.
    pub fn event(
        self,
        request: &IncomingRequest<'_>,
        route: &RouteMatch,
        context: &RequestContext<'_>,
    ) -> Value {
        match self {
            Self::HttpApi => gateway::build_event(request, route, context),
            Self::FunctionUrl => function_url_event(request, route, context),
            Self::RestApi => rest_event(request, route, context),
            Self::Alb => alb_event(request),
        }
    }

    /// The front door's own answer when the function failed, crashed, timed out or answered
    /// something it cannot map: an HTTP API's 500; a REST API's, a function URL's and a load
    /// balancer's 502.
    pub fn function_failed(self) -> GatewayResponse {
        match self {
            Self::HttpApi => GatewayResponse::internal_server_error(),
            Self::RestApi => GatewayResponse::error(502, "Internal server error"),
            Self::FunctionUrl => GatewayResponse::error(502, "Internal Server Error"),
            Self::Alb => GatewayResponse::error(502, "Bad Gateway"),
        }
    }

    /// The front door's answer when its integration timeout passed first: an HTTP API's 503,
    /// the others' 504.
    pub fn timed_out(self) -> GatewayResponse {
        match self {
            Self::HttpApi => GatewayResponse::service_unavailable(),
            Self::RestApi => GatewayResponse::error(504, "Endpoint request timed out"),
            Self::FunctionUrl | Self::Alb => GatewayResponse::error(504, "Gateway Timeout"),
        }
    }

    /// The function's answer as this front door turns it into HTTP. HTTP APIs and function URLs
    /// take a bare JSON value as a 200 body; REST APIs and load balancers need `statusCode`.
    pub fn map_response(self, payload: &[u8]) -> Result<GatewayResponse, MalformedResponse> {
        if matches!(self, Self::RestApi | Self::Alb) {
            let value: Value = serde_json::from_slice(payload)
                .map_err(|error| MalformedResponse(format!("not JSON: {error}")))?;
            if value.get("statusCode").is_none() {
                return Err(MalformedResponse("no statusCode".into()));
            }
        }
        gateway::map_response(payload)
    }
}

/// A function URL's event: payload 2.0, whose `apiId` is the URL's id and `domainName` the
/// URL's host (the functions tell it from an HTTP API by that domain).
fn function_url_event(
    request: &IncomingRequest<'_>,
    route: &RouteMatch,
    context: &RequestContext<'_>,
) -> Value {
    let url_id = format!("{}url", context.api_id);
    let domain = format!("{url_id}.lambda-url.{}.on.aws", context.region);
    let route =
        RouteMatch { route_key: "$default".into(), path_parameters: BTreeMap::new(), ..route.clone() };
    let mut event =
        gateway::build_event(request, &route, &RequestContext { api_id: &url_id, ..context.clone() });
    event["headers"]["host"] = json!(domain);
    let request_context = &mut event["requestContext"];
    request_context["domainName"] = json!(domain);
    request_context["domainPrefix"] = json!(url_id);
    request_context["authorizer"] = json!({ "iam": context.caller.map(Caller::authorizer_iam) });
    event
}

/// Single-value headers (the last value of a repeated header wins, as API Gateway 1.0 does) and
/// the multi-value ones.
fn headers(request: &IncomingRequest<'_>) -> (Map<String, Value>, Map<String, Value>) {
    let (mut single, mut multi) = (Map::new(), Map::new());
    for (name, value) in request.headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        single.insert(name.as_str().to_owned(), json!(value));
        let values = multi.entry(name.as_str().to_owned()).or_insert_with(|| json!([]));
        values.as_array_mut().expect("an array").push(json!(value));
    }
    (single, multi)
}

/// The query string as 1.0 names it: the last value and all of them, decoded.
fn query(raw: Option<&str>) -> (Value, Value) {
    let (mut single, mut multi) = (Map::new(), Map::new());
    for pair in raw.unwrap_or_default().split('&').filter(|pair| !pair.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let (name, value) = (gateway::percent_decode(name), gateway::percent_decode(value));
        single.insert(name.clone(), json!(value));
        multi.entry(name).or_insert_with(|| json!([])).as_array_mut().expect("an array").push(json!(value));
    }
    if single.is_empty() { (Value::Null, Value::Null) } else { (Value::Object(single), Value::Object(multi)) }
}

/// A REST API's proxy-integration event (payload format 1.0).
fn rest_event(request: &IncomingRequest<'_>, route: &RouteMatch, context: &RequestContext<'_>) -> Value {
    let (single, multi) = headers(request);
    let (query, multi_query) = query(request.query);
    let (body, is_base64) = gateway::event_body(request);
    let resource = route.route_key.split_once(' ').map_or("/{proxy+}", |(_, path)| path);
    let path_parameters =
        if route.path_parameters.is_empty() { Value::Null } else { json!(route.path_parameters) };
    let domain = format!("{}.execute-api.{}.amazonaws.com", context.api_id, context.region);
    let epoch = i64::try_from(context.now.unix_timestamp_nanos() / 1_000_000).unwrap_or_default();
    json!({
        "resource": resource,
        "path": request.path,
        "httpMethod": request.method,
        "headers": single,
        "multiValueHeaders": multi,
        "queryStringParameters": query,
        "multiValueQueryStringParameters": multi_query,
        "pathParameters": path_parameters,
        "stageVariables": null,
        "requestContext": {
            "accountId": ACCOUNT_ID,
            "apiId": context.api_id,
            "domainName": domain,
            "domainPrefix": context.api_id,
            "extendedRequestId": context.request_id,
            "httpMethod": request.method,
            "identity": {
                "accessKey": context.caller.map(|caller| &caller.access_key),
                "accountId": context.caller.map(|caller| &caller.account_id),
                "caller": context.caller.map(|caller| &caller.user_id),
                "sourceIp": request.source_ip,
                "user": context.caller.map(|caller| &caller.user_id),
                "userAgent": request.headers.get(http::header::USER_AGENT).and_then(|v| v.to_str().ok()),
                "userArn": context.caller.map(|caller| &caller.user_arn),
            },
            "path": format!("/{REST_STAGE}{}", request.path),
            "protocol": request.protocol,
            "requestId": context.request_id,
            "requestTime": gateway::clf_time(context.now),
            "requestTimeEpoch": epoch,
            "resourceId": "emul01",
            "resourcePath": resource,
            "stage": REST_STAGE,
        },
        "body": body,
        "isBase64Encoded": is_base64,
    })
}

/// A load balancer's event: no API, no request id, a target group.
fn alb_event(request: &IncomingRequest<'_>) -> Value {
    let (single, _) = headers(request);
    let (query, _) = query(request.query);
    let (body, is_base64) = gateway::event_body(request);
    json!({
        "requestContext": {
            "elb": {
                "targetGroupArn": format!(
                    "arn:aws:elasticloadbalancing:us-east-1:{ACCOUNT_ID}:targetgroup/local/0123456789abcdef"
                ),
            },
        },
        "httpMethod": request.method,
        "path": request.path,
        "queryStringParameters": if query.is_null() { json!({}) } else { query },
        "headers": single,
        "body": body.unwrap_or_default(),
        "isBase64Encoded": is_base64,
    })
}

#[cfg(test)]
mod tests {
    use http::{HeaderMap, HeaderValue};
    use time::OffsetDateTime;

    use super::*;

    fn request<'a>(headers: &'a HeaderMap, body: &'a [u8]) -> IncomingRequest<'a> {
        IncomingRequest {
            method: "POST",
            path: "/auth/login",
            query: Some("a=1&a=2"),
            headers,
            body,
            source_ip: "127.0.0.1".into(),
            protocol: "HTTP/1.1",
        }
    }

    fn route() -> RouteMatch {
        RouteMatch {
            function: 0,
            route_key: "POST /auth/login".into(),
            path_parameters: BTreeMap::new(),
            iam: false,
        }
    }

    fn context() -> RequestContext<'static> {
        RequestContext {
            api_id: "local",
            request_id: "id",
            region: "eu-west-1",
            now: OffsetDateTime::now_utc(),
            caller: None,
        }
    }

    #[test]
    fn every_front_door_s_event_is_read_by_lambda_http_as_the_same_request() {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        headers.insert("host", HeaderValue::from_static("127.0.0.1:3000"));
        for door in [FrontDoor::HttpApi, FrontDoor::RestApi, FrontDoor::FunctionUrl, FrontDoor::Alb] {
            let event = door.event(&request(&headers, br#"{"a":1}"#), &route(), &context());
            let parsed = lambda_http::request::from_str(&event.to_string())
                .unwrap_or_else(|error| panic!("{door:?}: {error}: {event}"));
            assert_eq!(parsed.method(), "POST", "{door:?}");
            assert_eq!(parsed.headers()["content-type"], "application/json", "{door:?}");
            assert_eq!(parsed.body().as_ref(), br#"{"a":1}"#, "{door:?}");
        }
    }

    #[test]
    fn rest_and_alb_answers_need_a_status_code() {
        for door in [FrontDoor::RestApi, FrontDoor::Alb] {
            assert!(door.map_response(br#"{"hello":1}"#).is_err(), "{door:?}");
            assert_eq!(door.map_response(br#"{"statusCode":204}"#).unwrap().status, 204);
        }
        assert_eq!(FrontDoor::FunctionUrl.map_response(br#"{"hello":1}"#).unwrap().status, 200);
    }
}
