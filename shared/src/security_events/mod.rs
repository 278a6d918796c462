//! Security events: what happened to an account, when, from where. Each is written by the
//! statement that makes its change (the stores of each aggregate), a refusal's by its own
//! ([`store::record_refusal`]); the API's role may insert and read them, never change one. The
//! user reads theirs here, newest first, a page at a time.

pub mod store;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::app::App;
use crate::domain::UserId;
use crate::error::{ApiError, Context as _};
use store::{After, EventView};

/// A page's size when the request names none, and the largest it may name.
pub const DEFAULT_PAGE: i64 = 50;
pub const MAX_PAGE: i64 = 100;

/// One page of events and where the next starts (`None` after the last).
pub struct Page {
    pub events: Vec<EventView>,
    pub next_cursor: Option<String>,
}

/// The `limit` a request asked for: 1 to [`MAX_PAGE`], [`DEFAULT_PAGE`] when absent; anything
/// else 400 `invalid_request`.
pub fn parse_limit(raw: Option<&str>) -> Result<i64, ApiError> {
    match raw {
        None => Ok(DEFAULT_PAGE),
        Some(raw) => {
            raw.parse::<i64>().ok().filter(|limit| (1..=MAX_PAGE).contains(limit)).ok_or_else(|| {
                ApiError::InvalidRequest(format!("limit must be a whole number from 1 to {MAX_PAGE}"))
            })
        }
    }
}

/// A cursor: the last event of a page, its time (microseconds, Postgres' precision) and id,
/// base64url. Opaque to clients; one this API did not write is 400 `invalid_cursor`.
pub fn encode_cursor(after: After) -> String {
    let micros = (after.at.unix_timestamp_nanos() / 1_000) as i64;
    let mut bytes = Vec::with_capacity(24);
    bytes.extend_from_slice(&micros.to_be_bytes());
    bytes.extend_from_slice(after.id.as_bytes());
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn decode_cursor(raw: &str) -> Result<After, ApiError> {
    let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| ApiError::InvalidCursor)?;
    let (micros, id) = bytes.split_first_chunk::<8>().ok_or(ApiError::InvalidCursor)?;
    let id = Uuid::from_slice(id).map_err(|_| ApiError::InvalidCursor)?;
    let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(i64::from_be_bytes(*micros)) * 1_000)
        .map_err(|_| ApiError::InvalidCursor)?;
    // No event is older than the epoch, nor later than Postgres' calendar reaches.
    if !(1970..=9999).contains(&at.year()) {
        return Err(ApiError::InvalidCursor);
    }
    Ok(After { at, id })
}

/// A page of `user`'s own events, newest first: `limit` of them after `cursor` (an operator's
/// action without who acted, [`store::list`]).
pub async fn page(app: &App, user: UserId, limit: i64, cursor: Option<&str>) -> Result<Page, ApiError> {
    let after = cursor.map(decode_cursor).transpose()?;
    let mut db = app.connection().await.context("connecting to the database")?;
    // One more than the page: whether another follows, without a second query.
    let mut events =
        store::list(&mut db, user, after, limit + 1, true).await.context("reading the events")?;
    let more = events.len() > limit as usize;
    events.truncate(limit as usize);
    let next_cursor =
        more.then(|| events.last().map(|last| encode_cursor(After { at: last.at, id: last.id }))).flatten();
    Ok(Page { events, next_cursor })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_reads_back_as_written_and_anything_else_is_refused() {
        let after = After {
            at: OffsetDateTime::from_unix_timestamp_nanos(1_765_000_000_123_456_000).unwrap(),
            id: Uuid::new_v4(),
        };
        assert_eq!(decode_cursor(&encode_cursor(after)).unwrap(), after);
        let before_the_epoch: Vec<u8> =
            [0xffu8, 0xfe, 0xf0, 0, 0, 0, 0, 0].into_iter().chain([0u8; 16]).collect();
        for bad in [
            &URL_SAFE_NO_PAD.encode(before_the_epoch),
            "",
            "%%%",
            "AAAA",
            &URL_SAFE_NO_PAD.encode([0u8; 23]),
            &URL_SAFE_NO_PAD.encode([0x7fu8; 24]),
            &URL_SAFE_NO_PAD.encode([0u8; 25]),
        ] {
            assert!(matches!(decode_cursor(bad), Err(ApiError::InvalidCursor)), "{bad:?}");
        }
    }

    #[test]
    fn a_limit_is_one_to_a_hundred() {
        assert_eq!(parse_limit(None).unwrap(), DEFAULT_PAGE);
        assert_eq!(parse_limit(Some("1")).unwrap(), 1);
        assert_eq!(parse_limit(Some("100")).unwrap(), 100);
        for bad in ["0", "101", "-1", "ten", "", "1.5"] {
            assert!(matches!(parse_limit(Some(bad)), Err(ApiError::InvalidRequest(_))), "{bad}");
        }
    }
}
