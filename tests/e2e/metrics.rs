//! The CloudWatch metrics the alarms watch, as the real binaries print them (Embedded Metric
//! Format lines on stdout): `DatabaseHealthy` only from the scheduled check, never from public
//! `GET /health` calls, and `LoginFailed` / `LoginThrottled` from refused logins.

use std::time::Duration;

use crate::helpers::{TestApi, email, eventually};
use bytes::Bytes;
use local_lambda::Log;
use serde_json::{Value, json};

/// The EMF documents the functions printed that define the metric `name`.
fn metric_lines(api: &TestApi, name: &str) -> Vec<Value> {
    api.emulator
        .log()
        .lines()
        .iter()
        .filter_map(|line| line.split_once("] ").map(|(_, rest)| rest))
        .filter_map(|text| serde_json::from_str::<Value>(text).ok())
        .filter(|document| {
            document["_aws"]["CloudWatchMetrics"][0]["Metrics"]
                .as_array()
                .is_some_and(|metrics| metrics.iter().any(|metric| metric["Name"] == name))
        })
        .collect()
}

async fn eventually_lines(api: &TestApi, name: &str, count: usize) -> Vec<Value> {
    eventually(&format!("{count} {name} lines"), Duration::from_secs(10), || async {
        let lines = metric_lines(api, name);
        (lines.len() >= count).then_some(lines)
    })
    .await
}

#[tokio::test]
async fn only_the_scheduled_check_writes_the_database_health_metric() {
    let api = TestApi::start_with(|config| config.log = Log::captured()).await;
    let schedule = json!({
        "version": "0", "id": "5e1f", "detail-type": "Scheduled Event", "source": "aws.events",
        "account": "123456789012", "time": "2026-11-27T05:00:00Z", "region": "eu-west-1",
        "resources": ["arn:aws:events:eu-west-1:123456789012:rule/health"], "detail": {}
    });

    let public = [api.get("/health").await, api.get("/health").await];
    api.emulator
        .invoke("HealthFunction", Bytes::from(schedule.to_string()))
        .await
        .expect("the scheduled check");
    // The sandbox's output is one ordered stream: once the schedule's line is read, a line
    // written by the earlier public calls would have been read too.
    let lines = eventually_lines(&api, "DatabaseHealthy", 1).await;

    assert!(public.iter().all(|response| response.status == 200), "{:?}", public[0].text);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["DatabaseHealthy"], 1.0);
    assert_eq!(lines[0]["FunctionName"], api.function_name("HealthFunction"));
}

#[tokio::test]
async fn refused_logins_are_counted_as_failed_or_throttled() {
    let api = TestApi::start_with(|config| config.log = Log::captured()).await;
    let user = email();
    assert_eq!(api.post_signup(&user).await.status, 201);
    let wrong = json!({ "email": user, "password": "not the password at all" });
    let unknown = json!({ "email": email(), "password": "not the password at all" });

    let mut statuses = vec![api.post_json("/auth/login", &unknown).await.status];
    for _ in 0..6 {
        statuses.push(api.post_json("/auth/login", &wrong).await.status);
    }
    assert_eq!(api.post_login(&email()).await.status, 401, "an unknown email: one more failure");
    let failed = eventually_lines(&api, "LoginFailed", 7).await;
    let throttled = eventually_lines(&api, "LoginThrottled", 1).await;

    assert_eq!(statuses, [401, 401, 401, 401, 401, 401, 429]);
    assert_eq!((failed.len(), throttled.len()), (7, 1));
    let login = api.function_name("LoginFunction");
    assert!(failed.iter().chain(&throttled).all(|line| line["FunctionName"] == login.as_str()));
    assert!(failed.iter().all(|line| line["LoginFailed"] == 1.0));
}
