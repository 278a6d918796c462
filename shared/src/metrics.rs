//! CloudWatch metrics as Embedded Metric Format lines on stdout: Lambda sends them to the
//! function's log group and CloudWatch extracts the metrics, with no API call and no extra
//! latency. Namespace `METRICS_NAMESPACE` (default `AuthApi`), dimension `FunctionName`.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

/// A login refused for a wrong password or an unknown email (a 401).
pub const LOGIN_FAILED: &str = "LoginFailed";
/// A login refused because its email is throttled (a 429).
pub const LOGIN_THROTTLED: &str = "LoginThrottled";

/// The namespace of the metrics (`METRICS_NAMESPACE`, default `AuthApi`).
pub fn namespace() -> String {
    std::env::var("METRICS_NAMESPACE")
        .ok()
        .filter(|ns| !ns.is_empty())
        .unwrap_or_else(|| "AuthApi".to_owned())
}

/// One EMF line holding `metrics` (name, unit, value) for `function_name`.
pub fn line(function_name: &str, metrics: &[(&str, &str, f64)]) -> String {
    let timestamp = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    let definitions: Vec<Value> =
        metrics.iter().map(|(name, unit, _)| json!({ "Name": name, "Unit": unit })).collect();
    let mut document = Map::new();
    document.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp,
            "CloudWatchMetrics": [{
                "Namespace": namespace(),
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

/// Counts one occurrence of `name` (unit `Count`).
pub fn count(function_name: &str, name: &str) {
    println!("{}", line(function_name, &[(name, "Count", 1.0)]));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_embedded_metric_format() {
        let line: Value = serde_json::from_str(&line("auth-login", &[(LOGIN_FAILED, "Count", 1.0)])).unwrap();

        let directive = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Dimensions"], json!([["FunctionName"]]));
        assert_eq!(directive["Metrics"], json!([{ "Name": "LoginFailed", "Unit": "Count" }]));
        assert_eq!(
            (line["FunctionName"].as_str(), line["LoginFailed"].as_f64()),
            (Some("auth-login"), Some(1.0))
        );
        assert!(line["_aws"]["Timestamp"].as_u64().unwrap() > 1_700_000_000_000);
    }
}
