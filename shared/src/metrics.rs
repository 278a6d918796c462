//! CloudWatch metrics as Embedded Metric Format lines on stdout: Lambda sends them to the
//! function's log group and CloudWatch extracts the metrics, with no API call and no extra
//! latency. Namespace from the configuration (`METRICS_NAMESPACE`, default `AuthApi`),
//! dimension `FunctionName`.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

/// A login refused for a wrong password or an unknown email (a 401).
pub const LOGIN_FAILED: &str = "LoginFailed";
/// A login refused because its email is throttled (a 429).
pub const LOGIN_THROTTLED: &str = "LoginThrottled";

/// A login with the right password of an account an operator disabled (a 403).
pub const DISABLED_SIGN_IN: &str = "DisabledSignIn";
/// A refresh token presented again after its rotation (its session is revoked).
pub const REFRESH_REUSED: &str = "RefreshReused";
/// A wrong or reused second-factor code, at a sign-in or a step-up.
pub const MFA_FAILED: &str = "MfaFailed";
/// An action of the admin API that changed or sent something.
pub const ADMIN_ACTION: &str = "AdminAction";

/// A mail SES accepted.
pub const MAIL_SENT: &str = "MailSent";
/// A mail SES refused or did not answer (its code is in the log line): the link is stored, the
/// request answered as if sent.
pub const MAIL_REJECTED: &str = "MailRejected";
/// A mail held back by a sending limit (per address, or the global hourly cap).
pub const MAIL_LIMITED: &str = "MailLimited";

/// Security events EventBridge took in one pass of the events-out drain.
pub const SECURITY_EVENTS_SENT: &str = "SecurityEventsSent";
/// Security events whose send failed in one pass (refused, or no answer): queued still, sent
/// again after a backoff.
pub const SECURITY_EVENTS_FAILED: &str = "SecurityEventsFailed";
/// Security events queued in the outbox after a pass.
pub const SECURITY_EVENTS_QUEUED: &str = "SecurityEventsQueued";
/// How long the oldest queued security event has waited, after a pass (seconds).
pub const SECURITY_EVENTS_OLDEST_QUEUED: &str = "SecurityEventsOldestQueuedAge";

/// Where one function's metrics go: its namespace and the `FunctionName` dimension.
#[derive(Debug, Clone)]
pub struct Metrics {
    namespace: String,
    function_name: String,
}

impl Metrics {
    pub fn new(namespace: impl Into<String>, function_name: impl Into<String>) -> Self {
        Self { namespace: namespace.into(), function_name: function_name.into() }
    }

    /// One EMF line holding `metrics` (name, unit, value).
    pub fn line(&self, metrics: &[(&str, &str, f64)]) -> String {
        line(&self.namespace, &self.function_name, metrics)
    }

    /// Counts one occurrence of `name` (unit `Count`).
    pub fn count(&self, name: &str) {
        println!("{}", self.line(&[(name, "Count", 1.0)]));
    }
}

fn line(namespace: &str, function_name: &str, metrics: &[(&str, &str, f64)]) -> String {
    let timestamp = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    let definitions: Vec<Value> =
        metrics.iter().map(|(name, unit, _)| json!({ "Name": name, "Unit": unit })).collect();
    let mut document = Map::new();
    document.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp,
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                "Dimensions": [["FunctionName"]],
                "Metrics": definitions,
            }]
        }),
    );
    document.insert("FunctionName".into(), json!(function_name));
    for (name, _, value) in metrics {
        document.insert((*name).to_owned(), json!(value));
    }
    Value::Object(document).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_embedded_metric_format() {
        let metrics = Metrics::new("AuthApiTest", "auth-login");
        let line: Value = serde_json::from_str(&metrics.line(&[(LOGIN_FAILED, "Count", 1.0)])).unwrap();

        let directive = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "AuthApiTest");
        assert_eq!(directive["Dimensions"], json!([["FunctionName"]]));
        assert_eq!(directive["Metrics"], json!([{ "Name": "LoginFailed", "Unit": "Count" }]));
        assert_eq!(
            (line["FunctionName"].as_str(), line["LoginFailed"].as_f64()),
            (Some("auth-login"), Some(1.0))
        );
        assert!(line["_aws"]["Timestamp"].as_u64().unwrap() > 1_700_000_000_000);
    }
}
