//! The EventBridge side of events out: each queued event as one `PutEvents` entry on the
//! configured bus, and what became of each entry.

use aws_sdk_eventbridge::Client;
use aws_sdk_eventbridge::error::{DisplayErrorContext, ProvideErrorMetadata as _, SdkError};
use aws_sdk_eventbridge::primitives::DateTime;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::events_out::store::QueuedEvent;

/// The `source` of every event sent: what a rule matches to receive the security events.
pub const SOURCE: &str = "auth.security";

/// The `detail-type` of every event sent; the kind of event is the detail's `type`.
pub const DETAIL_TYPE: &str = "Security Event";

/// The bus name when `EVENT_BUS_NAME` is unset: the account's default bus.
pub const DEFAULT_BUS: &str = "default";

/// The longest error text kept with a queued event.
const ERROR_CHARS: usize = 500;

/// An event bus and the client that reaches it.
#[derive(Debug, Clone)]
pub struct Bus {
    client: Client,
    name: String,
}

/// The event's `detail`: the stored event as JSON, its own `detail` inside.
#[derive(Serialize)]
struct Detail<'a> {
    id: Uuid,
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(with = "time::serde::rfc3339")]
    at: time::OffsetDateTime,
    user_id: Uuid,
    session_id: Option<Uuid>,
    ip: Option<&'a str>,
    user_agent: Option<&'a str>,
    detail: Value,
}

impl Bus {
    /// The bus `EVENT_BUS_NAME` names (default [`DEFAULT_BUS`]), through a client configured as
    /// the functions' others are ([`crate::secrets::sdk_config`]; `AWS_ENDPOINT_URL_EVENTBRIDGE`
    /// for a local endpoint).
    pub async fn from_env() -> Self {
        let name = std::env::var("EVENT_BUS_NAME")
            .ok()
            .filter(|name| !name.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_BUS.to_owned());
        Self::new(Client::new(&crate::secrets::sdk_config().await), name)
    }

    /// The bus `name` through `client`.
    pub fn new(client: Client, name: impl Into<String>) -> Self {
        Self { client, name: name.into() }
    }

    /// The bus's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sends `events` (at most 10, `PutEvents`' limit) in one call. `Ok` holds each event's
    /// outcome, in order: `None` when EventBridge took it, else its error code and message.
    /// `Err` is the call's own failure (no answer, refused, throttled), for every event.
    pub async fn put(&self, events: &[QueuedEvent]) -> Result<Vec<Option<String>>, String> {
        let entries = events.iter().map(|event| self.entry(event)).collect();
        let output = self.client.put_events().set_entries(Some(entries)).send().await.map_err(describe)?;
        let results = output.entries();
        Ok((0..events.len())
            .map(|index| match results.get(index) {
                Some(result) => result
                    .error_code()
                    .map(|code| clip(format!("{code}: {}", result.error_message().unwrap_or("no message")))),
                None => Some("EventBridge answered no result for this entry".to_owned()),
            })
            .collect())
    }

    fn entry(&self, event: &QueuedEvent) -> PutEventsRequestEntry {
        PutEventsRequestEntry::builder()
            .source(SOURCE)
            .detail_type(DETAIL_TYPE)
            .detail(document(event))
            .event_bus_name(&self.name)
            .time(DateTime::from_secs_and_nanos(event.at.unix_timestamp(), event.at.nanosecond()))
            .build()
    }
}

/// The entry's `Detail`: `{"id","type","at","user_id","session_id","ip","user_agent","detail"}`.
pub fn document(event: &QueuedEvent) -> String {
    let detail = Detail {
        id: event.id,
        kind: &event.kind,
        at: event.at,
        user_id: event.user_id,
        session_id: event.session_id,
        ip: event.ip.as_deref(),
        user_agent: event.user_agent.as_deref(),
        // jsonb's text is JSON; an object in any case (the column's default is `{}`).
        detail: serde_json::from_str(&event.detail).unwrap_or_else(|_| Value::Object(Default::default())),
    };
    serde_json::to_string(&detail).expect("an event serialises")
}

/// A failed call in one line: EventBridge's code and message when it answered, else the SDK's
/// account of what happened (no connection, a timeout).
fn describe<
    E: aws_sdk_eventbridge::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
>(
    error: SdkError<E, R>,
) -> String {
    let text = match &error {
        SdkError::ServiceError(_) => {
            format!("{}: {}", error.code().unwrap_or("Unknown"), error.message().unwrap_or("no message"))
        }
        _ => DisplayErrorContext(&error).to_string(),
    };
    clip(text)
}

fn clip(text: String) -> String {
    match text.char_indices().nth(ERROR_CHARS) {
        Some((at, _)) => text[..at].to_owned(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_detail_is_the_stored_event_as_json() {
        let id = Uuid::new_v4();
        let user = Uuid::new_v4();
        let event = QueuedEvent {
            id,
            user_id: user,
            session_id: None,
            kind: "login_failed".to_owned(),
            // 2026-12-07T10:11:12.5Z
            at: time::OffsetDateTime::from_unix_timestamp_nanos(1_796_638_272_500_000_000).unwrap(),
            ip: Some("203.0.113.9".to_owned()),
            user_agent: Some("curl/8".to_owned()),
            detail: r#"{"reason": "password"}"#.to_owned(),
            attempts: 0,
        };

        let detail: Value = serde_json::from_str(&document(&event)).unwrap();

        assert_eq!(
            detail,
            json!({
                "id": id, "type": "login_failed", "at": "2026-12-07T10:11:12.5Z", "user_id": user,
                "session_id": null, "ip": "203.0.113.9", "user_agent": "curl/8",
                "detail": {"reason": "password"}
            })
        );
    }

    #[test]
    fn a_long_error_is_clipped_on_a_character_boundary() {
        assert_eq!(clip("é".repeat(600)).chars().count(), ERROR_CHARS);
        assert_eq!(clip("short".to_owned()), "short");
    }
}
