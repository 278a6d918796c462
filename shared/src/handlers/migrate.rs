//! The migrate function: applies the embedded migrations as the schema owner, then grants the
//! application role what the API needs, never at a cold start (the migration itself is
//! [`ops::migration`](crate::ops::migration)). It runs in two ways:
//!
//! - as the stack's `Migration` custom resource (template.yaml): CloudFormation sends `Create`
//!   or `Update` whenever the function's code changes, and waits for the answer PUT to the
//!   request's `ResponseURL`: `FAILED` (naming the failed migration) fails and rolls back the
//!   deploy before the other functions change. `Delete` does nothing: data is never dropped;
//! - invoked directly (`aws lambda invoke`, `local-lambda invoke migrate`): it answers
//!   `{"migrations": N, "application_role": ...}`, and a failure is a failed invocation (a
//!   function error), never a response.

use std::time::{Duration, UNIX_EPOCH};

use lambda_runtime::{Diagnostic, LambdaEvent};
use serde_json::Value;

use crate::app::App;
use crate::config::{Keys, Needs};
use crate::ops::custom_resource::Request;
use crate::ops::migration::{self, ApplicationRole, EventsOut};

/// Migrating needs the database only.
pub const NEEDS: Needs = Needs { database: true, keys: Keys::None, mail: false, mfa: false, passkeys: false, query: false };

/// The `errorType` of a failed invocation.
const ERROR_TYPE: &str = "MigrationFailed";

/// Handles one invocation: a custom-resource request or a direct invocation.
pub async fn handle(app: &App, event: LambdaEvent<Value>) -> Result<Value, Diagnostic> {
    let role = ApplicationRole::from_env();
    let events_out = EventsOut::from_env();
    let deadline = UNIX_EPOCH + Duration::from_millis(event.context.deadline);
    if Request::is_one(&event.payload) {
        let request: Request = serde_json::from_value(event.payload)
            .map_err(|error| failure(anyhow::anyhow!("a malformed custom-resource request: {error}")))?;
        return migration::answer_cloudformation(app, &role, events_out, &request, deadline).await.map_err(failure);
    }
    migration::run(app, &role, events_out).await.map_err(failure)
}

fn failure(error: anyhow::Error) -> Diagnostic {
    tracing::error!(error = ?error, "the migration failed");
    Diagnostic { error_type: ERROR_TYPE.to_owned(), error_message: format!("{error:#}") }
}
