//! `GET /auth/passkeys`: the caller's passkeys.

use serde::Serialize;

use crate::app::App;
use crate::config::{Keys, Needs};
use crate::http::{self, Reply, Request};
use crate::passkeys::{self, store::PasskeyView};

/// The list verifies access tokens and reads the database.
pub const NEEDS: Needs = Needs { database: true, keys: Keys::Verify, mail: false, mfa: false, passkeys: false, query: false };

#[derive(Serialize)]
struct PasskeyList {
    passkeys: Vec<PasskeyView>,
}

/// 200 `{"passkeys": [{"id","name","synced","created_at","last_used_at"}]}`, oldest first.
pub async fn handle(app: &App, request: Request) -> Reply {
    let caller = super::caller(app, &request).await?;
    let passkeys = passkeys::list(app, &caller).await?;
    Ok(http::json(200, &PasskeyList { passkeys }))
}
