//! `POST /admin/users/{id}/enable` (admin API, IAM): enable a disabled user again.

use crate::admin::Action;
use crate::app::App;
use crate::config::{Keys, Needs};

/// Writes to the database.
pub const NEEDS: Needs = Needs { database: true, keys: Keys::None, mail: false, mfa: false, passkeys: false, query: false };

/// 204, also when repeated; 404 `user_not_found`.
pub async fn handle(app: &App, request: crate::http::Request) -> crate::http::Reply {
    super::admin_action(app, &request, Action::Enable).await
}
