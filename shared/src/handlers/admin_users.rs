//! `GET /admin/users?email_prefix=&limit=&cursor=` (admin API, IAM): find users by address.

use lambda_http::RequestExt as _;
use serde_json::json;

use crate::admin;
use crate::app::App;
use crate::config::{Keys, Needs};
use crate::http::{self, Reply, Request};
use crate::security_events::parse_limit;

/// Reads the database and its query string.
pub const NEEDS: Needs = Needs { database: true, keys: Keys::None, mail: false, mfa: false, passkeys: false, query: true };

/// 200 `{"users":[{"id","email","created_at","email_verified_at","disabled_at"}],"next_cursor"}`:
/// users whose address starts with `email_prefix` (every user without one) in the addresses'
/// byte order, at most `limit` (1 to 100, default 50) after `cursor`; 400 `invalid_request` for
/// another limit, 400 `invalid_cursor`.
pub async fn handle(app: &App, request: Request) -> Reply {
    super::operator_principal(&request)?;
    let query = request.query_string_parameters();
    let limit = parse_limit(query.first("limit"))?;
    let page = admin::users(app, query.first("email_prefix").unwrap_or_default(), limit, query.first("cursor")).await?;
    Ok(http::json(200, &json!({ "users": page.users, "next_cursor": page.next_cursor })))
}
