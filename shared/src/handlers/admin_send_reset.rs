//! `POST /admin/users/{id}/send-reset` (admin API, IAM): mail a user a password reset link.

use crate::admin::Action;
use crate::app::App;
use crate::config::{Keys, Needs};

/// Writes to the database and sends mail.
pub const NEEDS: Needs = Needs { database: true, keys: Keys::None, mail: true, mfa: false, passkeys: false, query: false };

/// 204, also when repeated; 404 `user_not_found`.
pub async fn handle(app: &App, request: crate::http::Request) -> crate::http::Reply {
    super::admin_action(app, &request, Action::SendReset).await
}
