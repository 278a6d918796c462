//! `POST /auth/security/undo`: "this wasn't me", through the link a second-factor change mailed.

use serde::Deserialize;

use crate::app::App;
use crate::config::{Keys, Needs};
use crate::http::{self, ApiRequest as _, Reply, Request};
use crate::second_factor;
use crate::tokens::MailToken;

/// Undo writes to the database; it signs nothing (every session ends).
pub const NEEDS: Needs = Needs { database: true, keys: Keys::None, mail: false, mfa: false, passkeys: false, query: false };

#[derive(Deserialize)]
struct UndoBody {
    token: String,
}

/// 204: the second factor and recovery codes are as they were before the change, and every
/// session of the user ended; 400 `invalid_token` for a link that is unknown, expired or used.
pub async fn handle(app: &App, request: Request) -> Reply {
    let body: UndoBody = request.json()?;
    second_factor::undo(app, MailToken::parse(&body.token)?).await?;
    Ok(http::empty(204))
}
