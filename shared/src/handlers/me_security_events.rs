//! `GET /auth/me/security-events?limit=&cursor=`: the caller's security events, newest first.

use lambda_http::RequestExt as _;
use serde_json::json;

use crate::app::App;
use crate::config::{Keys, Needs};
use crate::http::{self, Reply, Request};
use crate::security_events;

/// Verifies access tokens, reads the database, and reads its query string.
pub const NEEDS: Needs = Needs { database: true, keys: Keys::Verify, mail: false, mfa: false, passkeys: false, query: true };

/// 200 `{"events":[{"id","type","at","ip","user_agent","session_id","detail"}],"next_cursor"}`,
/// at most `limit` (1 to 100, default 50) after `cursor` (the previous page's `next_cursor`;
/// `null` after the last page); 400 `invalid_request` for another limit, 400 `invalid_cursor`
/// for a cursor this API did not write; 401 without a live access token.
pub async fn handle(app: &App, request: Request) -> Reply {
    let caller = super::caller(app, &request).await?;
    let query = request.query_string_parameters();
    let limit = security_events::parse_limit(query.first("limit"))?;
    let page = security_events::page(app, caller.user.id, limit, query.first("cursor")).await?;
    Ok(http::json(200, &json!({ "events": page.events, "next_cursor": page.next_cursor })))
}
