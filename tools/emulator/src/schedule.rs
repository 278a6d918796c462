//! EventBridge schedules, as `serve --schedules` plays them: a function's `Schedule` event with a
//! `rate(...)` expression is invoked at that rate with the event a scheduled rule sends.

use std::time::Duration;

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::template::ACCOUNT_ID;

/// The period of a `rate(VALUE UNIT)` expression (minute(s), hour(s), day(s)); `None` for a
/// `cron(...)` expression or anything else, which the emulator does not play.
pub fn rate(expression: &str) -> Option<Duration> {
    let inner = expression.trim().strip_prefix("rate(")?.strip_suffix(')')?;
    let (value, unit) = inner.trim().split_once(char::is_whitespace)?;
    let value: u64 = value.parse().ok().filter(|value| *value > 0)?;
    let seconds = match (unit.trim(), value) {
        ("minute", 1) | ("minutes", 2..) => 60,
        ("hour", 1) | ("hours", 2..) => 3_600,
        ("day", 1) | ("days", 2..) => 86_400,
        _ => return None,
    };
    Some(Duration::from_secs(value * seconds))
}

/// The event a scheduled rule named `rule` sends at `time`.
pub fn scheduled_event(rule: &str, region: &str, time: OffsetDateTime) -> Value {
    json!({
        "version": "0",
        "id": uuid::Uuid::new_v4().to_string(),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT_ID,
        "time": time.replace_nanosecond(0).unwrap_or(time).format(&Rfc3339).unwrap_or_default(),
        "region": region,
        "resources": [format!("arn:aws:events:{region}:{ACCOUNT_ID}:rule/{rule}")],
        "detail": {},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_read_as_eventbridge_writes_them_and_cron_is_not_played() {
        assert_eq!(rate("rate(1 minute)"), Some(Duration::from_secs(60)));
        assert_eq!(rate("rate(5 minutes)"), Some(Duration::from_secs(300)));
        assert_eq!(rate("rate(2 hours)"), Some(Duration::from_secs(7_200)));
        assert_eq!(rate("rate(1 day)"), Some(Duration::from_secs(86_400)));
        for unplayed in ["rate(1 minutes)", "rate(5 minute)", "rate(0 minutes)", "cron(0 12 * * ? *)", ""] {
            assert_eq!(rate(unplayed), None, "{unplayed}");
        }
    }

    #[test]
    fn a_scheduled_event_is_what_a_rule_sends() {
        let event = scheduled_event("Nightly", "eu-west-1", OffsetDateTime::UNIX_EPOCH);
        assert_eq!(
            (event["source"].as_str(), event["detail-type"].as_str()),
            (Some("aws.events"), Some("Scheduled Event"))
        );
        assert_eq!(event["time"], "1970-01-01T00:00:00Z");
        assert_eq!(event["resources"][0], "arn:aws:events:eu-west-1:123456789012:rule/Nightly");
    }
}
