//! What reading an event costs before a handler runs: lambda_http's own conversion of an HTTP
//! API event into a `Request`, the same after `event::sanitize` (the JSON value, the clean-up,
//! then the conversion), which `runtime::run` does for every invocation, and the health
//! schedule's way in: `pass_through`, after every front door's shape has failed to match.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use lambda_http::request::LambdaRequest;
use serde_json::{Value, json};

fn event() -> String {
    json!({
        "version": "2.0", "routeKey": "POST /auth/refresh", "rawPath": "/auth/refresh", "rawQueryString": "",
        "headers": {"content-type": "application/json", "host": "a1b2c3.execute-api.eu-west-1.amazonaws.com",
                    "user-agent": "Mozilla/5.0", "accept": "*/*", "x-forwarded-proto": "https"},
        "body": "{\"refresh_token\":\"0123456789abcdef0123456789abcdef0123456789abcdef0123\"}",
        "isBase64Encoded": false,
        "requestContext": {"apiId": "a1b2c3", "stage": "$default", "requestId": "r", "accountId": "123456789012",
                           "domainName": "a1b2c3.execute-api.eu-west-1.amazonaws.com",
                           "http": {"method": "POST", "path": "/auth/refresh", "protocol": "HTTP/1.1",
                                    "sourceIp": "203.0.113.7", "userAgent": "Mozilla/5.0"}},
    })
    .to_string()
}

/// What `runtime::run` does with an event's text: the JSON value, the clean-up, the conversion.
fn read(text: &str) -> lambda_http::Request {
    let mut value: Value = serde_json::from_str(text).unwrap();
    shared::event::sanitize(&mut value, false);
    let request: LambdaRequest = serde_json::from_value(value).unwrap();
    lambda_http::Request::from(request)
}

fn conversion(c: &mut Criterion) {
    let text = event();
    let mut group = c.benchmark_group("event_to_request");
    group.bench_function("lambda_http", |b| {
        b.iter(|| {
            let request: LambdaRequest = serde_json::from_str(black_box(&text)).unwrap();
            lambda_http::Request::from(request)
        })
    });
    group.bench_function("sanitized", |b| b.iter(|| read(black_box(&text))));
    let schedule = json!({
        "version": "0", "id": "5e1f", "detail-type": "Scheduled Event", "source": "aws.events",
        "account": "123456789012", "time": "2026-11-27T05:00:00Z", "region": "eu-west-1",
        "resources": ["arn:aws:events:eu-west-1:123456789012:rule/health"], "detail": {}
    })
    .to_string();
    group.bench_function("schedule", |b| b.iter(|| read(black_box(&schedule))));
    group.finish();
}

criterion_group!(benches, conversion);
criterion_main!(benches);
